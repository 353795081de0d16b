"""The pure-Python reference backend: the contract (docs/metrics.md) written as directly as possible.

A set of positions is held as its *union*: the sorted list of disjoint ``(doc, start, end)``
intervals it consists of, and ``|S|`` is the sum of their lengths. Every metric is then the
formula from the contract over such sets, with ``|A ∩ B|`` measured by walking two unions side by
side. Nothing here shares an algorithm with the C++ core or the Numba kernels (which sweep sorted
endpoints once per question and derive every cut-off from what each rank adds): this backend
recomputes each cut-off from scratch, so agreement between them is evidence that both are right.
It is slow (Python loops, a few sorts per cut-off) but never quadratic in a list's length.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import numpy as np

K_LIST, K_ALL, K_AUTO = 0, 1, 2
SET, CHROMA = 0, 1

Span = tuple[int, int, int]


def union(spans: Iterable[Span]) -> list[Span]:
    """The set of positions ``spans`` cover, as sorted disjoint intervals (touching ones joined)."""
    out: list[Span] = []
    for d, s, e in sorted(spans):
        if out and out[-1][0] == d and s <= out[-1][2]:
            if e > out[-1][2]:
                out[-1] = (d, out[-1][1], e)
        else:
            out.append((d, s, e))
    return out


def measure(u: list[Span]) -> int:
    """``|S|`` of a union: positions counted once."""
    return sum(e - s for _, s, e in u)


def intersection(a: list[Span], b: list[Span]) -> list[Span]:
    """``A ∩ B`` of two unions, walking both in order."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        (da, sa, ea), (db, sb, eb) = a[i], b[j]
        if da == db and max(sa, sb) < min(ea, eb):
            out.append((da, max(sa, sb), min(ea, eb)))
        # Step past whichever interval ends first (in (doc, end) order).
        if (da, ea) < (db, eb):
            i += 1
        else:
            j += 1
    return out


def overlap_with(span: Span, u: list[Span]) -> int:
    """``|span ∩ S|`` for one span and a union, starting from a binary search."""
    d, s, e = span
    total = 0
    i = bisect.bisect_left(u, (d, s, s))
    if i > 0 and u[i - 1][0] == d and u[i - 1][2] > s:
        i -= 1
    while i < len(u) and u[i][0] == d and u[i][1] < e:
        total += max(0, min(e, u[i][2]) - max(s, u[i][1]))
        i += 1
    return total


def _touches(chunk: Span, evidence: list[Span], semantics: int) -> bool:
    """Does ``chunk`` overlap the union with positive length (set), or touch it (chroma)?"""
    d, s, e = chunk
    i = bisect.bisect_left(evidence, (d, s, s))
    for j in (i - 1, i):
        if 0 <= j < len(evidence) and evidence[j][0] == d:
            lo, hi = max(s, evidence[j][1]), min(e, evidence[j][2])
            if lo < hi or (semantics == CHROMA and lo <= hi):
                return True
    return False


def _rows(doc: np.ndarray, start: np.ndarray, end: np.ndarray, lo: int, hi: int) -> list[Span]:
    return list(zip(doc[lo:hi].tolist(), start[lo:hi].tolist(), end[lo:hi].tolist(), strict=True))


