"""Hand-worked cases for every metric, both semantics, every backend.

Each expected value is worked out in the comment above it from docs/metrics.md. Ratios are exact
integer counts divided once, so backends must match them with ``==``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chunkeval import RaggedSpans, Spans, span_metrics


def fixed_chunks(doc: int, length: int, size: int) -> list[tuple[int, int, int]]:
    return [(doc, s, min(s + size, length)) for s in range(0, length, size)]


def score(refs, ret, chunks, backend, **kw):
    return span_metrics(
        RaggedSpans.from_lists(refs), RaggedSpans.from_lists(ret),
        None if chunks is None else Spans(*zip(*chunks, strict=True)), backend=backend, **kw,
    )


def check(result, q, *, recall, precision, iou, omega=None, coverage=None, n_ev=None, col=None):
    def at(a):
        return a[q] if col is None else a[q, col]
    assert at(result.recall) == recall
    assert at(result.precision) == precision
    assert at(result.iou) == iou
    if omega is not None:
        assert result.precision_omega[q] == omega
        assert result.coverage[q] == coverage
        assert result.n_evidence_chunks[q] == n_ev


# The contract's worked example: chunks of 10 over a 100-char doc, reference [15,25),
# retrieved [20,30) then [50,60).
WORKED = dict(refs=[[(0, 15, 25)]], ret=[[(0, 20, 30), (0, 50, 60)]], chunks=fixed_chunks(0, 100, 10))


def test_worked_example_set(backend):
    # E=[15,25) |E|=10; R=[20,30)∪[50,60) |R|=20; I=5 -> 0.5, 0.25, 5/25.
    # C*=[10,30): omega 10/20, coverage 10/10, two evidence chunks.
    r = score(**WORKED, backend=backend)
    check(r, 0, recall=0.5, precision=0.25, iou=0.2, omega=0.5, coverage=1.0, n_ev=2)
    # @1: R=[20,30): I=5, |R|=10, |E∪R|=15.
    r1 = score(**WORKED, backend=backend, k=1)
    check(r1, 0, recall=0.5, precision=0.5, iou=5 / 15)


def test_worked_example_chroma(backend):
    # N=5, Σref=10, Σret=20, unused=|[15,20)|=5 -> recall .5, precision .25, iou 5/(20+5).
    r = score(**WORKED, backend=backend, semantics="chroma")
    check(r, 0, recall=0.5, precision=0.25, iou=0.2, omega=0.5, coverage=1.0, n_ev=2)


TOUCH = dict(refs=[[(0, 10, 20)]], ret=[[(0, 0, 10), (0, 10, 20)]], chunks=fixed_chunks(0, 30, 10))


def test_touching_set(backend):
    # Only [10,20) overlaps with positive length: one evidence chunk, omega 1.
    r = score(**TOUCH, backend=backend, k=[1, 2])
    check(r, 0, recall=0.0, precision=0.0, iou=0.0, omega=1.0, coverage=1.0, n_ev=1, col=0)
    # @2: R=[0,20), I=10, |R|=20, |E∪R|=20.
    check(r, 0, recall=1.0, precision=0.5, iou=0.5, col=1)
    # auto: k = n_evidence = 1 -> the @1 numbers.
    check(score(**TOUCH, backend=backend, k="auto"), 0, recall=0.0, precision=0.0, iou=0.0)


def test_touching_chroma(backend):
    # [0,10) and [20,30) touch the reference at 10 and 20: three evidence chunks, C*=[0,30),
    # omega = 10/30; @1 the touching chunk adds nothing to N: iou 0/(10+10).
    r = score(**TOUCH, backend=backend, k=[1, 2], semantics="chroma")
    check(r, 0, recall=0.0, precision=0.0, iou=0.0, omega=10 / 30, coverage=1.0, n_ev=3, col=0)
    check(r, 0, recall=1.0, precision=0.5, iou=0.5, col=1)
    # auto: k = min(3, 2 retrieved) = 2.
    check(score(**TOUCH, backend=backend, k="auto", semantics="chroma"), 0, recall=1.0, precision=0.5, iou=0.5)


NESTED = dict(
    refs=[[(0, 45, 55)]],
    ret=[[(0, 40, 60), (0, 0, 50)]],
    chunks=[(0, 0, 100), (0, 0, 50), (0, 50, 100), (0, 40, 60)],
)


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_nested_chunks(backend, semantics):
    # Every chunk overlaps [45,55): four evidence chunks, C*=[0,100), omega 10/100.
    r = score(**NESTED, backend=backend, k=[1, 2], semantics=semantics)
    check(r, 0, recall=1.0, precision=0.5, iou=0.5, omega=0.1, coverage=1.0, n_ev=4, col=0)
    if semantics == "set":
        # R=[0,60): |R|=60, I=10.
        check(r, 0, recall=1.0, precision=10 / 60, iou=10 / 60, col=1)
    else:
        # Σret = 20 + 50 = 70, unused 0.
        check(r, 0, recall=1.0, precision=10 / 70, iou=10 / 70, col=1)


DUP = dict(refs=[[(0, 5, 15)]], ret=[[(0, 0, 10), (0, 0, 10), (0, 10, 20)]], chunks=fixed_chunks(0, 20, 10))


def test_duplicate_retrievals(backend):
    # Set: a duplicate adds nothing. @2: R=[0,10), I=5 -> .5, .5, 5/15. All: R=[0,20), I=10.
    r = score(**DUP, backend=backend, k=[2, 3])
    check(r, 0, recall=0.5, precision=0.5, iou=5 / 15, col=0)
    check(r, 0, recall=1.0, precision=0.5, iou=0.5, col=1)
    # Chroma: duplicates count in Σret. @2: N=5, Σret=20, unused=5 -> .5, .25, 5/25.
    # All: N=10, Σret=30, unused=0 -> 1, 1/3, 10/30.
    c = score(**DUP, backend=backend, k=[2, 3], semantics="chroma")
    check(c, 0, recall=0.5, precision=0.25, iou=0.2, col=0)
    check(c, 0, recall=1.0, precision=10 / 30, iou=10 / 30, col=1)


OTHER_DOC = dict(
    refs=[[(0, 5, 15)]],
    ret=[[(1, 0, 10), (0, 0, 10)]],
    chunks=fixed_chunks(0, 20, 10) + fixed_chunks(1, 20, 10),
)


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_retrieval_from_another_document(backend, semantics):
    # @1: doc 1 shares no position with doc 0: I=0, iou 0/(10+10).
    # @2: |R|=Σret=20, I=5, unused 5 -> recall .5, precision .25, iou 5/25 in both semantics.
    # Doc 1's chunks are not evidence: two evidence chunks, omega 10/20.
    r = score(**OTHER_DOC, backend=backend, k=[1, 2], semantics=semantics)
    check(r, 0, recall=0.0, precision=0.0, iou=0.0, omega=0.5, coverage=1.0, n_ev=2, col=0)
    check(r, 0, recall=0.5, precision=0.25, iou=0.2, col=1)


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_empty_retrieval(backend, semantics):
    # Nothing retrieved: precision is defined as 0, recall and iou are 0/positive.
    r = score([[(0, 0, 10)], [(0, 3, 4)]], [[], []], fixed_chunks(0, 20, 10), backend=backend,
              semantics=semantics, k=[1, 5])
    assert r.recall.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert r.precision.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert r.iou.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # [0,10) overlaps chunk [0,10) and, in chroma semantics, touches [10,20) too.
    assert r.n_evidence_chunks.tolist() == ([1, 1] if semantics == "set" else [2, 1])


@pytest.mark.parametrize("semantics", ["set", "chroma"])
def test_references_in_two_documents(backend, semantics):
    # E = doc0 [0,10) + doc1 [0,10) = 20; R = doc1 [0,20): I = 10, |R| = 20, unused = 10.
    # set: 10/20, 10/20, 10/(20+20-10); chroma: 10/20, 10/20, 10/(20+10).
    # Evidence: doc0 [0,20) and doc1 [0,20): C* = 40, E∩C* = 20, omega 20/40.
    r = score([[(0, 0, 10), (1, 0, 10)]], [[(1, 0, 20)]], [(0, 0, 20), (1, 0, 20)],
              backend=backend, semantics=semantics)
    check(r, 0, recall=0.5, precision=0.5, iou=10 / 30, omega=0.5, coverage=1.0, n_ev=2)


def test_overlapping_references(backend):
    # refs [0,10) and [5,15) overlap; chunks [0,8) and [12,20) leave a gap; retrieved [0,10).
    refs, ret, chunks = [[(0, 0, 10), (0, 5, 15)]], [[(0, 0, 10)]], [(0, 0, 8), (0, 12, 20)]
    # Set: E=[0,15) (15), I=10, |R|=10 -> 10/15, 1, 10/15. C*=[0,8)∪[12,20) (16),
    # E∩C* = 8 + 3 = 11, E∪C* = 15 + 16 - 11 = 20 -> omega 11/20, coverage 11/15.
    r = score(refs, ret, chunks, backend=backend)
    check(r, 0, recall=10 / 15, precision=1.0, iou=10 / 15, omega=11 / 20, coverage=11 / 15, n_ev=2)
    # Chroma: Σref = 20 counts [5,10) twice -> recall 10/20; unused = 0 + |[10,15)| = 5 ->
    # iou 10/(10+5); coverage = (|[0,10)∩C*| + |[5,15)∩C*|) / 20 = (8 + 6) / 20.
    c = score(refs, ret, chunks, backend=backend, semantics="chroma")
    check(c, 0, recall=0.5, precision=1.0, iou=10 / 15, omega=11 / 20, coverage=14 / 20, n_ev=2)


def test_cutoff_beyond_the_list_keeps_the_last_values(backend):
    r = score(**WORKED, backend=backend, k=[1, 2, 10])
    assert r.iou[0].tolist() == [5 / 15, 0.2, 0.2]
    assert r.k == (1, 2, 10)
    assert r.at(10).iou.tolist() == [0.2]


def test_without_chunks_omega_is_nan(backend):
    r = score(WORKED["refs"], WORKED["ret"], None, backend=backend)
    assert math.isnan(r.precision_omega[0]) and math.isnan(r.coverage[0])
    assert r.n_evidence_chunks.tolist() == [-1]
    assert r.iou.tolist() == [0.2]


def test_unsorted_chunk_table_and_large_doc_ids(backend):
    # Chunk rows in random order and sparse doc ids give the same answer as the sorted table.
    chunks = fixed_chunks(7_000_000_000, 100, 10)
    rng = np.random.default_rng(0)
    shuffled = [chunks[i] for i in rng.permutation(len(chunks))]
    refs = [[(7_000_000_000, 15, 25)]]
    ret = [[(7_000_000_000, 20, 30), (7_000_000_000, 50, 60)]]
    a = score(refs, ret, chunks, backend=backend)
    b = score(refs, ret, shuffled, backend=backend)
    check(b, 0, recall=0.5, precision=0.25, iou=0.2, omega=0.5, coverage=1.0, n_ev=2)
    assert a.precision_omega.tolist() == b.precision_omega.tolist()


def test_summary_uses_population_std_and_chroma_keys(backend):
    refs = [[(0, 15, 25)], [(0, 0, 10)], [(0, 40, 50)]]
    ret = [[(0, 20, 30), (0, 50, 60)], [(0, 0, 10)], [(0, 0, 10)]]
    r = score(refs, ret, fixed_chunks(0, 100, 10), backend=backend)
    # iou per question: 0.2, 1.0, 0.0 -> mean 0.4, population std sqrt(((.2-.4)^2+(.6)^2+(.4)^2)/3).
    s = r.summary(groups=["a", "b", "b"])
    assert s["iou_mean"] == pytest.approx(0.4, abs=1e-15)
    assert s["iou_std"] == pytest.approx(math.sqrt((0.04 + 0.36 + 0.16) / 3), abs=1e-15)
    assert s["corpora_scores"]["b"]["iou_mean"] == 0.5
    assert s["corpora_scores"]["b"]["iou_std"] == 0.5
    assert s["corpora_scores"]["a"]["recall_mean"] == 0.5
    for key in ("iou_mean", "iou_std", "recall_mean", "recall_std", "precision_mean", "precision_std",
                "precision_omega_mean", "precision_omega_std"):
        assert key in s
    table = r.to_arrow(groups=["a", "b", "b"])
    assert table.column("iou").to_pylist() == [0.2, 1.0, 0.0]
    assert table.column("group").to_pylist() == ["a", "b", "b"]
