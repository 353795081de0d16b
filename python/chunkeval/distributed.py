"""The pipeline on a Ray cluster: the same stage functions of :mod:`chunkeval.pipeline`, run by Ray.

:func:`run_group_ray` takes the arguments of :func:`chunkeval.pipeline.run_group` and returns the
same :class:`~chunkeval.pipeline.GroupOutput`, computed on Ray:

- chunking: ``map_batches`` of :func:`~chunkeval.pipeline.chunk_stage` over blocks of whole
  documents (a chunker sees each document whole, so the chunks equal the local ones);
- embedding: a class-based ``map_batches`` actor pool running
  :func:`~chunkeval.pipeline.embed_stage`; each actor builds its embedder once, from the model
  name or path plus ``embed_options`` and ``cache_dir`` (so it reads and fills the same on-disk
  cache as the local path), with ``num_gpus=1`` per actor where the cluster has GPUs (``device``
  ``auto`` then picks CUDA and ``precision="auto"`` fp16 behind its calibration check); an
  embedder object that pickles is shipped as it is;
- search: Ray tasks, one per shard of the chunk vectors (contiguous chunk-id ranges), each
  running :func:`~chunkeval.pipeline.search_stage`; the per-shard top-k lists merge into the global
  top-k ordered by (score descending, chunk id ascending), :class:`chunkeval.retrieval.ExactIndex`'s
  own order, so exact search equals the local one. HNSW builds one graph per shard; its recall is
  measured against the same sharded exact search;
- scoring: ``map_batches`` over question batches (``batch_format="pyarrow"``) running
  :func:`~chunkeval.pipeline.score_stage`; per-question metrics do not depend on the batch.

:func:`score_parquet_ray` and :func:`score_parquet_local` score references / retrieved / chunks
Parquet datasets (``chunkeval metrics``' columns) part by part in bounded memory and write the
long results table (:mod:`chunkeval.results`) as Parquet parts, skipping finished parts on rerun.

Ray is imported only when one of these functions runs (``pip install 'chunkeval[distributed]'``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from . import pipeline as pl
from . import results as rs
from ._progress import progress_enabled
from .metrics import RANK_METRIC_NAMES, SpanMetrics
from .spans import RaggedSpans, Spans

if TYPE_CHECKING:
    from .chunkers.base import Chunker
    from .datasets import Dataset

__all__ = ["EmbedderSpec", "ScoreJob", "ensure_ray", "merge_top_k", "run_group_ray", "score_parquet_local",
           "score_parquet_ray", "take_questions"]

#: A search shard holds at least this many chunk vectors (fewer shards otherwise): below it a
#: BLAS may switch to small-matrix kernels whose rounding differs from the one-index product.
MIN_SHARD_ROWS = 4096
#: Texts per embedding batch and questions per scoring batch, unless told otherwise.
EMBED_BATCH = 1024
QUESTION_BATCH = 4096
#: Questions per results part of the Parquet scoring job.
PART_QUESTIONS = 100_000


# ------------------------------------------------------------------------------------------- ray


def ensure_ray(ray_address: str | None = None) -> ModuleType:
    """Ray, initialised: joins the cluster at ``ray_address`` (``"auto"``, ``"ray://host:10001"``,
    ``"host:6379"``), else starts a local one sized to the machine; an initialised Ray is kept."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("engine='ray' needs Ray: pip install 'chunkeval[distributed]' "
                          "(or use engine='local')") from exc
    if not ray.is_initialized():
        if ray_address is not None and (not isinstance(ray_address, str) or not ray_address.strip()):
            raise ValueError(f"ray_address: {ray_address!r} is not an address; pass 'auto', 'host:6379', "
                             "'ray://host:10001' or None for a local cluster")
        ray.init(address=ray_address, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True, configure_logging=True)
    return ray


def _cluster(ray: ModuleType) -> tuple[int, int]:
    """``(CPUs, GPUs)`` of the cluster."""
    resources = ray.cluster_resources()
    return max(1, int(resources.get("CPU", 1))), int(resources.get("GPU", 0))


class _Stages:
    """One progress line per finished stage, on stderr (``show_progress`` as everywhere)."""

    def __init__(self, show: bool | None) -> None:
        self.show = progress_enabled(show)
        self.timings: dict[str, float] = {}

    def done(self, stage: str, started: float, what: str) -> None:
        seconds = time.perf_counter() - started
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        if self.show:
            print(f"chunkeval[ray] {stage}: {what} in {seconds:.1f} s", file=sys.stderr, flush=True)


def _data_context(ray: ModuleType, show: bool) -> None:
    import logging

    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = show
    context.execution_options.verbose_progress = False
    if not show:
        logging.getLogger("ray.data").setLevel(logging.WARNING)


def _collect(ray: ModuleType, dataset: Any) -> pa.Table:
    """Every block of a Ray dataset as one table (block order is not row order: sort after)."""
    tables = [t for t in ray.get(dataset.to_arrow_refs()) if t.num_rows]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")


# ----------------------------------------------------------------------------------------- chunk


class _ChunkerByConfig:
    """A chunker shipped as its config and rebuilt in the worker (``get_chunker(c.config()) == c``
    for the built-in chunkers), for chunkers whose objects do not pickle (a tokenizer's lock)."""

    def __init__(self, config: Mapping[str, Any], embedder: Any) -> None:
        self.config = dict(config)
        self.embedder = embedder
        self._chunker: Chunker | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "embedder": self.embedder, "_chunker": None}

    def get(self) -> Chunker:
        if self._chunker is None:
            from .chunkers import get_chunker

            self._chunker = get_chunker(self.config, embedder=self.embedder)
        return self._chunker


def _portable_chunker(ray: ModuleType, chunker: Chunker, embedder: Any) -> Chunker | _ChunkerByConfig:
    """``chunker`` itself when it pickles, else its config to rebuild it from."""
    try:
        ray.cloudpickle.dumps(chunker)
        return chunker
    except Exception:  # noqa: BLE001 - any pickling failure means: ship the config instead
        config = getattr(chunker, "config", None)
        if not callable(config):
            raise TypeError(f"chunker: {type(chunker).__name__} does not pickle and has no config() to rebuild it "
                            "from; make it picklable to run it on Ray") from None
        portable_embedder = embedder if isinstance(embedder, (str, os.PathLike)) else None
        if portable_embedder is None and embedder is not None:
            try:
                ray.cloudpickle.dumps(embedder)
                portable_embedder = embedder
            except Exception:  # noqa: BLE001
                portable_embedder = getattr(embedder, "model_name", None)
        return _ChunkerByConfig(config(), portable_embedder)


