"""The Numba entry point called directly (past ``span_metrics``'s validation): every branch that the
public API cannot reach, checked against the pure-Python reference on the same buffers."""

from __future__ import annotations

import numpy as np
import pytest

from chunkeval import RaggedSpans, Spans, span_metrics
from chunkeval.metrics import _numba, _reference
from conftest import BACKENDS


def col(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def both(refs: RaggedSpans | tuple[np.ndarray, ...], rets: RaggedSpans | tuple[np.ndarray, ...],
         chunks: tuple[np.ndarray, ...] | None, ks: np.ndarray, k_mode: int, semantics: int) -> None:
    def cols(t: RaggedSpans | tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return (t.offsets, t.doc, t.start, t.end) if isinstance(t, RaggedSpans) else t

    args = (*cols(refs), *cols(rets))
    index = None if chunks is None else _numba.build_chunk_index(*chunks)
    got = _numba.span_metrics_numba(*args, index, ks, k_mode, semantics, None)
    want = _reference.span_metrics_reference(*args, chunks, ks, k_mode, semantics)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and np.array_equal(g, w, equal_nan=True), (g, w)


@pytest.mark.parametrize("semantics", [0, 1])
def test_reference_docs_without_chunks(semantics):
    # Docs 3 and 9 have no chunk (span_metrics would refuse them): no evidence there, no crash.
    # Six questions, so that the prefetch of a question four ahead meets a missing doc too.
    lists = [[(3, 0, 5)], [(9, 2, 4)], [(0, 0, 5), (3, 1, 2)], [(5, 0, 8)], [(3, 0, 1)], [(9, 0, 1), (0, 3, 9)]]
    refs = RaggedSpans.from_lists(lists)
    rets = RaggedSpans.from_lists([[(0, 0, 5)], [], [(3, 0, 5)], [(5, 0, 3)], [], [(0, 0, 10)]])
    sparse = (col(0, 0, 5), col(0, 5, 0), col(5, 10, 8))
    dense = (col(4, 5, 6), col(0, 0, 0), col(5, 5, 5))
    for chunks in (sparse, dense):
        both(refs, rets, chunks, col(1, 2), 0, semantics)
        both(refs, rets, chunks, col(1), 2, semantics)
    empty = (col(), col(), col())
    both(refs, rets, empty, col(1), 1, semantics)
    index = _numba.build_chunk_index(*empty)
    assert index[0].shape == (0,) and index[-1] == 0


@pytest.mark.parametrize("semantics", [0, 1])
def test_sweep_of_rows_too_wide_for_packed_keys(semantics):
    # Starts of 2**50 (only a caller that skips validation can pass them) leave the packed pairs
    # for the index sort; the numbers must not change.
    rng = np.random.default_rng(3)
    n = 150
    s = rng.integers(0, 3000, n) + 2**50
    rets = (col(0, n), rng.integers(0, 2, n), s, s + rng.integers(1, 200, n))
    refs = (col(0, 2), col(0, 1), col(2**50 + 100, 2**50), col(2**50 + 900, 2**50 + 2000))
    both(refs, rets, None, col(1, 64, 65, 149), 0, semantics)


def test_zero_questions_in_every_backend(backend):
    r = span_metrics([], [], backend=backend)
    assert r.recall.shape == (0,) and r.n_evidence_chunks.shape == (0,)


def test_threads_split_the_batch_into_blocks():
    rng = np.random.default_rng(11)
    nq = 4100
    chunks = Spans(np.repeat(np.arange(4), 50), np.tile(np.arange(0, 5000, 100), 4), np.tile(np.arange(100, 5100,
        100), 4))
    s = rng.integers(0, 4800, nq)
    refs = RaggedSpans(np.arange(nq + 1), rng.integers(0, 4, nq), s, s + rng.integers(1, 200, nq))
    pick = rng.integers(0, len(chunks), nq * 3)
    rets = RaggedSpans(np.arange(0, 3 * nq + 1, 3), chunks.doc[pick], chunks.start[pick], chunks.end[pick])
    one = span_metrics(refs, rets, chunks, k=(1, 3), backend="numba", num_threads=1)
    two = span_metrics(refs, rets, chunks, k=(1, 3), backend="numba", num_threads=2)
    for name in ("recall", "iou", "precision_omega", "n_evidence_chunks"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    sample = np.arange(0, nq, 97)
    ref = span_metrics(refs.take(sample), rets.take(sample), chunks, k=(1, 3), backend="python")
    assert np.array_equal(one.iou[sample], ref.iou)


def test_entry_point_argument_errors():
    good = (col(0, 1), col(0), col(0), col(5))
    ks = col(1)
    index = _numba.build_chunk_index(col(0, 0), col(0, 5), col(5, 9))
    with pytest.raises(ValueError, match=r"k_mode must be 0 \(list\), 1 \(all\) or 2 \(auto\), got 7"):
        _numba.span_metrics_numba(*good, *good, None, ks, 7, 0, 1)
    with pytest.raises(ValueError, match=r"semantics must be 0 \(set\) or 1 \(chroma\), got 3"):
        _numba.span_metrics_numba(*good, *good, None, ks, 0, 3, 1)
    with pytest.raises(ValueError, match=r"k='auto' needs the chunking"):
        _numba.span_metrics_numba(*good, *good, None, ks, 2, 0, 1)
    with pytest.raises(ValueError, match=r"ref_offsets and ret_offsets must have the same length"):
        _numba.span_metrics_numba(*good, col(0, 0, 1), col(0), col(0), col(5), None, ks, 0, 0, 1)
    with pytest.raises(ValueError, match=r"ks must hold at least one cut-off in list mode"):
        _numba.span_metrics_numba(*good, *good, None, col(), 0, 0, 1)
    with pytest.raises(ValueError, match=r"ref_offsets: entry 1 breaks the CSR layout over 1 rows"):
        _numba.span_metrics_numba(col(0, 0), col(0), col(0), col(5), *good, None, ks, 0, 0, 1)
    # Each consistency check of the chunk index, on a copy with one field broken.
    cases = {
        1: {1: col(0, 5)},                      # rows not 2 per chunk
        2: {5: col(1, 1)},                      # root levels not one per doc
        3: {4: col(0, 0, 2)},                   # an empty doc block
        4: {5: col(63)},                        # a root level past 62
        5: {3: col(7)},                         # dense, but ids not consecutive (one doc: fine) ...
    }
    two_docs = _numba.build_chunk_index(col(0, 1), col(0, 5), col(5, 9))
    for code, edits in cases.items():
        base = list(index if code not in (3, 5) else two_docs)
        if code == 5:
            edits = {3: col(4, 2)}              # ... ids not increasing
        for i, v in edits.items():
            base[i] = v
        with pytest.raises(ValueError, match=rf"chunk_index is inconsistent \(check {code}\)"):
            _numba.span_metrics_numba(*good, *good, tuple(base), ks, 0, 0, 1)
    gap = list(two_docs)
    gap[3] = col(0, 5)  # increasing, but flagged dense though 5 - 0 + 1 != 2 docs
    with pytest.raises(ValueError, match=r"chunk_index is inconsistent \(check 5\)"):
        _numba.span_metrics_numba(*good, *good, tuple(gap), ks, 0, 0, 1)
    out = _numba.span_metrics_numba(*good, *good, index, ks, 0, 0, None)
    assert out[0].tolist() == [[1.0]]


def test_compiled_and_numba_agree_on_direct_calls_with_missing_docs():
    if "cpp" not in BACKENDS:
        pytest.skip("the compiled core is not built (CHUNKEVAL_ALLOW_MISSING_BACKENDS=1)")
    from chunkeval import _core

    refs = RaggedSpans.from_lists([[(3, 0, 5)], [(0, 0, 5), (3, 1, 2)]])
    rets = RaggedSpans.from_lists([[(0, 0, 5)], [(3, 0, 5)]])
    chunks = (col(0, 0, 5), col(0, 5, 0), col(5, 10, 8))
    args = (refs.offsets, refs.doc, refs.start, refs.end, rets.offsets, rets.doc, rets.start, rets.end)
    a = _numba.span_metrics_numba(*args, _numba.build_chunk_index(*chunks), col(1), 0, 1, 1)
    b = _core.span_metrics(*args, _core.ChunkIndex(*chunks), col(1), 0, 1, 1)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


def test_prefetch_of_a_question_with_many_references():
    # The prefetch looks four questions ahead at no more than eight references of each.
    rng = np.random.default_rng(5)
    nq, m = 7, 12
    s = rng.integers(0, 900, nq * m)
    refs = (np.arange(0, nq * m + 1, m), rng.integers(0, 3, nq * m), s, s + rng.integers(1, 100, nq * m))
    rets = (np.arange(0, 3 * nq + 1, 3), rng.integers(0, 3, 3 * nq), np.full(3 * nq, 100), np.full(3 * nq, 400))
    chunks = (np.repeat(np.arange(3), 10), np.tile(np.arange(0, 1000, 100), 3), np.tile(np.arange(100, 1100, 100), 3))
    for semantics in (0, 1):
        both(refs, rets, chunks, col(1, 3), 0, semantics)
