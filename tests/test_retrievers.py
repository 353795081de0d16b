"""BM25 (bm25s), hybrid RRF, the Retriever protocol and the Chroma adapter, with the real packages."""

from __future__ import annotations

import importlib
import math
import os
from typing import Any

import numpy as np
import pytest

pytest.importorskip("bm25s")

from chunkeval.retrieval import ExactIndex  # noqa: E402
from chunkeval.retrievers import (  # noqa: E402
    BM25_DEFAULTS,
    BM25Index,
    ChromaRetriever,
    Retriever,
    rrf_fuse,
    search_texts,
)

# Token counts by hand (no stopwords, no stemmer): lengths 3, 2, 4, 1 -> avgdl 2.5, N = 4;
# df: apple 1, banana 2, cherry 2, date 1, elder 1.
CHUNKS = ["apple banana apple", "banana cherry", "cherry cherry cherry date", "elder"]
PLAIN = {"stopwords": None, "stemmer": None}
K1, B, AVG = 1.5, 0.75, 2.5


def norm(dl: int) -> float:
    return K1 * (1 - B + B * dl / AVG)


def bm25(question: str, k: int = 4, **params: object) -> tuple[np.ndarray, np.ndarray]:
    ids, scores, _ = search_texts("bm25", chunk_texts=CHUNKS, question_texts=[question], k=k,
                                  params={**PLAIN, **params})
    return ids[0], scores[0]


def test_bm25_lucene_by_hand() -> None:
    ids, scores = bm25("apple cherry")
    apple = math.log(1 + 3.5 / 1.5) * 2 / (2 + norm(3))
    cherry1 = math.log(1 + 2.5 / 2.5) * 1 / (1 + norm(2))
    cherry3 = math.log(1 + 2.5 / 2.5) * 3 / (3 + norm(4))
    assert ids.tolist() == [0, 2, 1, -1]  # chunk 3 shares no token: left out
    np.testing.assert_allclose(scores[:3], [apple, cherry3, cherry1], rtol=1e-6)
    assert scores.dtype == np.float32 and np.isneginf(scores[3])


def test_bm25_robertson_zero_idf_is_matched_and_ties_by_id() -> None:
    # Robertson idf clips (N - df + 0.5) / (df + 0.5) at 1: cherry (df 2 of 4) scores 0, yet matches.
    ids, scores = bm25("apple cherry", method="robertson")
    assert ids.tolist() == [0, 1, 2, -1]
    np.testing.assert_allclose(scores[:3], [math.log(3.5 / 1.5) * 2 / (2 + norm(3)), 0.0, 0.0], rtol=1e-6)


def test_bm25_atire_and_repeated_query_tokens() -> None:
    ids, scores = bm25("banana banana", method="atire")
    one = [math.log(4 / 2) * (K1 + 1) / (1 + norm(dl)) for dl in (3, 2)]
    assert ids.tolist() == [1, 0, -1, -1]
    np.testing.assert_allclose(scores[:2], [2 * one[1], 2 * one[0]], rtol=1e-6)  # each repeat counts


def test_bm25_plus_keep_unmatched() -> None:
    delta = 0.5
    ids, scores = bm25("apple cherry", method="bm25+", unmatched="keep")
    idf_apple, idf_cherry = math.log(5 / 1), math.log(5 / 2)

    def tfc(tf: int, dl: int) -> float:
        return (K1 + 1) * tf / (norm(dl) + tf) + delta

    expected = {0: idf_apple * tfc(2, 3) + idf_cherry * delta, 1: idf_apple * delta + idf_cherry * tfc(1, 2),
                2: idf_apple * delta + idf_cherry * tfc(3, 4), 3: (idf_apple + idf_cherry) * delta}
    order = sorted(expected, key=lambda c: (-expected[c], c))
    assert ids.tolist() == order
    np.testing.assert_allclose(scores, [expected[c] for c in order], rtol=1e-6)


