"""The IR tools' exchange formats: an evaluation as TREC qrels and a TREC run, for trec_eval,
pytrec_eval and ranx (docs/interop.md, *Exporting to trec_eval and ranx*).

The qrels are each question's evidence chunks: the chunks of ``chunks`` whose span overlaps the
union ``E`` of its references with positive length, with relevance 1 (binary) or ``|c ∩ E|``
(graded), the gains of chunkeval's rank metrics (docs/metrics.md, *Rank metrics*). The run is the
question's distinct retrieved rows in rank order (a row with the same ``(doc, start, end)`` as an
earlier one takes no rank, as in the engine) with the strictly decreasing scores ``n, n-1, ..., 1``:
never the retriever's own scores, which can tie, and the tools re-sort a run by score.

A document number names a span, ``"{doc}:{start}-{end}"`` (``doc`` the integer id or the name from
``doc_names``; positions in the units of the spans), so two retrieved rows are the same TREC
document exactly when they are the same span. When ``chunks`` holds the same span twice, the engine
counts two evidence chunks; the second is written ``"{doc}:{start}-{end}#2"`` (a third ``#3``), a
judged document no run can name, so the ideal list the tools build is the engine's.

A question whose evidence overlaps no chunk (``R = 0``) has nothing to judge and is left out of the
qrels: trec_eval and pytrec_eval evaluate only the questions of the qrels (and ranx needs the run
and the qrels to hold the same questions, which :func:`to_ranx` arranges), while chunkeval scores
such a question 0 on every rank metric. A question that retrieved nothing has no run line:
pytrec_eval (and trec_eval without ``-c``) skip it, ranx scores it 0. The numbers agree on every
question a tool evaluates; the means agree when every question has an evidence chunk and a
retrieved row.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_open
from .spans import RaggedSpans, Spans

if TYPE_CHECKING:
    from .pipeline import UnitSpans

__all__ = ["Qrels", "Run", "trec_data", "write_trec", "to_ranx", "evaluation_trec_data", "unit_trec_data",
           "docno", "NO_TOKENS"]

#: ``{question_id: {docno: relevance}}``, the judged (relevant) chunks of each question.
Qrels = dict[str, dict[str, int]]
#: ``{question_id: {docno: score}}``, scores strictly decreasing in rank order.
Run = dict[str, dict[str, float]]

# Spans are compared in one int64 key space: dense doc number * 2**33 + position (positions are at
# most 2**32, spans.POSITION_BOUND), so that sorted searches never cross from one document into the next.
_DOC_SHIFT = 33
_MAX_DOCS = 2**30
_INSTALL = "pip install 'chunkeval[interop]'"


def docno(doc: int, start: int, end: int, doc_names: Sequence[str] | None = None) -> str:
    """The TREC document number of a span: ``"{doc}:{start}-{end}"``, with ``doc_names[doc]`` if given."""
    return f"{doc_names[doc] if doc_names is not None else doc}:{start}-{end}"


class _Evidence:
    """A question's ``E`` in key space: the union of its references as sorted disjoint intervals."""

    def __init__(self, kstart: np.ndarray, kend: np.ndarray) -> None:
        order = np.argsort(kstart, kind="stable")
        starts: list[int] = []
        ends: list[int] = []
        for s, e in zip(kstart[order].tolist(), kend[order].tolist(), strict=True):
            if ends and s <= ends[-1]:
                ends[-1] = max(ends[-1], e)
            else:
                starts.append(s)
                ends.append(e)
        self.start = np.asarray(starts, dtype=np.int64)
        self.end = np.asarray(ends, dtype=np.int64)
        lengths = self.end - self.start
        self.before = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)  # length below interval i

    def _below(self, x: np.ndarray) -> np.ndarray:
        """``|E ∩ (-inf, x)|`` for every key of ``x``."""
        i = np.searchsorted(self.start, x, side="right") - 1
        safe = np.maximum(i, 0)
        partial = np.clip(x - self.start[safe], 0, self.end[safe] - self.start[safe])
        covered: np.ndarray = np.where(i >= 0, self.before[safe] + partial, 0)
        return covered

    def overlap(self, kstart: np.ndarray, kend: np.ndarray) -> np.ndarray:
        """``|x ∩ E|`` of every span ``x`` (in key space: it never reaches into another document)."""
        gains: np.ndarray = self._below(kend) - self._below(kstart)
        return gains


