"""Differential property tests that reach every path of the kernels: C++ == Numba == Python, bit for bit.

The batches of tests/test_metrics_properties.py are small (60-character documents, a few rows);
these are built to reach what they cannot: long documents (thousands of characters), chunkings
with deep nesting (the interval tree's inner nodes) and many evidence chunks per query (the
buffer growth and heapsort paths), 25-40 references (the merge sort), 17-150 retrieved rows (the
packed-key pass past its insertion-sort threshold, and the first-cover sweep past 64 rows), doc
ids that are sparse or huge (the packed-key limits, the binary-search block lookup) and
coordinates pressed against the 2**32 bound (the lexsort fallback of the index build).

Hypothesis draws the shape (sizes, kinds, the seed); numpy fills in the rows, so that examples
with thousands of rows stay fast. The default run is moderate (the team shares two cores); set
``CHUNKEVAL_HYPOTHESIS=heavy`` for a long run, or run ``-m slow`` for the heavier fixed budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkeval import RaggedSpans, Spans, span_metrics
from conftest import BACKENDS

B = 2**32
NAMES = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks")
RANK_NAMES = ("hit", "mrr", "map", "ndcg", "ndcg_graded")
HEAVY = os.environ.get("CHUNKEVAL_HYPOTHESIS") == "heavy"
DEFAULT = settings(max_examples=400 if HEAVY else 40, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Shape:
    n_docs: int
    doc_ids: str       # dense | sparse | huge
    doc_len: int
    at_bound: bool     # documents end at 2**32
    chunk_size: int
    nesting: int       # depth of nested chunk stacks
    extra: int         # random overlapping chunks per doc
    n_questions: int
    refs: tuple[int, int]
    rets: tuple[int, int]
    seed: int


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    doc_len = draw(st.sampled_from([200, 3000, 12000]))
    return Shape(
        n_docs=draw(st.integers(1, 3)),
        doc_ids=draw(st.sampled_from(["dense", "sparse", "huge"])),
        doc_len=doc_len,
        at_bound=draw(st.booleans()),
        chunk_size=draw(st.sampled_from([3, 20, 100, 400])),
        nesting=draw(st.sampled_from([0, 0, 4, 12, 40])),
        extra=draw(st.sampled_from([0, 5, 60])),
        n_questions=draw(st.integers(1, 5)),
        refs=draw(st.sampled_from([(1, 4), (1, 4), (25, 40)])),
        rets=draw(st.sampled_from([(0, 10), (17, 64), (65, 150)])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def build(shape: Shape) -> tuple[RaggedSpans, RaggedSpans, Spans]:
    rng = np.random.default_rng(shape.seed)
    if shape.doc_ids == "dense":
        docs = np.arange(shape.n_docs, dtype=np.int64)
    elif shape.doc_ids == "sparse":
        docs = np.array([0, 7, 1000][: shape.n_docs], dtype=np.int64)
    else:
        docs = np.array([2**19, 2**40 + 3, 2**63 - 1][: shape.n_docs], dtype=np.int64)
    L = shape.doc_len
    base = B - L if shape.at_bound else 0
    cd, cs, ce = [], [], []
    for d in docs:
        sizes = rng.integers(1, 2 * shape.chunk_size + 1, L // shape.chunk_size + 2)
        gaps = rng.choice([0, 0, 0, 1, 7], len(sizes))
        starts = np.concatenate(([0], np.cumsum(sizes + gaps)[:-1]))
        s = starts[starts < L]
        e = np.minimum(s + sizes[: len(s)], L)
        # Nested stacks: spans halving around a centre, several centres per doc.
        ns, ne = [], []
        for _ in range(3 if shape.nesting else 0):
            mid = int(rng.integers(0, L))
            half = np.maximum(1, (L // 2) >> (np.arange(shape.nesting) % 14))
            ns.append(np.maximum(0, mid - half))
            ne.append(np.minimum(L, mid + half))
        xs = rng.integers(0, L - 1, shape.extra)
        xe = np.minimum(L, xs + rng.integers(1, L // 3 + 2, shape.extra))
        s = np.concatenate([s, xs, *ns])
        e = np.concatenate([e, xe, *ne])
        cd.append(np.full(len(s), d))
        cs.append(s + base)
        ce.append(e + base)
    chunk_doc, chunk_start, chunk_end = np.concatenate(cd), np.concatenate(cs), np.concatenate(ce)
    dup = rng.integers(0, len(chunk_doc), 2)
    chunk_doc, chunk_start, chunk_end = (np.concatenate((a, a[dup])) for a in (chunk_doc, chunk_start, chunk_end))
    order = rng.permutation(len(chunk_doc))
    chunks = Spans(chunk_doc[order], chunk_start[order], chunk_end[order])

    nq = shape.n_questions
    n_refs = rng.integers(shape.refs[0], shape.refs[1] + 1, nq)
    n_rets = rng.integers(shape.rets[0], shape.rets[1] + 1, nq)
    q_ref = np.repeat(np.arange(nq), n_refs)
    one_doc = rng.random(nq) < 0.5
    ref_doc = np.where(one_doc[q_ref], docs[rng.integers(0, len(docs), nq)][q_ref], docs[rng.integers(0, len(docs),
        len(q_ref))])
    ref_len = np.array([5, 80, 700, L])[rng.integers(0, 4, nq)][q_ref]
    rs = rng.integers(0, L - 1, len(q_ref))
    re_ = np.minimum(L, rs + rng.integers(1, ref_len + 1))
    refs = RaggedSpans(np.concatenate(([0], np.cumsum(n_refs))), ref_doc, rs + base, re_ + base)
    n = int(n_rets.sum())
    pick = rng.integers(0, len(chunk_doc), n)
    anywhere = rng.random(n) < 0.3
    ts = rng.integers(0, L - 1, n)
    te = np.minimum(L, ts + rng.integers(1, 300, n))
    ret_doc = np.where(anywhere, docs[rng.integers(0, len(docs), n)], chunk_doc[pick])
    ret_start = np.where(anywhere, ts + base, chunk_start[pick])
    ret_end = np.where(anywhere, te + base, chunk_end[pick])
    # Some lists hold one cluster ranked right to left (or the reverse), the worst case of a
    # shifting rank-order merge.
    if rng.random() < 0.3 and n:
        q = int(rng.integers(0, nq))
        lo, hi = int(np.cumsum(n_rets)[q] - n_rets[q]), int(np.cumsum(n_rets)[q])
        step = max(1, L // max(1, 2 * (hi - lo)))
        pos = (np.arange(hi - lo)[::-1] if rng.random() < 0.5 else np.arange(hi - lo)) * step
        ret_doc[lo:hi] = docs[0]
        ret_start[lo:hi] = base + np.minimum(pos, L - 2)
        ret_end[lo:hi] = base + np.minimum(pos + 2 * step, L)
    rets = RaggedSpans(np.concatenate(([0], np.cumsum(n_rets))), ret_doc, ret_start, ret_end)
    return refs, rets, chunks


def agree(refs: RaggedSpans, rets: RaggedSpans, chunks: Spans | None, **kw: object) -> None:
    results = [span_metrics(refs, rets, chunks, backend=b, num_threads=1, **kw) for b in BACKENDS]  # type: ignore[arg-type]
    for other in results[1:]:
        for name in NAMES + (RANK_NAMES if kw.get("ranked") else ()):
            x, y = getattr(results[0], name), getattr(other, name)
            assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True), (other.backend, name, x, y)


K = st.sampled_from([None, 1, 16, 64, 65, 100, (1, 5, 17, 64, 65, 150), "auto"])


@DEFAULT
@given(shapes(), st.sampled_from(["set", "chroma"]), K, st.booleans())
def test_backends_agree_on_nasty_batches(shape, semantics, k, ranked):
    refs, rets, chunks = build(shape)
    agree(refs, rets, chunks, semantics=semantics, k=k, ranked=ranked)


@DEFAULT
@given(shapes(), st.sampled_from(["set", "chroma"]))
def test_backends_agree_without_chunks(shape, semantics):
    refs, rets, _ = build(shape)
    agree(refs, rets, None, semantics=semantics, k=(1, 64, 65))


@pytest.mark.slow
@SLOW
@given(shapes(), st.sampled_from(["set", "chroma"]), K, st.booleans())
def test_backends_agree_on_nasty_batches_heavy(shape, semantics, k, ranked):
    refs, rets, chunks = build(shape)
    agree(refs, rets, chunks, semantics=semantics, k=k, ranked=ranked)