def test_bm25_equals_bm25s_get_scores() -> None:
    bm25s: Any = importlib.import_module("bm25s")
    texts = [f"w{i % 7} w{i % 3} w{(i * i) % 11} common" for i in range(40)]
    questions = ["w1 w2", "w5 common", "w10 w10 w0"]
    ids, scores, _ = search_texts("bm25", chunk_texts=texts, question_texts=questions, k=40,
                                  params={**PLAIN, "unmatched": "keep"})
    ref = bm25s.BM25()
    ref.index(bm25s.tokenize(texts, stopwords=None, return_ids=False, show_progress=False), show_progress=False)
    for row, q in enumerate(questions):
        full = ref.get_scores(bm25s.tokenize([q], stopwords=None, return_ids=False, show_progress=False)[0])
        order = np.lexsort((np.arange(40), -full))
        assert ids[row].tolist() == order.tolist()
        np.testing.assert_array_equal(scores[row], full[order])


def test_tokenizer_settings_and_provenance() -> None:
    chunks = ["The runners were running", "a cat", "Cat naps"]
    ids, _, info = search_texts("bm25", chunk_texts=chunks, question_texts=["run", "the", "cat"], k=3)
    assert ids[0].tolist() == [0, -1, -1]  # English stemmer: running/runners -> run(ner)
    assert ids[1].tolist() == [-1, -1, -1]  # "the" is an English stopword
    assert ids[2].tolist() == [1, 2, -1]  # lowercased; shorter chunk first
    assert info["params"]["stemmer"] == "english" and info["params"]["stopwords"] == "english"
    assert info["params"]["bm25s_version"] and info["params"]["k1"] == 1.5 and info["method"] == "bm25"
    assert set(info["timings"]) == {"index", "search"} and info["index_bytes"] > 0
    ids, _, info = search_texts("bm25", chunk_texts=chunks, question_texts=["run", "cat"], k=3,
                                params={"stemmer": None, "lower": False})
    assert ids.tolist() == [[-1, -1, -1], [1, -1, -1]]
    assert info["params"]["lower"] is False and "pystemmer_version" not in info["params"]
    assert set(BM25_DEFAULTS) <= set(info["params"])


def test_bm25_scope_corpus_is_one_index_per_corpus() -> None:
    texts = ["alpha beta", "beta gamma", "alpha alpha", "gamma delta", "beta", "alpha gamma"]
    corpus = ["a", "b", "a", "b", "a", "b"]
    questions = ["alpha beta", "gamma"]
    ids, scores, _ = search_texts("bm25", chunk_texts=texts, question_texts=questions, k=4, scope="corpus",
                                  chunk_corpus=corpus, question_corpus=["b", "a"], params=PLAIN)
    for row, (q, c) in enumerate(zip(questions, ["b", "a"], strict=True)):
        rows = [i for i, x in enumerate(corpus) if x == c]
        local, local_scores, _ = search_texts("bm25", chunk_texts=[texts[i] for i in rows], question_texts=[q],
                                              k=4, params=PLAIN)
        expected = [rows[i] if i >= 0 else -1 for i in local[0]]
        assert ids[row].tolist() == expected
        np.testing.assert_array_equal(scores[row], local_scores[0])
    assert ids[1].tolist() == [-1, -1, -1, -1]  # no "gamma" in corpus a


def test_padding_ties_and_empty_inputs() -> None:
    ids, scores, _ = search_texts("bm25", chunk_texts=["x yy", "yy x", "zz"], question_texts=["yy", "qq qq"],
                                  k=5, params=PLAIN)
    assert ids.tolist() == [[0, 1, -1, -1, -1], [-1] * 5]
    assert scores[0, 0] == scores[0, 1] and np.isneginf(scores[:, 2:]).all()
    ids, scores, _ = search_texts("bm25", chunk_texts=[], question_texts=["a"], k=2)
    assert ids.tolist() == [[-1, -1]]
    ids, _, _ = search_texts("bm25", chunk_texts=["!!", "??"], question_texts=["!!"], k=2)
    assert ids.tolist() == [[-1, -1]]  # no tokens anywhere
    with pytest.raises(ValueError, match=r"params\['stopwords'\] = 'xx'"):
        search_texts("bm25", chunk_texts=[], question_texts=["a"], k=2, params={"stopwords": "xx"})
    ids, _, _ = search_texts("bm25", chunk_texts=["a b"], question_texts=[], k=2)
    assert ids.shape == (0, 2)


# ----------------------------------------------------------------------------------- fusion


