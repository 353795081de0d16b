"""Datasets from other tools' layouts, read from local files, as :class:`chunkeval.datasets.Dataset`.

- :func:`load_passages`: questions whose evidence is an exact passage string (chonkie's MTCB sets
  write it as ``chunk-must-contain``; the reference toolkit's synthetic sets as ``references`` with
  ``content`` only). Each passage is located in its document exactly: in order (each search starts
  where the question's previous passage ended, then falls back to the first occurrence), so a
  passage that repeats maps to the occurrence after the previous one. A passage that is nowhere
  in its document is a :class:`~chunkeval.datasets.DatasetError` naming the row, or with
  ``on_invalid="skip"`` the question is dropped and listed in :attr:`Dataset.skipped`.
- :func:`load_beir`: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
  Every corpus document becomes a corpus; a relevant document (qrels score > 0) is the reference
  span ``[0, len(text))`` of that whole document. A question names one corpus, so a query with
  several relevant documents becomes one question per relevant document (question id
  ``<query-id>#<corpus-id>``; a single one keeps ``<query-id>``); the graded score is kept in the
  question's ``relevance`` field.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .datasets import Dataset, DatasetError, OnInvalid, SkippedRow, load_corpora

__all__ = ["PASSAGE_FIELDS", "load_beir", "load_passages"]

#: Fields read as a question's evidence passages, the first present wins.
PASSAGE_FIELDS = ("passages", "chunk-must-contain", "chunk_must_contain", "evidence", "references")
#: Fields read as a question's document, the first present wins.
DOCUMENT_FIELDS = ("corpus_id", "document_id", "doc_id", "document")
_QUESTION_FIELDS = ("question", "query", "text")


def _jsonl(path: Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {what} ({exc.strerror})", path=str(path), fix="check the path") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"is not JSON ({exc.msg})", path=str(path), row=number,
                               fix="write one JSON object per line") from None
        if not isinstance(record, dict):
            raise DatasetError(f"holds a JSON {type(record).__name__}, not an object", path=str(path), row=number,
                               fix="write one JSON object per line")
        rows.append((number, record))
    return rows


def _first(record: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str | None, Any]:
    for name in fields:
        if name in record:
            return name, record[name]
    return None, None


def _passages(value: Any) -> list[str] | None:
    """The passage strings of a field: a string, a list of strings or of ``{"content": ...}``."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list) or not items:
        return None
    out = []
    for item in items:
        text = item.get("content") if isinstance(item, dict) else item
        if not isinstance(text, str) or not text:
            return None
        out.append(text)
    return out


def locate_passages(text: str, passages: Iterable[str]) -> list[tuple[int, int] | None]:
    """Where each passage lies in ``text``, in order: ``(start, end)`` or ``None`` when absent."""
    found: list[tuple[int, int] | None] = []
    after = 0
    for passage in passages:
        start = text.find(passage, after)
        if start == -1:
            start = text.find(passage)
        if start == -1:
            found.append(None)
            continue
        found.append((start, start + len(passage)))
        after = start + len(passage)
    return found