def _chunk_batch(batch: pa.Table, chunker: Chunker | _ChunkerByConfig) -> pa.Table:
    real = chunker.get() if isinstance(chunker, _ChunkerByConfig) else chunker
    return pl.chunk_stage(batch, real, show_progress=False).drop_columns(["chunk_id"])


def _chunk_on_ray(ray: ModuleType, documents: pa.Table, chunker: Chunker, embedder: Any, n_blocks: int) -> pa.Table:
    """:func:`chunk_stage` over blocks of documents; chunk ids renumbered in document order."""
    import ray.data

    n = documents.num_rows
    size = max(1, -(-n // max(1, n_blocks)))
    blocks = [documents.slice(lo, size) for lo in range(0, n, size)] or [documents]
    out = ray.data.from_arrow(blocks).map_batches(_chunk_batch, batch_size=None, batch_format="pyarrow",
                                                  fn_kwargs={"chunker": _portable_chunker(ray, chunker, embedder)})
    table = _collect(ray, out)
    if table.num_rows == 0:
        return pl.chunk_stage(documents.slice(0, 0), chunker, show_progress=False)
    # A document lies in one block, whose chunks keep the chunker's order: a stable sort by
    # document restores the local order.
    order = np.argsort(table.column("doc").to_numpy(), kind="stable")
    table = table.take(pa.array(order))
    ids = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return pa.table({"chunk_id": ids, "doc": table.column("doc").cast(pa.int64()),
                     "start": table.column("start").cast(pa.int64()), "end": table.column("end").cast(pa.int64()),
                     "text": table.column("text").cast(pa.large_string())})


# ----------------------------------------------------------------------------------------- embed


@dataclass(frozen=True)
class EmbedderSpec:
    """How an actor builds its embedder: a model name or local path, :class:`chunkeval.embedding.Embedder`
    keyword options, and the cache folder (a path every worker reads, or ``None``)."""

    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None

    def build(self) -> Any:
        from .embedding import Embedder

        return Embedder(self.model, cache_dir=self.cache_dir, show_progress=False, **dict(self.options))


def _embedder_spec(embedder: Any, embed_options: Mapping[str, Any] | None, cache_dir: Any, gpus: int) -> Any:
    """What the actors receive: an :class:`EmbedderSpec` for a model name, path or chunkeval
    ``Embedder``; any other object with ``embed`` as it is (it must pickle)."""
    from .embedding import Embedder

    if isinstance(embedder, (str, os.PathLike)):
        cache: str | None
        if cache_dir == "default":
            from .evaluate import default_cache_dir

            cache = str(default_cache_dir() / "embeddings")
        else:
            cache = None if cache_dir is None else os.fspath(cache_dir)
        options = dict(embed_options or {})
        allowed = {"device", "precision", "batch_size", "max_length", "normalize", "num_threads", "backend"}
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"embed_options: unknown option(s) {sorted(unknown)}; pass any of {sorted(allowed)} "
                             "(chunkeval.embedding.Embedder's options)")
        return EmbedderSpec(os.fspath(embedder), options, cache)
    if isinstance(embedder, Embedder):
        from .embedding import BUNDLED_MODEL_NAMES

        # Rebuilt in each actor (the same model name keeps the same cache folder); the device is
        # the actor's own: CUDA where it was given a GPU.
        name = embedder.model_name if embedder.model_name in BUNDLED_MODEL_NAMES else str(embedder.spec.model_dir)
        backend = getattr(embedder, "backend_requested", None)
        device = "auto" if gpus and backend in (None, "torch", "auto") else "cpu"
        rebuilt: dict[str, Any] = {"device": device, "precision": embedder.precision_requested,
                                   "batch_size": embedder.batch_size, "max_length": embedder.max_length,
                                   "normalize": embedder.normalize, "num_threads": embedder.num_threads}
        if backend is not None:
            rebuilt["backend"] = backend
        return EmbedderSpec(name, rebuilt, None if embedder.cache_dir is None else str(embedder.cache_dir))
    if not callable(getattr(embedder, "embed", None)):
        raise TypeError(f"embedder must be a model name, a local model path or an object with .embed(texts), "
                        f"got {type(embedder).__name__}")
    return embedder


def _numeric_stats(embedder: Any) -> dict[str, float]:
    stats = getattr(embedder, "stats", None) or {}
    return {k: v for k, v in dict(stats).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class _EmbedActor:
    """One embedding actor: builds the embedder once, then embeds batches of ``(row, text, is_chunk)``."""

    def __init__(self, spec: Any) -> None:
        self.embedder = spec.build() if isinstance(spec, EmbedderSpec) else spec

    def __call__(self, batch: pa.Table) -> pa.Table:
        before = _numeric_stats(self.embedder)
        out = pl.embed_stage(batch.select(["row", "text"]), self.embedder)
        after = _numeric_stats(self.embedder)
        delta: dict[str, Any] = {k: v - before.get(k, 0) for k, v in after.items()}
        count = getattr(self.embedder, "count_tokens", None)
        if callable(count):
            chunk_texts = batch.filter(batch.column("is_chunk")).column("text").to_pylist()
            delta["_embedded_tokens"] = int(count(chunk_texts)) if chunk_texts else 0
        stats = [json.dumps(delta)] + [""] * (out.num_rows - 1)
        return pa.table({"row": out.column("row"), "vector": out.column("vector"),
                         "stats": pa.array(stats[:out.num_rows], pa.string())})


def _embed_on_ray(ray: ModuleType, texts: list[str], n_chunk_texts: int, spec: Any, *, actors: int, gpus: int,
                  batch_size: int) -> tuple[np.ndarray, dict[str, float]]:
    """Vectors of ``texts`` in order (the first ``n_chunk_texts`` are chunks) and the summed stats."""
    import ray.data

    n = len(texts)
    table = pa.table({"row": pa.array(np.arange(n, dtype=np.int64)), "text": pa.array(texts, pa.large_string()),
                      "is_chunk": pa.array(np.arange(n) < n_chunk_texts)})
    blocks = [table.slice(lo, batch_size) for lo in range(0, n, batch_size)]
    remote: dict[str, Any] = {"num_gpus": 1} if gpus else {}
    out = ray.data.from_arrow(blocks).map_batches(
        _EmbedActor, fn_constructor_kwargs={"spec": spec}, batch_size=batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=max(1, actors)), **remote)
    result = _collect(ray, out)
    order = np.argsort(result.column("row").to_numpy(), kind="stable")
    vectors = pl.vectors_of(result.take(pa.array(order)))
    if len(vectors) != n:
        raise RuntimeError(f"embedding on Ray returned {len(vectors)} vectors for {n} texts")
    stats: dict[str, float] = {}
    for raw in result.column("stats").to_pylist():
        if raw:
            for key, value in json.loads(raw).items():
                stats[key] = stats.get(key, 0) + value
    return vectors, stats


# ---------------------------------------------------------------------------------------- search


def merge_top_k(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The global top-``k`` of per-shard top-k lists (global ids, ``-1``/``-inf`` padding):
    ordered by score descending, ties by the lower id, as :class:`chunkeval.retrieval.ExactIndex`."""
    if not parts:
        raise ValueError("parts: no shard results to merge; pass at least one (ids, scores) pair")
    ids = np.concatenate([p[0] for p in parts], axis=1)
    scores = np.concatenate([p[1] for p in parts], axis=1)
    valid = ids >= 0
    key_ids = np.where(valid, ids, np.iinfo(np.int64).max)
    key_scores = np.where(valid, -scores.astype(np.float64), np.inf)
    order = np.lexsort((key_ids, key_scores), axis=-1)[:, :k]
    out_ids = np.take_along_axis(ids, order, axis=1)
    out_scores = np.take_along_axis(scores, order, axis=1)
    missing = ~np.take_along_axis(valid, order, axis=1)
    out_ids[missing] = -1
    out_scores[missing] = -np.inf
    if out_ids.shape[1] < k:  # fewer candidates than k in all shards together
        pad = k - out_ids.shape[1]
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out_ids.astype(np.int64), out_scores.astype(np.float32)


@dataclass
class _ShardResult:
    ids: np.ndarray
    scores: np.ndarray
    exact_ids: np.ndarray | None
    exact_scores: np.ndarray | None
    index_bytes: int
    index_seconds: float
    seconds: float


def _search_shard(vectors: np.ndarray, offset: int, chunk_groups: np.ndarray | None, queries: np.ndarray,
                  query_groups: np.ndarray | None, k: int, method: str, scope: str, hnsw: Mapping[str, Any] | None,
                  exact_too: bool) -> _ShardResult:
    """Top-``k`` of one shard (global ids); with ``exact_too`` also the exact top-``k``."""
    started = time.perf_counter()
    n_q = len(queries)
    rows = np.arange(n_q)
    if scope == "corpus":
        assert chunk_groups is not None and query_groups is not None
        # Questions that search a corpus of this shard: a cross-document question's label is the
        # tuple of its corpora, and it searches their union.
        present = set(np.unique(chunk_groups).tolist())
        rows = np.flatnonzero([bool(present.intersection(g)) if isinstance(g, tuple) else g in present
                               for g in query_groups.tolist()])
    ids = np.full((n_q, k), -1, dtype=np.int64)
    scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    exact_ids = ids.copy() if exact_too else None
    exact_scores = scores.copy() if exact_too else None
    index_bytes = int(vectors.nbytes)
    index_seconds = 0.0
    if len(rows) and len(vectors):
        q = queries if len(rows) == n_q else queries[rows]
        qg = None if query_groups is None else query_groups[rows]
        out = pl.search_stage(vectors, q, k, method=method, scope=scope, chunk_corpus=chunk_groups,
                              question_corpus=qg, hnsw=hnsw, check_recall=False)
        ids[rows] = np.where(out.ids >= 0, out.ids + offset, -1)
        scores[rows] = out.scores
        index_bytes = out.index_bytes
        index_seconds = out.timings.get("index", 0.0)
        if exact_too and exact_ids is not None and exact_scores is not None:
            exact = pl.search_stage(vectors, q, k, method="exact", scope=scope, chunk_corpus=chunk_groups,
                                    question_corpus=qg)
            exact_ids[rows] = np.where(exact.ids >= 0, exact.ids + offset, -1)
            exact_scores[rows] = exact.scores
    return _ShardResult(ids, scores, exact_ids, exact_scores, index_bytes, index_seconds,
                        time.perf_counter() - started)


def _search_on_ray(ray: ModuleType, chunk_vectors: np.ndarray, question_vectors: np.ndarray, k: int, *,
                   method: str, scope: str, chunk_corpus: np.ndarray, question_corpus: np.ndarray,
                   hnsw: Mapping[str, Any] | None, check_recall: bool, shards: int) -> pl.SearchOutput:
    n = len(chunk_vectors)
    shards = max(1, min(shards, n)) if n else 1
    bounds = np.linspace(0, n, shards + 1).astype(np.int64)
    task = ray.remote(num_cpus=1, max_retries=3)(_search_shard)
    queries_ref = ray.put(np.ascontiguousarray(question_vectors, dtype=np.float32))
    groups_ref = ray.put(question_corpus if scope == "corpus" else None)
    exact_too = method == "hnsw" and check_recall
    started = time.perf_counter()
    refs = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        refs.append(task.remote(np.ascontiguousarray(chunk_vectors[lo:hi]), lo,
                                chunk_corpus[lo:hi] if scope == "corpus" else None, queries_ref, groups_ref,
                                k, method, scope, dict(hnsw or {}) if method == "hnsw" else None, exact_too))
    results: list[_ShardResult] = ray.get(refs)
    ids, scores = merge_top_k([(r.ids, r.scores) for r in results], k)
    recall = None
    if exact_too:
        from .retrieval import recall_at_k

        exact_ids, exact_scores = merge_top_k([(r.exact_ids, r.exact_scores) for r in results  # type: ignore[misc]
                                               if r.exact_ids is not None], k)
        recall = float(recall_at_k(ids, exact_ids, approx_scores=scores, exact_scores=exact_scores))
    # The shards run at once: "index" is the slowest shard's build, "search" the whole stage.
    timings = {"index": max(r.index_seconds for r in results), "search": time.perf_counter() - started,
               "search_shard_max": max(r.seconds for r in results)}
    return pl.SearchOutput(ids, scores, recall, int(sum(r.index_bytes for r in results)), timings)


# ----------------------------------------------------------------------------------------- score


def take_questions(refs: RaggedSpans, rows: np.ndarray, name: str = "references") -> RaggedSpans:
    """The spans of questions ``rows`` (in that order) of a ragged table."""
    rows = np.asarray(rows, dtype=np.int64)
    lo, hi = refs.offsets[rows], refs.offsets[rows + 1]
    counts = hi - lo
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    index = np.repeat(lo - offsets[:-1], counts) + np.arange(int(offsets[-1]), dtype=np.int64)
    spans = refs.spans
    return RaggedSpans(offsets, spans.doc[index], spans.start[index], spans.end[index], name=name)


_METRIC_NAMES = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks", *RANK_METRIC_NAMES)
_PER_CUTOFF = ("recall", "precision", "iou", *RANK_METRIC_NAMES)


def _plain_units(spans: pl.UnitSpans) -> dict[str, np.ndarray | None]:
    """A :class:`~chunkeval.pipeline.UnitSpans` as plain arrays (a span table's engine index cache
    is process-local and does not pickle)."""
    refs, chunks = spans.references, spans.chunks
    return {"offsets": refs.offsets, "ref_doc": refs.doc, "ref_start": refs.start, "ref_end": refs.end,
            "doc": chunks.doc, "start": chunks.start, "end": chunks.end, "chunk_id": spans.chunk_id}


def _units(plain: Mapping[str, np.ndarray | None]) -> pl.UnitSpans:
    def need(name: str) -> np.ndarray:
        value = plain[name]
        assert value is not None
        return value

    refs = RaggedSpans(need("offsets"), need("ref_doc"), need("ref_start"), need("ref_end"), name="references")
    return pl.UnitSpans(refs, Spans(need("doc"), need("start"), need("end"), name="chunks"), plain["chunk_id"])


_UNITS_CACHE: dict[Any, pl.UnitSpans] = {}


def _score_batch(batch: pa.Table, spans_ref: Any, k: Any, semantics: str, num_threads: int | None) -> pa.Table:
    import ray

    key = spans_ref[0]
    spans = _UNITS_CACHE.get(key)
    if spans is None:  # one span table (and engine index) per worker process, not per batch
        _UNITS_CACHE.clear()
        spans = _UNITS_CACHE[key] = _units(ray.get(key))
    q = batch.column("q").to_numpy()
    ids_column = batch.column("ids").combine_chunks()
    width = ids_column.type.list_size
    ids = ids_column.flatten().to_numpy().reshape(-1, width)
    local = pl.UnitSpans(take_questions(spans.references, q), spans.chunks, spans.chunk_id)
    scoring = pl.score_stage(local, ids, k=k, semantics=pl.semantics_name(semantics), num_threads=num_threads)
    columns: dict[str, Any] = {"q": pa.array(q)}
    for name in _METRIC_NAMES:
        values = np.asarray(getattr(scoring.metrics, name))
        if values.ndim == 2:
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
        else:
            columns[name] = pa.array(values)
    scored = np.asarray(scoring.scored, dtype=np.int64)
    columns["scored"] = pa.FixedSizeListArray.from_arrays(pa.array(scored.reshape(-1)), scored.shape[1])
    columns["backend"] = pa.array([scoring.metrics.backend] * len(q), pa.string())
    return pa.table(columns)


def _column_array(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        return np.asarray(column.flatten().to_numpy()).reshape(-1, column.type.list_size)
    return np.asarray(column.to_numpy())


def _score_on_ray(ray: ModuleType, spans: pl.UnitSpans, ids: np.ndarray, *, k: Any, semantics: str,
                  groups: np.ndarray, num_threads: int | None, batch_size: int) -> pl.Scoring:
    import ray.data

    mode, ks, label = pl.parse_k(k)
    n_q, width = ids.shape
    flat = pa.array(np.ascontiguousarray(ids, dtype=np.int64).reshape(-1))
    table = pa.table({"q": pa.array(np.arange(n_q, dtype=np.int64)),
                      "ids": pa.FixedSizeListArray.from_arrays(flat, width)})
    blocks = [table.slice(lo, batch_size) for lo in range(0, n_q, batch_size)] or [table]
    spans_ref = [ray.put(_plain_units(spans))]  # in a list: Ray Data passes it on unresolved, each batch reads it once
    out = ray.data.from_arrow(blocks).map_batches(
        _score_batch, batch_size=batch_size, batch_format="pyarrow",
        fn_kwargs={"spans_ref": spans_ref, "k": k, "semantics": semantics, "num_threads": num_threads})
    result = _collect(ray, out)
    result = result.take(pa.array(np.argsort(result.column("q").to_numpy(), kind="stable")))
    values = {name: _column_array(result, name) for name in _METRIC_NAMES}
    if not isinstance(label, tuple):
        for name in _PER_CUTOFF:
            values[name] = values[name].reshape(-1)
    backend = str(result.column("backend")[0]) if result.num_rows else "cpp"
    metrics = SpanMetrics(values["recall"], values["precision"], values["iou"], values["precision_omega"],
                          values["coverage"], values["n_evidence_chunks"], label, semantics, backend,
                          np.asarray(groups), **{name: values[name] for name in RANK_METRIC_NAMES})
    cutoffs = ks if mode == 0 else [rs.K_ALL if mode == 1 else rs.K_AUTO]
    return pl.Scoring(metrics, _column_array(result, "scored").astype(np.int64), cutoffs)


# ------------------------------------------------------------------------------------ one group


def run_group_ray(
    dataset: Dataset, chunker: Chunker, embedder: Any, scorers: Sequence[pl.Scorer], attributes: rs.Configuration,
    *, retrieval: str = "hnsw", scope: str = "global", hnsw: Mapping[str, Any] | None = None,
    unit_tokenizer: Any = "cl100k_base", num_threads: int | None = None, check_recall: bool = True,
    question_vectors: np.ndarray | None = None, chunks: pa.Table | None = None, show_progress: bool | None = None,
    ray_address: str | None = None, embed_options: Mapping[str, Any] | None = None, cache_dir: Any = "default",
    search_shards: int | None = None, question_batch: int | None = None, embed_batch: int | None = None,
) -> pl.GroupOutput:
    """:func:`chunkeval.pipeline.run_group` on Ray: the same arguments, the same output.

    ``embedder`` is a model name or local path (each actor builds it from ``embed_options`` and
    ``cache_dir``, ``"default"`` being :func:`chunkeval.evaluate.default_cache_dir`), a chunkeval
    ``Embedder`` (rebuilt in each actor with its options), or any object with ``embed`` that
    pickles. ``search_shards`` (default: one per CPU, each of at least :data:`MIN_SHARD_ROWS`
    chunks), ``question_batch`` and ``embed_batch`` size the work items.
    """
    if retrieval not in ("hnsw", "exact"):
        raise ValueError(f"retrieval: {retrieval!r} is not 'hnsw' or 'exact'")
    if scope not in ("global", "corpus"):
        raise ValueError(f"scope: {scope!r} is not 'global' or 'corpus'")
    for name, value in (("search_shards", search_shards), ("question_batch", question_batch),
                        ("embed_batch", embed_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}: {value!r} is not a positive int; pass a count >= 1 or None")
    if not scorers:
        raise ValueError("scorers: no scoring given; pass at least one pipeline.Scorer")
    ray = ensure_ray(ray_address)
    stages = _Stages(show_progress)
    _data_context(ray, stages.show)
    cpus, gpus = _cluster(ray)
    spec = _embedder_spec(embedder, embed_options, cache_dir, gpus)

    t = time.perf_counter()
    documents = pl.documents_table(dataset)
    if chunks is None:
        chunks = _chunk_on_ray(ray, documents, chunker, embedder, 2 * cpus)
        stages.done("chunk", t, f"{documents.num_rows} documents -> {chunks.num_rows} chunks")
    plan = pl.plan_group(dataset, documents, chunks, scorers, unit_tokenizer)
    timings: dict[str, float] = {"chunk": time.perf_counter() - t}

    t = time.perf_counter()
    chunk_texts = chunks.column("text").to_pylist()
    question_texts = [str(q["question"]) for q in dataset.questions] if question_vectors is None else []
    batch = embed_batch or EMBED_BATCH
    n_texts = len(chunk_texts) + len(question_texts)
    actors = max(1, min(gpus or cpus, -(-n_texts // batch)))
    vectors, stats = _embed_on_ray(ray, chunk_texts + question_texts, len(chunk_texts), spec, actors=actors,
                                   gpus=gpus, batch_size=batch)
    chunk_vectors = vectors[:len(chunk_texts)]
    if question_vectors is None:
        question_vectors = np.ascontiguousarray(vectors[len(chunk_texts):])
    timings["embed"] = time.perf_counter() - t
    stages.done("embed", t, f"{n_texts} texts on {actors} actor(s){' with a GPU each' if gpus else ''}")

    k_search = plan.k_search
    shards = search_shards or max(1, min(cpus, len(chunk_vectors) // MIN_SHARD_ROWS))
    t = time.perf_counter()
    search = _search_on_ray(ray, chunk_vectors, question_vectors, k_search, method=retrieval, scope=scope,
                            chunk_corpus=plan.chunk_corpus,
                            question_corpus=plan.question_corpus if plan.search_corpus is None else plan.search_corpus,
                            hnsw=hnsw,
                            check_recall=check_recall, shards=shards)
    timings.update(search.timings)
    recall = f", HNSW recall {search.hnsw_recall:.4f} against exact" if search.hnsw_recall is not None else ""
    stages.done("search", t, f"{retrieval} top-{k_search} of {len(chunk_vectors)} chunks over {shards} shard(s)"
                + recall)

    t = time.perf_counter()
    embedded_tokens = stats.pop("_embedded_tokens", None)
    cost = {"n_chunks": len(chunks), "embedded_tokens": None if embedded_tokens is None else int(embedded_tokens),
            "index_bytes": search.index_bytes}
    scorings: dict[tuple[str, str], pl.Scoring] = {
        (s.units, s.semantics): _score_on_ray(ray, plan.unit_spans[s.units], search.ids, k=s.k, semantics=s.semantics,
                                              groups=plan.question_corpus, num_threads=num_threads,
                                              batch_size=question_batch or QUESTION_BATCH)
        for s in scorers}
    tables = pl.group_tables(plan, scorers, scorings, search, attributes, cost)
    timings["score"] = time.perf_counter() - t
    stages.done("score", t, f"{len(plan.question_ids)} questions x {len(scorers)} scoring(s)")
    return pl.GroupOutput(tables, scorings, chunks, search, k_search, question_vectors, stats, timings, plan.unit_spans)


# ------------------------------------------------------------------------- Parquet scoring job


@dataclass(frozen=True)
class _Job:
    references: list[str]
    retrieved: list[str]
    chunks: list[str]
    k: Any
    semantics: str
    part_questions: int


def _parts(source: str | os.PathLike[str], name: str) -> list[str]:
    path = Path(source)
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise ValueError(f"{name}: {path} does not exist; pass a Parquet file or a folder of Parquet parts")
    files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise ValueError(f"{name}: folder {path} holds no *.parquet files; pass a folder of Parquet parts")
    return files


def _check_job(references: Any, retrieved: Any, chunks: Any, k: Any, semantics: str,
               part_questions: int) -> _Job:
    if semantics not in ("set", "chroma"):
        raise ValueError(f"semantics: {semantics!r} is not 'set' or 'chroma'")
    mode, _, _ = pl.parse_k(k)
    if mode == 2 and chunks is None:
        raise ValueError("k: 'auto' scores each question on its first n_evidence_chunks results, which needs the "
                         "chunking; pass chunks")
    if isinstance(part_questions, bool) or not isinstance(part_questions, int) or part_questions < 1:
        raise ValueError(f"part_questions: {part_questions!r} is not a positive int")
    refs, rets = _parts(references, "references"), _parts(retrieved, "retrieved")
    if len(refs) != len(rets):
        raise ValueError(f"retrieved: {len(rets)} Parquet part(s) but references has {len(refs)}; write both with "
                         "the same partitioning (part i of each holds the same questions, in the same order)")
    return _Job(refs, rets, [] if chunks is None else _parts(chunks, "chunks"), k, semantics, part_questions)


def _job_key(job: _Job) -> str:
    files = {"references": job.references, "retrieved": job.retrieved, "chunks": job.chunks}
    digest = hashlib.sha256()
    for paths in files.values():
        for path in paths:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return rs.config_id({"files": digest.hexdigest(), "k": job.k, "semantics": job.semantics,
                         "part_questions": job.part_questions})


def _prepare_out(out_dir: str | os.PathLike[str], job: _Job) -> tuple[Path, str]:
    from ._io import write_bytes_atomic

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir: {out} is a file; pass a folder for the results parts")
    key = _job_key(job)
    manifest = out / "job.json"
    record = {"job": key, "references": job.references, "retrieved": job.retrieved, "chunks": job.chunks,
              "k": rs.jsonable(job.k), "semantics": job.semantics, "part_questions": job.part_questions}
    if manifest.is_file():
        previous = json.loads(manifest.read_text(encoding="utf-8")).get("job")
        if previous != key:
            raise ValueError(f"out_dir: {out} holds the parts of another scoring job (inputs, k or semantics "
                             "differ, or the inputs changed); pass a new folder or empty this one")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(manifest, json.dumps(record, indent=1).encode())
    (out / "parts").mkdir(exist_ok=True)
    return out, key


@dataclass
class _Chunking:
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    doc_ids: dict[str, int]
    names: list[str]
    _spans: Spans | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_spans": None}  # the engine index of a span table stays local

    @property
    def spans(self) -> Spans:
        if self._spans is None:
            self._spans = Spans(self.doc, self.start, self.end, name="chunks")
        return self._spans


def _read_chunking(paths: Sequence[str]) -> _Chunking | None:
    if not paths:
        return None
    import pyarrow.parquet as pq

    docs: list[pa.Array] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for path in paths:
        table = pq.read_table(path, columns=["doc", "start", "end"])
        if table.column("doc").null_count:
            row = int(np.flatnonzero(table.column("doc").is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{path}: row {row + 1} has no doc; every span needs doc, start and end")
        docs.append(table.column("doc").cast(pa.string()).combine_chunks())
        starts.append(_int_column(table, "start", path))
        ends.append(_int_column(table, "end", path))
    encoded = pa.concat_arrays(docs).dictionary_encode()
    names = encoded.dictionary.to_pylist()
    doc = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
    start, end = np.concatenate(starts), np.concatenate(ends)
    Spans(doc, start, end, name="chunks")  # checked here, before any worker starts
    return _Chunking(doc, start, end, {name: i for i, name in enumerate(names)}, names)


def _int_column(table: pa.Table, name: str, path: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: row {row + 1} has no {name}; every span needs doc, start and end")
    if not pa.types.is_integer(column.type):
        raise TypeError(f"{path}: column {name} has type {column.type}; span offsets must be integers")
    return np.asarray(column.to_numpy(), dtype=np.int64)


class _QuestionStream:
    """The rows of one Parquet file, grouped by question, read in row batches and handed out as
    whole questions. A question that appears again after another one is an error."""

    def __init__(self, path: str, name: str, columns: list[str], batch_rows: int = 65536) -> None:
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        missing = [c for c in columns if c not in file.schema_arrow.names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; {name} parts have question_id, doc, start, end"
                             + (" and optionally rank" if name == "retrieved" else ""))
        self.path = path
        self._batches = iter(file.iter_batches(batch_size=batch_rows, columns=columns))
        self.ids: list[str] = []  # complete questions not yet taken, in order
        self._counts: list[int] = []
        self._tables: list[pa.Table] = []  # their rows, then the open question's rows
        self._open: str | None = None
        self._open_rows = 0
        self._seen: set[str] = set()
        self._row = 0
        self.done = False

    def fill(self, n: int) -> None:
        """Read until ``n`` complete questions wait, or the file ends."""
        while len(self.ids) < n and not self.done:
            self._read()

    def _read(self) -> None:
        batch = next(self._batches, None)
        if batch is None:
            if self._open is not None:
                self.ids.append(self._open)
                self._counts.append(self._open_rows)
                self._open = None
            self.done = True
            return
        import pyarrow.compute as pc

        table = pa.Table.from_batches([batch])
        qids = table.column("question_id").combine_chunks()
        if qids.null_count:
            row = int(np.flatnonzero(qids.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{self.path}: row {self._row + row + 1} has no question_id")
        qids = qids.cast(pa.string())
        n = len(qids)
        change = np.flatnonzero(pc.not_equal(qids[1:], qids[:-1]).to_numpy(zero_copy_only=False)) + 1 if n > 1 \
            else np.zeros(0, dtype=np.int64)
        run_starts = np.concatenate(([0], change)).astype(np.int64)
        run_ids: list[str] = qids.take(pa.array(run_starts)).to_pylist()
        run_counts = np.diff(np.append(run_starts, n)).tolist()
        if self._open is not None and run_ids[0] == self._open:
            self._open_rows += run_counts[0]
            run_ids, run_counts, run_starts = run_ids[1:], run_counts[1:], run_starts[1:]
        if run_ids:
            if len(set(run_ids)) != len(run_ids) or not self._seen.isdisjoint(run_ids):
                earlier: set[str] = set()
                for qid, lo in zip(run_ids, run_starts.tolist(), strict=True):
                    if qid in self._seen or qid in earlier:
                        raise ValueError(f"{self.path}: row {self._row + lo + 1}: question {qid!r} appears again "
                                         "after other questions; sort the rows by question (all rows of a question "
                                         "together)")
                    earlier.add(qid)
            self._seen.update(run_ids)
            if self._open is not None:
                self.ids.append(self._open)
                self._counts.append(self._open_rows)
            self.ids.extend(run_ids[:-1])
            self._counts.extend(run_counts[:-1])
            self._open, self._open_rows = run_ids[-1], run_counts[-1]
        self._tables.append(table)
        self._row += n

    def take(self, n: int) -> tuple[list[str], np.ndarray, pa.Table]:
        """The first ``n`` complete questions: ids, rows per question, and their rows."""
        ids, counts = self.ids[:n], np.asarray(self._counts[:n], dtype=np.int64)
        rows = int(counts.sum())
        table = pa.concat_tables(self._tables) if len(self._tables) != 1 else self._tables[0]
        self.ids, self._counts = self.ids[n:], self._counts[n:]
        self._tables = [table.slice(rows)] if rows < table.num_rows else []
        return ids, counts, table.slice(0, rows)


def _ragged(table: pa.Table, counts: np.ndarray, doc: np.ndarray, path: str, name: str) -> RaggedSpans:
    """Ragged spans of whole questions' rows (``counts`` rows each); ranked by ``rank`` where
    there is one (ties in file order)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    start, end = _int_column(table, "start", path), _int_column(table, "end", path)
    bad = (start < 0) | (end <= start)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: span [{int(start[row])}, {int(end[row])}) is empty, reversed or negative; spans "
                         "are half-open [start, end) with 0 <= start < end (fix or drop the row)")
    if "rank" in table.column_names:
        column = table.column("rank")
        if column.null_count:
            raise ValueError(f"{path}: a row has no rank; give every row a rank or drop the column (row order is "
                             "then rank order)")
        rank = np.asarray(column.to_numpy(), dtype=np.float64)
        q = np.repeat(np.arange(len(counts)), counts)
        order = np.lexsort((np.arange(len(q)), rank, q))
        doc, start, end = doc[order], start[order], end[order]
    return RaggedSpans(offsets, doc, start, end, name=name)


def _doc_ids(ref_docs: pa.ChunkedArray, ret_docs: pa.ChunkedArray, chunking: _Chunking | None, references: str,
             retrieved: str) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Document ids of the reference and retrieved rows, and the names by id: the chunking's (a
    name it lacks is an error), else those of this batch."""
    import pyarrow.compute as pc

    for path, docs in ((references, ref_docs), (retrieved, ret_docs)):
        if docs.null_count:
            raise ValueError(f"{path}: a row has no doc; every span needs doc, start and end")
    refs = ref_docs.cast(pa.string()).combine_chunks()
    rets = ret_docs.cast(pa.string()).combine_chunks()
    if chunking is None:
        encoded = pa.concat_arrays([refs, rets]).dictionary_encode()
        ids = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
        return ids[:len(refs)], ids[len(refs):], encoded.dictionary
    names = pa.array(chunking.names, pa.string())
    out = []
    for path, docs in ((references, refs), (retrieved, rets)):
        index = pc.index_in(docs, value_set=names)
        if index.null_count:
            first = int(np.flatnonzero(index.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{path}: doc {docs[first].as_py()!r} has no chunk in the chunks dataset; pass the "
                             "chunking of every document the spans name")
        out.append(np.asarray(index.to_numpy(), dtype=np.int64))
    return out[0], out[1], names


def _spans_column(rets: RaggedSpans, scored: np.ndarray, names: pa.Array) -> pa.Array:
    """``retrieved_spans`` of the results table: each question's first ``scored[q]`` retrieved rows."""
    scored = np.asarray(scored, dtype=np.int64)
    offsets = np.zeros(len(scored) + 1, dtype=np.int64)
    np.cumsum(scored, out=offsets[1:])
    index = np.repeat(rets.offsets[:-1] - offsets[:-1], scored) + np.arange(int(offsets[-1]), dtype=np.int64)
    span_type = rs.SCHEMA.field("retrieved_spans").type.value_type
    struct = pa.StructArray.from_arrays(
        [names.take(pa.array(rets.doc[index])), pa.array(rets.start[index]), pa.array(rets.end[index])],
        fields=list(span_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct)


def _score_questions(ids: list[str], ref_counts: np.ndarray, ref_rows: pa.Table, ret_counts: np.ndarray,
                     ret_rows: pa.Table, chunking: _Chunking | None, k: Any, semantics: str, job_key: str,
                     references: str, retrieved: str) -> pa.Table:
    """The results rows of a batch of whole questions (every cut-off), with their provenance."""
    ref_doc, ret_doc, names = _doc_ids(ref_rows.column("doc"), ret_rows.column("doc"), chunking, references, retrieved)
    refs = _ragged(ref_rows, ref_counts, ref_doc, references, "references")
    rets = _ragged(ret_rows, ret_counts, ret_doc, retrieved, "retrieved")
    scoring = pl.score_retrieved(refs, rets, None if chunking is None else chunking.spans, k=k,
                                 semantics=pl.semantics_name(semantics))
    first_doc = names.take(pa.array(refs.doc[refs.offsets[:-1]])).to_pylist()
    column_index = rs.SCHEMA.get_field_index("retrieved_spans")
    tables, provenance = [], {}
    for column, cutoff in enumerate(scoring.cutoffs):
        attributes = rs.Configuration(retrieval="given", k=cutoff, semantics=semantics, units="chars")
        cid = rs.config_id({"job": job_key, "k": cutoff, "semantics": semantics})
        table = rs.results_table(attributes, cid, question_ids=ids, corpus_ids=first_doc,
                                 metrics=scoring.at(column), retrieved_ids=None)
        spans = _spans_column(rets, scoring.scored[:, column], names)
        tables.append(table.set_column(column_index, rs.SCHEMA.field(column_index), spans))
        provenance[cid] = {"job": job_key, "k": cutoff, "semantics": semantics}
    return rs.with_provenance(pa.concat_tables(tables), provenance)


def _score_part(index: int, references: str, retrieved: str, chunking: _Chunking | None, k: Any, semantics: str,
                part_questions: int, out_dir: str, job_key: str) -> tuple[list[str], int]:
    """Score one pair of input parts, writing a results part per ``part_questions`` questions;
    parts already on disk are skipped (their questions are still read, to keep the streams aligned).
    Returns the part paths and the number of questions."""
    import pyarrow.parquet as pq

    from ._io import write_parquet_atomic

    columns = ["question_id", "doc", "start", "end"]
    has_rank = "rank" in pq.ParquetFile(retrieved).schema_arrow.names
    refs = _QuestionStream(references, "references", columns)
    rets = _QuestionStream(retrieved, "retrieved", columns + (["rank"] if has_rank else []))
    written: list[str] = []
    questions = 0
    while True:
        refs.fill(part_questions)
        rets.fill(part_questions)
        n = min(part_questions, len(refs.ids))
        if n == 0:
            if rets.ids:
                raise ValueError(f"{retrieved}: question {rets.ids[0]!r} has no reference in {references} (or the "
                                 "two datasets list questions in different orders)")
            return written, questions
        if rets.ids[:n] != refs.ids[:n]:
            at = next((i for i, (a, b) in enumerate(zip(refs.ids[:n], rets.ids[:n], strict=False)) if a != b),
                      min(n, len(rets.ids)))
            got = f"question {rets.ids[at]!r}" if at < len(rets.ids) else "no more questions"
            raise ValueError(f"{retrieved}: expected the rows of question {refs.ids[at]!r} (the next one in "
                             f"{references}), found {got}; both datasets must list every question, grouped, in the "
                             "same order")
        ids, ref_counts, ref_rows = refs.take(n)
        _, ret_counts, ret_rows = rets.take(n)
        name = Path(out_dir) / "parts" / f"part-{index:05d}-{len(written):06d}.parquet"
        written.append(str(name))
        questions += n
        if not name.is_file():  # written atomically: a part on disk is a finished part
            write_parquet_atomic(name, _score_questions(ids, ref_counts, ref_rows, ret_counts, ret_rows, chunking, k,
                                                        semantics, job_key, references, retrieved))


@dataclass
class ScoreJob:
    """What a Parquet scoring job wrote: the results parts in order, the questions they hold, the
    wall time, and the peak resident memory of the process that scored a part (the largest over the
    workers, in bytes; this process for the local engine)."""

    parts: list[Path]
    questions: int
    seconds: float
    peak_worker_rss: int


def _peak_rss() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _score_part_task(index: int, references: str, retrieved: str, chunking: _Chunking | None, k: Any,
                     semantics: str, part_questions: int, out_dir: str, job_key: str) -> tuple[list[str], int, int]:
    """:func:`_score_part`, plus the worker's peak memory."""
    paths, questions = _score_part(index, references, retrieved, chunking, k, semantics, part_questions, out_dir,
                                   job_key)
    return paths, questions, _peak_rss()


def score_parquet_local(
    references: str | os.PathLike[str], retrieved: str | os.PathLike[str], chunks: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str], *, k: Any = None, semantics: str = "set", part_questions: int = PART_QUESTIONS,
    show_progress: bool | None = None,
) -> ScoreJob:
    """Score Parquet datasets (a file or a folder of parts) in this process, part by part.

    Inputs: ``references`` and ``retrieved`` have columns ``question_id, doc, start, end``
    (``retrieved`` may add ``rank``, 1 = best; else row order is rank order); ``chunks`` has
    ``doc, start, end`` and is read whole (it is the chunking, needed for ``precision_omega`` and
    ``k="auto"``). Both question datasets must be partitioned alike: their parts, in sorted path
    order, pair up, and part *i* of each lists the same questions **grouped** (all rows of a
    question together) and **in the same order**. Memory is bounded by ``part_questions``
    questions plus the chunking. Writes ``out_dir/parts/part-IIIII-JJJJJJ.parquet`` (the results
    schema, ``retrieval="given"``; a results part holds every cut-off of its questions) and
    ``out_dir/job.json``; a rerun skips the parts on disk, so an interrupted job resumes.
    """
    started = time.perf_counter()
    job = _check_job(references, retrieved, chunks, k, semantics, part_questions)
    out, key = _prepare_out(out_dir, job)
    chunking = _read_chunking(job.chunks)
    stages = _Stages(show_progress)
    written: list[str] = []
    questions = 0
    n = len(job.references)
    for index, (refs, rets) in enumerate(zip(job.references, job.retrieved, strict=True)):
        t = time.perf_counter()
        paths, count, _ = _score_part_task(index, refs, rets, chunking, k, semantics, part_questions, str(out), key)
        written += paths
        questions += count
        stages.done("score", t, f"input part {index + 1}/{n}, {len(paths)} results part(s)")
    return ScoreJob([Path(p) for p in written], questions, time.perf_counter() - started, _peak_rss())


