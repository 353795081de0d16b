"""Span files: a user's own references, retrieved lists and chunking, read for ``chunkeval metrics``.

Each file (Parquet, CSV or JSONL) has one row per span: ``question_id``, ``doc``, ``start``,
``end`` (``doc`` a name or an integer; spans half-open ``[start, end)`` character offsets). The
retrieved file may add ``rank`` (1 = best; else file order is rank order), and the chunks file has
no ``question_id``. Questions are those of the references file, in first-appearance order. Errors
name the file and the row as an editor shows it: 1-based, and in a CSV file the header is row 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .spans import RaggedSpans, Spans, as_int64_column

__all__ = ["SpanInputs", "read_span_files", "read_table", "display_row"]


def display_row(path: str, index: int) -> int:
    """The row number a person sees for 0-based data row ``index`` (a CSV header is row 1)."""
    return index + (2 if path.lower().endswith(".csv") else 1)


def read_table(path: str) -> pa.Table:
    """A Parquet, CSV or JSONL file as an Arrow table; ValueError naming the file otherwise."""
    file = Path(path)
    if not file.exists():
        raise ValueError(f"{path}: no such file")
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(file)
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(file)
        if suffix in (".jsonl", ".ndjson", ".json"):
            import pyarrow.json as pjson

            return pjson.read_json(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: cannot be read as {suffix[1:]} ({' '.join(str(exc).split())[:200]})") from None
    raise ValueError(f"{path}: unknown format {suffix!r}; use .parquet, .csv or .jsonl")


def _require(table: pa.Table, columns: Sequence[str], path: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {table.column_names}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _span_columns(table: pa.Table, path: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """doc values, start and end of a span file, every row checked, so that an error names the
    file and its own row (the engine sees the rows regrouped by question)."""
    for name in ("doc", "start", "end"):
        if table.column(name).null_count:
            row = _first(table.column(name).is_null().to_numpy(zero_copy_only=False))
            raise ValueError(f"{path}: row {display_row(path, row)} has no {name}; every span needs doc, start and end")
    try:
        start = as_int64_column(table.column("start"), "start")
        end = as_int64_column(table.column("end"), "end")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {_one_based(str(exc), path)}") from None
    bad = (start < 0) | (end <= start)
    if bad.any():
        row = _first(bad)
        s, e = int(start[row]), int(end[row])
        why = "has a negative start" if s < 0 else "is empty" if e == s else "is reversed"
        raise ValueError(f"{path}: row {display_row(path, row)} span [{s}, {e}) {why}; spans are half-open "
                         "[start, end) with 0 <= start < end (fix or drop the row)")
    return table.column("doc").to_pylist(), start, end


def _one_based(message: str, path: str) -> str:
    """``start: row 2 is …`` (0-based, from the column reader) → the row a person sees."""
    import re

    return re.sub(r"\brow (\d+)\b", lambda m: f"row {display_row(path, int(m.group(1)))}", message, count=1)


@dataclass
class SpanInputs:
    """What ``chunkeval metrics`` scores: ragged references and retrieved spans per question."""

    question_ids: list[str]
    references: RaggedSpans
    retrieved: RaggedSpans
    chunks: Spans | None
    groups: np.ndarray | None  # one label per question (the --group-column), or None
    doc_names: list[str]  # doc id -> the name the files use
    first_doc: list[str]  # each question's first reference doc (its corpus, for the results table)
    missing: list[str]  # questions without a retrieved row (scored as retrieving nothing)


def read_span_files(references: str, retrieved: str, chunks: str | None = None, *, group_column: str | None = None,
                    on_missing: str = "error") -> SpanInputs:
    """Read and check the three span files; ``on_missing="zero"`` scores a question absent from the
    retrieved file as retrieving nothing (and lists it), ``"error"`` refuses."""
    if on_missing not in ("error", "zero"):
        raise ValueError(f"on_missing: {on_missing!r} is not 'error' or 'zero'")
    refs_t = read_table(references)
    rets_t = read_table(retrieved)
    _require(refs_t, ["question_id", "doc", "start", "end"], references)
    _require(rets_t, ["question_id", "doc", "start", "end"], retrieved)
    if group_column:
        _require(refs_t, [group_column], references)
    if refs_t.num_rows == 0:
        raise ValueError(f"{references}: no rows; every question needs at least one reference span")
    chunks_t = None
    if chunks:
        chunks_t = read_table(chunks)
        _require(chunks_t, ["doc", "start", "end"], chunks)
    ref_docs, ref_start, ref_end = _span_columns(refs_t, references)
    ret_docs, ret_start, ret_end = _span_columns(rets_t, retrieved)

    doc_ids: dict[str, int] = {}

    def docs(values: list[Any]) -> np.ndarray:
        # By text: CSV infers 1 where JSONL says "1"; both name the same document.
        return np.array([doc_ids.setdefault(str(d), len(doc_ids)) for d in values], dtype=np.int64)

    chunk_spans = None
    if chunks_t is not None and chunks is not None:
        chunk_docs, chunk_start, chunk_end = _span_columns(chunks_t, chunks)
        chunk_spans = Spans(docs(chunk_docs), chunk_start, chunk_end, name="chunks")
        _check_chunked(chunk_docs, chunks, ((ref_docs, references), (ret_docs, retrieved)))
    questions, ref_q, ret_q, missing = _question_rows(refs_t, rets_t, references, retrieved, on_missing)
    rank = _ranks(rets_t, retrieved, len(ret_q))

    def ragged(q: np.ndarray, doc_values: list[Any], start: np.ndarray, end: np.ndarray, order_key: np.ndarray,
               name: str) -> RaggedSpans:
        # Stable: equal ranks keep file order.
        order = np.lexsort((np.arange(len(q)), order_key, q))
        counts = np.bincount(q, minlength=len(questions)) if len(q) else np.zeros(len(questions), dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts)))
        return RaggedSpans(offsets, docs(doc_values)[order], start[order], end[order], name=name)

    refs = ragged(ref_q, ref_docs, ref_start, ref_end, np.arange(len(ref_q)), "references")
    rets = ragged(ret_q, ret_docs, ret_start, ret_end, rank, "retrieved")
    first_row: dict[int, int] = {}
    for i, q in enumerate(ref_q.tolist()):
        first_row.setdefault(q, i)
    groups = None
    if group_column:
        col = refs_t.column(group_column).to_pylist()
        groups = np.array([str(col[first_row[q]]) for q in range(len(questions))], dtype=object)
    names = [""] * len(doc_ids)
    for name, i in doc_ids.items():
        names[i] = name
    first_doc = [str(ref_docs[first_row[q]]) for q in range(len(questions))]
    return SpanInputs(list(questions), refs, rets, chunk_spans, groups, names, first_doc, missing)


def _check_chunked(chunk_docs: list[Any], chunks: str, files: Sequence[tuple[list[Any], str]]) -> None:
    """Every doc the spans name has a chunk (else precision Ω and the auto cut-off mean nothing)."""
    chunked = {str(d) for d in chunk_docs}
    for values, path in files:
        absent = [row for row, d in enumerate(values) if str(d) not in chunked]
        if absent:
            raise ValueError(f"{path}: row {display_row(path, absent[0])} names doc {values[absent[0]]!r}, which "
                             f"has no chunk in {chunks}; pass the chunking of every document the spans name")


def _question_rows(refs_t: pa.Table, rets_t: pa.Table, references: str, retrieved: str,
                   on_missing: str) -> tuple[dict[str, int], np.ndarray, np.ndarray, list[str]]:
    """Question numbers (first appearance in the references) of every row of both files, and the
    questions without a retrieved row."""
    for path, table in ((references, refs_t), (retrieved, rets_t)):
        if table.column("question_id").null_count:
            row = _first(table.column("question_id").is_null().to_numpy(zero_copy_only=False))
            raise ValueError(f"{path}: row {display_row(path, row)} has no question_id")
    questions: dict[str, int] = {}
    ref_ids = [str(q) for q in refs_t.column("question_id").to_pylist()]
    ref_q = np.array([questions.setdefault(q, len(questions)) for q in ref_ids], dtype=np.int64)
    ret_ids = [str(q) for q in rets_t.column("question_id").to_pylist()]
    unknown = [row for row, q in enumerate(ret_ids) if q not in questions]
    if unknown:
        raise ValueError(f"{retrieved}: row {display_row(retrieved, unknown[0])}: question_id {ret_ids[unknown[0]]!r} "
                         f"has no reference in {references}")
    ret_q = np.array([questions[q] for q in ret_ids], dtype=np.int64)
    present = set(ret_ids)
    missing = [q for q in questions if q not in present]
    if missing and on_missing == "error":
        raise ValueError(f"{retrieved}: question {missing[0]!r} of {references} has no retrieved row "
                         f"({len(missing)} question(s) have none); add their rows, or pass --on-missing zero to score "
                         "them as retrieving nothing")
    return questions, ref_q, ret_q, missing


def _ranks(table: pa.Table, path: str, n: int) -> np.ndarray:
    if "rank" not in table.column_names:
        return np.arange(n, dtype=np.float64)
    column = table.column("rank")
    if column.null_count:
        row = _first(column.is_null().to_numpy(zero_copy_only=False))
        raise ValueError(f"{path}: row {display_row(path, row)} has no rank; give every row a rank or drop the "
                         "column (file order is then rank order)")
    try:
        rank = np.asarray(column.to_pylist(), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: the rank column must hold numbers (1 = best)") from None
    if not np.isfinite(rank).all():
        row = _first(~np.isfinite(rank))
        raise ValueError(f"{path}: row {display_row(path, row)} has rank {rank[row]}; ranks are finite numbers "
                         "(1 = best)")
    return rank