class _ChunkIndex:
    """The chunks sorted by ``(doc, start, end)`` in key space, with the running maximum of their
    ends: the chunks overlapping a key interval ``[s, e)`` lie in ``[first running end > s, first
    start >= e)`` of that order (nested chunks make it a superset, filtered by overlap)."""

    def __init__(self, chunks: Spans, dense: np.ndarray, names: Sequence[str] | None) -> None:
        order = np.lexsort((chunks.end, chunks.start, dense))
        base = dense[order] << _DOC_SHIFT
        self.kstart = base + chunks.start[order]
        self.kend = base + chunks.end[order]
        self.running_end = np.maximum.accumulate(self.kend) if len(self.kend) else self.kend
        self.rows = order
        self.chunks = chunks
        self.names = names

    def judged(self, evidence: _Evidence, graded: bool) -> dict[str, int]:
        """The qrels of one question: ``{docno: 1 or |c ∩ E|}`` over the chunks with ``|c ∩ E| > 0``."""
        lo = np.searchsorted(self.running_end, evidence.start, side="right")
        hi = np.searchsorted(self.kstart, evidence.end, side="left")
        parts = [np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        if not parts:
            return {}
        at = np.unique(np.concatenate(parts))
        gains = evidence.overlap(self.kstart[at], self.kend[at])
        at, gains = at[gains > 0], gains[gains > 0]
        rows = self.rows[at]
        judged: dict[str, int] = {}
        for d, s, e, gain in zip(self.chunks.doc[rows].tolist(), self.chunks.start[rows].tolist(),
                                 self.chunks.end[rows].tolist(), gains.tolist(), strict=True):
            name = base = docno(d, s, e, self.names)
            copy = 1
            while name in judged:  # the same span twice in `chunks`: two evidence chunks, as in the engine
                copy += 1
                name = f"{base}#{copy}"
            judged[name] = int(gain) if graded else 1
        return judged


def _question_ids(question_ids: Sequence[Any] | None, n: int) -> list[str]:
    if question_ids is None:
        return [str(q) for q in range(n)]
    if isinstance(question_ids, (str, bytes)):
        raise TypeError("question_ids must be a sequence of ids, one per question, not a single string")
    ids = [str(q) for q in question_ids]
    if len(ids) != n:
        raise ValueError(f"question_ids: {len(ids)} ids for {n} questions; pass one id per question")
    seen: dict[str, int] = {}
    for i, q in enumerate(ids):
        if q in seen:
            raise ValueError(f"question_ids: {q!r} names questions {seen[q]} and {i}; a TREC file needs one distinct "
                             f"id per question")
        seen[q] = i
    return ids


def _doc_names(doc_names: Sequence[str] | None, max_doc: int) -> list[str] | None:
    if doc_names is None:
        return None
    names = [str(d) for d in doc_names]
    if max_doc >= len(names):
        raise ValueError(f"doc_names: {len(names)} names, but the spans name doc {max_doc}; pass one name per doc id")
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if first.setdefault(name, i) != i:
            raise ValueError(f"doc_names: {name!r} names documents {first[name]} and {i}; each document needs its "
                             f"own name")
    return names


def trec_data(
    references: RaggedSpans,
    retrieved: RaggedSpans,
    chunks: Spans,
    *,
    question_ids: Sequence[Any] | None = None,
    graded: bool = False,
    doc_names: Sequence[str] | None = None,
) -> tuple[Qrels, Run]:
    """The qrels and the run of a batch, as ``({qid: {docno: rel}}, {qid: {docno: score}})``.

    ``qrels[qid]`` holds the chunks ``c`` of ``chunks`` with ``|c ∩ E| > 0`` (``E`` the union of
    the question's references), relevance 1 or, with ``graded``, ``|c ∩ E|``; a question with no
    such chunk is not in ``qrels``. ``run[qid]`` (every question, ``{}`` when nothing was retrieved)
    holds the distinct retrieved rows in rank order with scores ``n - i`` for the ``i``-th of ``n``
    (``i`` from 0). Document numbers are :func:`docno` (module docstring). ``question_ids`` default
    to ``"0"``, ``"1"``, ...; ``doc_names`` (indexed by doc id) name the documents in them.

    pytrec_eval and ranx on these (``map_cut_k``/``map@k``, ``ndcg_cut_k``/``ndcg@k``,
    ``recip_rank`` on the run cut to ``k``/``mrr@k``, ``hit_rate@k``) give chunkeval's
    ``span_metrics(..., ranked=True)`` numbers on every question of the qrels. That needs every
    relevant retrieved row to be a chunk of ``chunks`` (the pipeline's case); one that is not is a
    ValueError, because the tools would count it non-relevant where chunkeval counts it relevant.
    """
    for value, name, kind in ((references, "references", RaggedSpans), (retrieved, "retrieved", RaggedSpans),
                              (chunks, "chunks", Spans)):
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be a chunkeval.{kind.__name__}, got {type(value).__name__}")
    if not isinstance(graded, (bool, np.bool_)):
        raise TypeError(f"graded must be True or False, got {type(graded).__name__}")
    if references.n_questions != retrieved.n_questions:
        raise ValueError(f"retrieved has {retrieved.n_questions} questions but references has "
                         f"{references.n_questions}; pass one retrieved list per question")
    qids = _question_ids(question_ids, references.n_questions)
    docs = np.unique(np.concatenate((chunks.doc, references.doc, retrieved.doc)))
    if len(docs) >= _MAX_DOCS:
        raise ValueError(f"{len(docs)} distinct documents; the export handles at most 2**30")
    names = _doc_names(doc_names, int(docs[-1]) if len(docs) else -1)
    index = _ChunkIndex(chunks, np.searchsorted(docs, chunks.doc), names)
    ref_key = np.searchsorted(docs, references.doc) << _DOC_SHIFT
    ret_key = np.searchsorted(docs, retrieved.doc) << _DOC_SHIFT

    qrels: Qrels = {}
    run: Run = {}
    for q, qid in enumerate(qids):
        lo, hi = int(references.offsets[q]), int(references.offsets[q + 1])
        if hi == lo:
            raise ValueError(f"references: question {qid!r} has no reference span; every question needs at least one")
        evidence = _Evidence(ref_key[lo:hi] + references.start[lo:hi], ref_key[lo:hi] + references.end[lo:hi])
        judged = index.judged(evidence, graded)
        if judged:
            qrels[qid] = judged
        lo, hi = int(retrieved.offsets[q]), int(retrieved.offsets[q + 1])
        ranked, gains = _distinct_rows(retrieved, lo, hi, ret_key, evidence, names)
        for rank, (name, gain) in enumerate(zip(ranked, gains, strict=True), start=1):
            if gain > 0 and name not in judged:
                raise ValueError(
                    f"retrieved: question {qid!r}, rank {rank} ({name}) overlaps the evidence but is no chunk of "
                    f"`chunks`; the qrels judge chunks only, so trec_eval and ranx would count it non-relevant "
                    f"where chunkeval counts it relevant: retrieve rows of `chunks`, or pass the chunking they "
                    f"come from")
        run[qid] = {name: float(len(ranked) - i) for i, name in enumerate(ranked)}
    return qrels, run


def _distinct_rows(retrieved: RaggedSpans, lo: int, hi: int, key: np.ndarray, evidence: _Evidence,
                   names: Sequence[str] | None) -> tuple[list[str], list[int]]:
    """The document numbers of rows ``lo:hi`` in rank order, a repeated span dropped, and their gains."""
    ranked: list[str] = []
    first_rows: list[int] = []
    seen: set[str] = set()
    rows = zip(retrieved.doc[lo:hi].tolist(), retrieved.start[lo:hi].tolist(), retrieved.end[lo:hi].tolist(),
               strict=True)
    for i, (d, s, e) in enumerate(rows):
        name = docno(d, s, e, names)
        if name not in seen:
            seen.add(name)
            ranked.append(name)
            first_rows.append(lo + i)
    at = np.asarray(first_rows, dtype=np.int64)
    gains: list[int] = evidence.overlap(key[at] + retrieved.start[at], key[at] + retrieved.end[at]).tolist()
    return ranked, gains


def _check_field(value: str, what: str) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{what} {value!r} is empty or holds whitespace, which separates the fields of a TREC file; "
                         f"use ids without spaces")


