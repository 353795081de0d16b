"""Retrieval: exact search against a brute-force reference (ties included), HNSW recall against
exact search, corpus scope isolation, padding when fewer than k vectors exist, recall_at_k by hand,
and HNSW recall on the bundled benchmark embedded with the real model."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from chunkeval import retrieval
from chunkeval.retrieval import ExactIndex, HNSWIndex, build_index, recall_at_k


def brute_force(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k: cosine in float64, Python sort by (-score, id), padded with -1 / -inf."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = q.astype(np.float64) @ x.astype(np.float64).T
    ids = np.full((len(q), k), -1, dtype=np.int64)
    scores = np.full((len(q), k), -np.inf)
    for i in range(len(q)):
        best = sorted(range(len(x)), key=lambda j: (-sim[i, j], j))[:k]
        ids[i, : len(best)] = best
        scores[i, : len(best)] = sim[i, best]
    return ids, scores


def sign_vectors(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    """Unit vectors with entries ±1/4 (dim 16): every dot product is an exact multiple of 1/16 in
    float32, so scores tie exactly and the tie-break rule is what decides the order."""
    return rng.choice(np.array([-0.25, 0.25], dtype=np.float32), size=(n, dim))


# ---------------------------------------------------------------------------------------------
# ExactIndex


@pytest.mark.parametrize("k", [1, 5, 37, 200])
def test_exact_matches_brute_force_on_random_vectors(k: int) -> None:
    rng = np.random.default_rng(k)
    vectors = rng.normal(size=(200, 24)).astype(np.float32)
    queries = rng.normal(size=(30, 24)).astype(np.float32)
    ids, scores = ExactIndex(vectors).search(queries, k)
    ref_ids, ref_scores = brute_force(queries, vectors, k)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (30, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=2e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 64])
def test_exact_breaks_ties_by_lower_id(k: int) -> None:
    rng = np.random.default_rng(100 + k)
    vectors = sign_vectors(rng, 64)
    vectors[10] = vectors[50] = vectors[3]  # exact duplicates as well as tied scores
    queries = np.concatenate([sign_vectors(rng, 20), vectors[[3, 7]]])
    ids, scores = ExactIndex(vectors).search(queries, k)
    ref_ids, ref_scores = brute_force(queries, vectors, k)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
    # the query equal to row 3 finds its three copies first, in id order
    if k >= 3:
        assert ids[20, :3].tolist() == [3, 10, 50]


def test_exact_blocked_product_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    vectors = sign_vectors(rng, 300)
    queries = sign_vectors(rng, 41)
    whole = ExactIndex(vectors).search(queries, 9)
    monkeypatch.setattr(retrieval, "_BLOCK_ELEMENTS", 300 * 4)  # 4 queries per block, last one short
    blocked = ExactIndex(vectors).search(queries, 9)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])


def test_fewer_vectors_than_k_pads_with_minus_one_and_minus_inf() -> None:
    vectors = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    for index in (ExactIndex(vectors), HNSWIndex(vectors)):
        ids, scores = index.search(np.array([[1.0, 0.0]]), 5)
        assert ids.tolist() == [[0, 2, 1, -1, -1]]
        np.testing.assert_allclose(scores[0, :3], [1.0, np.sqrt(0.5), 0.0], atol=1e-7)
        assert np.isneginf(scores[0, 3:]).all()
    empty = np.zeros((0, 2), dtype=np.float32)
    for index in (ExactIndex(empty), HNSWIndex(empty)):
        ids, scores = index.search(np.ones((2, 2)), 2)
        assert ids.tolist() == [[-1, -1], [-1, -1]] and np.isneginf(scores).all()


def test_scores_are_cosines_whatever_the_norms() -> None:
    vectors = np.array([[3, 4], [10, 0], [0, 0.5]], dtype=np.float32)
    ids, scores = ExactIndex(vectors).search(np.array([[2.0, 0.0]]), 3)
    assert ids.tolist() == [[1, 0, 2]]
    np.testing.assert_allclose(scores, [[1.0, 0.6, 0.0]], atol=1e-7)


def test_bad_input_names_the_argument_and_row() -> None:
    good = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"vectors: row 1 is the zero vector"):
        ExactIndex(np.array([[1, 0], [0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"vectors: row 0 has NaN"):
        HNSWIndex(np.array([[np.nan, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"queries has 2 columns .* 3-dimensional"):
        ExactIndex(good).search(np.ones((1, 2)), 1)
    with pytest.raises(ValueError, match=r"try x\[None, :\]"):
        ExactIndex(good).search(np.ones(3), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ExactIndex(good).search(good, 0)
    with pytest.raises(TypeError, match="k must be a positive int"):
        ExactIndex(good).search(good, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="real numbers"):
        ExactIndex(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="M must be >= 2"):
        HNSWIndex(good, M=1)


# ---------------------------------------------------------------------------------------------
# HNSWIndex


def test_hnsw_recall_on_random_vectors_and_determinism() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    queries = rng.normal(size=(200, 32)).astype(np.float32)
    exact_ids, exact_scores = ExactIndex(vectors).search(queries, 10)
    hnsw = HNSWIndex(vectors, M=16, ef_construction=200, ef_search=100, seed=5)
    ids, scores = hnsw.search(queries, 10)
    assert recall_at_k(ids, exact_ids) >= 0.99
    # returned scores are exact cosines of the returned ids, best first
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries / np.linalg.norm(queries, axis=1)[:, None],
                                                 vectors[ids] / np.linalg.norm(vectors[ids], axis=2)[..., None]),
                               atol=2e-6)
    assert (np.diff(scores, axis=1) <= 0).all()
    again = HNSWIndex(vectors, M=16, ef_construction=200, ef_search=100, seed=5).search(queries, 10)
    np.testing.assert_array_equal(ids, again[0])


def test_hnsw_raises_ef_search_to_k() -> None:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(500, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    ids, _ = HNSWIndex(vectors, ef_search=5).search(queries, 120)
    assert (ids >= 0).all() and all(len(set(row)) == 120 for row in ids.tolist())
    exact_ids, _ = ExactIndex(vectors).search(queries, 120)
    assert recall_at_k(ids, exact_ids) >= 0.95


# ---------------------------------------------------------------------------------------------
# Scopes


@pytest.mark.parametrize("method", ["exact", "hnsw"])
def test_corpus_scope_searches_only_the_query_group(method: Literal["exact", "hnsw"]) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    groups = np.array(["a", "b", "c", "d"], dtype="U4")[rng.integers(0, 4, size=400)]
    groups[:3] = "tiny"  # a group with fewer vectors than k
    queries = rng.normal(size=(60, 16)).astype(np.float32)
    query_groups = np.array(["a", "b", "c", "d", "tiny"])[rng.integers(0, 5, size=60)]
    retriever = build_index(vectors, groups=groups, method=method)
    assert retriever.scope == "corpus"
    ids, scores = retriever.search(queries, 8, query_groups=query_groups)
    for row in range(60):
        found = ids[row][ids[row] >= 0]
        assert (groups[found] == query_groups[row]).all()
        members = np.flatnonzero(groups == query_groups[row])
        ref_ids, _ = brute_force(queries[[row]], vectors[members], 8)
        ref = np.where(ref_ids >= 0, members[np.maximum(ref_ids, 0)], -1)[0]
        if method == "exact":
            np.testing.assert_array_equal(ids[row], ref)
        else:
            assert len(set(found) & set(ref)) >= len(found) - 1
    tiny = query_groups == "tiny"
    assert tiny.any() and (ids[tiny][:, 3:] == -1).all() and np.isneginf(scores[tiny][:, 3:]).all()


def test_global_scope_equals_a_plain_index_and_scope_errors() -> None:
    rng = np.random.default_rng(12)
    vectors = rng.normal(size=(100, 8)).astype(np.float32)
    queries = rng.normal(size=(10, 8)).astype(np.float32)
    retriever = build_index(vectors, method="exact")
    assert retriever.scope == "global"
    np.testing.assert_array_equal(retriever.search(queries, 4)[0], ExactIndex(vectors).search(queries, 4)[0])
    by_corpus = build_index(vectors, groups=np.arange(100) % 2, method="exact")
    with pytest.raises(ValueError, match="query_groups is required"):
        by_corpus.search(queries, 3)
    with pytest.raises(ValueError, match=r"query_groups\[0\] = 7 names a group with no indexed vectors"):
        by_corpus.search(queries, 3, query_groups=[7] + [0] * 9)
    with pytest.raises(ValueError, match="one label per row"):
        by_corpus.search(queries, 3, query_groups=[0, 1])
    with pytest.raises(ValueError, match="scope='corpus' needs groups"):
        build_index(vectors, scope="corpus")
    with pytest.raises(TypeError, match="takes no parameters"):
        build_index(vectors, method="exact", M=8)
    with pytest.raises(TypeError, match="unknown HNSW parameters"):
        build_index(vectors, method="hnsw", ef=8)


# ---------------------------------------------------------------------------------------------
# recall_at_k


def test_recall_at_k_by_hand() -> None:
    exact = np.array([[1, 2, 3], [4, 5, -1], [-1, -1, -1]])
    approx = np.array([[3, 2, 9], [5, 4, -1], [-1, -1, -1]])
    # query 0: 2 of 3 found; query 1: 2 of 2; query 2 has nothing to find and is left out
    assert recall_at_k(approx, exact) == pytest.approx((2 / 3 + 1.0) / 2)
    assert recall_at_k(exact, exact) == 1.0
    assert np.isnan(recall_at_k(exact[2:], exact[2:]))
    with pytest.raises(ValueError, match="same shape"):
        recall_at_k(approx[:, :2], exact)


def best_overlap_recall(approx: np.ndarray, exact: np.ndarray, queries: np.ndarray, vectors: np.ndarray,
                        atol: float) -> float:
    """Independent reference for tie-aware recall: per query, the largest |approx ∩ T| / m over every
    correct top-m set T, enumerated by brute force. T is correct when it holds every vector scoring
    above s_k + atol and is filled with vectors scoring at least s_k - atol (s_k: the exact list's
    lowest score, m its length), scores being float64 cosines."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).astype(np.float64)
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).astype(np.float64)
    sim = q.astype(np.float32).astype(np.float64) @ x.astype(np.float32).astype(np.float64).T
    recalls = []
    for row in range(len(q)):
        found = [int(j) for j in exact[row] if j >= 0]
        if not found:
            continue
        kth = min(sim[row, j] for j in found)
        required = {j for j in range(len(x)) if sim[row, j] > kth + atol}
        pool = [j for j in range(len(x)) if j not in required and sim[row, j] >= kth - atol]
        returned = {int(j) for j in approx[row] if j >= 0}
        best = max(len(returned & (required | set(fill)))
                   for fill in itertools.combinations(pool, len(found) - len(required)))
        recalls.append(best / len(found))
    return float(np.mean(recalls)) if recalls else float("nan")


