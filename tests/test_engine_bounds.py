"""Issue 8 regressions: exact numbers at the bound, a clear error past it, linear time at any length.

Positions satisfy ``0 <= start < end <= 2**32`` and a question holds at most 2**20 references and
scores at most 2**20 retrieved rows; docs/metrics.md (*Bounds*) proves every count a metric
divides is then <= 2**53. Expected values here are exact integer ratios, computed with Python's
correctly rounded ``int / int``.
"""

from __future__ import annotations

import numpy as np
import pytest

from chunkeval import RaggedSpans, Spans, span_metrics
from chunkeval.metrics import _numba, _reference
from conftest import BACKENDS

B = 2**32
M = 2**63 - 1


def test_issue_example_past_the_bound_is_an_error_not_a_wrong_ratio():
    # Was: recall 2.0 from C++ (uint64 sums wrapped). Now construction refuses the row.
    with pytest.raises(ValueError, match=r"references row 0: end 9223372036854775807 is past the bound 2\*\*32 "
                                         r"\(4294967296\)"):
        RaggedSpans.from_lists([[(0, 0, M), (1, 0, M), (2, 0, M)]], name="references")
    # Was: recall 1.0 where the exact ratio is 1 - 1/(2**53 + 1), which rounds to 1.0.
    A = 2**53 + 1
    with pytest.raises(ValueError, match=r"retrieved row 0: end 9007199254740993 is past the bound"):
        span_metrics(RaggedSpans.from_lists([[(0, 0, 5)]]), [[(0, 1, A)]])
    with pytest.raises(ValueError, match=r"chunks row 1: end 4294967297 is past the bound"):
        Spans([0, 0], [0, 5], [5, B + 1], name="chunks")


def test_the_issue_example_at_the_bound_is_exact(backend):
    refs = RaggedSpans.from_lists([[(0, 0, B), (1, 0, B), (2, 0, B)]])
    rets = RaggedSpans.from_lists([[(0, 0, B), (1, 0, B)]])
    r = span_metrics(refs, rets, Spans([0, 1, 2], [0] * 3, [B] * 3), backend=backend)
    assert r.recall.tolist() == [2 / 3]
    assert r.precision.tolist() == [1.0]
    assert r.iou.tolist() == [2 / 3]
    assert r.precision_omega.tolist() == [1.0]
    # One position short of the bound, the ratio is not 1: (2**32 - 1) / 2**32 is exact in float64.
    near = span_metrics(RaggedSpans.from_lists([[(0, 0, B)]]), RaggedSpans.from_lists([[(0, 1, B)]]), backend=backend)
    assert near.recall.tolist() == [(B - 1) / B]


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_evidence_chunk_ending_at_the_bound(backend, semantics):
    # Was: Numba's chroma query computed end + 1 and overflowed at 2**63 - 1, finding 0 chunks.
    span = [(0, B - 10, B)]
    r = span_metrics([span], [span], span, semantics=semantics, backend=backend)
    assert r.n_evidence_chunks.tolist() == [1]
    assert (r.recall.tolist(), r.iou.tolist(), r.precision_omega.tolist()) == ([1.0], [1.0], [1.0])


@pytest.mark.parametrize("semantics", [0, 1])
def test_numba_kernel_has_no_end_plus_one_overflow_even_unvalidated(semantics):
    # The kernel itself, past the Python validation: the touching rule is written without end + 1.
    def col(*v: int) -> np.ndarray:
        return np.array(v, dtype=np.int64)

    for index in (_numba.build_chunk_index(col(0), col(M - 10), col(M)),
                  _numba.build_chunk_index(col(0, 0, 0), col(M - 10, M - 20, M - 15), col(M, M - 1, M - 12))):
        out = _numba.span_metrics_numba(col(0, 1), col(0), col(M - 10), col(M), col(0, 1), col(0), col(M - 10), col(M),
                                        index, col(1), 1, semantics, 1)
        assert out[5][0] >= 1


