"""``span_metrics``: validate a batch, pick a backend, score it, and wrap the result.

The formulas are in docs/metrics.md (the contract) and the algorithm in docs/engine.md. Three
backends compute identical numbers: ``"cpp"`` (the compiled core, ``chunkeval._core``), ``"numba"``
and ``"python"`` (the readable reference). ``backend="auto"`` takes the first one available in
that order.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..spans import RaggedSpans, Spans
from . import _reference

__all__ = ["span_metrics", "SpanMetrics", "available_backends", "METRIC_NAMES", "RANK_METRIC_NAMES"]

K_LIST, K_ALL, K_AUTO = 0, 1, 2
_SEMANTICS = {"set": 0, "chroma": 1}
METRIC_NAMES = ("iou", "recall", "precision", "precision_omega", "coverage")
#: The rank metrics of ``ranked=True`` (docs/metrics.md, *Rank metrics*), in the kernels' order.
RANK_METRIC_NAMES = _reference.RANK_NAMES
# Numba's default threading layer (workqueue) aborts the process if two Python threads enter a
# parallel region at once; calls into the Numba backend are serialised instead.
_NUMBA_LOCK = threading.Lock()
# Below this many questions threads cost more than they save.
_MIN_QUESTIONS_PER_THREAD = 2048

KArg = int | Sequence[int] | Literal["auto"] | None
BackendName = Literal["cpp", "numba", "python"]


def _load_cpp() -> Any:
    try:
        from .. import _core
    except ImportError:
        return None
    return _core


def _load_numba() -> Any:
    try:
        from . import _numba
    except ImportError:
        return None
    return _numba


def available_backends() -> list[BackendName]:
    """Backends that can run here, fastest first (``"python"`` is always available)."""
    names: list[BackendName] = []
    if _load_cpp() is not None:
        names.append("cpp")
    if _load_numba() is not None:
        names.append("numba")
    names.append("python")
    return names


@dataclass
class SpanMetrics:
    """Per-question metrics of one :func:`span_metrics` call.

    ``recall``, ``precision`` and ``iou`` have shape ``(n_questions,)`` for a single cut-off and
    ``(n_questions, len(k))`` when ``k`` was a sequence (column ``j`` is cut-off ``k[j]``).
    ``precision_omega`` and ``coverage`` (float64) and ``n_evidence_chunks`` (int64) have shape
    ``(n_questions,)``; they depend on the chunking, not on retrieval, and are NaN / -1 when no
    chunks were given.

    With ``ranked=True`` the rank metrics ``hit``, ``mrr``, ``map``, ``ndcg`` and ``ndcg_graded``
    (float64, shaped like ``recall``) are set too; otherwise they are ``None``.
    """

    recall: np.ndarray
    precision: np.ndarray
    iou: np.ndarray
    precision_omega: np.ndarray
    coverage: np.ndarray
    n_evidence_chunks: np.ndarray
    k: Any
    semantics: str
    backend: str
    groups: np.ndarray | None = field(default=None, repr=False)
    hit: np.ndarray | None = None
    mrr: np.ndarray | None = None
    map: np.ndarray | None = None
    ndcg: np.ndarray | None = None
    ndcg_graded: np.ndarray | None = None

    @property
    def n_questions(self) -> int:
        return len(self.n_evidence_chunks)

    def __len__(self) -> int:
        return self.n_questions

    @property
    def multi_k(self) -> bool:
        return self.recall.ndim == 2

    @property
    def ranked(self) -> bool:
        """Whether the rank metrics were computed (``span_metrics(..., ranked=True)``)."""
        return self.hit is not None

    def metric_names(self) -> tuple[str, ...]:
        """The per-cut-off metrics this result holds: the span metrics, then the rank metrics if any."""
        return ("recall", "precision", "iou") + (RANK_METRIC_NAMES if self.ranked else ())

    def _rank_columns(self, j: int | None) -> dict[str, Any]:
        if not self.ranked:
            return {}
        return {name: (getattr(self, name) if j is None else getattr(self, name)[:, j]) for name in RANK_METRIC_NAMES}

    def at(self, k: int) -> SpanMetrics:
        """The result for one cut-off of a multi-``k`` result."""
        if not self.multi_k:
            raise ValueError(f"k: this result has the single cut-off {self.k!r}; .at() selects from a sequence of k")
        ks = list(self.k)
        if k not in ks:
            raise ValueError(f"k: {k} was not computed; this result has k in {ks}")
        j = ks.index(k)
        return SpanMetrics(self.recall[:, j], self.precision[:, j], self.iou[:, j], self.precision_omega,
                           self.coverage, self.n_evidence_chunks, k, self.semantics, self.backend, self.groups,
                           **self._rank_columns(j))

    def summary(self, groups: Any = None) -> dict[str, Any]:
        """Mean and population standard deviation (ddof=0) of every metric, overall and per group.

        Keys follow Chroma's ``chunking_evaluation`` (``iou_mean``, ``iou_std``, ``recall_mean``,
        ``precision_omega_mean``, …); ``corpora_scores`` maps each group (``groups`` is one label
        per question, e.g. the corpus id) to the same keys. A multi-``k`` result returns
        ``{"k": [...], "at_k": {k: summary}}``.
        """
        groups = self.groups if groups is None else np.asarray(groups)
        if self.multi_k:
            return {"k": list(self.k), "at_k": {k: self.at(k).summary(groups) for k in self.k}}
        out: dict[str, Any] = dict(_aggregate(self, np.ones(self.n_questions, dtype=bool)))
        out["k"] = self.k
        out["semantics"] = self.semantics
        out["n_questions"] = self.n_questions
        if groups is not None:
            if len(groups) != self.n_questions:
                raise ValueError(f"groups: {len(groups)} labels for {self.n_questions} questions; pass one label "
                                 f"per question")
            out["corpora_scores"] = {
                str(g): _aggregate(self, groups == g) for g in _ordered_unique(groups)
            }
        return out

    def to_arrow(self, groups: Any = None) -> Any:
        """A ``pyarrow.Table``, one row per question (and per cut-off, with a ``k`` column, for multi-``k``)."""
        import pyarrow as pa

        groups = self.groups if groups is None else np.asarray(groups)
        nq = self.n_questions
        if self.multi_k:
            nk = len(self.k)
            cols: dict[str, Any] = {
                "question": np.repeat(np.arange(nq), nk),
                "k": np.tile(np.asarray(self.k, dtype=np.int64), nq),
            }
            for name in self.metric_names():
                cols[name] = getattr(self, name).reshape(-1)
            for name in ("precision_omega", "coverage", "n_evidence_chunks"):
                cols[name] = np.repeat(getattr(self, name), nk)
            rep = nk
        else:
            cols = {"question": np.arange(nq)}
            for name in self.metric_names() + ("precision_omega", "coverage", "n_evidence_chunks"):
                cols[name] = getattr(self, name)
            rep = 1
        table = pa.table(cols)
        if groups is not None:
            table = table.append_column("group", pa.array(np.repeat(np.asarray(groups), rep).tolist()))
        return table


def _ordered_unique(values: np.ndarray) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return list(seen)


def _aggregate(result: SpanMetrics, mask: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in METRIC_NAMES + (RANK_METRIC_NAMES if result.ranked else ()):
        values = getattr(result, name)[mask]
        if values.size == 0 or np.isnan(values).all():
            out[f"{name}_mean"] = math.nan
            out[f"{name}_std"] = math.nan
        else:
            out[f"{name}_mean"] = float(np.mean(values))
            out[f"{name}_std"] = float(np.std(values))
    n_ev = result.n_evidence_chunks[mask]
    out["n_evidence_chunks_mean"] = float(np.mean(n_ev)) if n_ev.size and (n_ev >= 0).all() else math.nan
    out["n_questions"] = int(mask.sum())
    return out


def _as_ragged(x: Any, name: str) -> RaggedSpans:
    if isinstance(x, RaggedSpans):
        return x
    if type(x).__module__.startswith("pyarrow"):
        return RaggedSpans.from_arrow(x, name=name)
    if isinstance(x, (list, tuple)):
        return RaggedSpans.from_lists(x, name=name)
    raise TypeError(
        f"{name} must be a chunkeval.RaggedSpans (or a pyarrow list array, or a list of lists of "
        f"(doc, start, end) triples), got {type(x).__name__}"
    )


def _as_spans(x: Any, name: str) -> Spans:
    if isinstance(x, Spans):
        return x
    if type(x).__module__.startswith("pyarrow"):
        return Spans.from_arrow(x, name=name)
    if isinstance(x, (list, tuple)):
        rows = [tuple(r) for r in x]
        for i, r in enumerate(rows):
            if len(r) != 3:
                raise ValueError(f"{name}: row {i} is {r!r}; each chunk is a (doc, start, end) triple")
        doc, start, end = zip(*rows, strict=True) if rows else ((), (), ())
        return Spans(list(doc), list(start), list(end), name=name)
    raise TypeError(f"{name} must be a chunkeval.Spans (or a pyarrow table, or a list of (doc, start, end)), got "
                    f"{type(x).__name__}")


def _parse_k(k: KArg) -> tuple[int, np.ndarray, Any]:  # noqa: C901 - one branch per accepted form of k
    if k is None:
        return K_ALL, np.zeros(0, dtype=np.int64), None
    if isinstance(k, str):
        if k != "auto":
            raise ValueError(f"k: {k!r} is not a cut-off; use an int >= 1, a sequence of them, None (all) or 'auto'")
        return K_AUTO, np.zeros(0, dtype=np.int64), "auto"
    if isinstance(k, (bool, np.bool_)):
        raise TypeError("k: a boolean is not a cut-off; use an int >= 1")
    if isinstance(k, (int, np.integer)):
        if k >= 2**62:
            raise ValueError(f"k: {k} is too large; use None to score every retrieved chunk")
        if k < 1:
            raise ValueError(f"k: {int(k)} < 1; a cut-off keeps the first k >= 1 retrieved chunks (use None for all)")
        return K_LIST, np.array([int(k)], dtype=np.int64), int(k)
    if isinstance(k, (list, tuple, np.ndarray, range)):
        ks = list(k)
        if not ks:
            raise ValueError("k: an empty sequence; pass at least one cut-off")
        for i, v in enumerate(ks):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"k: entry {i} is {v!r}; cut-offs are integers >= 1")
            if v < 1:
                raise ValueError(f"k: entry {i} is {int(v)} < 1; cut-offs are integers >= 1")
            if v >= 2**62:
                raise ValueError(f"k: entry {i} ({v}) is too large; use None to score every retrieved chunk")
        for i in range(1, len(ks)):
            if ks[i] <= ks[i - 1]:
                raise ValueError(f"k: entry {i} ({ks[i]}) is not larger than entry {i - 1} ({ks[i - 1]}); "
                                 "pass distinct cut-offs in increasing order, e.g. sorted(set(k))")
        return K_LIST, np.array(ks, dtype=np.int64), tuple(int(v) for v in ks)
    raise TypeError(f"k must be None, an int, a sequence of ints or 'auto', got {type(k).__name__}")


def _check_docs_known(spans: Spans, known: np.ndarray, name: str) -> None:
    """Every doc id of ``spans`` is in ``known`` (sorted, distinct), else a ValueError naming the row."""
    if len(spans) == 0:
        return
    doc = spans.doc
    lo, hi = (int(known[0]), int(known[-1])) if len(known) else (0, -1)
    d_lo, d_hi = int(doc.min()), int(doc.max())
    # This check runs on every call over every retrieved row, so avoid a binary search per row:
    # dense ids (the common case) need only the range, moderate ranges a lookup table.
    if len(known) and len(known) == hi - lo + 1 and lo <= d_lo and d_hi <= hi:
        return
    if len(known) and hi - lo <= 4 * len(doc) + (1 << 20):
        inside = (doc >= lo) & (doc <= hi)
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[known - lo] = True
        ok = inside.copy()
        ok[inside] = present[doc[inside] - lo]
    elif len(known):
        pos = np.minimum(np.searchsorted(known, doc), len(known) - 1)
        ok = known[pos] == doc
    else:
        ok = np.zeros(len(doc), dtype=bool)
    if not ok.all():
        row = int(np.argmin(ok))
        raise ValueError(
            f"{name}: row {row} names doc {int(doc[row])}, which has no chunk in `chunks`; "
            "pass the chunking of every document the questions use"
        )


# Rows a question may hold (references) or score (retrieved rows up to the deepest cut-off): with
# positions <= 2**32 (spans.POSITION_BOUND), every count a metric divides is then <= 2**53 and exact.
MAX_ROWS_PER_QUESTION = 2**20


def _check_rows_per_question(counts: np.ndarray, name: str, what: str, fix: str) -> None:
    if counts.size == 0:
        return
    q = int(np.argmax(counts))
    if counts[q] > MAX_ROWS_PER_QUESTION:
        raise ValueError(
            f"{name}: question {q} {what} {int(counts[q])} rows, more than 2**20 ({MAX_ROWS_PER_QUESTION}) per "
            f"question, the bound under which every count stays exact; {fix}"
        )


def _scored_rows(retrieved: RaggedSpans, k_mode: int, ks: np.ndarray) -> np.ndarray:
    """Rows of each question a call with a fixed cut-off (a list, or all rows) scores."""
    counts = retrieved.counts()
    if k_mode == K_LIST:
        scored: np.ndarray = np.minimum(counts, ks[-1])
        return scored
    return counts


def cpu_affinity_count() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def _resolve_threads(num_threads: int | None, n_questions: int) -> int:
    if num_threads is None:
        num_threads = cpu_affinity_count()
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
        raise TypeError(f"num_threads must be an int or None, got {type(num_threads).__name__}")
    if num_threads < 1:
        raise ValueError(f"num_threads: {num_threads} < 1; use None for every core or a positive count")
    return max(1, min(int(num_threads), n_questions // _MIN_QUESTIONS_PER_THREAD or 1))


def _chunk_index(chunks: Spans, backend: str, module: Any) -> Any:
    # A chunking is usually scored against many batches (every k, every embedder of a sweep):
    # build its interval index once and keep it on the Spans object. Its columns are read-only and
    # owned by it (spans.py), so the index can never describe other values than the columns.
    cached = chunks._index_cache.get(backend)
    if cached is None:
        if backend == "cpp":
            cached = module.ChunkIndex(chunks.doc, chunks.start, chunks.end)
        elif backend == "numba":
            cached = module.build_chunk_index(chunks.doc, chunks.start, chunks.end)
        else:
            cached = (chunks.doc, chunks.start, chunks.end)
        chunks._index_cache[backend] = cached
    return cached


def span_metrics(  # noqa: C901 - one check per argument
    references: Any,
    retrieved: Any,
    chunks: Any = None,
    *,
    k: KArg = None,
    semantics: Literal["set", "chroma"] = "set",
    backend: Literal["auto", "cpp", "numba", "python"] = "auto",
    num_threads: int | None = None,
    doc_lengths: Any = None,
    groups: Any = None,
    ranked: bool = False,
) -> SpanMetrics:
    """Score ranked retrieved chunks against reference spans, one row per question.

    Set semantics (default), with ``E`` the union of a question's references and ``R`` the union
    of its first ``k`` retrieved chunks (positions counted once)::

        recall = |E ∩ R| / |E|        precision = |E ∩ R| / |R|  (0 when nothing is retrieved)
        iou    = |E ∩ R| / |E ∪ R|    precision_omega = |E ∩ C*| / |E ∪ C*|   coverage = |E ∩ C*| / |E|

    where ``C*`` is every chunk of ``chunks`` that overlaps ``E``. ``semantics="chroma"`` reproduces
    Chroma's ``chunking_evaluation`` arithmetic (touching spans intersect, plain sums in the
    denominators); see docs/metrics.md for both definitions.

    Parameters
    ----------
    references, retrieved:
        :class:`~chunkeval.RaggedSpans` with one list per question (retrieved in rank order); also
        accepted: a pyarrow list array of ``struct<doc, start, end>`` or a list of lists of triples.
    chunks:
        The chunking (:class:`~chunkeval.Spans`), needed for ``precision_omega``, ``coverage``,
        ``n_evidence_chunks`` and ``k="auto"``; every document the references or retrieved chunks
        name must have chunks in it.
    k:
        ``None``: each question's whole retrieved list; an ``int``: its first ``k``; an increasing
        sequence: every cut-off in one pass (metrics become ``(n_questions, len(k))``); ``"auto"``:
        each question's first ``n_evidence_chunks`` (Chroma's ``retrieve=-1``). A question may score
        at most 2**20 retrieved rows (and hold at most 2**20 references); rows past the deepest
        cut-off are validated but not scored. Positions are bounded by 2**32 (see
        docs/metrics.md, *Bounds*): under these bounds every ratio is exact.
    backend:
        ``"cpp"``, ``"numba"``, ``"python"`` or ``"auto"`` (the fastest available).
    num_threads:
        Threads across questions for the compiled backends; ``None`` uses every CPU the process
        may run on (its affinity mask). Batches under 2,048 questions per thread run on fewer threads.
    doc_lengths:
        Optional length of every document (indexed by doc id): then a span past its document's end
        or naming an unknown document is rejected.
    groups:
        Optional label per question (e.g. corpus id), used by :meth:`SpanMetrics.summary`.
    ranked:
        Also compute the rank metrics ``hit``, ``mrr``, ``map``, ``ndcg`` and ``ndcg_graded`` at the
        same cut-offs, in the same pass (docs/metrics.md, *Rank metrics*: a retrieved row is relevant
        when it overlaps the evidence, repeated rows take no rank, and ``k`` counts ranks). Needs
        ``chunks``: the ideal list is the chunks that overlap the evidence.
    """
    references = _as_ragged(references, "references")
    retrieved = _as_ragged(retrieved, "retrieved")
    if references.n_questions != retrieved.n_questions:
        raise ValueError(
            f"retrieved has {retrieved.n_questions} questions but references has {references.n_questions}; "
            "pass one retrieved list per question (an empty list where nothing was retrieved)"
        )
    empty = references.counts() == 0
    if empty.any():
        q = int(np.argmax(empty))
        raise ValueError(f"references: question {q} has no reference span; every question needs at least one (drop "
                         f"the question)")
    if semantics not in _SEMANTICS:
        raise ValueError(f"semantics: {semantics!r} is not one of 'set', 'chroma'")
    k_mode, ks, k_label = _parse_k(k)
    if not isinstance(ranked, (bool, np.bool_)):
        raise TypeError(f"ranked must be True or False, got {type(ranked).__name__}")
    _check_rows_per_question(references.counts(), "references", "has", "split the question")
    if k_mode != K_AUTO:
        # With k='auto' the depth is each question's n_evidence_chunks, checked after scoring.
        _check_rows_per_question(_scored_rows(retrieved, k_mode, ks), "retrieved", "scores", "pass a smaller k")
    if chunks is not None:
        chunks = _as_spans(chunks, "chunks")
        known = chunks._index_cache.get("docs")
        if known is None:
            known = chunks._index_cache["docs"] = np.unique(chunks.doc)
        _check_docs_known(references.spans, known, "references")
        _check_docs_known(retrieved.spans, known, "retrieved")
    elif k_mode == K_AUTO:
        raise ValueError("k='auto' scores each question on its first n_evidence_chunks results, which needs `chunks`")
    elif ranked:
        raise ValueError("ranked=True needs `chunks`: the rank metrics' ideal list is the chunks that overlap the "
                         "evidence (nDCG and MAP divide by it); pass the chunking")
    if doc_lengths is not None:
        references.spans.check_within(doc_lengths, "references")
        retrieved.spans.check_within(doc_lengths, "retrieved")
        if chunks is not None:
            chunks.check_within(doc_lengths, "chunks")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != references.n_questions:
            raise ValueError(f"groups: expected one label per question ({references.n_questions}), got shape "
                             f"{groups.shape}")

    if backend == "auto":
        # Try the compiled core first: importing Numba (and SciPy with it) costs a quarter second.
        backend = "cpp" if _load_cpp() is not None else available_backends()[0]
    if backend == "cpp":
        module = _load_cpp()
        if module is None:
            raise ValueError("backend='cpp': the compiled extension chunkeval._core is not built; reinstall with "
                             "`pip install .` or use backend='auto'")
        kernel = module.span_metrics
    elif backend == "numba":
        module = _load_numba()
        if module is None:
            raise ValueError("backend='numba': numba is not installed; `pip install chunkeval[numba]` or use "
                             "backend='auto'")
        kernel = module.span_metrics_numba
    elif backend == "python":
        module = _reference
        kernel = _reference.span_metrics_reference
    else:
        raise ValueError(f"backend: {backend!r} is not one of 'auto', 'cpp', 'numba', 'python'")

    index = _chunk_index(chunks, backend, module) if chunks is not None else None
    threads = _resolve_threads(num_threads, references.n_questions)
    with _NUMBA_LOCK if backend == "numba" else contextlib.nullcontext():
        recall, precision, iou, omega, coverage, n_evidence, rank = kernel(
            references.offsets, references.doc, references.start, references.end,
            retrieved.offsets, retrieved.doc, retrieved.start, retrieved.end,
            index, ks, k_mode, _SEMANTICS[semantics], threads, bool(ranked),
        )
    if k_mode == K_AUTO:
        _check_rows_per_question(np.minimum(retrieved.counts(), n_evidence), "retrieved", "scores",
                                 "k='auto' scores n_evidence_chunks rows, so pass an int k or truncate the list")
    single = k_mode != K_LIST or not isinstance(k_label, tuple)
    if single:
        recall, precision, iou = recall[:, 0], precision[:, 0], iou[:, 0]
    ranks: dict[str, Any] = {}
    if rank is not None:
        ranks = {name: (rank[i, :, 0] if single else rank[i]) for i, name in enumerate(RANK_METRIC_NAMES)}
    return SpanMetrics(recall, precision, iou, omega, coverage, n_evidence, k_label, semantics, backend, groups,
                       **ranks)
