"""Property tests: the backends agree bit for bit, and the metrics keep their invariants.

Batches are random and ragged, and built to contain the nasty cases on purpose: touching,
nested and duplicate spans, questions with nothing retrieved, retrieved chunks of other documents,
references that overlap each other or span two documents.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkeval
from chroma_procedure import precision_omega_and_count, retrieval_scores
from chunkeval import RaggedSpans, Spans, span_metrics
from conftest import BACKENDS

DOC_LEN = 60


@st.composite
def span_in(draw, doc_strategy, max_len=DOC_LEN):
    doc = draw(doc_strategy)
    start = draw(st.integers(0, max_len - 1))
    end = draw(st.integers(start + 1, min(max_len, start + 1 + draw(st.sampled_from([3, 10, 30, 60])))))
    return (doc, start, end)


@st.composite
def chunkings(draw, n_docs):
    """Per document: a tiling with random sizes and gaps, plus random extra (overlapping, nested, duplicate) chunks."""
    rows = []
    for d in range(n_docs):
        pos = 0
        while pos < DOC_LEN:
            size = draw(st.integers(1, 25))
            rows.append((d, pos, min(pos + size, DOC_LEN)))
            # Sometimes leave a gap, as a chunker that strips whitespace does: coverage < 1.
            pos += size + draw(st.sampled_from([0, 0, 0, 1, 4]))
        rows += draw(st.lists(span_in(st.just(d)), max_size=4))
    if rows and draw(st.booleans()):
        rows.append(rows[draw(st.integers(0, len(rows) - 1))])  # an exact duplicate chunk row
    order = draw(st.permutations(range(len(rows))))
    return [rows[i] for i in order]


@st.composite
def batches(draw, single_doc_questions=False):
    n_docs = draw(st.integers(1, 3))
    chunks = draw(chunkings(n_docs))
    n_q = draw(st.integers(1, 6))
    refs, rets = [], []
    for _ in range(n_q):
        home = draw(st.integers(0, n_docs - 1))
        ref_doc = st.just(home) if single_doc_questions else st.integers(0, n_docs - 1)
        refs.append(draw(st.lists(span_in(ref_doc), min_size=1, max_size=4)))
        pool = st.one_of(
            st.sampled_from(chunks),                       # real chunks, duplicates likely
            span_in(st.integers(0, n_docs - 1)),           # arbitrary spans, other docs too
        )
        rets.append(draw(st.lists(pool, max_size=7)))
    return refs, rets, chunks


def run(refs, rets, chunks, backend, **kw):
    return span_metrics(
        RaggedSpans.from_lists(refs), RaggedSpans.from_lists(rets), Spans(*zip(*chunks, strict=True)),
        backend=backend, num_threads=1, **kw,
    )


def same(a, b):
    for name in ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=True), (name, x, y)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(batches(), st.sampled_from(["set", "chroma"]),
       st.sampled_from([None, 1, 3, (1, 2, 5, 9), "auto"]))
def test_backends_agree(batch, semantics, k):
    refs, rets, chunks = batch
    results = [run(refs, rets, chunks, b, semantics=semantics, k=k) for b in BACKENDS]
    for other in results[1:]:
        same(results[0], other)


@SETTINGS
@given(batches(), st.sampled_from(["set", "chroma"]))
def test_metrics_in_unit_interval_and_iou_bounds(batch, semantics):
    refs, rets, chunks = batch
    r = run(refs, rets, chunks, BACKENDS[0], semantics=semantics, k=(1, 2, 4, 8))
    for name in ("recall", "precision", "iou", "precision_omega", "coverage"):
        values = getattr(r, name)
        assert ((values >= 0) & (values <= 1)).all(), name
    assert (r.iou <= r.precision).all()
    if semantics == "set":
        assert (r.iou <= np.minimum(r.recall, r.precision)).all()
        # The best retrieval a chunking allows covers what the chunking covers.
        assert (r.precision_omega <= r.coverage).all()


@SETTINGS
@given(batches(), st.sampled_from(["set", "chroma"]))
def test_one_pass_at_k_equals_separate_calls(batch, semantics):
    refs, rets, chunks = batch
    ks = (1, 2, 3, 6, 10)
    multi = run(refs, rets, chunks, BACKENDS[0], semantics=semantics, k=ks)
    for j, k in enumerate(ks):
        single = run(refs, rets, chunks, BACKENDS[0], semantics=semantics, k=k)
        for name in ("recall", "precision", "iou"):
            assert np.array_equal(getattr(multi, name)[:, j], getattr(single, name))


@SETTINGS
@given(batches(), st.sampled_from(["set", "chroma"]), st.randoms(use_true_random=False))
def test_retrieved_order_is_irrelevant_without_a_cutoff(batch, semantics, rnd):
    refs, rets, chunks = batch
    shuffled = [rnd.sample(r, len(r)) for r in rets]
    same(run(refs, rets, chunks, BACKENDS[0], semantics=semantics),
         run(refs, shuffled, chunks, BACKENDS[0], semantics=semantics))


def _split_one(spans, rnd):
    """Split every span longer than 1 into two adjacent halves at a random point."""
    out = []
    for d, s, e in spans:
        if e - s > 1:
            m = rnd.randint(s + 1, e - 1)
            out += [(d, s, m), (d, m, e)]
        else:
            out.append((d, s, e))
    return out


@SETTINGS
@given(batches(), st.randoms(use_true_random=False))
def test_splitting_spans_changes_nothing_in_set_semantics(batch, rnd):
    refs, rets, chunks = batch
    split_refs = [_split_one(r, rnd) for r in refs]
    split_rets = [_split_one(r, rnd) for r in rets]
    a = run(refs, rets, chunks, BACKENDS[0])
    b = run(split_refs, split_rets, chunks, BACKENDS[0])
    for name in ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@SETTINGS
@given(batches(single_doc_questions=True), st.sampled_from([1, 2, 5, "auto"]))
def test_chroma_semantics_reproduce_the_toolkit_procedure(batch, k):
    refs, rets, chunks = batch
    r = run(refs, rets, chunks, BACKENDS[0], semantics="chroma", k=k)
    for q, (qrefs, qret) in enumerate(zip(refs, rets, strict=True)):
        doc = qrefs[0][0]
        ranges = [(s, e) for _, s, e in qrefs]
        omega, count = precision_omega_and_count(ranges, [(s, e) for d, s, e in chunks if d == doc])
        assert r.precision_omega[q] == omega
        assert r.n_evidence_chunks[q] == count
        n = min(count, len(qret)) if k == "auto" else k
        flagged = [(s, e, d == doc) for d, s, e in qret]
        if n == 0 or not qret:
            # The toolkit divides by zero here; the contract defines precision as 0.
            assert r.precision[q] == 0.0 and r.iou[q] == 0.0
            continue
        iou, recall, precision = retrieval_scores(ranges, flagged, n)
        assert (r.iou[q], r.recall[q], r.precision[q]) == (iou, recall, precision)


def test_threads_give_the_same_answer_on_a_large_batch():
    rng = np.random.default_rng(7)
    n_docs, doc_len, nq = 20, 5000, 9000
    starts = np.arange(0, doc_len, 100)
    chunks = Spans(np.repeat(np.arange(n_docs), len(starts)), np.tile(starts, n_docs), np.tile(starts + 100, n_docs))
    counts = rng.integers(1, 4, nq)
    rs = rng.integers(0, doc_len - 300, counts.sum())
    refs = RaggedSpans(np.concatenate(([0], np.cumsum(counts))), rng.integers(0, n_docs, counts.sum()), rs,
                       rs + rng.integers(1, 300, counts.sum()))
    picks = rng.integers(0, len(chunks), nq * 5)
    rets = RaggedSpans(np.arange(0, nq * 5 + 1, 5), chunks.doc[picks], chunks.start[picks], chunks.end[picks])
    for backend in [b for b in BACKENDS if b != "python"]:
        for semantics in ("set", "chroma"):
            one = span_metrics(refs, rets, chunks, k=(1, 5), semantics=semantics, backend=backend, num_threads=1)
            two = span_metrics(refs, rets, chunks, k=(1, 5), semantics=semantics, backend=backend, num_threads=2)
            same(one, two)
    sample = refs.take(np.arange(0, nq, 450))
    ref_result = span_metrics(sample, rets.take(np.arange(0, nq, 450)), chunks, k=(1, 5), backend="python")
    fast = span_metrics(refs, rets, chunks, k=(1, 5), backend=BACKENDS[0], num_threads=2)
    for name in ("recall", "precision", "iou", "precision_omega"):
        assert np.array_equal(getattr(fast, name)[::450], getattr(ref_result, name))
    assert chunkeval.available_backends()[-1] == "python"
