"""The Numba entry point called directly (past ``span_metrics``'s validation): every branch that the
public API cannot reach, checked against the pure-Python reference on the same buffers; and the
rank metrics (``ranked=True``, docs/engine.md §4) by hand and bit for bit against the reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkeval import RaggedSpans, Spans, span_metrics
from chunkeval.metrics import _numba, _reference
from conftest import BACKENDS


def col(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def same_bits(got: tuple[np.ndarray | None, ...], want: tuple[np.ndarray | None, ...]) -> None:
    """Every output identical: same shape, dtype and bits (so NaN == NaN, and 0.0 != -0.0)."""
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None:
            assert g is None, i
            continue
        assert g is not None and g.shape == w.shape and g.dtype == w.dtype, (i, g, w)
        assert np.array_equal(g.view(np.uint64 if g.dtype == np.float64 else g.dtype), w.view(
            np.uint64 if w.dtype == np.float64 else w.dtype)), (i, g, w)


def both(refs: RaggedSpans | tuple[np.ndarray, ...], rets: RaggedSpans | tuple[np.ndarray, ...],
         chunks: tuple[np.ndarray, ...] | None, ks: np.ndarray, k_mode: int, semantics: int,
         ranked: bool = False, num_threads: int | None = None) -> None:
    def cols(t: RaggedSpans | tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return (t.offsets, t.doc, t.start, t.end) if isinstance(t, RaggedSpans) else t

    args = (*cols(refs), *cols(rets))
    index = None if chunks is None else _numba.build_chunk_index(*chunks)
    got = _numba.span_metrics_numba(*args, index, ks, k_mode, semantics, num_threads, ranked)
    want = _reference.span_metrics_reference(*args, chunks, ks, k_mode, semantics, 1, ranked)
    same_bits(got, want)


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
    with pytest.raises(ValueError, match=r"ranked=True needs the chunking: rank metrics count the evidence chunks"):
        _numba.span_metrics_numba(*good, *good, None, ks, 0, 0, 1, True)
    out = _numba.span_metrics_numba(*good, *good, index, ks, 0, 0, None)
    assert len(out) == 7 and out[0].tolist() == [[1.0]] and out[6] is None
    ranked = _numba.span_metrics_numba(*good, *good, index, ks, 0, 0, None, True)[6]
    assert ranked is not None and ranked.shape == (5, 1, 1) and ranked.tolist() == [[[1.0]]] * 5


def test_compiled_and_numba_agree_on_direct_calls_with_missing_docs():
    if "cpp" not in BACKENDS:
        pytest.skip("the compiled core is not built (CHUNKEVAL_ALLOW_MISSING_BACKENDS=1)")
    from chunkeval import _core

    refs = RaggedSpans.from_lists([[(3, 0, 5)], [(0, 0, 5), (3, 1, 2)]])
    rets = RaggedSpans.from_lists([[(0, 0, 5)], [(3, 0, 5)]])
    chunks = (col(0, 0, 5), col(0, 5, 0), col(5, 10, 8))
    args = (refs.offsets, refs.doc, refs.start, refs.end, rets.offsets, rets.doc, rets.start, rets.end)
    for ranked in (False, True):
        a = _numba.span_metrics_numba(*args, _numba.build_chunk_index(*chunks), col(1, 2), 0, 1, 1, ranked)
        b = _core.span_metrics(*args, _core.ChunkIndex(*chunks), col(1, 2), 0, 1, 1, ranked)
        same_bits(a, b)


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


# --------------------------------------------------------------------------------------------
# Rank metrics (ranked=True)
# --------------------------------------------------------------------------------------------

TENS = Spans(np.zeros(10, dtype=np.int64), np.arange(0, 100, 10), np.arange(10, 110, 10))  # [0,10) [10,20) ...


def test_rank_metrics_worked_example():
    # Reference [15, 25): chunks [10,20) and [20,30) overlap it by 5 each, so n_rel = 2 and the
    # ideal gains are (5, 5). Ranks: [20,30) (gain 5), its repeat takes no rank, [50,60) (gain 0),
    # [10,20) (gain 5) at rank 3.
    refs = RaggedSpans.from_lists([[(0, 15, 25)]])
    rets = RaggedSpans.from_lists([[(0, 20, 30), (0, 20, 30), (0, 50, 60), (0, 10, 20)]])
    r = span_metrics(refs, rets, TENS, k=(1, 2, 3), backend="numba", ranked=True)
    w2, w3 = 1.0 / math.log2(3), 1.0 / math.log2(4)  # the discounts W(i) = 1 / log2(i + 1); W(1) = 1
    idcg2 = 1.0 + w2
    assert r.hit is not None and r.hit.tolist() == [[1.0, 1.0, 1.0]]
    assert r.mrr is not None and r.mrr.tolist() == [[1.0, 1.0, 1.0]]
    assert r.map is not None and r.map.tolist() == [[0.5, 0.5, (1.0 + 2 / 3) / 2]]
    assert r.ndcg is not None and r.ndcg.tolist() == [[1.0, 1.0 / idcg2, (1.0 + w3) / idcg2]]
    graded = [1.0, 5.0 / (5.0 + 5.0 * w2), (5.0 + 5.0 * w3) / (5.0 + 5.0 * w2)]
    assert r.ndcg_graded is not None and r.ndcg_graded.tolist() == [graded]
    assert graded == pytest.approx(r.ndcg.tolist()[0], abs=1e-15)  # both gains are 5
    # The span metrics still score the first k rows, repeat included.
    assert r.recall.tolist() == [[0.5, 0.5, 0.5]]


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_rank_metrics_ignore_merely_touching_chunks(semantics):
    # Reference [10, 20) exactly: under chroma [0,10) and [20,30) touch it and are evidence chunks
    # (n_evidence_chunks 3, the auto cut-off), but with gain 0 they are neither relevant nor ideal.
    refs = RaggedSpans.from_lists([[(0, 10, 20)]])
    rets = RaggedSpans.from_lists([[(0, 0, 10), (0, 10, 20), (0, 20, 30)]])
    r = span_metrics(refs, rets, TENS, k=(1, 2), semantics=semantics, backend="numba", ranked=True)
    assert r.n_evidence_chunks.tolist() == [3 if semantics == "chroma" else 1]
    assert r.hit is not None and r.hit.tolist() == [[0.0, 1.0]]
    assert r.mrr is not None and r.mrr.tolist() == [[0.0, 0.5]]
    assert r.map is not None and r.map.tolist() == [[0.0, 0.5]]
    assert r.ndcg is not None and r.ndcg.tolist() == [[0.0, 1.0 / math.log2(3)]]
    assert r.ndcg_graded is not None and r.ndcg_graded.tolist() == [[0.0, (10.0 * (1.0 / math.log2(3))) / 10.0]]
    auto = span_metrics(refs, rets, TENS, k="auto", semantics=semantics, backend="numba", ranked=True)
    assert auto.ndcg is not None and auto.ndcg.tolist() == [1.0 / math.log2(3) if semantics == "chroma" else 0.0]


def test_rank_discounts_match_python_past_the_table():
    # Ranks below the table read it; deeper ranks call log2 in the kernel: both must be the
    # reference's W(i) = 1.0 / math.log2(i + 1), and the binary ideal DCG its sums in rank order.
    table = _numba._DISCOUNTS
    for i in [1, 2, 3, 1022, 1023, 1024, 1025, 4097, 2**20 - 1, 2**20, 2**31 + 5]:
        assert _numba._discount(table, i) == 1.0 / math.log2(i + 1)
    total = 0.0
    for depth in range(1, 3000):
        total += 1.0 / math.log2(depth + 1)
        if depth in (1, 2, 1023, 1024, 1025, 2999):
            assert _numba._binary_idcg(table, depth) == total, depth
    assert _numba._binary_idcg(table, 0) == 0.0


def test_rank_metrics_of_deep_lists_and_many_ideal_chunks():
    # 1-character chunks: a reference of 1500 characters has 1500 ideal chunks (the ideal buffer
    # grows past its first 64), and an 'all' list of 1300 distinct chunks (ranks past the log2
    # table), in reverse, with repeats woven in.
    n = 1600
    chunks = (np.zeros(n, dtype=np.int64), np.arange(n), np.arange(1, n + 1))
    refs = (col(0, 1, 2), col(0, 0), col(50, 0), col(1550, 40))
    order = np.arange(1400, 100, -1)
    picks = np.concatenate([order, order[::7]])
    picks = np.concatenate([order, order[::7]])[np.random.default_rng(1).permutation(len(picks))]
    picks = np.concatenate([[5], picks])
    rets = (col(0, len(picks), len(picks) + 3), np.zeros(len(picks) + 3, dtype=np.int64),
            np.concatenate([picks, [0, 0, 3]]), np.concatenate([picks + 1, [1, 1, 4]]))
    for semantics in (0, 1):
        both(refs, rets, chunks, col(1, 10, 1000, 1200, 5000), 0, semantics, ranked=True)
        both(refs, rets, chunks, col(1), 1, semantics, ranked=True)
        both(refs, rets, chunks, col(1), 2, semantics, ranked=True)


def test_rank_dedup_reads_far_past_the_cut_off():
    # 10 ranks hide among 300 rows that mostly repeat the first three: the sorted pass doubles its
    # prefix (64, 128, 256, 300) until it holds 10 distinct rows; nested chunks take the tree path.
    rng = np.random.default_rng(7)
    base = np.concatenate([rng.integers(0, 3, 290), np.arange(3, 13)])
    rng.shuffle(base[50:])
    starts = base * 10
    rets = (col(0, 300), np.zeros(300, dtype=np.int64), starts, starts + 10 + (base % 2) * 5)
    refs = (col(0, 2), col(0, 0), col(5, 60), col(45, 95))
    nested = (np.zeros(40, dtype=np.int64), np.concatenate([np.arange(0, 200, 10), 50 - np.arange(20)]),
              np.concatenate([np.arange(10, 210, 10), 51 + np.arange(20)]))
    for chunks in ((TENS.doc, TENS.start, TENS.end), nested):
        for semantics in (0, 1):
            both(refs, rets, chunks, col(1, 3, 10, 11), 0, semantics, ranked=True)
            both(refs, rets, chunks, col(1), 1, semantics, ranked=True)
            both(refs, rets, chunks, col(1), 2, semantics, ranked=True)


def test_rank_metrics_with_threads_match_one_thread():
    rng = np.random.default_rng(13)
    nq = 4100
    chunks = Spans(np.repeat(np.arange(4), 50), np.tile(np.arange(0, 5000, 100), 4),
                   np.tile(np.arange(100, 5100, 100), 4))
    s = rng.integers(0, 4800, nq)
    refs = RaggedSpans(np.arange(nq + 1), rng.integers(0, 4, nq), s, s + rng.integers(1, 300, nq))
    pick = rng.integers(0, len(chunks), nq * 6)
    pick[1::3] = pick[::3][: len(pick[1::3])]  # repeats
    rets = RaggedSpans(np.arange(0, 6 * nq + 1, 6), chunks.doc[pick], chunks.start[pick], chunks.end[pick])
    one = span_metrics(refs, rets, chunks, k=(1, 3, 5), backend="numba", num_threads=1, ranked=True)
    two = span_metrics(refs, rets, chunks, k=(1, 3, 5), backend="numba", num_threads=2, ranked=True)
    sample = np.arange(0, nq, 97)
    ref = span_metrics(refs.take(sample), rets.take(sample), chunks, k=(1, 3, 5), backend="python", ranked=True)
    for name in ("hit", "mrr", "map", "ndcg", "ndcg_graded"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
        assert np.array_equal(getattr(one, name)[sample], getattr(ref, name)), name


@dataclass(frozen=True)
class RankCase:
    n_docs: int
    chunking: str          # tiling | overlapping | nested | repeated
    chunk_size: int
    n_questions: int
    refs: tuple[int, int]
    rets: tuple[int, int]  # list lengths: short, past the quadratic dedup, long
    repeat: float          # chance that a row repeats an earlier row of its list
    foreign: float         # chance of a row in another document (one of them without chunks)
    loose: float           # chance of a row that is no chunk (overlaps chunks and other rows)
    semantics: int
    k_mode: int
    ks: tuple[int, ...]
    seed: int


@st.composite
def rank_cases(draw: st.DrawFn) -> RankCase:
    return RankCase(
        n_docs=draw(st.integers(1, 3)),
        chunking=draw(st.sampled_from(["tiling", "overlapping", "nested", "repeated"])),
        chunk_size=draw(st.sampled_from([1, 3, 10, 40])),
        n_questions=draw(st.integers(1, 5)),
        refs=draw(st.sampled_from([(1, 1), (1, 4), (5, 12)])),
        rets=draw(st.sampled_from([(0, 6), (10, 32), (33, 80), (100, 160)])),
        repeat=draw(st.sampled_from([0.0, 0.3, 0.8, 0.97])),
        foreign=draw(st.sampled_from([0.0, 0.2])),
        loose=draw(st.sampled_from([0.0, 0.3])),
        semantics=draw(st.integers(0, 1)),
        k_mode=draw(st.integers(0, 2)),
        ks=tuple(sorted(draw(st.sets(st.sampled_from([1, 2, 3, 5, 10, 20, 33, 64, 200]), min_size=1, max_size=4)))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


DOC_LEN = 300


def rank_chunks(case: RankCase, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cd: list[np.ndarray] = []
    cs: list[np.ndarray] = []
    ce: list[np.ndarray] = []
    size = case.chunk_size
    for d in range(case.n_docs):
        stride = max(1, size // 2) if case.chunking == "overlapping" else size
        s = np.arange(0, DOC_LEN - size + 1, stride)
        e = s + size
        if case.chunking == "nested":
            # Stacks of chunks nesting around a few centres: ends decrease, the tree path runs.
            centres = rng.integers(20, DOC_LEN - 20, 3)
            widths = np.arange(1, 20)
            s = np.concatenate([s, *(c - widths for c in centres)])
            e = np.concatenate([e, *(c + widths for c in centres)])
        elif case.chunking == "repeated":
            twice = rng.random(len(s)) < 0.4  # identical chunk rows: two chunks each
            s = np.concatenate([s, s[twice]])
            e = np.concatenate([e, e[twice]])
        perm = rng.permutation(len(s))
        cd.append(np.full(len(s), d))
        cs.append(s[perm])
        ce.append(e[perm])
    return (np.concatenate(cd).astype(np.int64), np.concatenate(cs).astype(np.int64),
            np.concatenate(ce).astype(np.int64))


def rank_batch(case: RankCase) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(case.seed)
    chunks = rank_chunks(case, rng)
    ref_rows: list[tuple[int, int, int]] = []
    ret_rows: list[tuple[int, int, int]] = []
    ref_off = [0]
    ret_off = [0]
    for _ in range(case.n_questions):
        home = int(rng.integers(0, case.n_docs))
        for _ in range(int(rng.integers(case.refs[0], case.refs[1] + 1))):
            a = int(rng.integers(0, DOC_LEN - 1))
            ref_rows.append((home, a, int(rng.integers(a + 1, min(DOC_LEN, a + 60) + 1))))
        ref_off.append(len(ref_rows))
        mine = np.flatnonzero(chunks[0] == home)
        rows: list[tuple[int, int, int]] = []
        for _ in range(int(rng.integers(case.rets[0], case.rets[1] + 1))):
            u = rng.random()
            if rows and u < case.repeat:
                rows.append(rows[int(rng.integers(0, len(rows)))])
            elif rng.random() < case.foreign:
                other = int(rng.integers(0, case.n_docs + 1))  # doc n_docs has no chunks at all
                a = int(rng.integers(0, DOC_LEN - 1))
                rows.append((other, a, a + int(rng.integers(1, 30))))
            elif rng.random() < case.loose:
                a = int(rng.integers(0, DOC_LEN - 1))
                rows.append((home, a, a + int(rng.integers(1, 50))))
            else:
                c = int(rng.choice(mine))
                rows.append((home, int(chunks[1][c]), int(chunks[2][c])))
        ret_rows.extend(rows)
        ret_off.append(len(ret_rows))

    def ragged(off: list[int], rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
        cols = np.array(rows, dtype=np.int64).reshape(-1, 3)
        return (np.array(off, dtype=np.int64), *(np.ascontiguousarray(cols[:, i]) for i in range(3)))

    return ragged(ref_off, ref_rows), ragged(ret_off, ret_rows), chunks


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rank_cases())
def test_rank_metrics_match_the_reference(case):
    refs, rets, chunks = rank_batch(case)
    both(refs, rets, chunks, np.array(case.ks, dtype=np.int64), case.k_mode, case.semantics, ranked=True)