def test_recall_up_to_ties_by_hand() -> None:
    # Vectors 1, 2 and 3 are identical; query 0 scores 0 (cos 1) and the copies (cos 0.6) alike.
    vectors = np.array([[1, 0], [0.6, 0.8], [0.6, 0.8], [0.6, 0.8], [0, 1]], dtype=np.float32)
    queries = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    exact = np.array([[0, 1], [0, 1], [4, 1]])
    approx = np.array([[0, 3],  # another copy of the 2nd result: no miss
                       [2, 3],  # two copies of the 2nd, but the required 1st (cos 1 > 0.6) is missing
                       [4, 4]])  # a repeated id counts once
    assert recall_at_k(approx, exact) == pytest.approx((1 / 2 + 0 + 1 / 2) / 3)  # by id
    tied = recall_at_k(approx, exact, queries=queries, vectors=vectors)
    assert tied == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert tied == pytest.approx(best_overlap_recall(approx, exact, queries, vectors, retrieval.TIE_ATOL))
    # The same from the scores the two searches return with their ids.
    approx_scores = np.array([[1.0, 0.6], [0.6, 0.6], [1.0, 1.0]], dtype=np.float32)
    exact_scores = np.array([[1.0, 0.6], [1.0, 0.6], [1.0, 0.0]], dtype=np.float32)
    assert recall_at_k(approx, exact, approx_scores=approx_scores, exact_scores=exact_scores) == pytest.approx(tied)
    # Scores a hair apart are a tie within atol, a miss beyond it.
    near = np.array([[1, 0], [0.6, 0.8], [0.6 - 2e-6, 0.8]], dtype=np.float32)  # cos 1.3e-6 below
    assert recall_at_k(np.array([[0, 2]]), np.array([[0, 1]]), queries=queries[:1], vectors=near) == 0.5
    assert recall_at_k(np.array([[0, 2]]), np.array([[0, 1]]), queries=queries[:1], vectors=near, atol=1e-5) == 1.0
    assert retrieval.TIE_ATOL == 8 * 2.0**-23


