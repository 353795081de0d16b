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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._io import write_bytes_atomic, write_parquet_atomic
from .metrics import SpanMetrics, span_metrics
from .spans import RaggedSpans, Spans

__all__ = ["evaluate", "EvaluationResult", "UnitSpans", "default_cache_dir", "make_embedder", "retrieved_spans",
           "score", "score_units", "search", "search_size", "to_units"]

# Chroma's retrieve=-1 asks the retriever for at most this many results.
CHROMA_AUTO_MAX_RESULTS = 20
SEMANTICS = ("set", "chroma")
UNITS = ("chars", "tokens")
RETRIEVAL_METHODS = ("hnsw", "exact")
SCOPES = ("global", "corpus")


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


def _chunk_ids(ids: Any, n_chunks: int | None) -> np.ndarray:
    """A retriever's ``(n_questions, k)`` result as int64 row ids, checked: a float id or one past
    the chunk table would otherwise select the wrong chunk silently."""
    arr = np.asarray(ids)
    if arr.ndim != 2:
        raise ValueError(f"ids: expected a (n_questions, k) array of chunk ids, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"ids: chunk ids must be integers (-1 for no result), got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = arr < -1
    if n_chunks is not None:
        bad |= arr >= n_chunks
    if bad.any():
        q = int(np.argmax(bad.any(axis=1)))
        raise ValueError(f"ids: question {q} names chunk id {int(arr[q][bad[q]][0])}, outside the chunk table "
                         f"(0..{(n_chunks or 0) - 1}; -1 marks a missing result)")
    return arr


def retrieved_spans(ids: np.ndarray, chunks: Spans) -> RaggedSpans:
    """Ranked chunk ids ``(n_questions, k)`` (``-1`` = no result) → retrieved spans per question."""
    ids = _chunk_ids(ids, len(chunks))
    valid = ids >= 0
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=offsets[1:])
    rows = ids[valid]  # row-major: keeps each question's rank order
    return RaggedSpans(offsets, chunks.doc[rows], chunks.start[rows], chunks.end[rows], name="retrieved")


@dataclass
class UnitSpans:
    """References and chunks in the units the metrics are computed in.

    ``chunk_id`` maps a character chunk id (a retriever's result) to its row in ``chunks``, ``-1``
    for a chunk that holds no token; it is ``None`` in character units, where ids are unchanged.
    """

    references: RaggedSpans
    chunks: Spans
    chunk_id: np.ndarray | None = None

    def ranked_ids(self, ids: np.ndarray) -> np.ndarray:
        """Retrieved character chunk ids → ids into :attr:`chunks`, rank order kept, ``-1`` last."""
        ids = _chunk_ids(ids, len(self.chunk_id) if self.chunk_id is not None else None)
        if self.chunk_id is None:
            return ids
        mapped = np.where(ids >= 0, self.chunk_id[np.maximum(ids, 0)], -1)
        # Chunks without a token leave the ranked lists: squeeze the -1s out, keeping rank order.
        order = np.argsort(mapped < 0, axis=1, kind="stable")
        return np.take_along_axis(mapped, order, axis=1)


def to_units(refs: RaggedSpans, chunks: Spans, texts: list[str], units: str = "chars",
             unit_tokenizer: Any = "cl100k_base") -> UnitSpans:
    """References and chunks measured in ``units``: unchanged for ``"chars"``, mapped with the
    tokenizer's offsets for ``"tokens"`` (docs/metrics.md, *Units*)."""
    if units == "chars":
        return UnitSpans(refs, chunks)
    if units != "tokens":
        raise ValueError(f"units: {units!r} is not one of {list(UNITS)}")
    from .tokenizers import get_tokenizer
    from .units import TokenTable, char_spans_to_token_spans, token_bounds

    tokenizer = get_tokenizer(unit_tokenizer)
    table = TokenTable([tokenizer.offsets(t) for t in texts])
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    chunks.check_within(lengths, "chunks")  # token offsets alone cannot tell a span past the end
    tok_refs = char_spans_to_token_spans(refs.spans, table, name="references", doc_lengths=lengths)
    ref_tokens = RaggedSpans(refs.offsets, tok_refs.doc, tok_refs.start, tok_refs.end, name="references")
    # Map every chunk, remembering which survive, so retrieved ids can be renumbered.
    starts, ends = token_bounds(chunks, table, "chunks")
    keep = ends > starts
    new_id = np.full(len(chunks), -1, dtype=np.int64)
    new_id[keep] = np.arange(int(keep.sum()))
    tok_chunks = Spans(chunks.doc[keep], starts[keep], ends[keep], name="chunks")
    return UnitSpans(ref_tokens, tok_chunks, new_id)


