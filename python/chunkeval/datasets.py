"""Benchmarks: corpora plus questions whose references are exact spans of the corpora.

A **question record** (shared by datasets, evaluation, the generator and sweeps) is a dict::

    {"question_id": str, "question": str, "corpus_id": str,
     "references": [{"content": str, "start_index": int, "end_index": int}, ...],
     ...extra fields (e.g. "provenance": {...})}

References are half-open Python ``str`` offsets into the corpus named by ``corpus_id``;
``content`` is optional, and when present must equal ``corpus[start_index:end_index]``.

Files:

- corpora: a folder of ``.txt``/``.md`` files (UTF-8, corpus_id = file name without extension,
  read with universal newlines like the reference toolkit does) or a Parquet/JSONL table with
  columns ``corpus_id``, ``text``;
- questions: the reference toolkit's CSV (columns ``question``, ``references`` as a JSON string,
  ``corpus_id``; chunkeval adds ``question_id`` and, when records carry extra fields, ``extra`` as
  a JSON object), JSONL (one record per line) or Parquet (``references`` as
  ``list<struct<content, start_index, end_index>>``, extra fields as the JSON column ``extra``).
  All three round-trip losslessly through :func:`read_questions`/:func:`write_questions`.

Row numbers in error messages count questions from 0 in file order (CSV header excluded).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ._io import append_line_durable, atomic_open
from .spans import RaggedSpans

__all__ = [
    "Dataset",
    "load",
    "load_corpora",
    "read_questions",
    "write_questions",
    "append_question",
    "BUNDLED",
]

#: Names accepted by :func:`load` for the benchmark shipped with chunkeval.
BUNDLED = {"chroma-general": "chroma_general", "chroma_general": "chroma_general"}

_CORE_FIELDS = ("question_id", "question", "corpus_id", "references")
_REFERENCE_FIELDS = ("content", "start_index", "end_index")
_TEXT_SUFFIXES = (".txt", ".md")
_QUESTION_FILES = ("questions.jsonl", "questions.parquet", "questions.csv", "questions_df.csv")
_MAX_LISTED_PROBLEMS = 5


# --------------------------------------------------------------------------------------------
# Dataset


@dataclass(eq=False)
class Dataset:
    """Corpora and questions, validated when built.

    ``corpora`` maps corpus_id → text in order; a corpus's doc id (the ``doc`` of its spans) is its
    position in :attr:`corpus_ids`. ``questions`` are question records (see the module docstring);
    a record without ``question_id`` gets ``f"{name}:{i}"``. Building checks that every reference
    names a known corpus, lies within it (``0 <= start < end <= len(corpus)``) and, where
    ``content`` is given, that ``corpus[start:end] == content``; all problems are collected into
    one ``ValueError`` that lists the first few by question row.
    """

    name: str
    corpora: dict[str, str]
    questions: list[dict[str, Any]]
    source: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.corpora, Mapping):
            raise TypeError(f"corpora must be a dict corpus_id -> text, got {type(self.corpora).__name__}")
        corpora: dict[str, str] = {}
        for corpus_id, text in self.corpora.items():
            if not isinstance(corpus_id, str) or not corpus_id:
                raise TypeError(f"corpora: corpus id {corpus_id!r} must be a non-empty str")
            if not isinstance(text, str):
                raise TypeError(f"corpora[{corpus_id!r}] is {type(text).__name__}, not str; decode it (UTF-8) first")
            corpora[corpus_id] = text
        self.corpora = corpora
        if isinstance(self.questions, (str, bytes, Mapping)) or not isinstance(self.questions, Iterable):
            raise TypeError(f"questions must be a list of question records, got {type(self.questions).__name__}")
        self.questions = _normalize_questions(list(self.questions), self.name, self.corpora, self.source)

    # -- shape ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.questions)

    def __repr__(self) -> str:
        n_refs = sum(len(q["references"]) for q in self.questions)
        return f"Dataset({self.name!r}, corpora={len(self.corpora)}, questions={len(self)}, references={n_refs})"

    @property
    def corpus_ids(self) -> list[str]:
        return list(self.corpora)

    @property
    def texts(self) -> list[str]:
        """Corpus texts in doc-id order."""
        return list(self.corpora.values())

    def doc_lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.corpora.values()], dtype=np.int64)

    def question_doc(self) -> np.ndarray:
        """The doc id of each question's corpus."""
        doc_of = {cid: i for i, cid in enumerate(self.corpora)}
        return np.array([doc_of[q["corpus_id"]] for q in self.questions], dtype=np.int64)

    def references(self) -> RaggedSpans:
        """One list of reference spans per question (``doc`` = the corpus's doc id)."""
        doc_of = {cid: i for i, cid in enumerate(self.corpora)}
        counts = np.array([len(q["references"]) for q in self.questions], dtype=np.int64)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        doc = np.empty(total, dtype=np.int64)
        start = np.empty(total, dtype=np.int64)
        end = np.empty(total, dtype=np.int64)
        row = 0
        for q in self.questions:
            d = doc_of[q["corpus_id"]]
            for ref in q["references"]:
                doc[row], start[row], end[row] = d, ref["start_index"], ref["end_index"]
                row += 1
        return RaggedSpans(offsets, doc, start, end, name=f"{self.name} references")

    def fingerprint(self) -> str:
        """sha256 of the corpora (ids and texts, in order) and the question records (in order)
        without their ``question_id``; independent of ``name``.

        Question ids are left out because they are labels, not content: a generated id
        (``f"{name}:{row}"``) would make the fingerprint depend on ``name``, and writing a dataset
        with :func:`write_questions` turns generated ids into explicit ones, so leaving out only
        generated ids would change the fingerprint of the same data on a round trip. Everything
        else (question text, corpus, every reference offset and content, extra fields) counts.
        """
        digest = hashlib.sha256()
        digest.update(b"chunkeval-dataset-v2\0")
        for corpus_id, text in self.corpora.items():
            for part in (corpus_id.encode("utf-8"), text.encode("utf-8", "surrogatepass")):
                digest.update(len(part).to_bytes(8, "little"))
                digest.update(part)
        records = [{k: v for k, v in q.items() if k != "question_id"} for q in self.questions]
        questions = json.dumps(records, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        digest.update(questions.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def subset(
        self, corpora: Sequence[str] | None = None, max_questions: int | None = None, seed: int = 0
    ) -> "Dataset":
        """A smaller dataset: only the named corpora (in this dataset's order) and their questions,
        then at most ``max_questions`` questions drawn without replacement with ``seed`` (kept in
        their original order). Question ids are kept, so results stay comparable."""
        if corpora is None:
            keep = list(self.corpora)
        else:
            if isinstance(corpora, str):
                corpora = [corpora]
            unknown = [c for c in corpora if c not in self.corpora]
            if unknown:
                raise ValueError(f"subset: unknown corpus id(s) {unknown}; known: {list(self.corpora)}")
            wanted = set(corpora)
            keep = [c for c in self.corpora if c in wanted]
        kept = set(keep)
        questions = [q for q in self.questions if q["corpus_id"] in kept]
        if max_questions is not None:
            if isinstance(max_questions, bool) or not isinstance(max_questions, (int, np.integer)) or max_questions < 0:
                raise ValueError(f"max_questions must be a non-negative int or None, got {max_questions!r}")
            if max_questions < len(questions):
                rng = np.random.default_rng(seed)
                rows = np.sort(rng.choice(len(questions), size=int(max_questions), replace=False))
                questions = [questions[i] for i in rows.tolist()]
        return Dataset(self.name, {c: self.corpora[c] for c in keep}, [dict(q) for q in questions], source=self.source)


def _to_offset(value: Any) -> int | None:
    """An offset as int, accepting integral floats and digit strings (CSV/JSON round trips)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _normalize_questions(
    questions: list[Any], name: str, corpora: Mapping[str, str], source: str | None
) -> list[dict[str, Any]]:
    problems: list[str] = []
    normalized: list[dict[str, Any]] = []
    seen_ids: dict[str, int] = {}
    for row, record in enumerate(questions):
        if not isinstance(record, Mapping):
            problems.append(f"row {row}: is {type(record).__name__}, not a question record (a dict)")
            continue
        record = dict(record)
        qid = record.get("question_id")
        if qid is None or qid == "":
            qid = f"{name}:{row}"
        elif not isinstance(qid, str):
            qid = str(qid)
        label = f"row {row} ({qid})"
        if qid in seen_ids:
            problems.append(f"{label}: question_id repeats row {seen_ids[qid]}; ids must be unique")
        seen_ids.setdefault(qid, row)
        question = record.get("question")
        if not isinstance(question, str):
            problems.append(f"{label}: 'question' is {type(question).__name__}, not str")
        corpus_id = record.get("corpus_id")
        corpus = corpora.get(corpus_id) if isinstance(corpus_id, str) else None
        if corpus is None:
            known = ", ".join(list(corpora)[:8]) + (", …" if len(corpora) > 8 else "")
            problems.append(f"{label}: unknown corpus_id {corpus_id!r} (known: {known})")
        references = record.get("references")
        clean_refs: list[dict[str, Any]] = []
        if not isinstance(references, (list, tuple)):
            problems.append(f"{label}: 'references' is {type(references).__name__}, not a list of references")
        elif not references:
            problems.append(f"{label}: no references; every question needs at least one evidence span")
        else:
            for i, ref in enumerate(references):
                where = f"{label}, reference {i}"
                if not isinstance(ref, Mapping):
                    problems.append(f"{where}: is {type(ref).__name__}, not a dict with start_index/end_index")
                    continue
                start, end = _to_offset(ref.get("start_index")), _to_offset(ref.get("end_index"))
                if start is None or end is None:
                    problems.append(
                        f"{where}: start_index {ref.get('start_index')!r} / end_index {ref.get('end_index')!r} "
                        "must be integers"
                    )
                    continue
                clean = dict(ref)
                clean["start_index"], clean["end_index"] = start, end
                clean_refs.append(clean)
                if not 0 <= start < end:
                    problems.append(f"{where}: span [{start}, {end}) is empty, reversed or negative")
                    continue
                if corpus is None:
                    continue
                if end > len(corpus):
                    problems.append(
                        f"{where}: end_index {end} is past the end of corpus {corpus_id!r} (length {len(corpus)})"
                    )
                    continue
                content = ref.get("content")
                if content is not None and corpus[start:end] != content:
                    problems.append(
                        f"{where}: content {_preview(content)} differs from corpus[{start}:{end}] "
                        f"{_preview(corpus[start:end])}"
                    )
        record["question_id"] = qid
        if isinstance(references, (list, tuple)):
            record["references"] = clean_refs
        normalized.append(record)
    if problems:
        origin = f" in {source}" if source else ""
        listed = "\n  ".join(problems[:_MAX_LISTED_PROBLEMS])
        more = f"\n  … and {len(problems) - _MAX_LISTED_PROBLEMS} more" if len(problems) > _MAX_LISTED_PROBLEMS else ""
        raise ValueError(
            f"dataset {name!r}: {len(problems)} problem(s){origin}:\n  {listed}{more}\n"
            "Fix the offsets so that corpus[start_index:end_index] == content (Python str indices, "
            "half-open), or drop the bad questions."
        )
    return normalized


def _preview(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[:width] + "…")


# --------------------------------------------------------------------------------------------
# Loading


def load(
    source: str | os.PathLike[str] | None = None,
    *,
    corpora: str | os.PathLike[str] | None = None,
    questions: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a benchmark.

    - ``load()`` or ``load("chroma-general")``: the bundled Chroma general evaluation set
      (5 corpora, 472 questions, 790 references; corpora in file-name order);
    - ``load(path)``: a directory holding ``corpora/`` (``.txt``/``.md`` files) or
      ``corpora.parquet``/``corpora.jsonl``, and one questions file: ``questions.jsonl``,
      ``questions.parquet``, ``questions.csv`` or the toolkit's ``questions_df.csv``;
    - ``load(corpora=..., questions=...)``: separate paths (see :func:`load_corpora` and
      :func:`read_questions`).

    ``name`` defaults to the bundled name or the directory / questions file name.
    """
    if corpora is not None or questions is not None:
        if source is not None:
            raise ValueError("pass either source or corpora= and questions=, not both")
        if corpora is None or questions is None:
            raise ValueError("load(corpora=..., questions=...) needs both paths")
        qpath = Path(questions)
        return Dataset(
            name or qpath.stem,
            load_corpora(corpora),
            read_questions(qpath),
            source=str(qpath),
        )
    if source is None:
        source = "chroma-general"
    if isinstance(source, str) and source in BUNDLED:
        return _load_bundled(BUNDLED[source], name or "chroma-general")
    path = Path(source)
    if not path.is_dir():
        raise ValueError(
            f"dataset source {str(source)!r} is neither a bundled benchmark ({', '.join(sorted(BUNDLED))}) "
            "nor a directory; pass a folder with corpora/ and questions.jsonl|csv|parquet, "
            "or load(corpora=..., questions=...)"
        )
    corpus_candidates = [p for p in (path / "corpora", path / "corpora.parquet", path / "corpora.jsonl") if p.exists()]
    if len(corpus_candidates) != 1:
        found = [p.name for p in corpus_candidates]
        raise ValueError(
            f"{path}: expected exactly one of corpora/, corpora.parquet, corpora.jsonl, found {found or 'none'}; "
            "or use load(corpora=..., questions=...)"
        )
    question_candidates = [path / f for f in _QUESTION_FILES if (path / f).is_file()]
    if len(question_candidates) != 1:
        found = [p.name for p in question_candidates]
        raise ValueError(
            f"{path}: expected exactly one questions file ({', '.join(_QUESTION_FILES)}), found {found or 'none'}; "
            "or use load(corpora=..., questions=...)"
        )
    return Dataset(
        name or path.name,
        load_corpora(corpus_candidates[0]),
        read_questions(question_candidates[0]),
        source=str(question_candidates[0]),
    )


def _load_bundled(folder: str, name: str) -> Dataset:
    from importlib import resources

    root = resources.files("chunkeval").joinpath("data", folder)
    corpora = _read_corpus_folder(root.joinpath("corpora"), f"chunkeval/data/{folder}/corpora")
    questions_file = root.joinpath("questions_df.csv")
    with questions_file.open("r", encoding="utf-8", newline="") as handle:
        questions = _read_csv(handle, f"chunkeval/data/{folder}/questions_df.csv")
    return Dataset(name, corpora, questions, source=f"chunkeval/data/{folder}")


def _read_corpus_folder(folder: Any, label: str) -> dict[str, str]:
    """corpus_id → text from the ``.txt``/``.md`` files (suffix in any case) of ``folder``, a
    :class:`~pathlib.Path` or an :mod:`importlib.resources` traversable, sorted by file name.

    The one reader of corpus folders, for :func:`load_corpora` and the bundled benchmark alike.
    Files are read as UTF-8 with universal newlines; the corpus id is the file name without its
    suffix.
    """
    files = sorted(
        (f for f in folder.iterdir() if f.is_file() and Path(f.name).suffix.lower() in _TEXT_SUFFIXES),
        key=lambda f: f.name,
    )
    if not files:
        raise ValueError(f"{label}: no .txt or .md files; put one UTF-8 file per corpus there")
    corpora: dict[str, str] = {}
    for f in files:
        corpus_id = Path(f.name).stem
        if corpus_id in corpora:
            raise ValueError(f"{label}: corpus id {corpus_id!r} appears twice (.txt and .md); rename one file")
        try:
            corpora[corpus_id] = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{label}/{f.name}: not UTF-8 ({exc.reason} at byte {exc.start}); convert the file to UTF-8"
            ) from None
    return corpora


def load_corpora(path: str | os.PathLike[str]) -> dict[str, str]:
    """corpus_id → text from a folder of ``.txt``/``.md`` files (sorted by file name) or from a
    Parquet/JSONL table with columns ``corpus_id`` and ``text`` (in table order).

    Files are read as UTF-8 with universal newlines (``\\r\\n`` becomes ``\\n``), as the reference
    toolkit reads them, so offsets from its question files line up.
    """
    path = Path(path)
    if path.is_dir():
        return _read_corpus_folder(path, str(path))
    if not path.is_file():
        raise ValueError(f"corpora path {str(path)!r} does not exist; pass a folder of .txt/.md files or a .parquet/.jsonl table")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = [c for c in ("corpus_id", "text") if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; a corpora table needs corpus_id and text")
        rows = zip(table.column("corpus_id").to_pylist(), table.column("text").to_pylist())
    elif suffix == ".jsonl":
        rows = ((r.get("corpus_id"), r.get("text")) for r in _read_jsonl(path))
    else:
        raise ValueError(f"{path}: unsupported corpora file type {suffix!r}; use a folder, .parquet or .jsonl")
    corpora = {}
    for row, (corpus_id, text) in enumerate(rows):
        if not isinstance(corpus_id, str) or not corpus_id or not isinstance(text, str):
            raise ValueError(f"{path}: row {row} needs a non-empty str corpus_id and a str text, got {corpus_id!r}")
        if corpus_id in corpora:
            raise ValueError(f"{path}: row {row} repeats corpus_id {corpus_id!r}; ids must be unique")
        corpora[corpus_id] = text
    return corpora


# --------------------------------------------------------------------------------------------
# Question files


def read_questions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Question records from a ``.csv`` (the toolkit's format), ``.jsonl`` or ``.parquet`` file.

    Records come back as written: a record without ``question_id`` has none (a :class:`Dataset`
    assigns one). Offsets are not checked here; building a :class:`Dataset` checks them.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"questions file {str(path)!r} does not exist")
    if suffix == ".csv":
        with open(path, "r", encoding="utf-8", newline="") as handle:
            return _read_csv(handle, str(path))
    if suffix == ".jsonl":
        return list(_read_jsonl(path))
    if suffix == ".parquet":
        return _read_parquet(path)
    raise ValueError(f"{path}: unsupported questions file type {suffix!r}; use .csv, .jsonl or .parquet")


def write_questions(questions: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write question records to ``.csv``, ``.jsonl`` or ``.parquet`` (by extension), atomically:
    the file appears complete or not at all (temp file in the same folder, then ``os.replace``).

    The CSV is readable by the reference toolkit (``pd.read_csv`` + ``json.loads`` on
    ``references``); chunkeval's extra columns ``question_id`` and ``extra`` are ignored there.
    """
    path = Path(path)
    records = [_check_record(q, row) for row, q in enumerate(questions)]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with atomic_open(path, "w") as handle:
            for record in records:
                handle.write(_json_line(record))
    elif suffix == ".csv":
        with atomic_open(path, "w") as handle:
            _write_csv(records, handle)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = _questions_table(records)
        with atomic_open(path, "wb") as handle:
            pq.write_table(table, handle)
    else:
        raise ValueError(f"{path}: unsupported questions file type {suffix!r}; use .csv, .jsonl or .parquet")
    return path


def append_question(record: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Append one record to a JSONL file and make it durable (flush + fsync) before returning,
    so an interrupted generator keeps every question it already wrote."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise ValueError(f"{path}: append_question writes JSONL; use a .jsonl path")
    line = _json_line(_check_record(record, 0))
    needs_newline = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            needs_newline = existing.read(1) != b"\n"
    # A file that does not end in a newline would glue this record onto its last line.
    append_line_durable(path, ("\n" if needs_newline else "") + line)


def _check_record(record: Any, row: int) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise TypeError(f"questions: row {row} is {type(record).__name__}, not a question record (a dict)")
    missing = [f for f in ("question", "corpus_id", "references") if f not in record]
    if missing:
        raise ValueError(f"questions: row {row} lacks {missing}; a record needs question, corpus_id, references")
    return dict(record)


def _json_line(record: Mapping[str, Any]) -> str:
    ordered = {k: record[k] for k in _CORE_FIELDS if k in record}
    ordered.update((k, v) for k, v in record.items() if k not in ordered)
    return json.dumps(ordered, ensure_ascii=False, allow_nan=False) + "\n"




def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "r", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    row = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            last = number == len(lines)  # the text after the final newline: a line cut short
            hint = " (a truncated last line from an interrupted write: delete it)" if last else ""
            raise ValueError(f"{path}: line {number} (row {row}) is not valid JSON: {exc.msg}{hint}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} (row {row}) is a JSON {type(record).__name__}, not an object")
        row += 1
        yield record


def _read_csv(handle: io.TextIOBase | Any, label: str) -> list[dict[str, Any]]:
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # references of long evidence exceed the 128 KiB default
    try:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in ("question", "references", "corpus_id") if c not in columns]
        if missing:
            raise ValueError(f"{label}: missing column(s) {missing}; the CSV needs question, references, corpus_id")
        records = []
        for row, raw in enumerate(reader):
            record: dict[str, Any] = {}
            if raw.get("question_id"):
                record["question_id"] = raw["question_id"]
            record["question"] = raw["question"]
            record["corpus_id"] = raw["corpus_id"]
            try:
                record["references"] = json.loads(raw["references"] or "")
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{label}: row {row}: references is not valid JSON ({exc.msg}); it must be a JSON list of "
                    '{"content", "start_index", "end_index"} objects'
                ) from None
            if raw.get("extra"):
                try:
                    extra = json.loads(raw["extra"])
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{label}: row {row}: extra is not valid JSON ({exc.msg})") from None
                if not isinstance(extra, dict):
                    raise ValueError(f"{label}: row {row}: extra must be a JSON object")
                record.update(extra)
            for column, value in raw.items():
                if column not in ("question_id", "question", "corpus_id", "references", "extra") and column is not None:
                    record[column] = value
            records.append(record)
        return records
    finally:
        csv.field_size_limit(old_limit)


def _extra_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _CORE_FIELDS}


def _write_csv(records: list[dict[str, Any]], handle: Any) -> None:
    with_ids = any("question_id" in r for r in records)
    with_extra = any(_extra_fields(r) for r in records)
    columns = ["question", "references", "corpus_id"] + (["question_id"] if with_ids else []) + (["extra"] if with_extra else [])
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        # ASCII-escaped JSON, as the reference toolkit's own CSV holds it.
        row = [record["question"], json.dumps(record["references"], allow_nan=False), record["corpus_id"]]
        if with_ids:
            row.append(record.get("question_id", ""))
        if with_extra:
            extra = _extra_fields(record)
            row.append(json.dumps(extra, ensure_ascii=False, allow_nan=False) if extra else "")
        writer.writerow(row)


def _questions_table(records: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    reference_type = pa.struct(
        [("content", pa.string()), ("start_index", pa.int64()), ("end_index", pa.int64())]
    )
    references = []
    for row, record in enumerate(records):
        refs = record["references"]
        if not isinstance(refs, (list, tuple)):
            raise ValueError(f"questions: row {row}: references must be a list to be written as Parquet")
        for i, ref in enumerate(refs):
            if not isinstance(ref, Mapping):
                raise ValueError(f"questions: row {row}, reference {i} is not a dict")
            unknown = [k for k in ref if k not in _REFERENCE_FIELDS]
            if unknown:
                raise ValueError(
                    f"questions: row {row}, reference {i} has field(s) {unknown}; Parquet stores only "
                    "content, start_index, end_index (write JSONL to keep them)"
                )
        references.append(refs)
    extras = [_extra_fields(r) for r in records]
    return pa.table(
        {
            "question_id": pa.array([r.get("question_id") for r in records], pa.string()),
            "question": pa.array([r["question"] for r in records], pa.string()),
            "corpus_id": pa.array([r["corpus_id"] for r in records], pa.string()),
            "references": pa.array(references, pa.list_(reference_type)),
            "extra": pa.array(
                [json.dumps(e, ensure_ascii=False, allow_nan=False) if e else None for e in extras], pa.string()
            ),
        }
    )


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = [c for c in ("question", "references", "corpus_id") if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a questions table needs question, references, corpus_id")
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    records = []
    for row in range(table.num_rows):
        record: dict[str, Any] = {}
        qid = columns.get("question_id", [None] * table.num_rows)[row]
        if qid is not None:
            record["question_id"] = qid
        record["question"] = columns["question"][row]
        record["corpus_id"] = columns["corpus_id"][row]
        refs = columns["references"][row]
        record["references"] = None if refs is None else [
            {k: v for k, v in ref.items() if not (k == "content" and v is None)} for ref in refs
        ]
        extra = columns.get("extra", [None] * table.num_rows)[row]
        if extra:
            try:
                record.update(json.loads(extra))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: row {row}: extra is not valid JSON ({exc.msg})") from None
        for name, values in columns.items():
            if name not in _CORE_FIELDS and name != "extra":
                record[name] = values[row]
        records.append(record)
    return records