def test_recall_up_to_ties_errors() -> None:
    vectors = np.eye(3, dtype=np.float32)
    ids = np.array([[0, 1]])
    with pytest.raises(ValueError, match="pass both queries and vectors"):
        recall_at_k(ids, ids, queries=vectors[:1])
    with pytest.raises(ValueError, match="queries has 2 rows but the id arrays have 1"):
        recall_at_k(ids, ids, queries=vectors[:2], vectors=vectors)
    with pytest.raises(ValueError, match="exact_ids holds id 7 but vectors has 3 rows"):
        recall_at_k(ids, np.array([[0, 7]]), queries=vectors[:1], vectors=vectors)
    with pytest.raises(ValueError, match="queries has 2 columns but the index holds 3-dimensional"):
        recall_at_k(ids, ids, queries=np.ones((1, 2)), vectors=vectors)
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        recall_at_k(ids, ids, queries=vectors[:1], vectors=vectors, atol=-1.0)
    scores = np.array([[1.0, 0.5]])
    with pytest.raises(ValueError, match="pass both approx_scores and exact_scores"):
        recall_at_k(ids, ids, approx_scores=scores)
    with pytest.raises(ValueError, match="not both"):
        recall_at_k(ids, ids, approx_scores=scores, exact_scores=scores, queries=vectors[:1], vectors=vectors)
    with pytest.raises(ValueError, match=r"exact_scores has shape \(2,\) but the ids have \(1, 2\)"):
        recall_at_k(ids, ids, approx_scores=scores, exact_scores=scores[0])
    with pytest.raises(TypeError, match="approx_scores must hold real numbers"):
        recall_at_k(ids, ids, approx_scores=np.array([["a", "b"]]), exact_scores=scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hnsw_on_duplicate_vectors_is_exact_up_to_ties(seed: int) -> None:
    # 300 distinct vectors, 20 of them stored 11 times over: HNSW returns other copies than the
    # exact search (lowest ids), which by id are misses; up to ties it finds every neighbour.
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(300, 32)).astype(np.float32)
    vectors = np.concatenate([base, np.repeat(base[:20], 10, axis=0)])[rng.permutation(500)]
    queries = np.concatenate([base[:20] + 0.05 * rng.normal(size=(20, 32)).astype(np.float32),
                              rng.normal(size=(30, 32)).astype(np.float32)])
    exact, exact_scores = ExactIndex(vectors).search(queries, 5)
    approx, approx_scores = HNSWIndex(vectors, seed=seed).search(queries, 5)
    by_id = recall_at_k(approx, exact)
    tied = recall_at_k(approx, exact, queries=queries, vectors=vectors)
    assert by_id < 0.95 and tied == 1.0
    assert recall_at_k(approx, exact, approx_scores=approx_scores, exact_scores=exact_scores) == 1.0
    # Scoring the same ids exactly, at atol 0, the copies still tie: nothing but ties was missed.
    assert recall_at_k(approx, exact, queries=queries, vectors=vectors, atol=0.0) == 1.0
    # The same on sign vectors, where distinct vectors tie too, checked against the brute force.
    signs = sign_vectors(rng, 60)
    queries = sign_vectors(rng, 15)
    exact, _ = ExactIndex(signs).search(queries, 4)
    for approx in (HNSWIndex(signs, M=2, ef_construction=4, ef_search=4, seed=seed).search(queries, 4)[0],
                   np.roll(exact, 1, axis=0), exact[:, ::-1]):
        assert recall_at_k(approx, exact, queries=queries, vectors=signs) == pytest.approx(
            best_overlap_recall(approx, exact, queries, signs, retrieval.TIE_ATOL))