def test_rrf_by_hand() -> None:
    ids, scores = rrf_fuse(np.array([[3, 1, 0]]), np.array([[1, 2, -1]]), k=5, rrf_k=60)
    assert ids.tolist() == [[1, 3, 2, 0, -1]]
    np.testing.assert_allclose(scores[0, :4], [1 / 62 + 1 / 61, 1 / 61, 1 / 62, 1 / 63], rtol=1e-7)
    assert np.isneginf(scores[0, 4])


def test_rrf_exact_ties_go_to_the_lower_id() -> None:
    # rrf_k = 0: chunk 13 at ranks (4, 4) and chunk 12 at (3, 6) both score exactly 1/2, as do 11 and 21.
    dense = np.array([[10, 11, 12, 13, 14, 15]])
    sparse = np.array([[20, 21, 22, 13, 24, 12]])
    ids, scores = rrf_fuse(dense, sparse, k=10, rrf_k=0)
    assert ids.tolist() == [[10, 20, 11, 12, 13, 21, 22, 14, 24, 15]]
    np.testing.assert_array_equal(scores[0], np.array([1, 1, .5, .5, .5, .5, 1 / 3, .2, .2, 1 / 6], dtype=np.float32))
    ids, _ = rrf_fuse(np.array([[7, 5]]), np.array([[5, 7]]), k=2)
    assert ids.tolist() == [[5, 7]]


def test_rrf_equals_exact_fractions_on_random_lists() -> None:
    from fractions import Fraction

    rng = np.random.default_rng(11)
    for trial in range(40):
        n, da, db, k, rrf_k = 5, int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 12)), trial % 4
        dense = rng.integers(-1, 12, size=(n, da))  # repeats and padding anywhere
        sparse = rng.integers(-1, 12, size=(n, db))
        ids, scores = rrf_fuse(dense, sparse, k=k, rrf_k=rrf_k)
        for row in range(n):
            fused: dict[int, Fraction] = {}
            for lst in (dense[row], sparse[row]):
                seen: set[int] = set()
                for rank, c in enumerate(lst.tolist(), start=1):
                    if c >= 0 and c not in seen:
                        seen.add(c)
                        fused[c] = fused.get(c, Fraction(0)) + Fraction(1, rrf_k + rank)
            order = sorted(fused, key=lambda c: (-fused[c], c))[:k]
            assert ids[row].tolist() == order + [-1] * (k - len(order))
            expected = np.array([float(fused[c]) for c in order], dtype=np.float32)
            np.testing.assert_array_equal(scores[row, :len(order)], expected)


def test_hybrid_is_rrf_of_exact_dense_and_bm25() -> None:
    rng = np.random.default_rng(3)
    words = ["red", "green", "blue", "cyan", "plum", "teal", "gold"]
    texts = [" ".join(rng.choice(words, size=4)) for _ in range(30)]
    questions = ["red blue", "gold", "teal plum cyan"]
    cv, qv = rng.normal(size=(30, 8)), rng.normal(size=(3, 8))
    ids, scores, info = search_texts("hybrid", chunk_texts=texts, question_texts=questions, k=6, chunk_vectors=cv,
                                     question_vectors=qv, params={**PLAIN, "depth": 10, "rrf_k": 5})
    cos = (qv / np.linalg.norm(qv, axis=1, keepdims=True)) @ (cv / np.linalg.norm(cv, axis=1, keepdims=True)).T
    dense = np.argsort(-cos, axis=1, kind="stable")[:, :10]
    sparse, _, _ = search_texts("bm25", chunk_texts=texts, question_texts=questions, k=10, params=PLAIN)
    for row in range(3):
        fused: dict[int, float] = {}
        for lst in (dense[row], sparse[row]):
            for rank, c in enumerate(lst.tolist(), start=1):
                if c >= 0:
                    fused[c] = fused.get(c, 0.0) + 1 / (5 + rank)
        order = sorted(fused, key=lambda c: (-fused[c], c))[:6]
        assert ids[row].tolist() == order
        np.testing.assert_allclose(scores[row], [fused[c] for c in order], rtol=1e-6)
    assert info["method"] == "hybrid" and info["params"]["rrf_k"] == 5 and info["params"]["depth"] == 10
    assert info["index_bytes"] >= cv.shape[0] * cv.shape[1] * 4