def load_passages(
    corpora: str | os.PathLike[str] | Mapping[str, str],
    questions: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    name: str | None = None,
    on_invalid: OnInvalid = "error",
) -> Dataset:
    """A dataset from questions whose evidence is exact passage text.

    ``corpora`` is a corpus folder or table (as :func:`chunkeval.datasets.load_corpora` reads) or a
    dict corpus_id → text. ``questions`` is a JSONL file or records, each with the question
    (``question``, ``query`` or ``text``), its document (``corpus_id``, ``document_id``, ``doc_id`` or
    ``document``: a corpus id, a file name or a path ending in one, e.g. ``data/finance.md``;
    optional when there is a single corpus) and its evidence (one of :data:`PASSAGE_FIELDS`: a
    string, a list of strings, or a list of ``{"content": ...}``); an optional ``question_id``.
    Other fields are kept.
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    texts = dict(corpora) if isinstance(corpora, Mapping) else load_corpora(corpora)
    if isinstance(questions, (str, os.PathLike)):
        path = Path(questions)
        label: str | None = str(path)
        rows = _jsonl(path, "questions")
        default_name = path.stem
    else:
        label = None
        rows = []
        for number, record in enumerate(questions, start=1):
            if not isinstance(record, Mapping):
                raise TypeError(f"questions[{number - 1}] is {type(record).__name__}, not a dict; pass question "
                                "records (dicts) or a JSONL path")
            rows.append((number, dict(record)))
        default_name = "passages"
    records: list[dict[str, Any]] = []
    problems: list[DatasetError] = []
    for number, record in rows:
        try:
            records.append(_passage_record(record, texts, label, number))
        except DatasetError as exc:
            problems.append(exc)
    if problems and on_invalid == "error":
        first = problems[0]
        raise first.with_more(len(problems) - 1) if len(problems) > 1 else first
    skipped: list[SkippedRow] = [p.as_skipped() for p in problems]
    if not records:
        raise DatasetError(f"no question is left ({len(problems)} of {len(rows)} have problems)", path=label,
                           fix="check the passage field and the corpus ids")
    return Dataset(name or default_name, texts, records, source=label, skipped=skipped)


def _passage_record(record: dict[str, Any], texts: Mapping[str, str], label: str | None,
                    number: int) -> dict[str, Any]:
    def bad(column: str | None, reason: str, fix: str) -> DatasetError:
        return DatasetError(reason, path=label, row=number, column=column, fix=fix, skippable=True)

    qfield, question = _first(record, _QUESTION_FIELDS)
    if not isinstance(question, str) or not question.strip():
        raise bad(qfield or "question", "has no question text", f"add a non-empty {'/'.join(_QUESTION_FIELDS)}")
    dfield, corpus_id = _first(record, DOCUMENT_FIELDS)
    if dfield is None and len(texts) == 1:
        corpus_id = next(iter(texts))
    if isinstance(corpus_id, str) and corpus_id not in texts:
        # a file name or a path ending in it, as the reference toolkit writes (data/finance.md)
        stem = Path(corpus_id.replace("\\", "/")).stem
        corpus_id = stem if stem in texts else corpus_id
    if not isinstance(corpus_id, str) or corpus_id not in texts:
        known = list(texts)[:5]
        raise bad(dfield or "corpus_id", f"names document {corpus_id!r}, which is not a corpus",
                  f"use one of the corpus ids ({known}{'…' if len(texts) > 5 else ''})")
    pfield, value = _first(record, PASSAGE_FIELDS)
    passages = _passages(value)
    if passages is None:
        raise bad(pfield or "passages", "has no evidence passages",
                  f"give {'/'.join(PASSAGE_FIELDS)} as a string or a list of non-empty strings")
    located = locate_passages(texts[corpus_id], passages)
    missing = [i for i, where in enumerate(located) if where is None]
    if missing:
        shown = passages[missing[0]][:40]
        raise bad(pfield, f"passage {missing[0]} ({shown!r}) is not in document {corpus_id!r}"
                  + (f" ({len(missing)} of {len(passages)} missing)" if len(missing) > 1 else ""),
                  "fix the passage so it is verbatim document text")
    out: dict[str, Any] = {k: v for k, v in record.items()
                           if k not in (qfield, dfield, pfield, "question_id")}
    if "question_id" in record:
        out["question_id"] = str(record["question_id"])
    out["question"] = question
    out["corpus_id"] = corpus_id
    out["references"] = [{"content": p, "start_index": w[0], "end_index": w[1]}
                         for p, w in zip(passages, located, strict=True) if w is not None]
    return out


def load_beir(folder: str | os.PathLike[str], *, split: str = "test", name: str | None = None,
              on_invalid: OnInvalid = "error") -> Dataset:
    """A dataset from a BEIR-layout folder: ``corpus.jsonl`` (``_id``, ``text``, optional ``title``),
    ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``,
    ``score``, with a header row). See the module docstring for how queries become questions.
    A qrels row naming an unknown query or document, or an empty document, is a
    :class:`~chunkeval.datasets.DatasetError`, or with ``on_invalid="skip"`` dropped and listed."""
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    root = Path(folder)
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise DatasetError(f"is not a BEIR folder: {needed.relative_to(root)} is missing", path=str(root),
                               fix="a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    corpora = _id_texts(root / "corpus.jsonl", "the corpus")
    queries = _id_texts(root / "queries.jsonl", "the queries")
    relevant, problems = _read_qrels(qrels_path, queries, corpora)
    if problems and on_invalid == "error":
        raise problems[0].with_more(len(problems) - 1) if len(problems) > 1 else problems[0]
    records = []
    for qid, docs in relevant.items():
        for doc_id, score in docs:
            records.append({"question_id": qid if len(docs) == 1 else f"{qid}#{doc_id}", "question": queries[qid],
                            "corpus_id": doc_id, "relevance": score,
                            "references": [{"start_index": 0, "end_index": len(corpora[doc_id])}]})
    if not records:
        raise DatasetError(f"qrels/{split}.tsv has no relevant (score > 0) pair left", path=str(root),
                           fix="check the split name and the qrels file")
    return Dataset(name or root.name, corpora, records, source=str(root), skipped=[p.as_skipped() for p in problems])


def _id_texts(path: Path, what: str) -> dict[str, str]:
    """``_id`` → ``text`` of a BEIR JSONL file."""
    out: dict[str, str] = {}
    for number, row in _jsonl(path, what):
        key, text = row.get("_id"), row.get("text")
        if isinstance(key, bool) or not isinstance(key, (str, int)) or not isinstance(text, str):
            raise DatasetError("needs _id (a string) and text (a string)", path=str(path), row=number,
                               fix='write {"_id": "...", "text": "..."} per line')
        out[str(key)] = text
    return out


def _read_qrels(path: Path, queries: Mapping[str, str], corpora: Mapping[str, str]
                ) -> tuple[dict[str, list[tuple[str, int]]], list[DatasetError]]:
    """The relevant (score > 0) documents of each query, in file order, and the rows with problems."""
    relevant: dict[str, list[tuple[str, int]]] = {}
    problems: list[DatasetError] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, fields in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 and fields[:1] == ["query-id"]:
                continue
            if len(fields) != 3 or not fields[2].strip().lstrip("-").isdigit():
                raise DatasetError(f"has fields {fields!r}", path=str(path), row=number,
                                   fix="write query-id<TAB>corpus-id<TAB>integer score")
            qid, doc_id, score = fields[0], fields[1], int(fields[2])
            if score <= 0:
                continue
            problem = None
            if qid not in queries:
                problem = (f"query {qid!r} is not in queries.jsonl", "query-id", "add the query")
            elif doc_id not in corpora:
                problem = (f"document {doc_id!r} is not in corpus.jsonl", "corpus-id", "add the document")
            elif not corpora[doc_id]:
                problem = (f"document {doc_id!r} is empty, so it has no span", "corpus-id", "give it text")
            if problem is None:
                relevant.setdefault(qid, []).append((doc_id, score))
            else:
                problems.append(DatasetError(problem[0], path=str(path), row=number, column=problem[1],
                                             fix=problem[2], skippable=True))
    return relevant, problems