# ---------------------------------------------------------------------------------------------
# The bundled benchmark, embedded with the real model


@pytest.fixture(scope="session")
def benchmark_vectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The bundled benchmark's 1,644 chunks (200 cl100k tokens) and 472 questions, embedded once."""
    from chunkeval.chunkers import FixedTokenChunker, chunk_texts
    from chunkeval.datasets import load
    from chunkeval.embedding import Embedder

    data = load()
    chunks = FixedTokenChunker(200).chunk(data.texts)
    embedder = Embedder(device="cpu", cache_dir=Path(tmp_path_factory.mktemp("embedding-cache")),
                        show_progress=False)
    return {
        "chunks": embedder.embed(chunk_texts(chunks, data.texts)),
        "chunk_doc": chunks.doc,
        "questions": embedder.embed([q["question"] for q in data.questions]),
        "question_doc": data.question_doc(),
    }


@pytest.mark.slow
def test_hnsw_recall_on_the_bundled_benchmark(benchmark_vectors: dict[str, np.ndarray]) -> None:
    chunks, questions = benchmark_vectors["chunks"], benchmark_vectors["questions"]
    assert chunks.shape == (1644, 384) and questions.shape == (472, 384)
    exact_ids, _ = build_index(chunks, method="exact").search(questions, 5)
    hnsw_ids, _ = build_index(chunks, method="hnsw").search(questions, 5)
    assert recall_at_k(hnsw_ids, exact_ids) >= 0.99


@pytest.mark.slow
def test_corpus_scope_on_the_bundled_benchmark(benchmark_vectors: dict[str, np.ndarray]) -> None:
    chunk_doc, question_doc = benchmark_vectors["chunk_doc"], benchmark_vectors["question_doc"]
    for method in ("exact", "hnsw"):
        retriever = build_index(benchmark_vectors["chunks"], groups=chunk_doc, method=method)
        ids, _ = retriever.search(benchmark_vectors["questions"], 5, query_groups=question_doc)
        assert (ids >= 0).all()
        assert (chunk_doc[ids] == question_doc[:, None]).all()