def _qrels_lines(qrels: Mapping[str, Mapping[str, int]]) -> list[str]:
    lines: list[str] = []
    for qid, judged in qrels.items():
        _check_field(str(qid), "question id")
        for doc, rel in judged.items():
            _check_field(str(doc), f"question {qid!r}: docno")
            if isinstance(rel, (bool, np.bool_)) or not isinstance(rel, (int, np.integer)):
                raise TypeError(f"qrels: question {qid!r}, docno {doc!r}: relevance {rel!r} is not an integer")
            lines.append(f"{qid} 0 {doc} {int(rel)}\n")
    return lines


def _run_lines(run: Mapping[str, Mapping[str, float]], run_name: str) -> list[str]:
    lines: list[str] = []
    for qid, scored in run.items():
        _check_field(str(qid), "question id")
        items = []
        for doc, score in scored.items():
            _check_field(str(doc), f"question {qid!r}: docno")
            if isinstance(score, (bool, np.bool_)) or not isinstance(score, (int, float, np.integer, np.floating)):
                raise TypeError(f"run: question {qid!r}, docno {doc!r}: score {score!r} is not a number")
            if not math.isfinite(float(score)):
                raise ValueError(f"run: question {qid!r}, docno {doc!r}: score {score!r} is not finite")
            items.append((doc, float(score)))
        # The tools rank by score; the rank column says the same (ties keep the run's order).
        items.sort(key=lambda item: -item[1])
        lines.extend(f"{qid} Q0 {doc} {rank} {score!r} {run_name}\n" for rank, (doc, score) in enumerate(items, 1))
    return lines


