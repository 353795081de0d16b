"""The evaluation pipeline: dataset → chunker → embedder → retrieval → span metrics → results.

``evaluate()`` runs every stage on one configuration and returns the per-question table and the
summary; with ``out_dir`` it also writes them (``results.parquet``, ``summary.json``) with the full
configuration, the package version and the dataset's fingerprint, so a result file always says
what produced it. Embeddings go through the embedder's on-disk cache, so a rerun after a crash, or
another configuration that shares chunks or questions, never embeds the same text twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .metrics import SpanMetrics, span_metrics
from .spans import RaggedSpans, Spans

__all__ = ["evaluate", "EvaluationResult", "default_cache_dir", "make_embedder", "retrieved_spans", "score", "search",
           "search_size"]

# Chroma's retrieve=-1 asks the retriever for at most this many results.
CHROMA_AUTO_MAX_RESULTS = 20


def default_cache_dir() -> Path:
    """``$CHUNKEVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/chunkeval``, else ``~/.cache/chunkeval``."""
    if os.environ.get("CHUNKEVAL_CACHE_DIR"):
        return Path(os.environ["CHUNKEVAL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chunkeval"


@dataclass
class EvaluationResult:
    """What one evaluation produced: the per-question table, the summary and how it was made."""

    table: Any  # pyarrow.Table, one row per question
    summary: dict[str, Any]
    config: dict[str, Any]
    metrics: SpanMetrics
    chunks: Spans
    timings: dict[str, float] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def retrieved_spans(ids: np.ndarray, chunks: Spans) -> RaggedSpans:
    """Ranked chunk ids ``(n_questions, k)`` (``-1`` = no result) → retrieved spans per question."""
    ids = np.asarray(ids, dtype=np.int64)
    valid = ids >= 0
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=offsets[1:])
    rows = ids[valid]  # row-major: keeps each question's rank order
    return RaggedSpans(offsets, chunks.doc[rows], chunks.start[rows], chunks.end[rows], name="retrieved")


def _to_tokens(refs: RaggedSpans, chunks: Spans, ids: np.ndarray, texts: list[str], tokenizer: Any):
    """Map references and chunks to token spans; chunks that hold no token leave the ranked lists."""
    from .units import TokenTable, char_spans_to_token_spans, token_bounds

    table = TokenTable([tokenizer.offsets(t) for t in texts])
    tok_refs = char_spans_to_token_spans(refs.spans, table, name="references")
    ref_tokens = RaggedSpans(refs.offsets, tok_refs.doc, tok_refs.start, tok_refs.end, name="references")
    # Map every chunk, remembering which survive, so retrieved ids can be renumbered.
    starts, ends = token_bounds(chunks, table, "chunks")
    keep = ends > starts
    new_id = np.full(len(chunks), -1, dtype=np.int64)
    new_id[keep] = np.arange(int(keep.sum()))
    tok_chunks = Spans(chunks.doc[keep], starts[keep], ends[keep], name="chunks")
    mapped = np.where(ids >= 0, new_id[np.maximum(ids, 0)], -1)
    # Squeeze the -1s out while keeping rank order.
    order = np.argsort(mapped < 0, axis=1, kind="stable")
    mapped = np.take_along_axis(mapped, order, axis=1)
    return ref_tokens, tok_chunks, mapped


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_table_atomic(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and x != x:
        return None
    return x


def make_embedder(
    embedder: Any, *, device: str = "auto", precision: str = "auto", batch_size: int = 64,
    cache_dir: Any = "default", show_progress: bool | None = None,
) -> Any:
    """An embedder object: ``embedder`` itself if it has ``embed``, else an ``Embedder`` for that model."""
    if hasattr(embedder, "embed"):
        return embedder
    if not isinstance(embedder, (str, os.PathLike)):
        raise TypeError(f"embedder must be a model name, a local model path or an object with .embed(texts), "
                        f"got {type(embedder).__name__}")
    from .embedding import Embedder

    cache = default_cache_dir() / "embeddings" if cache_dir == "default" else cache_dir
    return Embedder(str(embedder), device=device, precision=precision, batch_size=batch_size,
                    cache_dir=cache, show_progress=show_progress)


def search_size(k: Any, refs: RaggedSpans, chunks: Spans, semantics: str) -> int:
    """How many results to ask the retriever for: the largest cut-off, or Chroma's auto rule."""
    if k == "auto":
        nothing = RaggedSpans(np.zeros(len(refs.offsets), dtype=np.int64), [], [], [])
        n_evidence = span_metrics(refs, nothing, chunks, semantics=semantics).n_evidence_chunks
        return int(min(CHROMA_AUTO_MAX_RESULTS, max(1, int(n_evidence.max()))))
    return int(max(k)) if isinstance(k, (list, tuple)) else int(k)


