"""The Ray executor (chunkeval.distributed) on a real local Ray cluster: the same stage functions,
the same results as the local pipeline, row for row.

One cluster (``ray.init(num_cpus=2)``) serves the whole module: starting Ray costs tens of seconds
on a small CI machine. The plumbing tests use the cheap deterministic embedders of
``test_evaluate`` (shipped to the workers by value); one test runs the bundled MiniLM model on a
small subset through an on-disk cache that the local path then reads. The two-node cluster is in
``test_distributed_cluster.py``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray", reason="the Ray executor needs pip install 'chunkeval[distributed]'")
import ray  # noqa: E402
import ray.cloudpickle  # noqa: E402

import test_evaluate  # noqa: E402
from chunkeval import RaggedSpans, datasets, distributed  # noqa: E402
from chunkeval import pipeline as pl  # noqa: E402
from chunkeval import results as rs  # noqa: E402
from chunkeval.chunkers import get_chunker  # noqa: E402
from chunkeval.evaluate import configuration, plan_scorer  # noqa: E402
from chunkeval.retrieval import ExactIndex, recall_at_k  # noqa: E402
from chunkeval.span_files import read_span_files  # noqa: E402
from test_evaluate import HashingEmbedder  # noqa: E402

# The workers cannot import the test modules: ship their classes by value.
ray.cloudpickle.register_pickle_by_value(test_evaluate)  # type: ignore[no-untyped-call]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]

CORPORA = ["chatlogs", "wikitexts"]
N_QUESTIONS = 40


class TieEmbedder:
    """Unit vectors with four entries of +-0.5 picked by a hash of the text's first word: dot
    products are exact multiples of 1/4 whatever the summation order, and many chunks tie, so the
    merge's tie-break by chunk id decides the ranking."""

    dim = 16

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = text.split()
            h = sum(map(ord, words[0] if words else "")) if words else 0
            for j in range(4):  # four distinct positions: the norm is exactly 1
                out[i, (h + 3 * j) % self.dim] = 0.5 if (h >> j) & 1 else -0.5
        return out