def write_trec(
    qrels_path: str | os.PathLike[str],
    run_path: str | os.PathLike[str],
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    *,
    run_name: str = "chunkeval",
) -> None:
    """Write ``qrels`` (``qid 0 docno rel``) and ``run`` (``qid Q0 docno rank score run_name``, by
    decreasing score) in the TREC formats that trec_eval, pytrec_eval and ranx read.

    Both files are checked first, then written atomically: each appears complete or not at all, and
    a failure leaves both paths as they were. Ids and document numbers may not hold whitespace.
    """
    _check_field(str(run_name), "run_name")
    qrels_text = "".join(_qrels_lines(qrels))
    run_text = "".join(_run_lines(run, run_name))
    # Nested: an error while writing either file removes both temporary files before any rename.
    with atomic_open(qrels_path) as qrels_file, atomic_open(run_path) as run_file:
        qrels_file.write(qrels_text)
        run_file.write(run_text)


def to_ranx(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]) -> tuple[Any, Any]:
    """``(ranx.Qrels, ranx.Run)`` of :func:`trec_data`'s output (needs ``pip install 'chunkeval[interop]'``).

    ranx evaluates only when the run and the qrels hold the same questions, so the run keeps the
    questions of the qrels (a question without a relevant chunk is dropped, as trec_eval drops it;
    one without a retrieved row gets an empty ranking, scored 0). ``ranx.evaluate(qrels, run,
    ["hit_rate@k", "mrr@k", "map@k", "ndcg@k"])`` then equals chunkeval's hit, mrr, map and ndcg
    (``ndcg_graded`` with graded qrels: ranx's ``ndcg`` takes the relevance as the gain, like
    chunkeval; ``ndcg_burges`` uses ``2**rel - 1`` and differs).
    """
    try:
        ranx = importlib.import_module("ranx")
    except ImportError as exc:
        raise ImportError(f"to_ranx needs the ranx package: {_INSTALL}") from exc
    if not qrels:
        raise ValueError("qrels: no question has a relevant chunk, so ranx has nothing to evaluate")
    judged = ranx.Qrels({str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()})
    ranked = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items() if docs}
    # ranx cannot build a Run from empty rankings; make_comparable adds them (and drops the
    # questions that are not in the qrels).
    return judged, ranx.Run(ranked or None).make_comparable(judged)


