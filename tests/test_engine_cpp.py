"""The compiled backend (``chunkeval._core``) on its own: bounds, exactness at the bounds, long
lists in O(n log n), its own copy of the chunking, and one version number.

These call ``_core`` directly with raw int64 columns, so they check what the C++ engine itself
guarantees, whatever the Python layer checks before it (docs/engine.md, *Bounds*). Expected values
are integer ratios worked out in the comments; comparisons are exact.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import numpy.typing as npt
import pytest

import chunkeval
from chunkeval import RaggedSpans, Spans, span_metrics

_core = pytest.importorskip("chunkeval._core")

Int64Array = npt.NDArray[np.int64]
BOUND = 2**32
MAX_ROWS = 2**20


def _i64(values: list[int] | range | Int64Array) -> Int64Array:
    return np.ascontiguousarray(values, dtype=np.int64)


def _score(
    refs: list[list[tuple[int, int, int]]],
    rets: list[list[tuple[int, int, int]]],
    *,
    chunks: object = None,
    ks: list[int] | None = None,
    k_mode: int = 1,
    semantics: int = 0,
    num_threads: int = 1,
) -> tuple[npt.NDArray[np.float64], ...]:
    """Calls ``_core.span_metrics`` on lists of (doc, start, end) per question."""

    return tuple(
        _core.span_metrics(*_columns(refs), *_columns(rets), chunks, _i64(ks or []), k_mode, semantics, num_threads)
    )


def _columns(lists: list[list[tuple[int, int, int]]]) -> tuple[Int64Array, Int64Array, Int64Array, Int64Array]:
    """CSR offsets and the doc, start and end columns of lists of (doc, start, end) rows."""
    offsets = _i64([0, *np.cumsum([len(rows) for rows in lists], dtype=np.int64).tolist()])
    flat = [row for rows in lists for row in rows]
    return (
        offsets,
        _i64([r[0] for r in flat]),
        _i64([r[1] for r in flat]),
        _i64([r[2] for r in flat]),
    )


def test_version_is_one_number() -> None:
    # CMakeLists.txt compiles pyproject.toml's version into the extension; the package reports the
    # installed distribution's, and both are the same string.
    assert _core.__version__ == importlib.metadata.version("chunkeval")
    assert chunkeval.__version__ == _core.__version__


@pytest.mark.parametrize("semantics", [0, 1])
def test_wrapping_coordinates_are_refused(semantics: int) -> None:
    # Regression: three references [0, 2**63 - 1) and two of them retrieved summed past 2**64 in
    # uint64 and gave recall 2.0. Now the first row past the bound is named.
    m = 2**63 - 1
    with pytest.raises(
        ValueError, match=r"references row 0: end 9223372036854775807 is past the bound 2\*\*32 \(4294967296\)"
    ):
        _score([[(0, 0, m), (1, 0, m), (2, 0, m)]], [[(0, 0, m), (1, 0, m)]], semantics=semantics)


def test_rounding_coordinates_are_refused() -> None:
    # Regression: [0, 2**53 + 1) against [1, 2**53 + 1) rounded 2**53 / (2**53 + 1) to 1.0.
    a = 2**53 + 1
    with pytest.raises(ValueError, match=r"references row 0: end 9007199254740993 is past the bound 2\*\*32"):
        _score([[(0, 0, a)]], [[(0, 1, a)]])


def test_every_array_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"retrieved row 1: end 4294967297 is past the bound"):
        _score([[(0, 0, 10)]], [[(0, 0, 10), (0, 5, BOUND + 1)]], ks=[1], k_mode=0)  # past the deepest cut-off
    with pytest.raises(ValueError, match=r"chunks row 1: end 4294967303 is past the bound"):
        _core.ChunkIndex(_i64([0, 3]), _i64([0, BOUND]), _i64([10, BOUND + 7]))
    with pytest.raises(
        ValueError, match=r"references row 0: \[start, end\) = \[4294967296, 4294967296\) is empty or reversed"
    ):
        _score([[(0, BOUND, BOUND)]], [[]])


@pytest.mark.parametrize("semantics", [0, 1])
def test_exact_at_the_position_bound(semantics: int) -> None:
    # Three references [0, 2**32) in docs 0, 1, 2, two retrieved: I = 2 * 2**32, |E| = 3 * 2**32:
    # recall exactly 2/3, precision 1, iou 2/3 (chroma: ret_sum 2 * 2**32, unused 2**32: the same).
    m = BOUND
    recall, precision, iou, *_ = _score(
        [[(0, 0, m), (1, 0, m), (2, 0, m)]], [[(0, 0, m), (1, 0, m)]], semantics=semantics
    )
    assert recall[0, 0] == 2 / 3
    assert precision[0, 0] == 1.0
    assert iou[0, 0] == 2 / 3


def test_public_api_reproducer_with_cpp_backend() -> None:
    # The reproducer through chunkeval.span_metrics(backend="cpp"): refused (by whichever
    # layer sees it first), never 2.0; at the bound itself the answer is exactly 2/3.
    m = 2**63 - 1
    with pytest.raises(ValueError, match=r"row 0: end 9223372036854775807 is past the bound 2\*\*32"):
        refs = RaggedSpans.from_lists([[(0, 0, m), (1, 0, m), (2, 0, m)]])
        chunks = Spans([0, 1, 2], [0] * 3, [m] * 3)
        span_metrics(refs, RaggedSpans.from_lists([[(0, 0, m), (1, 0, m)]]), chunks, backend="cpp")
    b = BOUND
    refs = RaggedSpans.from_lists([[(0, 0, b), (1, 0, b), (2, 0, b)]])
    result = span_metrics(
        refs, RaggedSpans.from_lists([[(0, 0, b), (1, 0, b)]]), Spans([0, 1, 2], [0] * 3, [b] * 3), backend="cpp"
    )
    assert result.recall.tolist() == [2 / 3]
    assert result.coverage.tolist() == [1.0]


def test_rows_per_question_are_bounded() -> None:
    # 2**20 + 1 rows: one more than a question may score; k = 2**20 scores them all but the last.
    n = MAX_ROWS + 1
    ref_offsets, ref_doc, ref_start, ref_end = _i64([0, 1]), _i64([0]), _i64([0]), _i64([n])
    ret_offsets = _i64([0, n])
    ret_doc = np.zeros(n, dtype=np.int64)
    ret_start = np.arange(n, dtype=np.int64)
    ret_end = ret_start + 1
    args = (ref_offsets, ref_doc, ref_start, ref_end, ret_offsets, ret_doc, ret_start, ret_end, None)
    too_many = r"retrieved: question 0 scores 1048577 rows, more than 2\*\*20 \(1048576\) per question.*smaller k"
    with pytest.raises(ValueError, match=too_many):
        _core.span_metrics(*args, _i64([]), 1, 0, 1)
    # k = 2**20: I = 2**20 of |E| = 2**20 + 1; R = [0, 2**20): recall 2**20 / (2**20 + 1), precision 1.
    recall, precision, *_ = _core.span_metrics(*args, _i64([MAX_ROWS]), 0, 0, 1)
    assert recall[0, 0] == MAX_ROWS / n
    assert precision[0, 0] == 1.0
    many_refs = (_i64([0, n]), ret_doc, ret_start, ret_end, _i64([0, 1]), _i64([0]), _i64([0]), _i64([1]), None)
    with pytest.raises(ValueError, match=r"references: question 0 has 1048577 rows, more than 2\*\*20 \(1048576\)"):
        _core.span_metrics(*many_refs, _i64([1]), 0, 0, 1)


@pytest.mark.parametrize("semantics", [0, 1])
def test_one_cluster_ranked_right_to_left(semantics: int) -> None:
    # Regression for the quadratic cluster merge (over a minute at 2**20 rows): rank r is
    # [N - 1 - r, N + 1 - r), every row overlapping the next, reference [0, N). First k rows:
    # union [N - k, N + 1), |R| = k + 1, I = k, ret_sum = 2k.
    # set: recall k/N, precision k/(k + 1), iou k/(N + 1). chroma: k/N, 1/2, k/(N + k).
    n = MAX_ROWS
    ranks = np.arange(n, dtype=np.int64)
    ks = [1, 1000, n]
    recall, precision, iou, *_ = _core.span_metrics(
        _i64([0, 1]), _i64([0]), _i64([0]), _i64([n]),
        _i64([0, n]), np.zeros(n, dtype=np.int64), n - 1 - ranks, n + 1 - ranks,
        None, _i64(ks), 0, semantics, 1,
    )  # fmt: skip
    for column, k in enumerate(ks):
        assert recall[0, column] == k / n
        assert precision[0, column] == (k / (k + 1) if semantics == 0 else 0.5)
        assert iou[0, column] == (k / (n + 1) if semantics == 0 else k / (n + k))


def _min_rank_oracle(
    refs: list[tuple[int, int, int]], rets: list[tuple[int, int, int]], ks: list[int], length: int, semantics: int
) -> tuple[list[float], list[float], list[float]]:
    """Metrics from per-position arrays: the smallest rank covering each position, reference cover counts."""
    n_docs = 1 + max(row[0] for row in refs + rets)
    mult = np.zeros((n_docs, length), dtype=np.int64)
    for doc, start, end in refs:
        mult[doc, start:end] += 1
    min_rank = np.full((n_docs, length), np.iinfo(np.int64).max, dtype=np.int64)
    for rank, (doc, start, end) in enumerate(rets):
        np.minimum(min_rank[doc, start:end], rank, out=min_rank[doc, start:end])
    ref_sum = sum(end - start for _, start, end in refs)
    e_len = int((mult > 0).sum())
    recall, precision, iou = [], [], []
    for k in ks:
        covered = min_rank < k
        inter = int((covered & (mult > 0)).sum())
        weighted = int(mult[covered].sum())
        r_len = int(covered.sum())
        ret_sum = sum(end - start for _, start, end in rets[:k])
        if semantics == 0:
            recall.append(inter / e_len)
            precision.append(inter / r_len if r_len else 0.0)
            iou.append(inter / (e_len + r_len - inter))
        else:
            recall.append(inter / ref_sum)
            precision.append(inter / ret_sum if ret_sum else 0.0)
            iou.append(inter / (ret_sum + ref_sum - weighted))
    return recall, precision, iou


@pytest.mark.parametrize("seed", range(6))
def test_long_lists_against_an_independent_count(seed: int) -> None:
    # 70 to 3000 retrieved rows over short documents: clusters of every size (the rank-order merge
    # below 17 rows, the sweep above), duplicates, nesting, touching rows, 30+ references.
    rng = np.random.default_rng(seed)
    length = int(rng.integers(40, 300))

    def rows(count: int, max_len: int) -> list[tuple[int, int, int]]:
        out = []
        for _ in range(count):
            width = int(rng.integers(1, max_len + 1))
            start = int(rng.integers(0, length - width + 1))
            out.append((int(rng.integers(0, 3)), start, start + width))
        return out

    refs = rows(int(rng.integers(30, 60)), 25)
    rets = rows(int(rng.integers(70, 3000)), length if seed % 2 else 12)
    ks = [1, 16, 17, 70, 500, 3000]
    for semantics in (0, 1):
        expected = _min_rank_oracle(refs, rets, ks, length, semantics)
        recall, precision, iou, *_ = _score([refs], [rets], ks=ks, k_mode=0, semantics=semantics)
        assert recall[0].tolist() == expected[0]
        assert precision[0].tolist() == expected[1]
        assert iou[0].tolist() == expected[2]


@pytest.mark.parametrize("doc_base", [0, 2**26 - 3, 2**30 - 2, 2**40])
@pytest.mark.parametrize("seed", range(8))
def test_tiled_lists_with_repeats(seed: int, doc_base: int) -> None:
    # Fixed windows retrieved with repeats: no two distinct rows overlap, the case the branch-free
    # pass (lone_rows) scores; with seed % 4 == 3 one row straddles two windows, which sends the
    # question to the cluster merge. Doc ids from 2**26 on (rows) or 2**30 (references) take the
    # general paths. Every path gives the oracle's numbers, and the rank metrics the reference's.
    rng = np.random.default_rng(seed)
    length = 240
    window = int(rng.integers(3, 25))
    n_windows = -(-length // window)

    def tile(doc: int, w: int) -> tuple[int, int, int]:
        return doc, w * window, min(w * window + window, length)

    def span(max_len: int) -> tuple[int, int, int]:
        width = int(rng.integers(1, max_len + 1))
        start = int(rng.integers(0, length - width + 1))
        return int(rng.integers(0, 3)), start, start + width

    questions = []
    for _ in range(12):
        refs = [span(40) for _ in range(int(rng.integers(1, 10)))]
        rets = [tile(int(rng.integers(0, 3)), int(rng.integers(0, n_windows))) for _ in range(int(rng.integers(0, 40)))]
        rets += rets[: int(rng.integers(0, 4))]  # repeats after their first rank
        if seed % 4 == 3 and rets:
            doc, start, end = rets[0]
            rets.insert(len(rets) // 2, (doc, start + (end - start) // 2, min(end + window // 2 + 1, length)))
        questions.append((refs, rets))
    shifted = [
        ([(doc_base + d, s, e) for d, s, e in refs], [(doc_base + d, s, e) for d, s, e in rets])
        for refs, rets in questions
    ]
    tiles = [tile(doc_base + d, w) for d in range(3) for w in range(n_windows)]
    chunks = (_i64([t[0] for t in tiles]), _i64([t[1] for t in tiles]), _i64([t[2] for t in tiles]))
    ks = [1, 3, 10, 17, 50]
    for semantics in (0, 1):
        recall, precision, iou, *_, rank = _core.span_metrics(
            *_columns([q[0] for q in shifted]), *_columns([q[1] for q in shifted]),
            _core.ChunkIndex(*chunks), _i64(ks), 0, semantics, 1, True,
        )  # fmt: skip
        for q, (refs, rets) in enumerate(questions):
            if not rets:
                assert recall[q].tolist() == [0.0] * len(ks)
                continue
            expected = _min_rank_oracle(refs, rets, ks, length, semantics)
            assert recall[q].tolist() == expected[0]
            assert precision[q].tolist() == expected[1]
            assert iou[q].tolist() == expected[2]
        reference = chunkeval.metrics._reference.span_metrics_reference(
            *_columns([q[0] for q in shifted]), *_columns([q[1] for q in shifted]),
            chunks, _i64(ks), 0, semantics, 1, True,
        )  # fmt: skip
        assert rank is not None and reference[6] is not None
        assert rank.tolist() == reference[6].tolist()


def test_chunk_index_owns_its_rows() -> None:
    # The index copies its input: editing the arrays afterwards changes nothing.
    # Chunks [0,10) [10,20) [20,30); reference [5,15): 2 evidence chunks, C* = [0,20),
    # precision_omega 10/(10 + 20 - 10) = 1/2.
    doc, start, end = _i64([0, 0, 0]), _i64([0, 10, 20]), _i64([10, 20, 30])
    index = _core.ChunkIndex(doc, start, end)
    end[:] = [30, 30, 30]
    start[:] = [0, 0, 0]
    *_, omega, coverage, n_evidence, rank = _score([[(0, 5, 15)]], [[(0, 0, 10)]], chunks=index)
    assert rank is None  # the rank metrics only with ranked=True
    assert n_evidence.tolist() == [2]
    assert omega.tolist() == [0.5]
    assert coverage.tolist() == [1.0]


def test_changed_offsets_are_caught_not_followed() -> None:
    # Offsets are re-checked before every use: an offset past the rows is a ValueError naming it.
    with pytest.raises(ValueError, match=r"ret_offsets\[-1\] is 5 but there are 1 rows"):
        _core.span_metrics(
            _i64([0, 1]), _i64([0]), _i64([0]), _i64([5]),
            _i64([0, 5]), _i64([0]), _i64([0]), _i64([5]),
            None, _i64([]), 1, 0, 1,
        )  # fmt: skip


@pytest.mark.parametrize("num_threads", [1, 2, 4])
def test_first_bad_question_whatever_the_threads(num_threads: int) -> None:
    # 3000 questions (enough to be split); questions 2000 and 900 score 2**20 + 1 rows in auto mode
    # (known only while scoring: 2**20 + 1 unit chunks under one reference). The first is named.
    n = MAX_ROWS + 1
    chunks = _core.ChunkIndex(
        np.ones(n, dtype=np.int64), np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64)
    )
    n_q = 3000
    heavy = {900, 2000}
    ref_doc = np.array([1 if q in heavy else 0 for q in range(n_q)], dtype=np.int64)
    ref_end = np.array([n if q in heavy else 5 for q in range(n_q)], dtype=np.int64)
    counts = np.array([n if q in heavy else 1 for q in range(n_q)], dtype=np.int64)
    ret_offsets = _i64([0, *np.cumsum(counts).tolist()])
    ret_doc = np.concatenate(
        [np.ones(n, dtype=np.int64) if q in heavy else np.zeros(1, dtype=np.int64) for q in range(n_q)]
    )
    ret_start = np.concatenate(
        [np.arange(n, dtype=np.int64) if q in heavy else np.zeros(1, dtype=np.int64) for q in range(n_q)]
    )
    ret_end = ret_start + 1
    with pytest.raises(ValueError, match=r"^retrieved: question 900 scores 1048577 rows"):
        _core.span_metrics(
            _i64(range(n_q + 1)), ref_doc, np.zeros(n_q, dtype=np.int64), ref_end,
            ret_offsets, ret_doc, ret_start, ret_end,
            chunks, _i64([]), 2, 0, num_threads,
        )  # fmt: skip