def _jsonable(x: Any) -> Any:
    """Plain JSON values: NaN and infinities (no JSON literal exists for them) become null."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())  # a numpy NaN is NaN too once it is a Python float
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, os.PathLike):
        return os.fspath(x)
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
    """How many results to ask the retriever for: the largest cut-off, or Chroma's auto rule.

    For ``k="auto"`` pass the spans in the units the metrics use (:func:`to_units`): the number of
    evidence chunks is counted there, and a chunk can touch the evidence in tokens but not in
    characters (or the reverse, with a tokenizer that skips whitespace).
    """
    if isinstance(k, str) and k == "auto":
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

    if scope not in SCOPES:
        raise ValueError(f"scope: {scope!r} is not one of {list(SCOPES)}")
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
    """Span metrics of ranked chunk ids (rows of ``chunks``), in characters or tokens."""
    return score_units(to_units(refs, chunks, texts, units, unit_tokenizer), ids, k=k, semantics=semantics,
                       groups=groups, num_threads=num_threads)


def score_units(spans: UnitSpans, ids: np.ndarray, *, k: Any, semantics: str = "set", groups: Any = None,
                num_threads: int | None = None) -> SpanMetrics:
    """Span metrics of ranked character chunk ids against spans already in their units."""
    if spans.chunk_id is None or not (spans.chunk_id < 0).any():
        retrieved = retrieved_spans(spans.ranked_ids(ids), spans.chunks)
        return span_metrics(spans.references, retrieved, spans.chunks, k=k, semantics=semantics,
                            num_threads=num_threads, groups=groups)
    # Some chunks hold no token (whitespace under a tokenizer that skips it). Retrieved, such a
    # chunk still takes its rank but adds nothing, so every cut-off is applied to the character
    # ranking first and the empty chunks are dropped after: one engine call per cut-off.
    from .metrics.api import _parse_k

    ids = np.asarray(ids, dtype=np.int64)
    k_mode, ks, k_label = _parse_k(k)
    if k_mode == 2:  # auto: each question's own cut-off, its number of evidence chunks
        nothing = RaggedSpans(np.zeros(len(spans.references.offsets), dtype=np.int64), [], [], [])
        n_evidence = span_metrics(spans.references, nothing, spans.chunks, semantics=semantics).n_evidence_chunks
        cutoffs = [n_evidence]
    elif k_mode == 1:
        cutoffs = [np.full(len(ids), ids.shape[1], dtype=np.int64)]
    else:
        cutoffs = [np.full(len(ids), int(c), dtype=np.int64) for c in ks]
    columns = []
    for cut in cutoffs:
        kept = np.where(np.arange(ids.shape[1])[None, :] < cut[:, None], ids, -1)
        retrieved = retrieved_spans(spans.ranked_ids(kept), spans.chunks)
        columns.append(span_metrics(spans.references, retrieved, spans.chunks, k=None, semantics=semantics,
                                    num_threads=num_threads, groups=groups))
    first = columns[0]
    stack = (lambda name: np.stack([getattr(c, name) for c in columns], axis=1)) if isinstance(k_label, tuple) \
        else (lambda name: getattr(first, name))
    return SpanMetrics(stack("recall"), stack("precision"), stack("iou"), first.precision_omega, first.coverage,
                       first.n_evidence_chunks, k_label, semantics, first.backend, first.groups)


def hnsw_params(hnsw: dict[str, Any] | None) -> dict[str, Any]:
    """The HNSW parameters a search uses: ``hnsw`` over the index's defaults (for provenance)."""
    from .retrieval import hnsw_defaults

    defaults = hnsw_defaults()
    unknown = sorted(set(hnsw or {}) - set(defaults))
    if unknown:
        raise ValueError(f"hnsw: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **(hnsw or {})}


def check_options(*, k: Any, semantics: str, units: str, retrieval: str, scope: str) -> None:
    """Reject a bad option before any work: a typo must not cost a corpus' worth of embedding."""
    from .metrics.api import _parse_k

    if semantics not in SEMANTICS:
        raise ValueError(f"semantics: {semantics!r} is not one of {list(SEMANTICS)}")
    if units not in UNITS:
        raise ValueError(f"units: {units!r} is not one of {list(UNITS)}")
    if retrieval not in RETRIEVAL_METHODS:
        raise ValueError(f"retrieval: {retrieval!r} is not one of {list(RETRIEVAL_METHODS)}")
    if scope not in SCOPES:
        raise ValueError(f"scope: {scope!r} is not one of {list(SCOPES)}")
    if k is None:
        raise ValueError("k: None would score every retrieved chunk, but the retriever needs a number of results; "
                         "pass a cut-off (5), an increasing list ([1, 3, 5, 10]) or 'auto'")
    _parse_k(k)


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

    check_options(k=k, semantics=semantics, units=units, retrieval=retrieval, scope=scope)
    if not isinstance(k, (str, int)):
        k = [int(v) for v in k]  # a range or an array of cut-offs: plain ints for the engine and the JSON
    if retrieval == "hnsw":
        hnsw = hnsw_params(hnsw)
    elif hnsw:
        raise ValueError(f"hnsw: parameters {sorted(hnsw)} apply to retrieval='hnsw', not {retrieval!r}; drop them")
    unit_tokenizer_name = None
    if units == "tokens":
        from .chunkers.fixed import token_spec
        from .tokenizers import get_tokenizer

        # An unknown tokenizer fails now, not after the embedding; provenance records its spec.
        unit_tokenizer_name = token_spec(get_tokenizer(unit_tokenizer))

    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    t = time.perf_counter()
    data = dataset if isinstance(dataset, ds.Dataset) else ds.load(dataset)
    if corpora is not None or max_questions is not None:
        data = data.subset(corpora=corpora, max_questions=max_questions)
    if len(data) == 0:
        raise ValueError(f"dataset: no questions to evaluate (corpora={corpora!r}, max_questions={max_questions!r}); "
                         "name corpora that have questions and ask for at least one question")
    texts = list(data.texts)
    refs = data.references()
    question_doc = data.question_doc()
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    chunker_obj = get_chunker(chunker)
    chunks = chunker_obj.chunk(texts, show_progress=show_progress)
    pieces = chunk_texts(chunks, texts)
    # Token units map every span once; Chroma's auto rule counts evidence chunks in those units.
    unit_spans = to_units(refs, chunks, texts, units, unit_tokenizer)
    timings["chunk"] = time.perf_counter() - t

    t = time.perf_counter()
    embedder_obj = make_embedder(embedder, device=device, precision=precision, batch_size=batch_size,
                                 cache_dir=cache_dir, show_progress=show_progress)
    chunk_vectors = embedder_obj.embed(pieces)
    question_vectors = embedder_obj.embed([q["question"] for q in data.questions])
    timings["embed"] = time.perf_counter() - t

    k_search = search_size(k, unit_spans.references, unit_spans.chunks, semantics)
    ids, scores, hnsw_recall, search_timings = search(
        chunk_vectors, question_vectors, k_search, method=retrieval, scope=scope, chunk_doc=chunks.doc,
        question_doc=question_doc, hnsw=hnsw, check_recall=check_hnsw_recall)
    timings.update(search_timings)

    t = time.perf_counter()
    corpus_ids = [q["corpus_id"] for q in data.questions]
    result = score_units(unit_spans, ids, k=k, semantics=semantics, groups=np.asarray(corpus_ids, dtype=object),
                         num_threads=num_threads)
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
        "unit_tokenizer": unit_tokenizer_name,
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
        # The summary goes first: results.parquet is the last file written, so its presence means the
        # run finished and both files belong to it (each carries the full configuration).
        write_bytes_atomic(out_path / "summary.json",
                           json.dumps(_jsonable({"config": config, "summary": summary}), indent=2).encode())
        write_parquet_atomic(out_path / "results.parquet", table.replace_schema_metadata(meta))
        out.paths = {"results": str(out_path / "results.parquet"), "summary": str(out_path / "summary.json")}
    return out