def test_hybrid_scope_corpus_stays_in_corpus() -> None:
    rng = np.random.default_rng(4)
    texts = ["apple pie", "apple tart", "pear pie", "plum jam", "apple jam", "pear tart"]
    corpus = np.array([0, 0, 0, 1, 1, 1])
    ids, _, _ = search_texts("hybrid", chunk_texts=texts, question_texts=["apple", "apple"], k=4,
                             chunk_vectors=rng.normal(size=(6, 4)), question_vectors=rng.normal(size=(2, 4)),
                             scope="corpus", chunk_corpus=corpus, question_corpus=[1, 0])
    assert set(ids[0].tolist()) - {-1} <= {3, 4, 5} and set(ids[1].tolist()) - {-1} <= {0, 1, 2}
    assert (ids[:, :3] >= 0).all() and (ids[:, 3] == -1).all()


# ---------------------------------------------------------------------------- Retriever protocol


class TableRetriever:
    """A real retriever: cosine search over vectors looked up by question text, returning rows
    in scrambled order with padding in the middle (search_texts must canonicalise them)."""

    def __init__(self, chunk_vectors: np.ndarray, question_vectors: dict[str, np.ndarray]) -> None:
        self.index = ExactIndex(chunk_vectors)
        self.question_vectors = question_vectors

    def search(self, question_texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.index.search(np.stack([self.question_vectors[t] for t in question_texts]), k)
        return ids[:, ::-1].astype(np.int32), scores[:, ::-1].astype(np.float64)


def test_retriever_object_is_canonicalised() -> None:
    cv = np.array([[1.0, 0], [1, 0], [0, 1]])
    r = TableRetriever(cv, {"q": np.array([1.0, 0.1])})
    assert isinstance(r, Retriever)
    ids, scores, info = search_texts(r, chunk_texts=["a", "b", "c"], question_texts=["q"], k=4)
    assert ids.tolist() == [[0, 1, 2, -1]] and ids.dtype == np.int64 and scores.dtype == np.float32
    assert scores[0, 0] == scores[0, 1] and np.isneginf(scores[0, 3])
    assert info["method"] == "TableRetriever" and info["index_bytes"] is None


class Fixed:
    def __init__(self, ids: list[list[int]], scores: list[list[float]]) -> None:
        self.ids, self.scores = np.array(ids), np.array(scores)

    def search(self, question_texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ids, self.scores


@pytest.mark.parametrize(("ids", "scores", "match"), [
    ([[0, 1, 2]], [[1.0, 0.5, 0.2]], r"shape \(1, 3\).*expected \(1, 2\)"),
    ([[0, 5]], [[1.0, 0.5]], r"id 5 for question 0 but there are 3 chunks"),
    ([[0, -2]], [[1.0, 0.5]], r"id -2 for question 0"),
    ([[1, 1]], [[1.0, 0.5]], r"a chunk twice for question 0"),
    ([[1, 0]], [[np.nan, 0.5]], r"NaN score for question 0"),
])
def test_bad_retriever_output(ids: list[list[int]], scores: list[list[float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        search_texts(Fixed(ids, scores), chunk_texts=["a", "b", "c"], question_texts=["q"], k=2)


def test_bad_retriever_dtypes() -> None:
    with pytest.raises(TypeError, match="ids of dtype float64"):
        search_texts(Fixed([[0.0, 1.0]], [[1.0, 0.5]]), chunk_texts=["a", "b"], question_texts=["q"], k=2)  # type: ignore[list-item]


# ------------------------------------------------------------------------------------- Chroma


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A real (if small) embedding: hashed word counts, L2-normalised."""
    out = np.zeros((len(texts), 32))
    for row, text in enumerate(texts):
        for word in text.split():
            out[row, sum(map(ord, word)) % 32] += 1.0
        out[row, 31] += 0.01 * (row + 1)
    unit: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
    return unit


def test_chroma_equals_exact_search(tmp_path: object) -> None:
    pytest.importorskip("chromadb")
    rng = np.random.default_rng(7)
    cv, qv = rng.normal(size=(300, 16)), rng.normal(size=(25, 16))
    texts = [f"chunk {i}" for i in range(300)]
    with ChromaRetriever(texts, cv) as chroma:
        folder = chroma.path
        assert os.path.isdir(folder) and len(chroma) == 300 and chroma.index_bytes() > 0
        ids, scores = chroma.search_vectors(qv, 10)
        exact_ids, exact_scores = ExactIndex(cv).search(qv, 10)
        np.testing.assert_array_equal(ids, exact_ids)
        np.testing.assert_allclose(scores, exact_scores, atol=2e-6)
        ids, _ = chroma.search_vectors(qv[:2], 400)
        assert (ids[:, :300] >= 0).all() and (ids[:, 300:] == -1).all()
    assert not os.path.exists(folder)


def test_chroma_through_search_texts() -> None:
    pytest.importorskip("chromadb")
    texts = ["apples and pears", "pears and plums", "plums", "figs and dates", "apples"]
    questions = ["apples", "figs dates", "plums and pears"]
    with ChromaRetriever(texts, bag_of_words(texts), embed=bag_of_words) as chroma:
        ids, scores, info = search_texts(chroma, chunk_texts=texts, question_texts=questions, k=3)
        exact_ids, exact_scores = ExactIndex(bag_of_words(texts)).search(bag_of_words(questions), 3)
        np.testing.assert_array_equal(ids, exact_ids)
        np.testing.assert_allclose(scores, exact_scores, atol=2e-6)
        assert info["method"] == "ChromaRetriever" and info["index_bytes"] > 0
        with pytest.raises(ValueError, match="scope='corpus' cannot be applied to a Retriever"):
            search_texts(chroma, chunk_texts=texts, question_texts=questions, k=3, scope="corpus",
                         chunk_corpus=[0] * 5, question_corpus=[0] * 3)
        with pytest.raises(TypeError, match="a Retriever object takes no params"):
            search_texts(chroma, chunk_texts=texts, question_texts=questions, k=3, params={"k1": 1.0})


def test_chroma_bad_inputs(tmp_path: object) -> None:
    pytest.importorskip("chromadb")
    with pytest.raises(ValueError, match="chunk_vectors has 2 rows but chunk_texts has 3"):
        ChromaRetriever(["a", "b", "c"], np.eye(2))
    with ChromaRetriever(["a", "b"], np.eye(2), path=str(tmp_path)) as chroma:
        with pytest.raises(ValueError, match="needs embed="):
            chroma.search(["a"], 1)
        with pytest.raises(ValueError, match="question_vectors has 3 columns"):
            chroma.search_vectors(np.ones((1, 3)), 1)
    assert os.path.isdir(str(tmp_path))  # a folder the caller gave is kept


# --------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"method": "tfidf"}, ValueError, r"method='tfidf' is not 'bm25', 'hybrid' or a Retriever"),
    ({"method": 42}, TypeError, r"method must be 'bm25', 'hybrid' or an object with search"),
    ({"k": 0}, ValueError, r"k must be >= 1, got 0"),
    ({"k": True}, TypeError, r"k must be a positive int, got a bool"),
    ({"chunk_texts": "one text"}, TypeError, r"chunk_texts must be a list of str.*wrap a single text"),
    ({"question_texts": ["ok", 3]}, TypeError, r"question_texts\[1\] is int, not str"),
    ({"scope": "doc"}, ValueError, r"scope='doc' is not 'global' or 'corpus'"),
    ({"params": {"k3": 1}}, TypeError, r"unknown bm25 parameters \['k3'\]"),
    ({"params": {"k1": -1}}, ValueError, r"params\['k1'\] = -1 must be a number in \[0.0, inf\]"),
    ({"params": {"b": 2}}, ValueError, r"params\['b'\] = 2 must be a number in \[0.0, 1.0\]"),
    ({"params": {"method": "bm26"}}, ValueError, r"params\['method'\] = 'bm26' is not one of"),
    ({"params": {"stemmer": "klingon"}}, ValueError, r"params\['stemmer'\] = 'klingon' is not a PyStemmer"),
    ({"params": {"stopwords": "klingon"}}, ValueError, r"params\['stopwords'\] = 'klingon'"),
    ({"params": {"token_pattern": "("}}, ValueError, r"params\['token_pattern'\] = '\(' is not a valid regex"),
    ({"params": {"unmatched": "pad"}}, ValueError, r"params\['unmatched'\] = 'pad' is not 'drop' or 'keep'"),
    ({"params": {"rrf_k": 60}}, TypeError, r"unknown bm25 parameters \['rrf_k'\]"),
    ({"scope": "corpus"}, ValueError, r"chunk_corpus is required with scope='corpus'"),
    ({"scope": "corpus", "chunk_corpus": ["a", "a"], "question_corpus": ["b"]}, ValueError,
     r"question_corpus\[0\] = 'b' has no chunks"),
    ({"scope": "corpus", "chunk_corpus": ["a"], "question_corpus": ["a"]}, ValueError,
     r"chunk_corpus must be 1-D with one corpus id per row \(2\)"),
])
def test_bad_bm25_inputs(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"method": "bm25", "chunk_texts": ["a b", "b c"], "question_texts": ["b"], "k": 2}
    with pytest.raises(error, match=match):
        search_texts(**{**args, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"chunk_vectors": None}, r"method='hybrid' needs chunk_vectors and question_vectors"),
    ({"chunk_vectors": np.ones((3, 2))}, r"chunk_vectors has 3 rows but chunk_texts has 2"),
    ({"question_vectors": np.ones((1, 3))}, r"question_vectors has 3 columns"),
    ({"question_vectors": np.ones((2, 2))}, r"question_vectors has 2 rows but question_texts has 1"),
    ({"params": {"depth": 1}}, r"params\['depth'\] = 1 is below k = 2"),
    ({"params": {"rrf_k": -1}}, r"params\['rrf_k'\] = -1 must be an int >= 0"),
    ({"params": {"rrf_k": 0.5}}, r"params\['rrf_k'\] = 0.5 must be an int >= 0"),
])
def test_bad_hybrid_inputs(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"method": "hybrid", "chunk_texts": ["a b", "b c"], "question_texts": ["b"], "k": 2,
                               "chunk_vectors": np.eye(2), "question_vectors": np.ones((1, 2))}
    with pytest.raises(ValueError, match=match):
        search_texts(**{**args, **kwargs})  # type: ignore[arg-type]


def test_bad_rrf_inputs() -> None:
    with pytest.raises(ValueError, match="dense_ids and sparse_ids must be 2-D with one row per question"):
        rrf_fuse(np.zeros((2, 3), dtype=np.int64), np.zeros((1, 3), dtype=np.int64), k=2)
    with pytest.raises(ValueError, match="rrf_k must be an int >= 0"):
        rrf_fuse(np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1), dtype=np.int64), k=1, rrf_k=-3)
    with pytest.raises(TypeError, match="must be integer id arrays, got float64 and int64"):
        rrf_fuse(np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int64), k=1)


def test_bm25_index_direct() -> None:
    index = BM25Index(CHUNKS, PLAIN)
    assert len(index) == 4 and isinstance(index, Retriever)
    scores, matched = index.scores(["elder"])
    assert matched.tolist() == [[False, False, False, True]]
    assert scores[0, 3] == pytest.approx(math.log(1 + 3.5 / 1.5) / (1 + norm(1)), rel=1e-6)


def test_bm25_on_the_bundled_benchmark_equals_bm25s_retrieve() -> None:
    from chunkeval.chunkers import chunk_texts, get_chunker
    from chunkeval.datasets import load

    bm25s: Any = importlib.import_module("bm25s")
    stemmer: Any = importlib.import_module("Stemmer").Stemmer("english")
    data = load("chroma-general")
    texts = list(data.texts)
    chunks = chunk_texts(get_chunker("fixed:200:0").chunk(texts), texts)
    questions = [q["question"] for q in data.questions]
    ids, scores, info = search_texts("bm25", chunk_texts=chunks, question_texts=questions, k=10)
    assert info["params"]["stemmer"] == "english" and ids.shape == (len(questions), 10)
    ref = bm25s.BM25()
    ref.index(bm25s.tokenize(chunks, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    ref_ids, ref_scores = ref.retrieve(bm25s.tokenize(questions, stopwords="en", stemmer=stemmer, show_progress=False),
                                       k=10, show_progress=False)
    valid = ids >= 0
    assert valid.all(axis=1).mean() > 0.99  # nearly every question shares ten chunks' worth of tokens
    np.testing.assert_array_equal(scores[valid], ref_scores[valid])  # same scores, rank by rank
    compared = 0
    for row in range(len(ids)):  # a rank whose score is unique in the row and above the k-th is unambiguous
        for j, value in enumerate(ref_scores[row].tolist()):
            if valid[row, j] and value > ref_scores[row, -1] and (ref_scores[row] == value).sum() == 1:
                assert ids[row, j] == ref_ids[row, j]
                compared += 1
    assert compared > 0.8 * ids.size