class DyingEmbedder(HashingEmbedder):
    """Kills its own actor process on its first batch, once (a marker file remembers it)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def embed(self, texts: list[str]) -> np.ndarray:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().embed(texts)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ModuleType]:
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def _data(corpora: list[str] = CORPORA, n: int = N_QUESTIONS) -> datasets.Dataset:
    return datasets.load().subset(corpora=corpora, max_questions=n)


def _scorers(data: datasets.Dataset, chunker: Any, embedder: Any, retrieval: str,
             scope: str = "global") -> list[pl.Scorer]:
    plans: list[tuple[str, Literal["set", "chroma"], list[int] | str]] = [
        ("chars", "set", [1, 3, 5]), ("tokens", "chroma", [1, 3, 5]), ("chars", "chroma", "auto"),
        ("tokens", "set", "auto")]
    return [plan_scorer(data, chunker, embedder, units=u, unit_tokenizer="cl100k_base" if u == "tokens" else None,
                        semantics=s, k=k, retrieval=retrieval, scope=scope, hnsw={}, embed={}).scorer
            for u, s, k in plans]


def _assert_same_group(local: pl.GroupOutput, remote: pl.GroupOutput) -> None:
    assert sorted(local.tables) == sorted(remote.tables)
    for cid, table in local.tables.items():
        assert remote.tables[cid].equals(table), cid
    assert local.chunks.equals(remote.chunks)
    np.testing.assert_array_equal(remote.search.ids, local.search.ids)
    np.testing.assert_array_equal(remote.search.scores, local.search.scores)
    np.testing.assert_array_equal(remote.question_vectors, local.question_vectors)
    assert remote.k_search == local.k_search
    assert remote.search.index_bytes == local.search.index_bytes
    for key, scoring in local.scorings.items():
        assert remote.scorings[key].metrics.summary() == scoring.metrics.summary(), key
        np.testing.assert_array_equal(remote.scorings[key].scored, scoring.scored)


# ------------------------------------------------------------------------------- no cluster needed


def test_merge_top_k_orders_by_score_then_chunk_id() -> None:
    # Shard A holds chunks 0..2, shard B chunks 3..5; 0.5 is tied between 2 and 3 and 4.
    a = (np.array([[1, 2, 0]]), np.array([[0.9, 0.5, 0.1]], dtype=np.float32))
    b = (np.array([[4, 3, -1]]), np.array([[0.5, 0.5, -np.inf]], dtype=np.float32))
    ids, scores = distributed.merge_top_k([b, a], 4)
    assert ids.tolist() == [[1, 2, 3, 4]]
    assert scores.tolist() == [[np.float32(0.9), 0.5, 0.5, 0.5]]
    ids, scores = distributed.merge_top_k([(np.array([[5, -1]]), np.array([[0.2, -np.inf]], dtype=np.float32))], 3)
    assert ids.tolist() == [[5, -1, -1]] and scores[0, 1:].tolist() == [-np.inf, -np.inf]
    with pytest.raises(ValueError, match="parts: no shard results"):
        distributed.merge_top_k([], 3)


def test_take_questions_keeps_each_questions_spans() -> None:
    refs = RaggedSpans.from_lists([[(0, 0, 5)], [(1, 2, 4), (1, 6, 9)], [(2, 1, 3)]])
    taken = distributed.take_questions(refs, np.array([2, 1]))
    assert taken.offsets.tolist() == [0, 1, 3]
    assert taken.doc.tolist() == [2, 1, 1] and taken.start.tolist() == [1, 2, 6] and taken.end.tolist() == [3, 4, 9]


def test_importing_chunkeval_does_not_import_ray() -> None:
    code = "import sys, chunkeval, chunkeval.distributed; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'chunkeval\[distributed\]'"):
        distributed.ensure_ray()


def test_bad_arguments_are_refused_before_ray_starts() -> None:
    data = _data(["chatlogs"], 3)
    chunker, embedder = get_chunker("fixed:200:0"), HashingEmbedder()
    scorers = _scorers(data, chunker, embedder, "exact")[:1]
    attrs = configuration(chunker, embedder, "exact", "global")
    with pytest.raises(ValueError, match="retrieval: 'flat' is not 'hnsw' or 'exact'"):
        distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="flat")
    with pytest.raises(ValueError, match="search_shards: 0 is not a positive int"):
        distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact", search_shards=0)


# ------------------------------------------------------------------------------ the local cluster


@pytest.mark.slow
def test_exact_search_on_ray_equals_local_row_for_row(cluster: ModuleType) -> None:
    """Every metric, every k, both semantics, both units, auto included; three search shards and
    question batches of seven, so the merge and the batching are exercised."""
    data = _data()
    chunker, embedder = get_chunker("fixed:200:0"), HashingEmbedder()
    scorers = _scorers(data, chunker, embedder, "exact")
    attrs = configuration(chunker, embedder, "exact", "global")
    local = pl.run_group(data, chunker, embedder, scorers, attrs, retrieval="exact")
    remote = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact",
                                       show_progress=False, search_shards=3, question_batch=7, embed_batch=50)
    _assert_same_group(local, remote)
    assert len(local.tables) == 3 + 3 + 1 + 1
    assert remote.timings.keys() >= {"chunk", "embed", "search", "score"}


@pytest.mark.slow
def test_corpus_scope_and_recursive_chunker_on_ray_equal_local(cluster: ModuleType) -> None:
    data = _data()
    chunker, embedder = get_chunker("recursive:400:200"), HashingEmbedder()
    scorers = _scorers(data, chunker, embedder, "exact", "corpus")[:2]
    attrs = configuration(chunker, embedder, "exact", "corpus")
    local = pl.run_group(data, chunker, embedder, scorers, attrs, retrieval="exact", scope="corpus")
    remote = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact", scope="corpus",
                                       show_progress=False)
    _assert_same_group(local, remote)
    # Four shards of ~37 chunks, each searched per corpus: the same ids; the scores may differ in
    # the last bits, because a BLAS rounds a tiny matrix product (OpenBLAS's small-matrix kernels)
    # differently from a large one. Default shards hold >= MIN_SHARD_ROWS chunks for that reason.
    sharded = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact", scope="corpus",
                                        show_progress=False, search_shards=4)
    np.testing.assert_array_equal(sharded.search.ids, local.search.ids)
    finite = np.isfinite(local.search.scores)
    np.testing.assert_array_equal(np.isfinite(sharded.search.scores), finite)
    np.testing.assert_allclose(sharded.search.scores[finite], local.search.scores[finite], rtol=0, atol=1e-6)
    corpus_of_chunk = np.asarray(data.corpus_ids)[local.chunks.column("doc").to_numpy()]
    for row, corpus in zip(sharded.search.ids, [q["corpus_id"] for q in data.questions], strict=True):
        assert set(corpus_of_chunk[row[row >= 0]]) == {corpus}


@pytest.mark.slow
def test_sharded_exact_search_breaks_ties_by_chunk_id(cluster: ModuleType) -> None:
    data = _data()
    chunker, embedder = get_chunker("fixed:50:0"), TieEmbedder()
    chunks = pl.chunk_stage(pl.documents_table(data), chunker)
    vectors = embedder.embed(chunks.column("text").to_pylist())
    queries = embedder.embed([q["question"] for q in data.questions])
    expected_ids, expected_scores = ExactIndex(vectors).search(queries, 10)
    # The data really ties at the cut-off: otherwise the tie-break is not tested.
    assert any(len(set(row.tolist())) < 10 for row in expected_scores)
    groups = np.asarray(["all"] * len(vectors), dtype=object)
    query_groups = np.asarray(["all"] * len(queries), dtype=object)
    for shards in (1, 2, 5):
        out = distributed._search_on_ray(ray, vectors, queries, 10, method="exact", scope="global",
                                         chunk_corpus=groups, question_corpus=query_groups, hnsw=None,
                                         check_recall=False, shards=shards)
        np.testing.assert_array_equal(out.ids, expected_ids)
        np.testing.assert_array_equal(out.scores, expected_scores)
        assert out.index_bytes == vectors.nbytes


@pytest.mark.slow
def test_hnsw_per_shard_reports_its_recall_against_exact(cluster: ModuleType) -> None:
    data = _data()
    chunker, embedder = get_chunker("fixed:100:0"), HashingEmbedder()
    scorers = _scorers(data, chunker, embedder, "hnsw")[:1]
    attrs = configuration(chunker, embedder, "hnsw", "global")
    hnsw = {"M": 4, "ef_construction": 8, "ef_search": 2, "seed": 0, "num_threads": 1}
    remote = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="hnsw", hnsw=hnsw,
                                       show_progress=False, search_shards=3)
    exact = pl.run_group(data, chunker, embedder, scorers, replace(attrs, retrieval="exact"), retrieval="exact")
    assert remote.search.hnsw_recall == recall_at_k(remote.search.ids, exact.search.ids,
                                                    approx_scores=remote.search.scores,
                                                    exact_scores=exact.search.scores)
    assert 0.0 < remote.search.hnsw_recall <= 1.0
    # A well-connected graph and a beam wider than any shard visit every vector: exact again.
    wide = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="hnsw",
                                     hnsw={**hnsw, "M": 16, "ef_construction": 200, "ef_search": 400},
                                     show_progress=False, search_shards=3)
    assert wide.search.hnsw_recall == 1.0
    np.testing.assert_array_equal(wide.search.ids, exact.search.ids)
    assert wide.search.index_bytes > exact.search.index_bytes  # the graphs are counted


@pytest.mark.slow
def test_a_killed_embedding_actor_is_retried_with_unchanged_results(cluster: ModuleType, tmp_path: Path) -> None:
    data = _data(["chatlogs"], 10)
    chunker = get_chunker("fixed:200:0")
    marker = tmp_path / "died"
    embedder = DyingEmbedder(str(marker))
    scorers = _scorers(data, chunker, embedder, "exact")[:1]
    attrs = configuration(chunker, embedder, "exact", "global")
    remote = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact",
                                       show_progress=False, embed_batch=16)
    assert marker.is_file()  # an actor did die on its first batch
    local = pl.run_group(data, chunker, HashingEmbedder(), scorers, attrs, retrieval="exact")
    _assert_same_group(local, remote)


@pytest.mark.slow
def test_reused_chunks_and_question_vectors_are_not_recomputed(cluster: ModuleType,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = _data(["chatlogs"], 10)
    chunker, embedder = get_chunker("fixed:200:0"), HashingEmbedder()
    scorers = _scorers(data, chunker, embedder, "exact")[:1]
    attrs = configuration(chunker, embedder, "exact", "global")
    local = pl.run_group(data, chunker, embedder, scorers, attrs, retrieval="exact")
    capsys.readouterr()
    remote = distributed.run_group_ray(data, chunker, embedder, scorers, attrs, retrieval="exact",
                                       chunks=local.chunks, question_vectors=local.question_vectors,
                                       show_progress=True)
    _assert_same_group(local, remote)
    assert remote.question_vectors is local.question_vectors
    # One progress line per stage that ran; the chunks were given, so no chunk line.
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("chunkeval[ray] ")]
    n_chunks = local.chunks.num_rows
    assert [line.split(":")[0] for line in lines] == ["chunkeval[ray] embed", "chunkeval[ray] search",
                                                     "chunkeval[ray] score"]
    assert lines[0].startswith(f"chunkeval[ray] embed: {n_chunks} texts on 1 actor(s) in ")
    assert lines[1].startswith(f"chunkeval[ray] search: exact top-5 of {n_chunks} chunks over 1 shard(s) in ")
    assert lines[2].startswith("chunkeval[ray] score: 10 questions x 1 scoring(s) in ")


@pytest.mark.slow
def test_real_model_on_ray_fills_the_cache_the_local_path_reads(cluster: ModuleType, tmp_path: Path) -> None:
    from chunkeval.embedding import Embedder

    data = _data(["chatlogs"], 5)
    cache = tmp_path / "cache"
    options: dict[str, Any] = {"device": "cpu", "precision": "fp32", "batch_size": 32}
    local_embedder = Embedder("all-MiniLM-L6-v2", cache_dir=cache, show_progress=False, **options)
    chunker = get_chunker("fixed:200:0")
    scorers = _scorers(data, chunker, local_embedder, "exact")[:2]
    attrs = configuration(chunker, local_embedder, "exact", "global")
    remote = distributed.run_group_ray(data, chunker, "all-MiniLM-L6-v2", scorers, attrs, retrieval="exact",
                                       embed_options=options, cache_dir=cache, show_progress=False)
    n_texts = remote.chunks.num_rows + len(data.questions)
    assert remote.embedding_stats["texts"] == n_texts and remote.embedding_stats["embedded"] > 0
    local = pl.run_group(data, chunker, local_embedder, scorers, attrs, retrieval="exact")
    assert local_embedder.stats["embedded"] == 0  # every vector came from the cache the actors filled
    assert local_embedder.stats["cache_hits"] == local_embedder.stats["unique_texts"]
    _assert_same_group(local, remote)
    # The embedder object itself is accepted too (rebuilt in each actor, the same cache).
    again = distributed.run_group_ray(data, chunker, local_embedder, scorers, attrs, retrieval="exact",
                                      show_progress=False)
    assert again.embedding_stats["embedded"] == 0
    _assert_same_group(local, again)


# ------------------------------------------------------------------------ the Parquet scoring job


def _write_span_parts(folder: Path, rows: list[dict[str, Any]], parts: int) -> None:
    folder.mkdir()
    questions = list(dict.fromkeys(r["question_id"] for r in rows))
    per = -(-len(questions) // parts)
    for i in range(parts):
        mine = set(questions[i * per:(i + 1) * per])
        pq.write_table(pa.Table.from_pylist([r for r in rows if r["question_id"] in mine]),
                       folder / f"part-{i}.parquet")


def _span_job(tmp_path: Path, n_questions: int = 23) -> tuple[Path, Path, Path, Path, Path, Path]:
    """References, retrieved (ranked, shuffled inside each question) and chunks of a real chunking,
    as folders of parts and as single files for the in-memory reader."""
    data = _data(["chatlogs"], n_questions)
    chunker = get_chunker("fixed:100:0")
    chunks = chunker.chunk(data.texts)
    refs = data.references()
    rng = np.random.default_rng(0)
    ref_rows, ret_rows = [], []
    names = list(data.corpus_ids)
    for q, question in enumerate(data.questions):
        qid = str(question["question_id"])
        for j in range(refs.offsets[q], refs.offsets[q + 1]):
            ref_rows.append({"question_id": qid, "doc": names[int(refs.doc[j])], "start": int(refs.start[j]),
                             "end": int(refs.end[j])})
        picked = rng.choice(len(chunks), size=6, replace=False)
        ranks = rng.permutation(6) + 1
        for c, rank in zip(picked.tolist(), ranks.tolist(), strict=True):
            ret_rows.append({"question_id": qid, "doc": names[int(chunks.doc[c])], "start": int(chunks.start[c]),
                             "end": int(chunks.end[c]), "rank": rank})
    chunk_rows = [{"doc": names[int(d)], "start": int(s), "end": int(e)}
                  for d, s, e in zip(chunks.doc.tolist(), chunks.start.tolist(), chunks.end.tolist(), strict=True)]
    paths = [tmp_path / n for n in ("refs", "rets", "chunks")]
    _write_span_parts(paths[0], ref_rows, 3)
    _write_span_parts(paths[1], ret_rows, 3)
    paths[2].mkdir()
    pq.write_table(pa.Table.from_pylist(chunk_rows), paths[2] / "chunks.parquet")
    files = [tmp_path / f"{n}.parquet" for n in ("refs", "rets", "chunks")]
    for file, rows in zip(files, (ref_rows, ret_rows, chunk_rows), strict=True):
        pq.write_table(pa.Table.from_pylist(rows), file)
    return paths[0], paths[1], paths[2], files[0], files[1], files[2]


@pytest.mark.parametrize(("k", "semantics"), [([1, 3, 5], "set"), ("auto", "chroma")])
def test_parquet_scoring_equals_the_in_memory_reader(tmp_path: Path, k: Any, semantics: str) -> None:
    refs, rets, chunks, refs_file, rets_file, chunks_file = _span_job(tmp_path)
    job = distributed.score_parquet_local(refs, rets, chunks, tmp_path / "out", k=k, semantics=semantics,
                                          part_questions=4)
    written = job.parts
    assert job.questions == 23 and job.peak_worker_rss > 0
    # 23 questions in input parts of 8, 8 and 7; results parts of at most 4 questions.
    assert [p.name for p in written] == [f"part-{i:05d}-{j:06d}.parquet" for i in range(3) for j in range(2)]
    table = rs.read_results(tmp_path / "out" / "parts")
    inputs = read_span_files(str(refs_file), str(rets_file), str(chunks_file))
    expected = pl.score_retrieved(inputs.references, inputs.retrieved, inputs.chunks, k=k,
                                  semantics=pl.semantics_name(semantics))
    cutoffs = expected.cutoffs
    assert table.num_rows == len(inputs.question_ids) * len(cutoffs)
    for column, cutoff in enumerate(cutoffs):
        rows = table.filter(pa.compute.equal(table["k"], cutoff))
        assert rows.column("question_id").to_pylist() == inputs.question_ids
        for name, values in expected.at(column).items():
            np.testing.assert_array_equal(rows.column(name).to_numpy(), values, err_msg=f"{name} at k={cutoff}")
        spans = rows.column("retrieved_spans").to_pylist()
        offsets = inputs.retrieved.offsets
        for q, row in enumerate(spans):
            lo = offsets[q]
            assert [(s["start"], s["end"]) for s in row] == list(zip(
                inputs.retrieved.start[lo:lo + expected.scored[q, column]].tolist(),
                inputs.retrieved.end[lo:lo + expected.scored[q, column]].tolist(), strict=True))


@pytest.mark.slow
def test_parquet_scoring_on_ray_writes_the_same_parts_and_skips_finished_ones(cluster: ModuleType,
                                                                             tmp_path: Path) -> None:
    refs, rets, chunks, *_ = _span_job(tmp_path)
    local = distributed.score_parquet_local(refs, rets, chunks, tmp_path / "local", k=[1, 5], part_questions=4).parts
    job = distributed.score_parquet_ray(refs, rets, chunks, tmp_path / "ray", k=[1, 5], part_questions=4,
                                        max_workers=1)
    remote = job.parts
    assert job.questions == 23 and job.peak_worker_rss > 0
    assert [p.name for p in remote] == [p.name for p in local]
    for a, b in zip(local, remote, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    # An interrupted job: one part missing. The rerun writes it and leaves the others untouched.
    stamps = {p: p.stat().st_mtime_ns for p in remote}
    remote[1].unlink()
    again = distributed.score_parquet_ray(refs, rets, chunks, tmp_path / "ray", k=[1, 5], part_questions=4).parts
    assert again == remote and remote[1].is_file()
    assert all(p.stat().st_mtime_ns == stamps[p] for p in remote if p != remote[1])
    assert pq.read_table(remote[1]).equals(pq.read_table(local[1]))


def test_parquet_scoring_refuses_misaligned_inputs(tmp_path: Path) -> None:
    refs, rets, chunks, refs_file, rets_file, _ = _span_job(tmp_path)
    with pytest.raises(ValueError, match=r"retrieved: 1 Parquet part\(s\) but references has 3"):
        distributed.score_parquet_local(refs, rets_file, chunks, tmp_path / "o1", k=[1])
    with pytest.raises(ValueError, match="expected the rows of question"):
        distributed.score_parquet_local(refs_file, rets_file.parent / "rets" / "part-1.parquet", chunks,
                                        tmp_path / "o2", k=[1])
    # Question q0's first reference row again after q1: the rows are not grouped by question.
    table, ranked = pq.read_table(refs_file), pq.read_table(rets_file)
    q0, q1 = table.column("question_id")[0].as_py(), ranked.column("question_id").unique()[1].as_py()
    qids = table.column("question_id").to_pylist()
    rows = [i for i, q in enumerate(qids) if q in (q0, q1)]
    split = tmp_path / "split.parquet"
    pq.write_table(table.take(rows + [0]), split)
    two = tmp_path / "two.parquet"
    pq.write_table(ranked.filter(pa.compute.is_in(ranked["question_id"], pa.array([q0, q1]))), two)
    with pytest.raises(ValueError, match="appears again after other questions; sort the rows by question"):
        distributed.score_parquet_local(split, two, chunks, tmp_path / "o3", k=[1])
    distributed.score_parquet_local(refs, rets, chunks, tmp_path / "o4", k=[1])
    with pytest.raises(ValueError, match="holds the parts of another scoring job"):
        distributed.score_parquet_local(refs, rets, chunks, tmp_path / "o4", k=[3])
    with pytest.raises(ValueError, match="k: 'auto' .* needs the chunking; pass chunks"):
        distributed.score_parquet_local(refs, rets, None, tmp_path / "o5", k="auto")


@pytest.mark.slow
def test_sweep_on_ray_equals_local_and_resumes(cluster: ModuleType, tmp_path: Path) -> None:
    """``run_sweep(engine="ray")``: the same parts as the local sweep, and a rerun after a lost part
    recomputes only that configuration."""
    from chunkeval.sweep import run_sweep, sweep_config_from_dict

    def config() -> Any:
        cfg = sweep_config_from_dict({"corpora": CORPORA, "max_questions": N_QUESTIONS,
                                      "chunkers": ["fixed:200:0", "sentence:5"], "k": [1, 5],
                                      "retrieval": {"method": "exact", "scope": "global"}})
        cfg.embedders = [HashingEmbedder()]
        return cfg

    local = pq.read_table(run_sweep(config(), tmp_path / "local", cache_dir=None, show_progress=False))
    remote_path = run_sweep(config(), tmp_path / "ray", cache_dir=None, show_progress=False, engine="ray")
    remote = pq.read_table(remote_path)
    assert remote.equals(local)
    parts = sorted((tmp_path / "ray" / "parts").iterdir())
    victim = parts[1]
    kept = {p.name: p.stat().st_mtime_ns for p in parts if p != victim}
    victim.unlink()
    run_sweep(config(), tmp_path / "ray", cache_dir=None, show_progress=False, engine="ray")
    record = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert record["computed"] == [victim.stem] and len(record["reused"]) == len(parts) - 1
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "parts").iterdir() if p != victim} == kept
    assert pq.read_table(remote_path).equals(local)
