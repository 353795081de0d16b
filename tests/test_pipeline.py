"""The stage layer: each stage is a function of its inputs, token units score every cut-off in one
engine pass, and evaluate() checks what it can before any work."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from chunkeval import RaggedSpans, Spans, datasets, span_metrics
from chunkeval import pipeline as pl
from chunkeval.chunkers import get_chunker
from chunkeval.evaluate import evaluate
from chunkeval.tokenizers import HFTokenizer
from test_evaluate import HashingEmbedder


class CountingEmbedder(HashingEmbedder):
    """Bag of hashed words, and a record of every text it was asked to embed."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(dim=64)
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += list(texts)
        return super().embed(texts)


class FailingEmbedder:
    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("embed() was called: the bad argument was not caught up front")


def test_chunk_stage_gives_exact_spans_and_row_ids() -> None:
    docs = pa.table({"doc": [0, 1], "corpus_id": ["a", "b"], "text": ["one two three. four five.", "six seven."]})
    chunks = pl.chunk_stage(docs, get_chunker("fixed:2:0"))
    assert chunks.column("chunk_id").to_pylist() == list(range(chunks.num_rows))
    texts = docs.column("text").to_pylist()
    for row in chunks.to_pylist():
        assert texts[row["doc"]][row["start"]:row["end"]] == row["text"]
    # A batch keeps its documents' numbers.
    batch = pl.chunk_stage(docs.slice(1), get_chunker("fixed:2:0"))
    assert set(batch.column("doc").to_pylist()) == {1}


def test_embed_stage_appends_vectors_in_row_order() -> None:
    table = pa.table({"text": ["alpha", "beta", "alpha"]})
    out = pl.embed_stage(table, CountingEmbedder())
    vectors = pl.vectors_of(out)
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_search_stage_reports_index_bytes_and_exact_recall() -> None:
    rng = np.random.default_rng(0)
    chunks = rng.normal(size=(50, 8)).astype(np.float32)
    questions = rng.normal(size=(5, 8)).astype(np.float32)
    exact = pl.search_stage(chunks, questions, 3, method="exact")
    hnsw = pl.search_stage(chunks, questions, 3, method="hnsw")
    assert exact.index_bytes == chunks.nbytes and hnsw.index_bytes > chunks.nbytes
    assert exact.hnsw_recall is None and hnsw.hnsw_recall == 1.0
    np.testing.assert_array_equal(exact.ids, hnsw.ids)
    assert exact.table().column("retrieved_chunk_ids").to_pylist() == exact.ids.tolist()


def _per_cutoff_oracle(spans: pl.UnitSpans, ids: np.ndarray, ks: list[int]) -> np.ndarray:
    """recall per cut-off the slow way: cut the character ranking, drop tokenless chunks, score all."""
    columns = []
    for k in ks:
        kept = np.where(np.arange(ids.shape[1])[None, :] < k, ids, -1)
        retrieved = pl.retrieved_spans(spans.ranked_ids(kept), spans.chunks)
        columns.append(span_metrics(spans.references, retrieved, spans.chunks, k=None).recall)
    return np.stack(columns, axis=1)


