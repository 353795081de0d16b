"""Benchmarks: corpora plus questions whose references are exact spans of the corpora.

A **question record** (shared by datasets, evaluation, the generator and sweeps) is a dict::

    {"question_id": str, "question": str, "corpus_id": str,
     "references": [{"content": str, "start_index": int, "end_index": int}, ...],
     ...extra fields (e.g. "provenance": {...})}

References are half-open Python ``str`` offsets into the corpus named by ``corpus_id``;
``content`` is optional, and when present must equal ``corpus[start_index:end_index]``.

A **cross-document** question has references in several corpora: a reference may carry its own
``corpus_id`` (matched like the question's, see below), and its offsets are then into that
corpus; a reference without one lies in the question's corpus. The question's ``corpus_id`` is
the label it is grouped under in results (per-corpus means, ``subset(corpora=...)``); a record
may leave it out when its first reference names a corpus, which then is the label. A loaded
dataset stores each reference's resolved ``corpus_id`` only where it differs from the question's,
so every spelling of the same data has one fingerprint.

Files (the layout is documented for users in ``docs/datasets.md`` and :data:`DATASET_LAYOUT_HELP`):

- corpora: a folder of ``.txt``/``.md`` files (UTF-8, corpus_id = file name without extension,
  read with universal newlines like the reference toolkit does) or a Parquet/JSONL table with
  columns ``corpus_id``, ``text``;
- questions: the reference toolkit's CSV (columns ``question``, ``references`` as a JSON string,
  ``corpus_id``; chunkeval adds ``question_id`` and, when records carry extra fields, ``extra`` as
  a JSON object), JSONL (one record per line) or Parquet (``references`` as
  ``list<struct<content, start_index, end_index>>`` or the CSV's JSON text, extra fields as the
  JSON column ``extra``). All three round-trip losslessly through
  :func:`read_questions`/:func:`write_questions`.

A question's ``corpus_id`` may be the corpus id itself (a corpus file's stem, ``finance``), its
file name (``finance.md``) or a path ending in it (``data/finance.md``, the reference toolkit's
values); a :class:`Dataset` stores the corpus id it resolved to.

Every problem a user's data can cause is a :class:`DatasetError`: one line naming the file, the
row as an editor or spreadsheet shows it (CSV: the header is row 1, so the first question is row 2;
JSONL: the line number; Parquet: rows from 1; records passed from Python: their position from 1),
the column, the reason and the fix. ``load(..., on_invalid="skip")`` drops bad rows instead and
keeps them in :attr:`Dataset.skipped`.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np

from ._io import append_line_durable, atomic_open
from .spans import RaggedSpans

__all__ = [
    "Dataset",
    "DatasetError",
    "SkippedRow",
    "OnInvalid",
    "load",
    "load_corpora",
    "read_questions",
    "write_questions",
    "append_question",
    "write_skipped",
    "BUNDLED",
    "DATASET_LAYOUT_HELP",
]

#: Names accepted by :func:`load` for the benchmark shipped with chunkeval.
BUNDLED = {"chroma-general": "chroma_general", "chroma_general": "chroma_general"}

#: What :func:`load` does with a question row that has a problem: raise, or drop it and list it.
OnInvalid = Literal["error", "skip"]

#: The dataset folder layout in plain text, for ``chunkeval evaluate --help``.
DATASET_LAYOUT_HELP = """\
A dataset folder holds the corpora and exactly one questions file:
  corpora/*.txt, corpora/*.md   one UTF-8 file per corpus; its corpus id is the file name
                                without extension (or corpora.parquet / corpora.jsonl with
                                columns corpus_id, text)
  questions.jsonl | questions.parquet | questions.csv | questions_df.csv
Question columns (JSONL: fields of one object per line):
  question     text of the question
  corpus_id    the corpus file's stem (finance), file name (finance.md) or a path
               ending in it (data/finance.md)
  references   list of {"content", "start_index", "end_index"}: half-open Python str
               offsets, corpus[start_index:end_index] == content (content optional);
               a reference in another corpus adds its own "corpus_id" (cross-document);
               CSV: a JSON string; Parquet: list<struct<...>> or that JSON string
  question_id  optional; default <dataset name>:<position>
  extra        optional JSON object of further fields (CSV, Parquet)
Errors name the row as an editor shows it: CSV header = row 1, first question = row 2;
JSONL = line number; Parquet = row from 1.
--on-invalid skip drops rows with problems and lists each with its reason in OUT/skipped.jsonl.
The reference toolkit's folder (corpora/*.md + questions_df.csv) loads as it is.
Details and a worked example: docs/datasets.md"""

_CORE_FIELDS = ("question_id", "question", "corpus_id", "references")
_REFERENCE_FIELDS = ("content", "start_index", "end_index", "corpus_id")
_REQUIRED_COLUMNS = ("question", "references", "corpus_id")
_TEXT_SUFFIXES = (".txt", ".md")
_QUESTION_FILES = ("questions.jsonl", "questions.parquet", "questions.csv", "questions_df.csv")
_SKIP_HINT = "drop the row (--on-invalid skip)"
_REFERENCE_SHAPE = 'a list of {"content", "start_index", "end_index"} objects'
#: Deeper values are refused: they cannot be written back (JSON) or hashed without recursion.
_MAX_DEPTH = 64
#: Offsets beyond this are no corpus's offsets; refusing them keeps them out of int64 arrays.
_MAX_OFFSET = 2**62
#: ASCII digits only: ``str.isdigit()`` accepts "²", which ``int()`` then rejects.
_OFFSET_TEXT = re.compile(r"\s*[+-]?[0-9]{1,18}\s*")
_LONG_DIGITS = re.compile(r"\s*[+-]?[0-9]{19,}\s*")
#: Bytes that are not UTF-8 decode (surrogateescape) to these code points.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# --------------------------------------------------------------------------------------------
# Errors


class SkippedRow(TypedDict):
    """One question row that ``on_invalid="skip"`` dropped (``row`` as in :class:`DatasetError`)."""

    path: str | None
    row: int | None
    column: str | None
    reason: str


class DatasetError(ValueError):
    """A problem in a dataset, as one line: where (file, row, column), what, and how to fix it.

    ``row`` is 1-based as an editor or spreadsheet shows it: in a CSV the header is row 1 and the
    first question row 2; in JSONL it is the line number; in Parquet rows count from 1; for records
    passed from Python it is the position from 1. ``column`` is the column (CSV, Parquet) or field
    (JSONL) at fault, ``None`` where the whole row or file is. ``skippable`` problems concern one
    question row, which ``load(..., on_invalid="skip")`` drops; the others stop loading. ``more``
    counts the further rows with problems in the same file.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
        fix: str | None = None,
        skippable: bool = False,
        dataset: str | None = None,
        more: int = 0,
    ) -> None:
        self.reason = reason
        self.path = path
        self.row = row
        self.column = column
        self.fix = fix
        self.skippable = skippable
        self.dataset = dataset
        self.more = more
        super().__init__(self._message())

    def _fields(self) -> dict[str, Any]:
        return {"path": self.path, "row": self.row, "column": self.column, "fix": self.fix,
                "skippable": self.skippable, "dataset": self.dataset, "more": self.more}

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        # Keyword-only attributes survive pickling (worker processes hand errors back).
        return (_rebuild_error, (self.reason, self._fields()))

    @property
    def location(self) -> str:
        """``"questions.csv row 7, column references"``: the part of the message before the colon."""
        # JSONL lines and Python records hold fields; CSV and Parquet rows hold columns.
        is_jsonl = self.path is None or self.path.lower().endswith(".jsonl")
        if self.path is not None:
            where = self.path
            if self.row is not None:
                where += f" {'line' if is_jsonl else 'row'} {self.row}"
        elif self.dataset is not None:
            where = f"dataset {self.dataset!r}" + (f" question {self.row}" if self.row is not None else "")
        else:
            where = f"row {self.row}" if self.row is not None else ""
        if self.column is not None:
            where += (", " if where else "") + f"{'field' if is_jsonl else 'column'} {self.column}"
        return where

    def _message(self) -> str:
        where = self.location
        text = f"{where}: {self.reason}" if where else self.reason
        fix = self.fix
        if self.skippable:
            fix = f"{fix} or {_SKIP_HINT}" if fix else _SKIP_HINT
        if fix:
            text += f"; {fix}"
        if self.more and self.path is None:
            text += f" (and {self.more} more question{'' if self.more == 1 else 's'} with problems)"
        elif self.more:
            rows = "row" if self.more == 1 else "rows"
            text += f" (and {self.more} more {rows} with problems; --on-invalid skip drops them and lists them)"
        # One line whatever the data holds: a path or a reason never breaks the CLI's single line.
        return text.replace("\r", "\\r").replace("\n", "\\n")

    def __str__(self) -> str:
        return self._message()

    def with_more(self, more: int) -> DatasetError:
        """The same error, saying that ``more`` further rows have problems."""
        fields = self._fields()
        fields["more"] = more
        return DatasetError(self.reason, **fields)

    def as_skipped(self) -> SkippedRow:
        return {"path": self.path, "row": self.row, "column": self.column, "reason": self.reason}


def _rebuild_error(reason: str, fields: dict[str, Any]) -> DatasetError:
    return DatasetError(reason, **fields)


class _Bad(Exception):
    """A problem found in one record, before its location is known."""

    def __init__(self, column: str | None, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.column, self.reason, self.fix = column, reason, fix


def _summary(problems: Sequence[DatasetError]) -> DatasetError:
    """The first problem, counting the rows after it."""
    return problems[0].with_more(len(problems) - 1) if len(problems) > 1 else problems[0]


def _kind(value: object) -> str:
    """A value's type in words a data file's author uses."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _preview(value: object, width: int = 40) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # str() of a 5,000-digit integer raises (Python's 4,300-digit limit); say its size.
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, str):
        return repr(value if len(value) <= width else value[:width] + "…")
    text = repr(value)
    return text if len(text) <= width else text[:width] + "…"


# --------------------------------------------------------------------------------------------
# corpus_id matching


def _id_parts(value: str) -> tuple[str, ...]:
    """A corpus id or path as components, the last without a .txt/.md suffix:
    ``"a\\\\b/pubmed.TXT"`` → ``("a", "b", "pubmed")``."""
    parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return (value,)
    last = parts[-1]
    for suffix in _TEXT_SUFFIXES:
        if last.lower().endswith(suffix) and len(last) > len(suffix):
            parts[-1] = last[: -len(suffix)]
            break
    return tuple(parts)


def _ends_with(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    return len(shorter) <= len(longer) and longer[len(longer) - len(shorter):] == shorter


class _CorpusMatcher:
    """Resolves a question's corpus_id to a corpus id: equal, or the same file named by its stem,
    its file name or a path ending in it (either side may be the longer path)."""

    def __init__(self, corpus_ids: Iterable[str]) -> None:
        self.ids = list(corpus_ids)
        self._exact = set(self.ids)
        self._by_stem: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for corpus_id in self.ids:
            parts = _id_parts(corpus_id)
            self._by_stem.setdefault(parts[-1], []).append((parts, corpus_id))
        self._memo: dict[str, str | list[str]] = {}

    def resolve(self, value: str) -> str | list[str]:
        """The corpus id, or the candidates: none (unknown) or several (ambiguous)."""
        if value in self._exact:
            return value
        if value not in self._memo:
            parts = _id_parts(value)
            candidates = self._by_stem.get(parts[-1], [])
            found = [(p, c) for p, c in candidates if _ends_with(p, parts) or _ends_with(parts, p)]
            same = [c for p, c in found if p == parts]
            if len(found) == 1:
                self._memo[value] = found[0][1]
            elif len(same) == 1:  # "pubmed.txt" picks the corpus "pubmed" over "x/pubmed"
                self._memo[value] = same[0]
            else:
                self._memo[value] = [c for _, c in found]
        return self._memo[value]

    def describe_known(self, value: str) -> str:
        shown = ", ".join(repr(c) for c in self.ids[:6])
        known = f"known: {shown}" + (f", … ({len(self.ids)} in all)" if len(self.ids) > 6 else "")
        if not self.ids:
            known = "there are no corpora"
        elif len(self.ids) <= 2000:
            stems = {_id_parts(c)[-1]: c for c in self.ids}
            close = difflib.get_close_matches(_id_parts(value)[-1], list(stems), n=1, cutoff=0.75)
            if close:
                known = f"did you mean {stems[close[0]]!r}? {known}"
        return known


def _resolve_corpus(value: object, matcher: _CorpusMatcher, reference: int | None = None) -> str:
    """The corpus id ``value`` names; ``reference`` (its number from 1) when it is a reference's own."""
    column, what, owner = ("corpus_id", "corpus_id", "the question's") if reference is None else (
        "references", f"reference {reference} corpus_id", "the reference's")
    if value is None or value == "":
        raise _Bad(column, f"{what} is missing", f"name {owner} corpus file")
    if not isinstance(value, str):
        raise _Bad(column, f"{what} is {_kind(value)}, not text", f"name {owner} corpus file")
    found = matcher.resolve(value)
    if isinstance(found, str):
        return found
    if not found:
        raise _Bad(
            column,
            f"unknown {what} {_preview(value)}: a corpus_id must name a corpus file by its stem, file name "
            f"or a path ending in it ({matcher.describe_known(value)})",
            f"correct the {what}",
        )
    names = ", ".join(repr(c) for c in found[:-1]) + f" and {found[-1]!r}"
    raise _Bad(column, f"{what} {value!r} matches {len(found)} corpora: {names}",
               "write more of the path so that it names one")


# --------------------------------------------------------------------------------------------
# Validation


def _offset(value: object, number: int, name: str) -> int:
    """An offset as int, accepting integral floats and ASCII digit strings (CSV/JSON round trips)."""
    what = f"reference {number} {name}"
    fix = "write offsets as whole numbers (Python str indices)"
    if value is None:
        raise _Bad("references", f"reference {number} has no {name}", fix)
    if isinstance(value, bool):
        raise _Bad("references", f"{what} is {value}, not a number", fix)
    if isinstance(value, (int, np.integer)):
        offset = int(value)
    elif isinstance(value, (float, np.floating)):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise _Bad("references", f"{what} is {value!r}, not a whole number", fix)
        offset = int(value)
    elif isinstance(value, str):
        if _LONG_DIGITS.fullmatch(value):
            raise _Bad("references", f"{what} is a {len(value.strip().lstrip('+-'))}-digit number, past any corpus end",
                       "fix the offsets")
        if not _OFFSET_TEXT.fullmatch(value):
            raise _Bad("references", f"{what} is {_preview(value)}, not a whole number (ASCII digits)", fix)
        offset = int(value)
    else:
        raise _Bad("references", f"{what} is {_kind(value)}, not a number", fix)
    if abs(offset) > _MAX_OFFSET:
        raise _Bad("references", f"{what} is {_preview(offset) if offset.bit_length() > 64 else offset}, "
                   "past any corpus end", "fix the offsets")
    return offset


def _check_reference(ref: object, number: int, question_corpus: str | None, corpora: Mapping[str, str],
                     matcher: _CorpusMatcher) -> dict[str, Any]:
    """One reference, checked against its own corpus (its ``corpus_id``, else the question's);
    ``question_corpus`` is ``None`` while the question's label is still to be taken from it."""
    if not isinstance(ref, (dict, Mapping)):  # dict first: the common case skips the ABC check
        raise _Bad("references", f"reference {number} is {_kind(ref)}, not an object with start_index and end_index",
                   f"write references as {_REFERENCE_SHAPE}")
    own = ref.get("corpus_id")
    if own is not None:
        corpus_id = _resolve_corpus(own, matcher, reference=number)
    elif question_corpus is not None:
        corpus_id = question_corpus
    else:
        raise _Bad("corpus_id", "corpus_id is missing", "name the question's corpus file")
    corpus = corpora[corpus_id]
    start = _offset(ref.get("start_index"), number, "start_index")
    end = _offset(ref.get("end_index"), number, "end_index")
    span_fix = "fix the offsets (half-open: 0 <= start_index < end_index)"
    if start < 0:
        raise _Bad("references", f"reference {number} starts at {start}, before the corpus start", span_fix)
    if end <= start:
        shape = "empty" if end == start else "reversed"
        raise _Bad("references", f"reference {number} spans [{start}, {end}), which is {shape}", span_fix)
    if end > len(corpus):
        raise _Bad("references", f"reference {number} ends at {end}, past the end of corpus {corpus_id!r} "
                   f"({len(corpus)} chars)", "fix the offsets")
    content = ref.get("content")
    if content is not None:
        if not isinstance(content, str):
            raise _Bad("references", f"reference {number} content is {_kind(content)}, not text",
                       "write the evidence text as a string, or leave content out")
        if corpus[start:end] != content:
            found = corpus.find(content) if content else -1
            hint = f" (that text is at [{found}, {found + len(content)}))" if found >= 0 else ""
            raise _Bad(
                "references",
                f"reference {number} content {_preview(content)} differs from corpus {corpus_id!r}[{start}:{end}] "
                f"{_preview(corpus[start:end])}{hint}",
                "fix the offsets so that corpus[start_index:end_index] == content (Python str offsets)",
            )
    clean = dict(ref)
    clean["start_index"], clean["end_index"] = start, end
    clean.pop("corpus_id", None)
    if corpus_id != question_corpus:  # stored only where it says something: in another corpus
        clean["corpus_id"] = corpus_id
    return clean


def _check_references(references: object, question_corpus: str | None, corpora: Mapping[str, str],
                      matcher: _CorpusMatcher) -> tuple[str, list[dict[str, Any]]]:
    """The question's corpus id (its own, else its first reference's) and its references, checked."""
    if references is None:
        raise _Bad("references", "references is missing", f"give every question {_REFERENCE_SHAPE}")
    if not isinstance(references, (list, tuple)):
        raise _Bad("references", f"references is {_kind(references)}, not {_REFERENCE_SHAPE}",
                   f"write references as {_REFERENCE_SHAPE}")
    if not references:
        raise _Bad("references", "references is an empty list", "give every question at least one evidence span")
    checked = [_check_reference(references[0], 1, question_corpus, corpora, matcher)]
    if question_corpus is None:  # the first reference named the corpus: it is the question's label
        question_corpus = checked[0].pop("corpus_id")
    checked += [_check_reference(ref, number, question_corpus, corpora, matcher)
                for number, ref in enumerate(references[1:], start=2)]
    return question_corpus, checked


def _question_id(value: object, name: str, index: int) -> str:
    if value is None or value == "":
        return f"{name}:{index}"
    if isinstance(value, (Mapping, list, tuple, set)):
        raise _Bad("question_id", f"question_id is {_kind(value)}, not text", "give each question a text id, or none")
    return value if isinstance(value, str) else str(value)


def _check_depth(record: Mapping[str, Any]) -> None:
    """Refuse values nested deeper than ``_MAX_DEPTH`` in the fields that validation did not
    already pin to a shape: the extra fields, and any extra keys of a reference."""
    containers = (dict, list, tuple)  # what JSON, CSV and Arrow produce
    loose = [(key, value, 1) for key, value in record.items() if key not in _CORE_FIELDS]
    loose += [("references", value, 3) for ref in record["references"] for key, value in ref.items()
              if key not in _REFERENCE_FIELDS]
    for key, value, level in loose:
        if not isinstance(value, containers):
            continue
        stack = [(value, level)]
        while stack:
            item, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise _Bad(str(key), f"{key} is nested more than {_MAX_DEPTH} levels deep", "flatten it")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, containers))


def _check_question(item: object, index: int, name: str, corpora: Mapping[str, str],
                    matcher: _CorpusMatcher) -> dict[str, Any]:
    if not isinstance(item, (dict, Mapping)):
        raise _Bad(None, f"is {_kind(item)}, not a question record (an object with question, corpus_id, references)",
                   "write one object per question")
    record = dict(item)
    question_id = _question_id(record.get("question_id"), name, index)
    question = record.get("question")
    if not isinstance(question, str):
        raise _Bad("question", f"question is {_kind(question)}, not text", "give every row its question text")
    given = record.get("corpus_id")
    references = record.get("references")
    first = references[0] if isinstance(references, (list, tuple)) and references else None
    if (given is None or given == "") and isinstance(first, Mapping) and first.get("corpus_id") is not None:
        corpus_id = None  # the label is the first reference's own corpus
    else:
        corpus_id = _resolve_corpus(given, matcher)
    record["corpus_id"], record["references"] = _check_references(references, corpus_id, corpora, matcher)
    _check_depth(record)
    record["question_id"] = question_id
    return record


def _validate(
    slots: Sequence[tuple[int, object]], name: str, corpora: Mapping[str, str], path: str | None
) -> tuple[list[dict[str, Any]], list[DatasetError]]:
    """Check each ``(row, record or the error reading it)``; the good records, normalized (ids
    assigned, offsets as int, corpus_id resolved), and one error per bad row, in file order.

    A generated question id counts the record's position among all records, bad ones included,
    so skipping a row does not rename the questions after it.
    """
    matcher = _CorpusMatcher(corpora)
    seen: dict[str, int] = {}
    kept: list[dict[str, Any]] = []
    problems: list[DatasetError] = []
    for index, (row, item) in enumerate(slots):
        if isinstance(item, DatasetError):
            problems.append(item)
            continue
        try:
            record = _check_question(item, index, name, corpora, matcher)
            qid = record["question_id"]
            if qid in seen:
                first = f"{'question' if path is None else 'row'} {seen[qid]}"
                raise _Bad("question_id", f"question_id {_preview(qid)} repeats {first}",
                           "give each question its own id")
        except _Bad as bad:
            # Records from Python have no --on-invalid to skip them; rows of a file do.
            problems.append(DatasetError(bad.reason, path=path, row=row, column=bad.column, fix=bad.fix,
                                         skippable=path is not None, dataset=name if path is None else None))
            continue
        seen[qid] = row
        kept.append(record)
    return kept, problems


class _Checked(list[dict[str, Any]]):
    """Records that :func:`_validate` already normalized against ``corpora``: a :class:`Dataset`
    built from them with that very dict does not check them a second time."""

    def __init__(self, records: Iterable[dict[str, Any]], corpora: Mapping[str, str]) -> None:
        super().__init__(records)
        self.corpora = corpora


# --------------------------------------------------------------------------------------------
# Dataset


@dataclass(eq=False)
class Dataset:
    """Corpora and questions, validated when built.

    ``corpora`` maps corpus_id → text in order; a corpus's doc id (the ``doc`` of its spans) is its
    position in :attr:`corpus_ids`. ``questions`` are question records (see the module docstring);
    a record without ``question_id`` gets ``f"{name}:{i}"``. Building checks that every reference
    names a known corpus (by id, file name or path, see the module docstring), lies within it
    (``0 <= start < end <= len(corpus)``) and, where ``content`` is given, that
    ``corpus[start:end] == content``; the first problem is raised as a :class:`DatasetError` that
    counts the other bad records. ``skipped`` lists the rows that ``load(..., on_invalid="skip")``
    dropped.
    """

    name: str
    corpora: dict[str, str]
    questions: list[dict[str, Any]]
    source: str | None = field(default=None, repr=False)
    skipped: list[SkippedRow] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.corpora, Mapping):
            raise TypeError(f"corpora must be a dict corpus_id -> text, got {type(self.corpora).__name__}")
        given = self.corpora
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
        if isinstance(self.questions, _Checked) and self.questions.corpora is given:
            self.questions = list(self.questions)
        else:
            slots = [(position, record) for position, record in enumerate(self.questions, start=1)]
            kept, problems = _validate(slots, self.name, self.corpora, None)
            if problems:
                raise _summary(problems)
            self.questions = kept
        self.skipped = list(self.skipped)

    # -- shape ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.questions)

    def __repr__(self) -> str:
        n_refs = sum(len(q["references"]) for q in self.questions)
        skipped = f", skipped={len(self.skipped)}" if self.skipped else ""
        return (f"Dataset({self.name!r}, corpora={len(self.corpora)}, questions={len(self)}, "
                f"references={n_refs}{skipped})")

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

    def reference_corpora(self) -> list[tuple[str, ...]]:
        """Per question, the corpora its references lie in: its own ``corpus_id`` first (when a
        reference lies there), then the others in reference order, each once."""
        out = []
        for q in self.questions:
            named = dict.fromkeys(ref.get("corpus_id", q["corpus_id"]) for ref in q["references"])
            out.append(tuple(sorted(named, key=lambda cid: cid != q["corpus_id"])))  # stable: own corpus first
        return out

    def search_groups(self) -> np.ndarray:
        """What each question searches with ``scope="corpus"``: its corpus id, or, for a
        cross-document question, the tuple of its references' corpora (:meth:`reference_corpora`),
        whose union :func:`chunkeval.pipeline.search_stage` searches. An object array."""
        groups = np.empty(len(self.questions), dtype=object)
        for row, (q, named) in enumerate(zip(self.questions, self.reference_corpora(), strict=True)):
            groups[row] = named if len(named) > 1 else q["corpus_id"]
        return groups

    def references(self) -> RaggedSpans:
        """One list of reference spans per question (``doc`` = the doc id of the reference's own
        corpus: its ``corpus_id``, else the question's)."""
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
                own = ref.get("corpus_id")
                doc[row] = d if own is None else doc_of[own]
                start[row], end[row] = ref["start_index"], ref["end_index"]
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
        A corpus_id given as a file name or path counts as the corpus id it resolved to.
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
    ) -> Dataset:
        """A smaller dataset: the questions of the named corpora (ids, file names or paths, as a
        question's corpus_id may name them; a cross-document question belongs to its own
        ``corpus_id``), then at most ``max_questions`` of them drawn without replacement with
        ``seed`` (kept in their original order), and only the corpora those questions reference
        (a cross-document question's other corpora included), in this dataset's order, so that a
        pipeline chunks and embeds nothing else. Doc ids are positions in the smaller dataset's
        :attr:`corpus_ids`; its fingerprint is that of the same corpora and questions built
        directly. Question ids are kept, so results stay comparable; :attr:`skipped` is carried
        over."""
        if corpora is None:
            wanted = set(self.corpora)
        else:
            wanted = self._resolve_names([corpora] if isinstance(corpora, str) else list(corpora))
        questions = [q for q in self.questions if q["corpus_id"] in wanted]
        if max_questions is not None:
            if isinstance(max_questions, bool) or not isinstance(max_questions, (int, np.integer)) or max_questions < 0:
                raise ValueError(f"max_questions must be a non-negative int or None, got {max_questions!r}")
            if max_questions < len(questions):
                rng = np.random.default_rng(seed)
                rows = np.sort(rng.choice(len(questions), size=int(max_questions), replace=False))
                questions = [questions[i] for i in rows.tolist()]
        used = {q["corpus_id"] for q in questions}
        used.update(ref["corpus_id"] for q in questions for ref in q["references"] if "corpus_id" in ref)
        kept_corpora = {c: t for c, t in self.corpora.items() if c in used}
        # These records were checked against a superset of kept_corpora holding all they reference.
        return Dataset(self.name, kept_corpora, _Checked((dict(q) for q in questions), kept_corpora),
                       source=self.source, skipped=self.skipped)

    def _resolve_names(self, names: list[object]) -> set[str]:
        matcher = _CorpusMatcher(self.corpora)
        wanted: set[str] = set()
        unknown: list[object] = []
        for name in names:
            found = matcher.resolve(name) if isinstance(name, str) else []
            if isinstance(found, str):
                wanted.add(found)
            elif len(found) > 1:
                raise ValueError(f"subset: corpus {name!r} matches {len(found)} corpora {found}; name one of them")
            else:
                unknown.append(name)
        if unknown:
            shown = list(self.corpora)[:20]
            more = f" … ({len(self.corpora)} in all)" if len(self.corpora) > 20 else ""
            raise ValueError(f"subset: unknown corpus id(s) {unknown}; known: {shown}{more}")
        return wanted


def write_skipped(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset.skipped`` as JSONL (one ``{"path", "row", "column", "reason"}`` per line, in
    file order), atomically; an empty file when nothing was skipped. Returns the path."""
    path = Path(path)
    with atomic_open(path, "w") as handle:
        for entry in dataset.skipped:
            line = json.dumps(dict(entry), ensure_ascii=False)
            if _SURROGATE.search(line):  # a file name that is not UTF-8: escape rather than fail
                line = json.dumps(dict(entry))
            handle.write(line + "\n")
    return path


# --------------------------------------------------------------------------------------------
# Loading


def load(
    source: str | os.PathLike[str] | None = None,
    *,
    corpora: str | os.PathLike[str] | None = None,
    questions: str | os.PathLike[str] | None = None,
    name: str | None = None,
    on_invalid: OnInvalid = "error",
) -> Dataset:
    """Load a benchmark.

    - ``load()`` or ``load("chroma-general")``: the bundled Chroma general evaluation set
      (5 corpora, 472 questions, 790 references; corpora in file-name order);
    - ``load(path)``: a directory holding ``corpora/`` (``.txt``/``.md`` files) or
      ``corpora.parquet``/``corpora.jsonl``, and one questions file: ``questions.jsonl``,
      ``questions.parquet``, ``questions.csv`` or the toolkit's ``questions_df.csv``;
    - ``load(corpora=..., questions=...)``: separate paths (see :func:`load_corpora` and
      :func:`read_questions`).

    ``name`` defaults to the bundled name or the directory / questions file name. With
    ``on_invalid="error"`` (the default) the first problem in a question row raises a
    :class:`DatasetError` that counts the other bad rows; with ``"skip"`` bad rows are dropped and
    listed in :attr:`Dataset.skipped` (see :func:`write_skipped`). Problems with a whole file (a
    missing column, an unreadable file, a corpus) always raise.
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    if corpora is not None or questions is not None:
        if source is not None:
            raise ValueError("pass either source or corpora= and questions=, not both")
        if corpora is None or questions is None:
            raise ValueError("load(corpora=..., questions=...) needs both paths")
        qpath = Path(questions)
        corpus_texts = load_corpora(corpora)
        return _assemble(name or qpath.stem, corpus_texts, _question_slots(qpath), str(qpath), str(qpath), on_invalid)
    if source is None:
        source = "chroma-general"
    if isinstance(source, str) and source in BUNDLED:
        return _load_bundled(BUNDLED[source], name or "chroma-general", on_invalid)
    path = Path(source)
    if not path.is_dir():
        raise DatasetError(
            f"dataset source {str(source)!r} is neither a bundled benchmark ({', '.join(sorted(BUNDLED))}) "
            "nor a directory",
            fix="pass a folder with corpora/ and questions.jsonl|csv|parquet, or load(corpora=..., questions=...)",
        )
    if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file() and (path / "qrels").is_dir():
        # A BEIR-layout folder: each relevant document is a whole-document reference.
        from .ecosystem_datasets import load_beir

        return load_beir(path, name=name, on_invalid=on_invalid)
    corpus_candidates = [p for p in (path / "corpora", path / "corpora.parquet", path / "corpora.jsonl") if p.exists()]
    if len(corpus_candidates) != 1:
        found = [p.name for p in corpus_candidates]
        raise DatasetError(
            f"expected exactly one of corpora/, corpora.parquet, corpora.jsonl, found {found or 'none'}",
            path=str(path), fix="keep one, or use load(corpora=..., questions=...)",
        )
    question_candidates = [path / f for f in _QUESTION_FILES if (path / f).is_file()]
    if len(question_candidates) != 1:
        found = [p.name for p in question_candidates]
        raise DatasetError(
            f"expected exactly one questions file ({', '.join(_QUESTION_FILES)}), found {found or 'none'}",
            path=str(path), fix="keep one, or use load(corpora=..., questions=...)",
        )
    qpath = question_candidates[0]
    corpus_texts = load_corpora(corpus_candidates[0])
    return _assemble(name or path.name, corpus_texts, _question_slots(qpath), str(qpath), str(qpath), on_invalid)


def _assemble(name: str, corpora: dict[str, str], slots: list[tuple[int, object]], label: str,
              source: str, on_invalid: OnInvalid) -> Dataset:
    if not slots:
        raise DatasetError("holds no questions", path=label, fix="write one question per row (see docs/datasets.md)")
    kept, problems = _validate(slots, name, corpora, label)
    if problems and on_invalid == "error":
        raise _summary(problems)
    if not kept:
        first = problems[0]
        where = first.location.removeprefix(label).lstrip(" ,")
        raise DatasetError(f"all {len(slots)} question rows have problems, so skipping leaves none; the first, "
                           f"{where}: {first.reason}", path=label, fix=first.fix)
    return Dataset(name, corpora, _Checked(kept, corpora), source=source, skipped=[p.as_skipped() for p in problems])


def _load_bundled(folder: str, name: str, on_invalid: OnInvalid) -> Dataset:
    from importlib import resources

    root = resources.files("chunkeval").joinpath("data").joinpath(folder)
    corpora = _read_corpus_folder(root.joinpath("corpora"), f"chunkeval/data/{folder}/corpora")
    label = f"chunkeval/data/{folder}/questions_df.csv"
    slots = _csv_slots(_decode(root.joinpath("questions_df.csv").read_bytes()), label)
    return _assemble(name, corpora, slots, label, f"chunkeval/data/{folder}", on_invalid)


def _read_corpus_folder(folder: Any, label: str) -> dict[str, str]:
    """corpus_id → text from the ``.txt``/``.md`` files (suffix in any case) of ``folder``, a
    :class:`~pathlib.Path` or an :mod:`importlib.resources` traversable, sorted by file name.

    The one reader of corpus folders, for :func:`load_corpora` and the bundled benchmark alike.
    Files are read as UTF-8 with universal newlines; the corpus id is the file name without its
    suffix.
    """
    try:
        files = sorted(
            (f for f in folder.iterdir() if f.is_file() and Path(f.name).suffix.lower() in _TEXT_SUFFIXES),
            key=lambda f: f.name,
        )
    except OSError as exc:
        raise DatasetError(f"cannot be listed ({exc.strerror or exc})", path=label,
                           fix="check the folder and its permissions") from None
    if not files:
        raise DatasetError("no .txt or .md files", path=label, fix="put one UTF-8 file per corpus there")
    corpora: dict[str, str] = {}
    for f in files:
        corpus_id = Path(f.name).stem
        if corpus_id in corpora:
            raise DatasetError(f"corpus id {corpus_id!r} appears twice (.txt and .md)", path=label,
                               fix="rename or remove one of the files")
        try:
            corpora[corpus_id] = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            line = f.read_bytes()[: exc.start].count(b"\n") + 1
            raise DatasetError(
                f"not UTF-8 ({exc.reason} at byte {exc.start}, line {line})", path=f"{label}/{f.name}",
                fix="convert the file to UTF-8 (for example: iconv -f latin1 -t utf-8)",
            ) from None
        except OSError as exc:
            raise DatasetError(f"cannot be read ({exc.strerror or exc})", path=f"{label}/{f.name}",
                               fix="check the file and its permissions") from None
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
        raise DatasetError(f"corpora path {str(path)!r} does not exist",
                           fix="pass a folder of .txt/.md files or a .parquet/.jsonl table")
    label = str(path)
    suffix = path.suffix.lower()
    rows: Iterable[tuple[int, object, object]]
    if suffix == ".parquet":
        table = _read_parquet_table(path, label)
        missing = [c for c in ("corpus_id", "text") if c not in table.column_names]
        if missing:
            raise DatasetError(f"missing column(s) {missing}", path=label,
                               fix="a corpora table needs the columns corpus_id and text")
        ids, bad_ids = _column_values(table.column("corpus_id"))
        texts, bad_texts = _column_values(table.column("text"))
        if bad_ids or bad_texts:
            column, index = ("corpus_id", bad_ids[0]) if bad_ids else ("text", bad_texts[0])
            raise DatasetError("is not UTF-8", path=label, row=index + 1, column=column,
                               fix="write the table again from UTF-8 text")
        rows = zip(range(1, table.num_rows + 1), ids, texts, strict=True)
    elif suffix == ".jsonl":
        rows = _jsonl_corpus_rows(_jsonl_slots(_decode(_read_bytes(path, label)), label))
    else:
        raise DatasetError(f"unsupported corpora file type {suffix!r}", path=label,
                           fix="use a folder of .txt/.md files, a .parquet or a .jsonl table")
    corpora: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for row, corpus_id, text in rows:
        if not isinstance(corpus_id, str) or not corpus_id:
            raise DatasetError(f"corpus_id is {_kind(corpus_id)}, not a non-empty text", path=label, row=row,
                               column="corpus_id", fix="give every corpus an id")
        if not isinstance(text, str):
            raise DatasetError(f"text is {_kind(text)}, not text", path=label, row=row, column="text",
                               fix="give every corpus its text")
        if corpus_id in corpora:
            raise DatasetError(f"corpus_id {corpus_id!r} repeats row {first_row[corpus_id]}", path=label, row=row,
                               column="corpus_id", fix="ids must be unique; rename or merge the rows")
        corpora[corpus_id] = text
        first_row[corpus_id] = row
    return corpora


def _jsonl_corpus_rows(slots: list[tuple[int, object]]) -> Iterator[tuple[int, object, object]]:
    for row, item in slots:
        if isinstance(item, DatasetError):
            raise item
        if isinstance(item, dict):  # _jsonl_slots yields objects or errors
            yield row, item.get("corpus_id"), item.get("text")


# --------------------------------------------------------------------------------------------
# Question files


def read_questions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Question records from a ``.csv`` (the toolkit's format), ``.jsonl`` or ``.parquet`` file.

    Records come back as written: a record without ``question_id`` has none (a :class:`Dataset`
    assigns one). Offsets are not checked here; building a :class:`Dataset` checks them. A row
    that cannot be read raises a :class:`DatasetError` naming it.
    """
    slots = _question_slots(Path(path))
    problems = [item for _, item in slots if isinstance(item, DatasetError)]
    if problems:
        raise _summary(problems)
    return [item for _, item in slots if isinstance(item, dict)]


def _question_slots(path: Path) -> list[tuple[int, object]]:
    """``(row, record or the DatasetError reading it)`` for each question row of a file."""
    label = str(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DatasetError(f"questions file {label!r} {'is not a file' if path.exists() else 'does not exist'}",
                           fix="pass a .csv, .jsonl or .parquet file of questions")
    if suffix == ".csv":
        return _csv_slots(_decode(_read_bytes(path, label)), label)
    if suffix == ".jsonl":
        return _jsonl_slots(_decode(_read_bytes(path, label)), label)
    if suffix == ".parquet":
        return _parquet_slots(path, label)
    raise DatasetError(f"unsupported questions file type {suffix!r}", path=label, fix="use .csv, .jsonl or .parquet")


def _read_bytes(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot be read ({exc.strerror or exc})", path=label,
                           fix="check the file and its permissions") from None


def _decode(data: bytes) -> str:
    # utf-8-sig drops the byte-order mark that Excel writes; bytes that are not UTF-8 become lone
    # surrogates, which the row readers report with their row instead of failing the whole file.
    return data.decode("utf-8-sig", "surrogateescape")


def _undecodable(text: str) -> str | None:
    bad = _UNDECODABLE.search(text)
    return None if bad is None else f"byte 0x{ord(bad.group()) - 0xDC00:02x} at character {bad.start() + 1}"


def _not_utf8(byte: str) -> _Bad:
    return _Bad(None, f"is not UTF-8 ({byte})", "save the file as UTF-8 (for example: iconv -f latin1 -t utf-8)")


class _NotJsonConstant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON has not and write_questions could not write.
    raise _NotJsonConstant(name)


def _loads(text: str, column: str | None) -> Any:
    what = f"{column} is" if column else "is"
    fix = "fix the JSON"
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NotJsonConstant as exc:
        raise _Bad(column, f"{what} not valid JSON ({exc} is not a JSON value)", "write a number or null") from None
    except RecursionError:
        raise _Bad(column, f"{what} nested too deeply to read", "flatten it") from None
    except json.JSONDecodeError as exc:
        at = "" if exc.msg.endswith(" at") else " at"  # "Unterminated string starting at"
        raise _Bad(column, f"{what} not valid JSON ({exc.msg}{at} character {exc.pos + 1})", fix) from None
    except ValueError:  # an integer literal longer than Python's 4,300-digit conversion limit
        raise _Bad(column, f"{what} not readable JSON (a number with more than 4300 digits)", fix) from None


def _write_json_type(value: object) -> str:
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return f"JSON {str(value).lower()}"
    return "a JSON number"


def _jsonl_slots(text: str, label: str) -> list[tuple[int, object]]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    check_bytes = _UNDECODABLE.search(text) is not None  # one scan of the file spares one per line
    slots: list[tuple[int, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            slots.append((number, _jsonl_record(line, last=number == len(lines), check_bytes=check_bytes)))
        except _Bad as bad:
            slots.append((number, DatasetError(bad.reason, path=label, row=number, column=bad.column, fix=bad.fix,
                                               skippable=True)))
    return slots


def _jsonl_record(line: str, last: bool, check_bytes: bool) -> dict[str, Any]:
    byte = _undecodable(line) if check_bytes else None
    if byte is not None:
        raise _not_utf8(byte)
    try:
        record = _loads(line, None)
    except _Bad as bad:
        if last and "not valid JSON" in bad.reason:  # the text after the final newline: a line cut short
            raise _Bad(None, f"{bad.reason}, and the file does not end with a line break: a write was cut short",
                       "delete the truncated line") from None
        raise
    if not isinstance(record, dict):
        raise _Bad(None, f"is {_write_json_type(record)}, not an object", "write one JSON object per question per line")
    return record


def _csv_slots(text: str, label: str) -> list[tuple[int, object]]:
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # references of long evidence exceed the 128 KiB default
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = _csv_header(reader, label)
        check_bytes = _UNDECODABLE.search(text) is not None  # one scan of the file spares one per field
        slots: list[tuple[int, object]] = []
        row = 1  # the header; a spreadsheet counts every record, blank ones included
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as exc:
                raise DatasetError(f"cannot be read as CSV ({exc})", path=label, row=row + 1,
                                   fix="quote every field that holds a comma, quote or line break, doubling the "
                                   "quotes inside it") from None
            if fields is None:
                return slots
            row += 1
            if fields:
                try:
                    slots.append((row, _csv_record(fields, header, check_bytes)))
                except _Bad as bad:
                    slots.append((row, DatasetError(bad.reason, path=label, row=row, column=bad.column, fix=bad.fix,
                                                    skippable=True)))
    finally:
        csv.field_size_limit(old_limit)


def _csv_header(reader: Iterator[list[str]], label: str) -> list[str]:
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"cannot be read as CSV ({exc})", path=label, row=1, fix="fix the header row") from None
    if not header:
        raise DatasetError("has no header row", path=label, row=1,
                           fix="start the file with the header question,references,corpus_id")
    byte = _undecodable(",".join(header))
    if byte is not None:
        raise DatasetError(f"the header is not UTF-8 ({byte})", path=label, row=1, fix="save the file as UTF-8")
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    if repeated:
        raise DatasetError(f"column(s) {repeated} appear more than once in the header", path=label, row=1,
                           fix="rename or remove the repeated columns")
    missing = [c for c in _REQUIRED_COLUMNS if c not in header]
    if missing:
        shown = header if len(header) <= 8 else [*header[:8], "…"]
        raise DatasetError(f"missing column(s) {missing}; the header holds {shown}", path=label, row=1,
                           fix="name the columns question, references, corpus_id in the header row")
    return header


def _csv_record(fields: list[str], header: list[str], check_bytes: bool) -> dict[str, Any]:
    if len(fields) != len(header) and not (len(fields) > len(header) and not any(fields[len(header):])):
        # Trailing empty fields (a comma at the end of each line) are harmless and ignored.
        raise _Bad(None, f"has {len(fields)} fields where the header has {len(header)}",
                   'quote every field that holds a comma ("...")')
    raw = dict(zip(header, fields[: len(header)], strict=True))
    for column, value in raw.items() if check_bytes else ():
        byte = _undecodable(value)
        if byte is not None:
            bad = _not_utf8(byte)
            raise _Bad(column, bad.reason, bad.fix)
    record: dict[str, Any] = {}
    if raw.get("question_id"):
        record["question_id"] = raw["question_id"]
    record["question"] = raw["question"]
    record["corpus_id"] = raw["corpus_id"]
    if not raw["references"].strip():
        raise _Bad("references", "references is empty", f"write references as JSON: {_REFERENCE_SHAPE}")
    record["references"] = _loads(raw["references"], "references")
    if raw.get("extra"):
        record.update(_extra_object(_loads(raw["extra"], "extra")))
    for column, value in raw.items():
        if column not in ("question_id", "question", "corpus_id", "references", "extra"):
            record[column] = value
    return record


def _extra_object(extra: object) -> dict[str, Any]:
    if not isinstance(extra, dict):
        raise _Bad("extra", f"extra is {_write_json_type(extra)}, not a JSON object",
                   'make extra a JSON object of further fields ({"source": "web"})')
    core = [k for k in extra if k in _CORE_FIELDS]
    if core:
        raise _Bad("extra", f"extra holds the core field(s) {core}", "keep them in their own columns")
    return extra


# -- Parquet ------------------------------------------------------------------------------------


def _read_parquet_table(path: Path, label: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        table.column_names  # noqa: B018 - names become str here; a damaged one fails now, not later
        return table
    except UnicodeDecodeError:
        raise DatasetError("is not a readable Parquet file (its schema holds column names that are not UTF-8)",
                           path=label, fix="write it again with pyarrow or pandas (DataFrame.to_parquet)") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"is not a readable Parquet file ({detail})", path=label,
                           fix="write it again with pyarrow or pandas (DataFrame.to_parquet), or use CSV/JSONL",
                           ) from None


def _parquet_kind(arrow_type: Any, column: str, label: str, accepted: str) -> str:
    """How a column's values read: "json" (text), "list" / "struct" (Arrow values), "null"."""
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return "null"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "json"
    if column == "references" and (
        pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type)
    ) and (pa.types.is_struct(arrow_type.value_type) or pa.types.is_null(arrow_type.value_type)):
        return "list"
    if column == "extra" and pa.types.is_struct(arrow_type):
        return "struct"
    raise DatasetError(f"the column has type {arrow_type}", path=label, column=column,
                       fix=f"store {column} as {accepted}")


def _parquet_slots(path: Path, label: str) -> list[tuple[int, object]]:
    table = _read_parquet_table(path, label)
    names = list(table.column_names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f"column(s) {repeated} appear more than once", path=label, fix="rename the repeated columns")
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DatasetError(f"missing column(s) {missing}; the table holds {names[:8]}", path=label,
                           fix="a questions table needs the columns question, references, corpus_id")
    references_kind = _parquet_kind(
        table.schema.field("references").type, "references", label,
        "list<struct<content: string, start_index: int64, end_index: int64>> (or the CSV's JSON text)")
    extra_kind = "null" if "extra" not in names else _parquet_kind(
        table.schema.field("extra").type, "extra", label, "a string column of JSON objects")
    columns: dict[str, list[Any]] = {}
    undecodable: dict[int, str] = {}  # row index -> the first column there whose text is not UTF-8
    for name in names:
        columns[name], bad_rows = _column_values(table.column(name))
        for index in bad_rows:
            undecodable.setdefault(index, name)
    slots: list[tuple[int, object]] = []
    for index in range(table.num_rows):
        try:
            if index in undecodable:
                bad = _not_utf8("bytes that are not UTF-8")
                raise _Bad(undecodable[index], bad.reason, bad.fix)
            slots.append((index + 1, _parquet_record(columns, index, references_kind, extra_kind)))
        except _Bad as bad:
            slots.append((index + 1, DatasetError(bad.reason, path=label, row=index + 1, column=bad.column,
                                                  fix=bad.fix, skippable=True)))
    return slots


def _column_values(column: Any) -> tuple[list[Any], list[int]]:
    """A column as Python values, and the rows whose text is not UTF-8 (their values are None).

    Arrow does not validate UTF-8 when it reads a file, so a damaged string only fails when it
    becomes a Python str; the slow per-row path finds which rows."""
    try:
        return column.to_pylist(), []
    except UnicodeDecodeError:
        values: list[Any] = []
        bad_rows: list[int] = []
        for index in range(len(column)):
            try:
                values.extend(column.slice(index, 1).to_pylist())
            except UnicodeDecodeError:
                values.append(None)
                bad_rows.append(index)
        return values, bad_rows


def _parquet_record(columns: dict[str, list[Any]], index: int, references_kind: str, extra_kind: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    qid = columns["question_id"][index] if "question_id" in columns else None
    if qid is not None:
        record["question_id"] = qid
    record["question"] = columns["question"][index]
    record["corpus_id"] = columns["corpus_id"][index]
    refs = columns["references"][index]
    if refs is not None and references_kind == "json":
        refs = _loads(refs, "references")
    elif refs is not None and references_kind == "list":
        # Arrow structs carry every field; a null content or corpus_id means the record had none.
        refs = [{k: v for k, v in ref.items() if not (k in ("content", "corpus_id") and v is None)}
                if isinstance(ref, dict) else ref for ref in refs]
    record["references"] = refs
    extra = columns["extra"][index] if "extra" in columns else None
    if extra and extra_kind == "json":
        record.update(_extra_object(_loads(extra, "extra")))
    elif extra is not None and extra_kind == "struct":
        record.update(_extra_object({k: v for k, v in extra.items() if v is not None}))
    for name, values in columns.items():
        if name not in _CORE_FIELDS and name != "extra":
            record[name] = values[index]
    return record


# --------------------------------------------------------------------------------------------
# Writing


def write_questions(questions: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write question records to ``.csv``, ``.jsonl`` or ``.parquet`` (by extension), atomically:
    the file appears complete or not at all (temp file in the same folder, then ``os.replace``).

    The CSV is readable by the reference toolkit (``pd.read_csv`` + ``json.loads`` on
    ``references``); chunkeval's extra columns ``question_id`` and ``extra`` are ignored there.
    """
    path = Path(path)
    records = [_writable_record(q, row) for row, q in enumerate(questions)]
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
    line = _json_line(_writable_record(record, 0))
    needs_newline = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            needs_newline = existing.read(1) != b"\n"
    # A file that does not end in a newline would glue this record onto its last line.
    append_line_durable(path, ("\n" if needs_newline else "") + line)


def _writable_record(record: Any, row: int) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise TypeError(f"questions: row {row} is {type(record).__name__}, not a question record (a dict)")
    missing = [f for f in ("question", "corpus_id", "references") if f not in record]
    refs = record.get("references")
    if missing == ["corpus_id"] and isinstance(refs, (list, tuple)) and refs and isinstance(refs[0], Mapping) \
            and refs[0].get("corpus_id") is not None:
        missing = []  # a cross-document record whose first reference names the corpus
    if missing:
        raise ValueError(f"questions: row {row} lacks {missing}; a record needs question, corpus_id, references")
    return dict(record)


def _json_line(record: Mapping[str, Any]) -> str:
    ordered = {k: record[k] for k in _CORE_FIELDS if k in record}
    ordered.update((k, v) for k, v in record.items() if k not in ordered)
    return json.dumps(ordered, ensure_ascii=False, allow_nan=False) + "\n"


def _extra_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _CORE_FIELDS}


def _write_csv(records: list[dict[str, Any]], handle: Any) -> None:
    with_ids = any("question_id" in r for r in records)
    with_extra = any(_extra_fields(r) for r in records)
    columns = ["question", "references", "corpus_id"]
    columns += (["question_id"] if with_ids else []) + (["extra"] if with_extra else [])
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        # ASCII-escaped JSON, as the reference toolkit's own CSV holds it.
        row = [record["question"], json.dumps(record["references"], allow_nan=False), record.get("corpus_id", "")]
        if with_ids:
            row.append(record.get("question_id", ""))
        if with_extra:
            extra = _extra_fields(record)
            row.append(json.dumps(extra, ensure_ascii=False, allow_nan=False) if extra else "")
        writer.writerow(row)


def _questions_table(records: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    fields = [("content", pa.string()), ("start_index", pa.int64()), ("end_index", pa.int64())]
    if any(isinstance(ref, Mapping) and "corpus_id" in ref for r in records for ref in r["references"] or ()):
        fields.append(("corpus_id", pa.string()))  # only then: files of one-corpus questions keep their schema
    reference_type = pa.struct(fields)
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
                    "content, start_index, end_index, corpus_id (write JSONL to keep them)"
                )
        references.append(refs)
    extras = [_extra_fields(r) for r in records]
    return pa.table(
        {
            "question_id": pa.array([r.get("question_id") for r in records], pa.string()),
            "question": pa.array([r["question"] for r in records], pa.string()),
            "corpus_id": pa.array([r.get("corpus_id") for r in records], pa.string()),
            "references": pa.array(references, pa.list_(reference_type)),
            "extra": pa.array(
                [json.dumps(e, ensure_ascii=False, allow_nan=False) if e else None for e in extras], pa.string()
            ),
        }
    )