def search(
    chunk_vectors: np.ndarray, question_vectors: np.ndarray, k_search: int, *, method: str = "hnsw",
    scope: str = "global", chunk_doc: np.ndarray | None = None, question_doc: np.ndarray | None = None,
    hnsw: dict[str, Any] | None = None, check_recall: bool = True,
) -> tuple[np.ndarray, np.ndarray, float | None, dict[str, float]]:
    """Top-``k_search`` chunk ids per question; with HNSW also its recall against exact search."""
    from .retrieval import build_index, recall_at_k

    if scope not in ("global", "corpus"):
        raise ValueError(f"scope: {scope!r} is not 'global' or 'corpus'")
    groups = chunk_doc if scope == "corpus" else None
    query_groups = question_doc if scope == "corpus" else None
    timings = {}
    t = time.perf_counter()
    params = (hnsw or {}) if method == "hnsw" else {}
    index = build_index(chunk_vectors, groups=groups, method=method, **params)
    timings["index"] = time.perf_counter() - t
    t = time.perf_counter()
    ids, scores = index.search(question_vectors, k_search, query_groups=query_groups)
    timings["search"] = time.perf_counter() - t
    recall = None
    if method == "hnsw" and check_recall:
        exact_ids, _ = build_index(chunk_vectors, groups=groups, method="exact").search(
            question_vectors, k_search, query_groups=query_groups)
        recall = float(recall_at_k(ids, exact_ids))
    return ids, scores, recall, timings


def score(
    refs: RaggedSpans, chunks: Spans, ids: np.ndarray, texts: list[str], *, k: Any, semantics: str = "set",
    units: str = "chars", unit_tokenizer: Any = "cl100k_base", groups: Any = None, num_threads: int | None = None,
) -> SpanMetrics:
    """Span metrics of ranked chunk ids, in characters or tokens."""
    if units == "tokens":
        from .tokenizers import get_tokenizer

        refs, chunks, ids = _to_tokens(refs, chunks, ids, texts, get_tokenizer(unit_tokenizer))
    elif units != "chars":
        raise ValueError(f"units: {units!r} is not 'chars' or 'tokens'")
    return span_metrics(refs, retrieved_spans(ids, chunks), chunks, k=k, semantics=semantics,
                        num_threads=num_threads, groups=groups)