def evaluation_trec_data(result: Any, *, graded: bool = False) -> tuple[Qrels, Run]:
    """:func:`trec_data` of a :class:`chunkeval.evaluate.EvaluationResult` (:func:`unit_trec_data` of
    its ``unit_spans`` and ``ranked_ids``, with the question ids of its ``table``)."""
    spans, ids = getattr(result, "unit_spans", None), getattr(result, "ranked_ids", None)
    if spans is None or ids is None:
        raise ValueError("this EvaluationResult carries no unit_spans and ranked_ids (it was not made by "
                         "chunkeval.evaluate); the export needs the evaluation's spans and ranked chunk ids")
    table = result.table
    question_ids = table.column("question_id").to_pylist()
    if table.num_rows:
        # One row per question and cut-off: the first configuration's rows are the questions in order.
        configs = table.column("config_id").to_pylist()
        question_ids = [q for q, c in zip(question_ids, configs, strict=True) if c == configs[0]]
    return unit_trec_data(spans, ids, question_ids=question_ids, graded=graded)


#: The document name of a retrieved chunk that holds no token (token units), by character chunk id.
NO_TOKENS = "no-tokens:chunk{}"


def unit_trec_data(spans: UnitSpans, ids: np.ndarray, *, question_ids: Sequence[Any] | None = None,
                   graded: bool = False) -> tuple[Qrels, Run]:
    """:func:`trec_data` of ranked character chunk ids (``-1`` padding) in the units of ``spans``
    (a :class:`chunkeval.pipeline.UnitSpans`), as the pipeline scores them.

    In token units a chunk can hold no token; it keeps its character rank and is never relevant
    (the pipeline's rank metrics count it so), and is written as the document
    ``no-tokens:chunk{id}``, which no qrels line names.
    """
    from .pipeline import retrieved_spans

    rows = spans.ranked_ids(ids)  # checks ids
    chunk_id = spans.chunk_id
    if chunk_id is None or not bool((chunk_id < 0).any()):
        return trec_data(spans.references, retrieved_spans(rows, spans.chunks), spans.chunks,
                         question_ids=question_ids, graded=graded)
    ids = np.asarray(ids, dtype=np.int64)
    chunks = spans.chunks
    valid = ids >= 0
    char_ids = ids[valid]  # row-major: each question's rank order
    row = chunk_id[char_ids]
    empty, safe = row < 0, np.maximum(row, 0)
    # A chunk without a token becomes the span [id, id + 1) of a document no reference is in:
    # distinct per chunk, never relevant; its document number is renamed below.
    nowhere = max(int(chunks.doc.max(initial=-1)), int(spans.references.doc.max(initial=-1))) + 1
    offsets = np.concatenate(([0], np.cumsum(valid.sum(axis=1)))).astype(np.int64)
    retrieved = RaggedSpans(offsets, np.where(empty, nowhere, chunks.doc[safe]),
                            np.where(empty, char_ids, chunks.start[safe]),
                            np.where(empty, char_ids + 1, chunks.end[safe]), name="retrieved")
    qrels, run = trec_data(spans.references, retrieved, chunks, question_ids=question_ids, graded=graded)
    prefix = f"{nowhere}:"
    renamed = {qid: {(NO_TOKENS.format(name[len(prefix):].split("-")[0]) if name.startswith(prefix) else name): score
                     for name, score in ranked.items()} for qid, ranked in run.items()}
    return qrels, renamed