def test_token_units_score_every_cut_off_in_one_engine_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # "aaaa    bbbb    cccc": under MiniLM's tokenizer the whitespace chunks hold no token.
    text = "aaaa    bbbb    cccc"
    chunks = Spans([0] * 5, [0, 4, 8, 12, 16], [4, 8, 12, 16, 20])
    refs = RaggedSpans([0, 1, 2], [0, 0], [8, 0], [12, 20])
    spans = pl.unit_stage(refs, chunks, [text], "tokens", HFTokenizer("all-MiniLM-L6-v2"))
    assert spans.chunk_id is not None and spans.chunk_id.tolist() == [0, -1, 1, -1, 2]
    ids = np.array([[1, 2, 3, 4, 0], [4, 3, 2, 1, 0]])
    ks = [1, 2, 3, 5]
    calls: list[object] = []
    real = pl.span_metrics

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("k"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "span_metrics", counting)
    scoring = pl.score_stage(spans, ids, k=ks)
    # One pass for the span metrics, however many cut-offs (every prefix of the token rows at once),
    # and one for the rank metrics, where a chunk without a token keeps its (irrelevant) rank.
    assert calls == [[1, 2, 3], ks]
    monkeypatch.setattr(pl, "span_metrics", real)
    np.testing.assert_array_equal(scoring.metrics.recall, _per_cutoff_oracle(spans, ids, ks))
    # By hand: question 0 retrieves [ws, bbbb, ws, cccc, aaaa]; its reference is bbbb.
    assert scoring.metrics.recall[0].tolist() == [0.0, 1.0, 1.0, 1.0]
    # Question 1's reference is the whole text (3 tokens); it retrieves [cccc, ws, bbbb, ws, aaaa].
    assert scoring.metrics.recall[1].tolist() == [1 / 3, 1 / 3, 2 / 3, 1.0]
    assert scoring.scored.tolist() == [[1, 2, 3, 5], [1, 2, 3, 5]]
    # Rank metrics on the character ranking, W(i) = 1 / log2(i + 1). Question 0: bbbb (the one
    # relevant chunk) at rank 2. Question 1: cccc, bbbb and aaaa (all relevant) at ranks 1, 3, 5.
    def w(i: int) -> float:
        return 1.0 / math.log2(i + 1)

    m = scoring.metrics
    assert m.hit is not None and m.mrr is not None and m.map is not None and m.ndcg is not None
    assert m.hit.tolist() == [[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    assert m.mrr.tolist() == [[0.0, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]]
    assert m.map.tolist() == [[0.0, 0.5, 0.5, 0.5],
                              [1 / 3, 1 / 3, (1 + 2 / 3) / 3, (1 + 2 / 3 + 3 / 5) / 3]]
    assert m.ndcg.tolist() == [[0.0, w(2) / w(1), w(2) / w(1), w(2) / w(1)],
                               [1.0, w(1) / (w(1) + w(2)), (w(1) + w(3)) / (w(1) + w(2) + w(3)),
                                (w(1) + w(3) + w(5)) / (w(1) + w(2) + w(3))]]
    assert np.array_equal(m.ndcg_graded, m.ndcg)  # every gain is one token


def test_out_is_checked_before_any_work(tmp_path: Path) -> None:
    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"out_dir .*results.txt: is a file; pass a folder"):
        evaluate(embedder=FailingEmbedder(), out_dir=a_file, show_progress=False)


def test_max_questions_embeds_only_the_corpora_it_keeps() -> None:
    embedder = CountingEmbedder()
    data = datasets.load()
    result = evaluate(data, embedder=embedder, max_questions=1, retrieval="exact", show_progress=False)
    (corpus,) = set(result.table.column("corpus_id").to_pylist())
    text = data.corpora[corpus]
    n_questions = 1
    assert result.table.num_rows == n_questions
    chunk_texts = embedder.texts[:-n_questions]
    assert chunk_texts and all(piece in text for piece in chunk_texts)
    assert result.config["dataset"]["corpora"] == [corpus]


def test_bm25_and_hybrid_retrieval_through_evaluate() -> None:
    pytest.importorskip("bm25s")
    data = datasets.load().subset(corpora=["chatlogs"], max_questions=10)
    bm25_embedder = CountingEmbedder()
    bm25 = evaluate(data, embedder=bm25_embedder, retrieval="bm25", k=[1, 5], show_progress=False)
    # BM25 alone reads only the texts: nothing is embedded.
    assert bm25_embedder.texts == []
    assert bm25.config["retrieval"]["method"] == "bm25" and bm25.config["retrieval"]["retriever"]["k1"] == 1.5
    assert set(bm25.table.column("retrieval").to_pylist()) == {"bm25"}
    hybrid = evaluate(data, embedder=CountingEmbedder(), retrieval="hybrid", retrieval_params={"rrf_k": 10}, k=5,
                      show_progress=False)
    assert hybrid.config["retrieval"]["rrf_k"] == 10 == hybrid.config["retrieval"]["retriever"]["rrf_k"]
    # Every number still equals the engine on the retrieved ids the table records.
    chunks = hybrid.chunks
    ids = hybrid.table.column("retrieved_chunk_ids").to_pylist()
    retrieved = RaggedSpans.from_lists([[(int(chunks.doc[i]), int(chunks.start[i]), int(chunks.end[i])) for i in row]
                                        for row in ids])
    expected = span_metrics(data.references(), retrieved, chunks)
    np.testing.assert_array_equal(np.asarray(hybrid.table.column("iou")), expected.iou)
    with pytest.raises(ValueError, match=r"retrieval_params: \['rrf_k'\] apply to retrieval='bm25' or 'hybrid'"):
        evaluate(data, embedder=FailingEmbedder(), retrieval="exact", retrieval_params={"rrf_k": 1},
                 show_progress=False)