def _many(n: int, doc: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.full(n, doc, dtype=np.int64), np.full(n, start, dtype=np.int64), np.full(n, end, dtype=np.int64)


def _bound_case(n: int) -> tuple[RaggedSpans, RaggedSpans, Spans]:
    """n references (0, 0, 2**32); retrieved (0, 0, 1) then n - 1 rows (1, 0, 2**32)."""
    refs = RaggedSpans([0, n], *_many(n, 0, 0, B))
    d, s, e = _many(n, 1, 0, B)
    d[0], e[0] = 0, 1
    return refs, RaggedSpans([0, n], d, s, e), Spans([0, 1], [0, 0], [B, B])


def _check_bound_case(n: int, backend: str) -> None:
    refs, rets, chunks = _bound_case(n)
    # Set semantics count each position once: |E| = 2**32, |R| = 1 + 2**32, I = 1.
    s = span_metrics(refs, rets, chunks, backend=backend)
    assert s.recall.tolist() == [1 / B]
    assert s.precision.tolist() == [1 / (B + 1)]
    assert s.iou.tolist() == [1 / (2 * B)]
    c = span_metrics(refs, rets, chunks, semantics="chroma", backend=backend)
    ret_sum = 1 + (n - 1) * B
    unused = n * (B - 1)
    # Plain sums: n * 2**32 in recall's denominator, Σ|retrieved| + unused in IoU's.
    assert c.recall.tolist() == [1 / (n * B)]
    assert c.precision.tolist() == [1 / ret_sum]
    assert c.iou.tolist() == [1 / (ret_sum + unused)]
    assert c.coverage.tolist() == [1.0] and c.n_evidence_chunks.tolist() == [1]


def test_large_plain_sums_are_exact(backend):
    _check_bound_case(2**12, backend)


@pytest.mark.slow
def test_plain_sums_at_the_row_bound_are_exact(backend):
    # n = 2**20: the IoU denominator 2**52 + 2**52 - 2**20 is close to 2**53 and still exact.
    _check_bound_case(2**20, backend)


def test_rows_per_question_are_bounded_by_the_scored_depth():
    n = 2**20 + 1
    one = RaggedSpans([0, 1], [0], [0], [1])
    many = RaggedSpans([0, n], *_many(n, 0, 0, 1))
    with pytest.raises(ValueError, match=r"references: question 0 has 1048577 rows, more than 2\*\*20 \(1048576\)"):
        span_metrics(many, one)
    for backend in BACKENDS:
        with pytest.raises(ValueError, match=r"retrieved: question 0 scores 1048577 rows, more than 2\*\*20 .*pass "
                                             r"a smaller k"):
            span_metrics(one, many, backend=backend)
        with pytest.raises(ValueError, match=r"retrieved: question 0 scores 1048577 rows"):
            span_metrics(one, many, k=(1, n), backend=backend)
    # Rows past the deepest cut-off are validated but not scored: the same as the first rows alone.
    r = span_metrics(one, many, k=(1, 2**20))
    assert r.recall.tolist() == [[1.0, 1.0]] and r.precision.tolist() == [[1.0, 1.0]]


@pytest.mark.slow
def test_auto_depth_past_the_row_bound_is_an_error(backend):
    n = 2**20 + 1
    chunks = Spans(np.zeros(n, np.int64), np.arange(n), np.arange(1, n + 1))
    rets = RaggedSpans([0, n], chunks.doc, chunks.start, chunks.end)
    # The depth is n_evidence_chunks, known only once scored: the compiled core checks it itself.
    with pytest.raises(ValueError, match=r"retrieved: question 0 scores 1048577 rows, more than 2\*\*20 \(1048576\) "
                                         r"per question, the bound under which every count stays exact; "):
        span_metrics(RaggedSpans([0, 1], [0], [0], [n]), rets, chunks, k="auto", backend=backend)


def _one_cluster_right_to_left(n: int) -> RaggedSpans:
    starts = np.arange(n, 0, -1, dtype=np.int64) * 2
    return RaggedSpans([0, n], np.zeros(n, np.int64), starts, starts + 3)


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_long_ranked_lists_match_the_reference(semantics):
    # Long lists leave the packed 64-row pass: one cluster ranked right to left (every insert at
    # the front: quadratic for a shifting merge), random rows, and rows of two docs interleaved.
    rng = np.random.default_rng(8)
    n = 5000
    s = rng.integers(0, 20000, n)
    lists = [
        _one_cluster_right_to_left(n),
        RaggedSpans([0, n], rng.integers(0, 2, n), s, s + rng.integers(1, 40, n)),
        RaggedSpans([0, n], np.full(n, 2**40), s, s + 1),
    ]
    refs = RaggedSpans([0, 3], [0, 0, 2**40], [100, 5000, 0], [3000, 5100, 9000])  # one question
    chunks = Spans([0, 0, 1, 2**40], [0, 4000, 0, 0], [4000, 20100, 20100, 20100])
    ks = (1, 64, 65, 1000, n)
    for rets in lists:
        expected = span_metrics(refs, rets, chunks, k=ks, semantics=semantics, backend="python")
        assert 0 < expected.recall[0, -1] <= 1
        for backend in [b for b in BACKENDS if b != "python"]:
            got = span_metrics(refs, rets, chunks, k=ks, semantics=semantics, backend=backend)
            for name in ("recall", "precision", "iou"):
                assert np.array_equal(getattr(got, name), getattr(expected, name)), (backend, name)


def test_python_reference_rejects_bad_buffers_without_zero_division():
    def col(*v: int) -> np.ndarray:
        return np.array(v, dtype=np.int64)

    ks = col(1)
    with pytest.raises(ValueError, match=r"ref: row 0 is not a span"):
        _reference.span_metrics_reference(col(0, 1), col(0), col(5), col(5), col(0, 0), col(), col(), col(), None,
                                          ks, 0, 0)
    with pytest.raises(ValueError, match=r"ret_offsets are not CSR offsets over 1 rows"):
        _reference.span_metrics_reference(col(0, 1), col(0), col(0), col(5), col(0, 3), col(0), col(0), col(5),
                                          None, ks, 0, 0)
    with pytest.raises(ValueError, match=r"references: question 0 has no reference span"):
        _reference.span_metrics_reference(col(0, 0), col(), col(), col(), col(0, 0), col(), col(), col(), None, ks,
                                          0, 1)
