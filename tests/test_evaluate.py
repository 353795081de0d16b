"""The evaluation pipeline: every number ``evaluate()`` reports equals the engine called directly
on the same chunks and the same retrieved ids; options, provenance and files behave as documented.

Only the default-configuration tests run the real model (on ``chatlogs``, 10 questions, through
the session's embedding cache); the others use a cheap deterministic embedder with the same
interface, because what they check is the plumbing around the vectors, not the vectors."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import chunkeval
from chunkeval import RaggedSpans, Spans, char_spans_to_token_spans, datasets, span_metrics
from chunkeval._io import write_parquet_atomic
from chunkeval.chunkers import OffsetChunker, get_chunker
from chunkeval.evaluate import evaluate
from chunkeval.tokenizers import get_tokenizer

CORPUS = "chatlogs"
N_QUESTIONS = 10
PER_QUESTION = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks")


class HashingEmbedder:
    """Bag of hashed words, L2-normalised: deterministic, instant, and texts that share words are
    close, so retrieval finds real evidence some of the time."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1e-3  # no zero vector for a text without words
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class RandomEmbedder:
    """A random unit vector per text (seeded by the text): retrieval ignores corpus boundaries."""

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = [np.random.default_rng(list(hashlib.sha256(t.encode()).digest())).normal(size=32) for t in texts]
        out = np.asarray(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FailingEmbedder:
    """Bad options must be rejected before any text is embedded."""

    def embed(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("embed() was called: the bad argument was not caught up front")


def _subset(corpora: list[str] | None = None, max_questions: int | None = N_QUESTIONS) -> datasets.Dataset:
    if corpora is None:
        corpora = [CORPUS]
    return datasets.load().subset(corpora=corpora, max_questions=max_questions)


def _retrieved(ids: list[list[int]], chunks: Spans) -> RaggedSpans:
    return RaggedSpans.from_lists(
        [[(int(chunks.doc[i]), int(chunks.start[i]), int(chunks.end[i])) for i in row] for row in ids])


def _at(table, k: int):
    """The rows of one cut-off of a long results table."""
    return table.filter(pc.equal(table["k"], k))


def _assert_same_metrics(table, expected, k: int | None = None) -> None:
    table = table if k is None else _at(table, k)
    for name in ("recall", "precision", "iou"):
        np.testing.assert_array_equal(np.asarray(table.column(name)), getattr(expected, name), err_msg=name)
    for name in ("precision_omega", "coverage", "n_evidence_chunks"):
        np.testing.assert_array_equal(np.asarray(table.column(name)), getattr(expected, name), err_msg=name)


# -------------------------------------------------------------------------------- the default run


@pytest.fixture(scope="module")
def default_run(embedding_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("evaluate-out")
    result = evaluate(corpora=[CORPUS], max_questions=N_QUESTIONS, cache_dir=embedding_cache, out_dir=out,
                      show_progress=False)
    return result, out


def test_default_run_equals_the_engine(default_run) -> None:
    result, _ = default_run
    data = _subset()
    chunks = get_chunker("fixed:200:0").chunk(data.texts)
    assert result.chunks == chunks
    table = result.table
    assert table.num_rows == N_QUESTIONS
    assert table.column("question_id").to_pylist() == [q["question_id"] for q in data.questions]
    assert set(table.column("corpus_id").to_pylist()) == {CORPUS}

    ids = table.column("retrieved_chunk_ids").to_pylist()
    scores = table.column("retrieved_scores").to_pylist()
    for row, row_scores in zip(ids, scores, strict=True):
        assert len(row) == 5 and len(set(row)) == 5 and all(0 <= i < len(chunks) for i in row)
        assert row_scores == sorted(row_scores, reverse=True)  # best first
    expected = span_metrics(data.references(), _retrieved(ids, chunks), chunks, k=5, semantics="set")
    _assert_same_metrics(table, expected)

    summary = result.summary
    assert summary["n_questions"] == N_QUESTIONS and summary["k"] == 5
    assert summary["iou_mean"] == float(np.mean(expected.iou))
    assert summary["recall_std"] == float(np.std(expected.recall))
    assert summary["corpora_scores"][CORPUS]["precision_mean"] == float(np.mean(expected.precision))
    # ~50 chunks and ef_search 100: the graph search visits every chunk, so it is exact here.
    assert summary["hnsw_recall_vs_exact"] == 1.0
    assert result.config["retrieval"] == {"method": "hnsw", "scope": "global", "k_search": 5, "M": 16,
                                          "ef_construction": 200, "ef_search": 100, "seed": 0, "num_threads": 1}


def test_saved_files_carry_their_provenance(default_run) -> None:
    result, out = default_run
    data = _subset()
    # Written atomically: the two files and nothing else (no temp file left behind).
    assert sorted(p.name for p in out.iterdir()) == ["results.parquet", "summary.json"]
    assert result.paths == {"results": str(out / "results.parquet"), "summary": str(out / "summary.json")}

    saved = pq.read_table(out / "results.parquet")
    assert saved.equals(result.table.replace_schema_metadata(saved.schema.metadata))
    provenance = json.loads(saved.schema.metadata[b"chunkeval.provenance"])
    assert list(provenance) == saved.column("config_id").unique().to_pylist() == result.config["config_ids"]
    config = provenance[result.config["config_ids"][0]]
    assert config["chunkeval_version"] == chunkeval.__version__
    assert config["dataset"]["fingerprint"] == data.fingerprint()
    assert config["dataset"]["n_questions"] == N_QUESTIONS and config["dataset"]["corpora"] == [CORPUS]
    assert config["chunker"] == {"type": "fixed", "size": 200, "overlap": 0, "tokenizer": "cl100k_base"}
    assert config["embedder"]["name"] == "all-MiniLM-L6-v2" and config["embedder"]["fingerprint"]
    assert (config["k"], config["semantics"], config["units"]) == (5, "set", "chars")

    def no_nan(token: str) -> None:
        raise AssertionError(f"summary.json holds {token}, which is not JSON")

    written = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert written["config"] == {key: value for key, value in config.items()}
    assert written["summary"]["iou_mean"] == result.summary["iou_mean"]
    assert written["summary"]["embedding_stats"]["texts"] == result.chunks.start.size + N_QUESTIONS


def test_rerun_with_a_warm_cache_embeds_nothing(default_run, embedding_cache: Path) -> None:
    first, _ = default_run
    again = evaluate(corpora=[CORPUS], max_questions=N_QUESTIONS, cache_dir=embedding_cache, show_progress=False)
    stats = again.summary["embedding_stats"]
    assert stats["embedded"] == 0
    assert stats["cache_hits"] == stats["unique_texts"] > 0
    assert again.paths == {}
    assert again.table.column("retrieved_chunk_ids").equals(first.table.column("retrieved_chunk_ids"))
    assert again.summary["iou_mean"] == first.summary["iou_mean"]


def test_write_parquet_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa

    path = tmp_path / "results.parquet"
    write_parquet_atomic(path, pa.table({"x": [1, 2]}))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(path, pa.table({"x": [3]}))
    assert os.listdir(tmp_path) == ["results.parquet"]
    monkeypatch.undo()
    assert pq.read_table(path).column("x").to_pylist() == [1, 2]


# ---------------------------------------------------------------- options, with a cheap embedder


def test_token_units_equal_the_engine_on_token_spans() -> None:
    data = _subset()
    chunker = "fixed:150:0:chars"  # character windows: chunk edges fall inside tokens
    result = evaluate(data, chunker=chunker, embedder=HashingEmbedder(), retrieval="exact", units="tokens",
                      k=[1, 3, 5], show_progress=False)
    assert result.config["units"] == "tokens" and result.config["unit_tokenizer"] == "cl100k_base"

    tokenizer = get_tokenizer("cl100k_base")
    offsets = [tokenizer.offsets(text) for text in data.texts]
    chunks = get_chunker(chunker).chunk(data.texts)
    token_chunks = char_spans_to_token_spans(chunks, offsets, name="chunks")  # cl100k tiles: none is empty
    refs = data.references()
    token_refs = char_spans_to_token_spans(refs.spans, offsets, name="references")
    token_refs = RaggedSpans(refs.offsets, token_refs.doc, token_refs.start, token_refs.end)
    ids = result.retrieved.column("retrieved_chunk_ids").to_pylist()
    expected = span_metrics(token_refs, _retrieved(ids, token_chunks), token_chunks, k=[1, 3, 5])
    for k in (1, 3, 5):
        _assert_same_metrics(result.table, expected.at(k), k=k)
        assert _at(result.table, k).column("retrieved_chunk_ids").to_pylist() == [row[:k] for row in ids]
    # Tokens are not characters: the same retrieval measured in characters differs.
    in_chars = span_metrics(refs, _retrieved(ids, chunks), chunks, k=5)
    assert not np.array_equal(in_chars.precision_omega, expected.precision_omega)


def _auto_expectation(refs: RaggedSpans, ids: list[list[int]], chunks: Spans, semantics: str):
    nothing = RaggedSpans(np.zeros(refs.n_questions + 1, dtype=np.int64), [], [], [])
    n_evidence = span_metrics(refs, nothing, chunks, semantics=semantics).n_evidence_chunks
    k_search = min(20, int(n_evidence.max()))
    # Scored on each question's first n_evidence results, cut by hand (not by the engine's k="auto").
    cut = [row[:n] for row, n in zip(ids, n_evidence.tolist(), strict=True)]
    return k_search, n_evidence, span_metrics(refs, _retrieved(cut, chunks), chunks, semantics=semantics)


@pytest.mark.parametrize(("chunker", "semantics"), [("fixed:200:0", "chroma"), ("fixed:200:0", "set"),
                                                    ("fixed:5:0", "chroma")])
def test_k_auto_asks_for_min_20_max_evidence_and_scores_the_first_n_evidence(chunker: str, semantics: str) -> None:
    data = _subset()
    result = evaluate(data, chunker=chunker, embedder=HashingEmbedder(), retrieval="exact", k="auto",
                      semantics=semantics, show_progress=False)
    chunks = get_chunker(chunker).chunk(data.texts)
    ids = result.retrieved.column("retrieved_chunk_ids").to_pylist()
    k_search, n_evidence, expected = _auto_expectation(data.references(), ids, chunks, semantics)
    # Each row of the table holds the part of the ranking its question was scored on.
    cut = [r[:n] for r, n in zip(ids, n_evidence.tolist(), strict=True)]
    assert result.table.column("retrieved_chunk_ids").to_pylist() == cut
    assert set(result.table.column("k").to_pylist()) == {-1}
    assert result.config["retrieval"]["k_search"] == k_search
    assert all(len(row) == k_search for row in ids)  # the retriever was asked for exactly that many
    _assert_same_metrics(result.table, expected)
    assert result.summary["k"] == "auto"
    if chunker == "fixed:5:0":
        assert k_search == 20 and int(n_evidence.max()) > 20  # the cap of Chroma's rule is exercised


def test_k_auto_in_tokens_counts_evidence_chunks_in_tokens() -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    # cl100k: "alpha" [0,5), " beta" [5,10), ... The reference "ta" [8,10) touches only the second
    # chunk in characters, but its token " beta" lies in the first chunk too: 2 evidence chunks.
    data = datasets.Dataset("toy", {"doc": text}, [
        {"question": "beta", "corpus_id": "doc", "references": [{"start_index": 8, "end_index": 10}]},
        {"question": "zeta", "corpus_id": "doc", "references": [{"start_index": 31, "end_index": 35}]},
    ])
    chunker = OffsetChunker(lambda t: [(0, 8), (8, 20), (20, 40), (40, len(t))], name="toy")
    result = evaluate(data, chunker=chunker, embedder=HashingEmbedder(), retrieval="exact", k="auto",
                      units="tokens", show_progress=False)
    assert result.table.column("n_evidence_chunks").to_pylist() == [2, 1]
    assert result.config["retrieval"]["k_search"] == 2  # counted in characters it would be 1
    tokenizer = get_tokenizer("cl100k_base")
    offsets = [tokenizer.offsets(text)]
    chunks = char_spans_to_token_spans(chunker.chunk([text]), offsets)
    refs = data.references()
    token_refs = char_spans_to_token_spans(refs.spans, offsets)
    token_refs = RaggedSpans(refs.offsets, token_refs.doc, token_refs.start, token_refs.end)
    ids = result.retrieved.column("retrieved_chunk_ids").to_pylist()
    k_search, _, expected = _auto_expectation(token_refs, ids, chunks, "set")
    assert k_search == 2 and [len(row) for row in ids] == [2, 2]
    _assert_same_metrics(result.table, expected)


@pytest.mark.parametrize("retrieval", ["exact", "hnsw"])
def test_corpus_scope_never_retrieves_another_corpus(retrieval: str) -> None:
    data = _subset(["chatlogs", "state_of_the_union"], max_questions=30)
    question_doc = data.question_doc()
    assert len(set(question_doc.tolist())) == 2
    runs = {scope: evaluate(data, embedder=RandomEmbedder(), retrieval=retrieval, scope=scope, k=10,
                            show_progress=False) for scope in ("global", "corpus")}
    for scope, result in runs.items():
        ids = result.table.column("retrieved_chunk_ids").to_pylist()
        assert all(len(row) == 10 for row in ids)
        chunk_doc = result.chunks.doc
        foreign = sum(int(chunk_doc[i] != d) for row, d in zip(ids, question_doc.tolist(), strict=True) for i in row)
        if scope == "corpus":
            assert foreign == 0
        else:
            assert foreign > 0  # the check above is not vacuous: a global search does cross corpora
    assert runs["corpus"].config["retrieval"]["scope"] == "corpus"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"units": "furlongs"}, r"units: 'furlongs' is not one of \['chars', 'tokens'\]"),
    ({"scope": "planet"}, r"scope: 'planet' is not one of \['global', 'corpus'\]"),
    ({"semantics": "fuzzy"}, r"semantics: 'fuzzy'"),
    ({"retrieval": "annoy"}, r"retrieval: 'annoy' is not one of \['hnsw', 'exact', 'bm25', 'hybrid'\]"),
    ({"k": 0}, r"k: 0 < 1"),
    ({"k": [5, 1]}, r"increasing order"),
    ({"k": None}, r"k: None"),
    ({"hnsw": {"ef": 10}}, r"hnsw: unknown parameter\(s\) \['ef'\]"),
    ({"retrieval": "exact", "hnsw": {"M": 8}}, r"apply to retrieval='hnsw'"),
    ({"units": "tokens", "unit_tokenizer": "no-such-tokenizer"}, r"unknown tokenizer 'no-such-tokenizer'"),
    ({"corpora": []}, r"no questions to evaluate \(corpora=\[\]"),
    ({"max_questions": 0}, r"no questions to evaluate .*max_questions=0"),
    ({"corpora": ["no-such-corpus"]}, r"unknown corpus id\(s\) \['no-such-corpus'\]"),
])
def test_bad_arguments_fail_before_any_embedding(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(embedder=FailingEmbedder(), show_progress=False, **kwargs)


def test_summary_json_has_no_nan_literals() -> None:
    from chunkeval.evaluate import _jsonable

    value = {"a": np.float64("nan"), "b": [np.float32("inf"), 1.5, np.int64(3)], 5: (float("-inf"),),
             "c": np.array([1.0, np.nan]), "d": Path("/x")}
    assert json.loads(json.dumps(_jsonable(value), allow_nan=False)) == {
        "a": None, "b": [None, 1.5, 3], "5": [None], "c": [1.0, None], "d": "/x"}


def test_a_retrieved_chunk_without_tokens_still_takes_its_rank() -> None:
    """Under a tokenizer that skips whitespace, a whitespace chunk holds no token: retrieved at rank
    1 it adds nothing, and the chunk at rank 2 only counts from k = 2 on."""
    from chunkeval.evaluate import score
    from chunkeval.tokenizers import HFTokenizer

    text = "aaaa    bbbb"
    chunks = Spans([0, 0, 0], [0, 4, 8], [4, 8, 12])
    refs = RaggedSpans([0, 1], [0], [8], [12])
    ids = np.array([[1, 2]])
    tokenizer = HFTokenizer("all-MiniLM-L6-v2")
    in_chars = score(refs, chunks, ids, [text], k=[1, 2], units="chars")
    in_tokens = score(refs, chunks, ids, [text], k=[1, 2], units="tokens", unit_tokenizer=tokenizer)
    assert in_chars.recall.tolist() == [[0.0, 1.0]]
    assert in_tokens.recall.tolist() == [[0.0, 1.0]]
    # @2 in tokens: R = the "bbbb" tokens only (the whitespace chunk adds no position): precision 1.
    assert in_tokens.precision.tolist() == [[0.0, 1.0]]
    single = score(refs, chunks, ids, [text], k=1, units="tokens", unit_tokenizer=tokenizer)
    assert single.recall.tolist() == [0.0] and single.k == 1
    # auto: one evidence chunk ("bbbb"), so each question is scored on its first result only.
    auto = score(refs, chunks, ids, [text], k="auto", units="tokens", unit_tokenizer=tokenizer)
    assert auto.recall.tolist() == [0.0] and auto.n_evidence_chunks.tolist() == [1]


def test_retrieved_ids_are_checked_not_cast() -> None:
    from chunkeval.evaluate import retrieved_spans

    chunks = Spans([0, 0], [0, 5], [5, 9])
    got = retrieved_spans(np.array([[1, -1], [0, 1]]), chunks)
    assert got.offsets.tolist() == [0, 1, 3] and got.start.tolist() == [5, 0, 5]
    with pytest.raises(TypeError, match="chunk ids must be integers"):
        retrieved_spans(np.array([[0.5, 1.0]]), chunks)
    with pytest.raises(ValueError, match=r"question 1 names chunk id 2, outside the chunk table \(0..1"):
        retrieved_spans(np.array([[1, 0], [2, 0]]), chunks)
