"""The pure-Python reference backend: the contract (docs/metrics.md) written as directly as possible.

Every span is expanded into the set of ``(doc, position)`` pairs it covers, and every metric is
the formula from the contract over those sets. It is slow (linear in the number of positions) and
that is the point: nothing here shares an algorithm with the C++ core or the Numba kernels
(interval sweeps), so agreement between them is evidence that both are right.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

K_LIST, K_ALL, K_AUTO = 0, 1, 2
SET, CHROMA = 0, 1


def _positions(spans: Sequence[tuple[int, int, int]]) -> set[tuple[int, int]]:
    return {(d, p) for d, s, e in spans for p in range(s, e)}


def _rows(doc: np.ndarray, start: np.ndarray, end: np.ndarray, lo: int, hi: int) -> list[tuple[int, int, int]]:
    return list(zip(doc[lo:hi].tolist(), start[lo:hi].tolist(), end[lo:hi].tolist()))


def _ratio(num: int, den: int) -> float:
    # Python's int / int is correctly rounded, like double(num) / double(den) for counts < 2**53.
    return num / den


def _evidence_chunks(refs, chunks, semantics: int) -> list[int]:
    """Row ids of the chunks that hold evidence: positive overlap (set) or touching (chroma)."""
    rows = []
    for i, (cd, cs, ce) in enumerate(chunks):
        for rd, rs, re_ in refs:
            if cd != rd:
                continue
            if semantics == SET:
                hit = max(cs, rs) < min(ce, re_)
            else:
                hit = max(cs, rs) <= min(ce, re_)
            if hit:
                rows.append(i)
                break
    return rows


def _question(refs, ret, chunks, cutoffs, semantics):
    E = _positions(refs)
    ref_sum = sum(e - s for _, s, e in refs)
    out_pk = []
    for k in cutoffs:
        top = ret[:k]
        R = _positions(top)
        inter = len(E & R)
        if semantics == SET:
            recall = _ratio(inter, len(E))
            precision = _ratio(inter, len(R)) if R else 0.0
            iou = _ratio(inter, len(E | R))
        else:
            ret_sum = sum(e - s for _, s, e in top)
            unused = sum(len(_positions([r]) - R) for r in refs)
            recall = _ratio(inter, ref_sum)
            precision = _ratio(inter, ret_sum) if ret_sum else 0.0
            iou = _ratio(inter, ret_sum + unused)
        out_pk.append((recall, precision, iou))
    return out_pk


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every question; same signature and outputs as the compiled backends (docs/engine.md)."""
    del num_threads  # the reference is deliberately single-threaded
    nq = len(ref_offsets) - 1
    ncols = len(ks) if k_mode == K_LIST else 1
    recall = np.zeros((nq, ncols))
    precision = np.zeros((nq, ncols))
    iou = np.zeros((nq, ncols))
    omega = np.full(nq, math.nan)
    coverage = np.full(nq, math.nan)
    n_evidence = np.full(nq, -1, dtype=np.int64)
    chunk_rows = _rows(*chunks, 0, len(chunks[0])) if chunks is not None else None
    for q in range(nq):
        refs = _rows(ref_doc, ref_start, ref_end, int(ref_offsets[q]), int(ref_offsets[q + 1]))
        ret = _rows(ret_doc, ret_start, ret_end, int(ret_offsets[q]), int(ret_offsets[q + 1]))
        if chunk_rows is not None:
            evidence = _evidence_chunks(refs, chunk_rows, semantics)
            n_evidence[q] = len(evidence)
            E = _positions(refs)
            C = _positions([chunk_rows[i] for i in evidence])
            omega[q] = _ratio(len(E & C), len(E | C))
            if semantics == SET:
                coverage[q] = _ratio(len(E & C), len(E))
            else:
                ref_sum = sum(e - s for _, s, e in refs)
                coverage[q] = _ratio(sum(len(_positions([r]) & C) for r in refs), ref_sum)
        if k_mode == K_LIST:
            cutoffs = [int(k) for k in ks]
        elif k_mode == K_ALL:
            cutoffs = [len(ret)]
        else:
            cutoffs = [min(int(n_evidence[q]), len(ret))]
        for j, (r, p, i) in enumerate(_question(refs, ret, chunk_rows, cutoffs, semantics)):
            recall[q, j], precision[q, j], iou[q, j] = r, p, i
    return recall, precision, iou, omega, coverage, n_evidence