def evaluate(
    dataset: Any = "chroma-general",
    *,
    chunker: Any = "fixed:200:0",
    embedder: Any = "all-MiniLM-L6-v2",
    k: int | list[int] | Literal["auto"] = 5,
    semantics: Literal["set", "chroma"] = "set",
    units: Literal["chars", "tokens"] = "chars",
    unit_tokenizer: Any = "cl100k_base",
    retrieval: Literal["hnsw", "exact"] = "hnsw",
    scope: Literal["global", "corpus"] = "global",
    hnsw: dict[str, Any] | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 64,
    cache_dir: str | os.PathLike[str] | None = "default",
    out_dir: str | os.PathLike[str] | None = None,
    corpora: list[str] | None = None,
    max_questions: int | None = None,
    num_threads: int | None = None,
    show_progress: bool | None = None,
    check_hnsw_recall: bool = True,
) -> EvaluationResult:
    """Evaluate one chunking + embedding + retrieval configuration on a dataset.

    Parameters
    ----------
    dataset:
        A :class:`chunkeval.datasets.Dataset`, the name of a bundled one (``"chroma-general"``),
        or a path that :func:`chunkeval.datasets.load` reads.
    chunker:
        A chunker object or a spec for :func:`chunkeval.chunkers.get_chunker`
        (default ``"fixed:200:0"``: 200 cl100k tokens, no overlap, the reference toolkit's default).
    embedder:
        An object with ``embed(texts) -> ndarray`` (L2-normalised rows), or a model name/path for
        :class:`chunkeval.embedding.Embedder`.
    k:
        Cut-off(s) for the metrics; ``"auto"`` is Chroma's ``retrieve=-1`` (each question scored on
        as many results as it has evidence chunks, at most 20 retrieved).
    units:
        ``"chars"`` or ``"tokens"`` (spans mapped with ``unit_tokenizer``'s offsets).
    retrieval, scope, hnsw:
        ``"hnsw"`` (hnswlib, parameters in ``hnsw``: ``M``, ``ef_construction``, ``ef_search``,
        ``seed``) or ``"exact"``; ``scope="global"`` searches all chunks of all corpora (like the
        reference toolkit), ``"corpus"`` only the question's own corpus.
    cache_dir:
        Embedding cache; ``"default"`` is :func:`default_cache_dir`, ``None`` disables it.
    out_dir:
        When given, ``results.parquet`` and ``summary.json`` are written there atomically.
    """
    from . import datasets as ds
    from .chunkers import chunk_texts, get_chunker

    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    t = time.perf_counter()
    data = dataset if isinstance(dataset, ds.Dataset) else ds.load(dataset)
    if corpora is not None or max_questions is not None:
        data = data.subset(corpora=corpora, max_questions=max_questions)
    if len(data) == 0:
        raise ValueError("dataset: no questions to evaluate (check --corpora / --max-questions)")
    texts = list(data.texts)
    refs = data.references()
    question_doc = data.question_doc()
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    chunker_obj = get_chunker(chunker)
    chunks = chunker_obj.chunk(texts)
    pieces = chunk_texts(chunks, texts)
    timings["chunk"] = time.perf_counter() - t

    t = time.perf_counter()
    embedder_obj = make_embedder(embedder, device=device, precision=precision, batch_size=batch_size,
                                 cache_dir=cache_dir, show_progress=show_progress)
    chunk_vectors = embedder_obj.embed(pieces)
    question_vectors = embedder_obj.embed([q["question"] for q in data.questions])
    timings["embed"] = time.perf_counter() - t

    k_search = search_size(k, refs, chunks, semantics)
    ids, scores, hnsw_recall, search_timings = search(
        chunk_vectors, question_vectors, k_search, method=retrieval, scope=scope, chunk_doc=chunks.doc,
        question_doc=question_doc, hnsw=hnsw, check_recall=check_hnsw_recall)
    timings.update(search_timings)

    t = time.perf_counter()
    corpus_ids = [q["corpus_id"] for q in data.questions]
    result = score(refs, chunks, ids, texts, k=k, semantics=semantics, units=units, unit_tokenizer=unit_tokenizer,
                   groups=np.asarray(corpus_ids, dtype=object), num_threads=num_threads)
    timings["score"] = time.perf_counter() - t

    import pyarrow as pa

    columns: dict[str, Any] = {
        "question_id": [str(q["question_id"]) for q in data.questions],
        "corpus_id": corpus_ids,
    }
    if result.multi_k:
        for j, kk in enumerate(result.k):
            for name in ("recall", "precision", "iou"):
                columns[f"{name}@{kk}"] = getattr(result, name)[:, j]
    else:
        for name in ("recall", "precision", "iou"):
            columns[name] = getattr(result, name)
    columns["precision_omega"] = result.precision_omega
    columns["coverage"] = result.coverage
    columns["n_evidence_chunks"] = result.n_evidence_chunks
    columns["retrieved_chunk_ids"] = pa.array([row[row >= 0].tolist() for row in ids], type=pa.list_(pa.int64()))
    columns["retrieved_scores"] = pa.array([s[r >= 0].tolist() for s, r in zip(scores, ids)],
                                           type=pa.list_(pa.float32()))
    table = pa.table(columns)

    from . import __version__

    embed_config = embedder_obj.config() if hasattr(embedder_obj, "config") else {"name": type(embedder_obj).__name__}
    config = {
        "chunkeval_version": __version__,
        "dataset": {"name": data.name, "fingerprint": data.fingerprint(), "n_questions": len(data),
                    "corpora": list(data.corpus_ids)},
        "chunker": chunker_obj.config(),
        "n_chunks": len(chunks),
        "embedder": embed_config,
        "retrieval": {"method": retrieval, "scope": scope, "k_search": k_search, **(hnsw or {})},
        "k": k,
        "semantics": semantics,
        "units": units,
        "unit_tokenizer": unit_tokenizer if units == "tokens" else None,
        "backend": result.backend,
    }
    summary = result.summary()
    summary["hnsw_recall_vs_exact"] = hnsw_recall
    timings["total"] = time.perf_counter() - t_start
    summary["timings_s"] = dict(timings)
    if hasattr(embedder_obj, "stats"):
        summary["embedding_stats"] = dict(embedder_obj.stats)

    out = EvaluationResult(table, summary, config, result, chunks, timings)
    if out_dir is not None:
        out_path = Path(out_dir)
        meta = {b"chunkeval.config": json.dumps(_jsonable(config)).encode()}
        write_table_atomic(table.replace_schema_metadata(meta), out_path / "results.parquet")
        _write_atomic(out_path / "summary.json",
                      json.dumps(_jsonable({"config": config, "summary": summary}), indent=2).encode())
        out.paths = {"results": str(out_path / "results.parquet"), "summary": str(out_path / "summary.json")}
    return out