def _check(name: str, offsets: np.ndarray, doc: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
    """The arrays may come from anyone: a bad one is a ValueError here, never a wrong number."""
    if not (len(doc) == len(start) == len(end)):
        raise ValueError(f"{name}: doc, start and end have lengths {len(doc)}, {len(start)}, {len(end)}; they must "
                         f"agree")
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(doc) or (np.diff(offsets) < 0).any():
        raise ValueError(f"{name}_offsets are not CSR offsets over {len(doc)} rows (first 0, never decreasing, last "
                         f"{len(doc)})")
    if len(doc) and ((start < 0).any() or (end <= start).any() or (doc < 0).any()):
        row = int(np.argmax((start < 0) | (end <= start) | (doc < 0)))
        raise ValueError(f"{name}: row {row} is not a span (doc >= 0, 0 <= start < end)")


def _scores(E: list[Span], refs: list[Span], top: list[Span], semantics: int) -> tuple[float, float, float]:
    """(recall, precision, iou) of one question on the retrieved rows ``top``."""
    R = union(top)
    inter = measure(intersection(E, R))
    if semantics == SET:
        size_r = measure(R)
        return inter / measure(E), (inter / size_r if size_r else 0.0), inter / (measure(E) + size_r - inter)
    # Chroma: the union of every (retrieved ∩ reference) piece is E ∩ R (touching pieces are empty);
    # the denominators are plain sums, and "unused" is each reference minus R, summed.
    ref_sum = sum(e - s for _, s, e in refs)
    ret_sum = sum(e - s for _, s, e in top)
    unused = sum((e - s) - overlap_with((d, s, e), R) for d, s, e in refs)
    return inter / ref_sum, (inter / ret_sum if ret_sum else 0.0), inter / (ret_sum + unused)


RANK_NAMES = ("hit", "mrr", "map", "ndcg", "ndcg_graded")


def _ranks(ret: list[Span], k: int | None) -> list[Span]:
    """The distinct rows of ``ret`` in order (a repeated ``(doc, start, end)`` takes no rank), at most ``k``."""
    seen: set[Span] = set()
    out: list[Span] = []
    for row in ret:
        if k is not None and len(out) >= k:
            break
        if row not in seen:
            seen.add(row)
            out.append(row)
    return out


def _dcg(gains: list[float]) -> float:
    """``Σ g_i · W(i)`` in rank order from 0.0, with the discount ``W(i) = 1 / log2(i + 1)``."""
    total = 0.0
    for i, g in enumerate(gains, start=1):
        total += g * (1.0 / math.log2(i + 1))
    return total


def _rank_scores(E: list[Span], ret: list[Span], ideal: list[int], k: int | None) -> tuple[float, ...]:
    """(hit, mrr, map, ndcg, ndcg_graded) at cut-off ``k`` (``None``: every rank), docs/metrics.md."""
    gains = [overlap_with(row, E) for row in _ranks(ret, k)]
    relevant = [i for i, g in enumerate(gains, start=1) if g > 0]
    n_rel = len(ideal)
    hit = 1.0 if relevant else 0.0
    mrr = 1.0 / relevant[0] if relevant else 0.0
    ap = 0.0
    for h, i in enumerate(relevant, start=1):
        ap += h / i
    depth = n_rel if k is None else min(k, n_rel)
    idcg = _dcg([1.0] * depth)
    idcg_graded = _dcg([float(g) for g in ideal[:depth]])
    return (
        hit,
        mrr,
        ap / n_rel if n_rel else 0.0,
        _dcg([1.0 if g > 0 else 0.0 for g in gains]) / idcg if idcg else 0.0,
        _dcg([float(g) for g in gains]) / idcg_graded if idcg_graded else 0.0,
    )


def _rank_columns(E: list[Span], ret: list[Span], by_doc: dict[int, list[Span]], ks: np.ndarray, k_mode: int,
                  n_evidence: int) -> np.ndarray:
    """The rank metrics of one question, ``(5, n_cols)``, at the cut-offs of ``k_mode``."""
    # Ideal list: every chunk of the question's documents with a positive overlap with E.
    ideal = sorted((g for d in sorted({d for d, _, _ in E}) for c in by_doc.get(d, [])
                    if (g := overlap_with(c, E)) > 0), reverse=True)
    cutoffs: list[int | None] = (
        [int(k) for k in ks] if k_mode == K_LIST else [None] if k_mode == K_ALL else [n_evidence])
    columns: np.ndarray = np.array([_rank_scores(E, ret, ideal, k) for k in cutoffs]).T
    return columns


def span_metrics_reference(
    ref_offsets: np.ndarray,
    ref_doc: np.ndarray,
    ref_start: np.ndarray,
    ref_end: np.ndarray,
    ret_offsets: np.ndarray,
    ret_doc: np.ndarray,
    ret_start: np.ndarray,
    ret_end: np.ndarray,
    chunks: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ks: np.ndarray,
    k_mode: int,
    semantics: int,
    num_threads: int = 1,
    ranked: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Score every question; same signature and outputs as the compiled backends (docs/engine.md).

    The seventh output is ``None``, or with ``ranked`` the rank metrics as one float64 array of shape
    ``(5, n_questions, n_cols)`` in the order of :data:`RANK_NAMES`.
    """
    del num_threads  # the reference is deliberately single-threaded
    if ranked and chunks is None:
        raise ValueError("ranked=True needs the chunking: rank metrics count the evidence chunks")
    _check("ref", ref_offsets, ref_doc, ref_start, ref_end)
    _check("ret", ret_offsets, ret_doc, ret_start, ret_end)
    if len(ref_offsets) != len(ret_offsets):
        raise ValueError("ref_offsets and ret_offsets must have the same length (n_questions + 1)")
    nq = len(ref_offsets) - 1
    ncols = len(ks) if k_mode == K_LIST else 1
    recall = np.zeros((nq, ncols))
    precision = np.zeros((nq, ncols))
    iou = np.zeros((nq, ncols))
    omega = np.full(nq, math.nan)
    coverage = np.full(nq, math.nan)
    n_evidence = np.full(nq, -1, dtype=np.int64)
    rank = np.zeros((len(RANK_NAMES), nq, ncols)) if ranked else None
    by_doc: dict[int, list[Span]] = {}
    if chunks is not None:
        _check("chunks", np.array([0, len(chunks[0])]), *chunks)
        for d, s, e in _rows(*chunks, 0, len(chunks[0])):
            by_doc.setdefault(d, []).append((d, s, e))
    for q in range(nq):
        refs = _rows(ref_doc, ref_start, ref_end, int(ref_offsets[q]), int(ref_offsets[q + 1]))
        ret = _rows(ret_doc, ret_start, ret_end, int(ret_offsets[q]), int(ret_offsets[q + 1]))
        if not refs:
            raise ValueError(f"references: question {q} has no reference span")
        E = union(refs)
        if chunks is not None:
            # Evidence chunks: every chunk of the question's documents that overlaps E (set) or
            # touches a reference (chroma; touching E is the same thing).
            docs = sorted({d for d, _, _ in E})
            evidence = [c for d in docs for c in by_doc.get(d, []) if _touches(c, E, semantics)]
            n_evidence[q] = len(evidence)
            C = union(evidence)
            both = measure(intersection(E, C))
            omega[q] = both / (measure(E) + measure(C) - both)
            if semantics == SET:
                coverage[q] = both / measure(E)
            else:
                coverage[q] = sum(overlap_with(r, C) for r in refs) / sum(e - s for _, s, e in refs)
        if k_mode == K_LIST:
            cutoffs = [int(k) for k in ks]
        elif k_mode == K_ALL:
            cutoffs = [len(ret)]
        else:
            cutoffs = [min(int(n_evidence[q]), len(ret))]
        for j, k in enumerate(cutoffs):
            recall[q, j], precision[q, j], iou[q, j] = _scores(E, refs, ret[:k], semantics)
        if rank is not None:
            rank[:, q, :] = _rank_columns(E, ret, by_doc, ks, k_mode, int(n_evidence[q]))
    return recall, precision, iou, omega, coverage, n_evidence, rank