def score_parquet_ray(
    references: str | os.PathLike[str], retrieved: str | os.PathLike[str], chunks: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str], *, k: Any = None, semantics: str = "set", ray_address: str | None = None,
    part_questions: int = PART_QUESTIONS, max_workers: int | None = None, show_progress: bool | None = None,
) -> ScoreJob:
    """:func:`score_parquet_local` with one Ray task per pair of input parts: the same inputs, the
    same output files. Every worker reads the input paths, so they must be on a file system all
    nodes share; the chunking is read once and shared through the object store. ``max_workers``
    caps the parts scored at once (default: as many as the cluster has CPUs). Interrupted (Ctrl-C),
    it cancels the running tasks; the parts already written stay valid and a rerun skips them."""
    started = time.perf_counter()
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or max_workers < 1):
        raise ValueError(f"max_workers: {max_workers!r} is not a positive int; pass a count >= 1 or None")
    job = _check_job(references, retrieved, chunks, k, semantics, part_questions)
    out, key = _prepare_out(out_dir, job)
    ray = ensure_ray(ray_address)
    stages = _Stages(show_progress)
    chunking_ref = ray.put(_read_chunking(job.chunks))
    task = ray.remote(num_cpus=1, max_retries=3)(_score_part_task)
    window = max_workers or _cluster(ray)[0]
    pending = list(enumerate(zip(job.references, job.retrieved, strict=True)))
    running: dict[Any, int] = {}
    done: dict[int, tuple[list[str], int, int]] = {}
    t = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < window:
                index, (refs, rets) = pending.pop(0)
                ref = task.remote(index, refs, rets, chunking_ref, k, semantics, part_questions, str(out), key)
                running[ref] = index
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                index = running.pop(ref)
                done[index] = ray.get(ref)
                stages.done("score", t, f"input part {index + 1}/{len(job.references)} "
                            f"({len(done)} done, peak worker memory {done[index][2] / 2**20:.0f} MiB)")
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref)
        raise
    written = [p for index in sorted(done) for p in done[index][0]]
    questions = sum(d[1] for d in done.values())
    return ScoreJob([Path(p) for p in written], questions, time.perf_counter() - started,
                    max((d[2] for d in done.values()), default=0))
