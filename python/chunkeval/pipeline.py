"""The pipeline's stages: chunk → embed → search → score, as functions with explicit inputs and outputs.

Every command runs these functions and nothing else: :func:`chunkeval.evaluate.evaluate` (one
configuration), :func:`chunkeval.sweep.run_sweep` (many, sharing work), ``chunkeval metrics``
(the score stage alone, on a user's own retrieved lists) and a distributed executor (the same
functions over Arrow batches). A stage keeps no state between calls: what it needs is an argument,
what it makes is its return value.

Tables between stages (Arrow, so any engine can move them):

- documents: ``doc`` int64 (row number), ``corpus_id`` string, ``text`` string;
- chunks: ``chunk_id`` int64 (row number), ``doc``, ``start``, ``end`` int64 (character offsets into
  the document), ``text`` string; from :func:`chunk_stage`;
- vectors: the input table plus ``vector`` (fixed-size list of float32, L2-normalised); from
  :func:`embed_stage`;
- retrieved: ``retrieved_chunk_ids`` list<int64>, ``retrieved_scores`` list<float32>, best first,
  one row per question; from :func:`search_stage`.

:func:`score_stage` turns references, chunks and retrieved ids into metrics at every cut-off in one
pass of the metrics engine, in characters or tokens (spans mapped once by :func:`unit_stage`);
:func:`run_group` strings the stages together for one (chunking, embedder) pair and every scoring
of it, returning rows of the results table (:mod:`chunkeval.results`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from . import results as rs
from .metrics import RANK_METRIC_NAMES, SpanMetrics, span_metrics
from .spans import RaggedSpans, Spans

if TYPE_CHECKING:
    from .chunkers.base import Chunker
    from .datasets import Dataset

__all__ = [
    "CHROMA_AUTO_MAX_RESULTS", "Embedder", "GroupOutput", "Scoring", "SearchOutput", "UnitSpans",
    "GroupPlan", "chunk_stage", "documents_table", "embed_stage", "group_tables", "parse_k", "plan_group",
    "retrieved_spans", "run_group",
    "score_stage", "search_stage", "unit_stage", "vectors_of",
]

#: Chroma's ``retrieve=-1`` asks the retriever for at most this many results.
CHROMA_AUTO_MAX_RESULTS = 20
KSpec = int | Sequence[int] | Literal["auto"]
SemanticsName = Literal["set", "chroma"]
BackendName = Literal["auto", "cpp", "numba", "python"]


class Embedder:
    """What the pipeline needs of an embedder: ``embed(texts) -> (n, dim) float32``, L2-normalised.
    (A protocol in spirit; :class:`chunkeval.embedding.Embedder` and any object with ``embed`` fit.)"""

    def embed(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - documentation only
        raise NotImplementedError


def semantics_name(value: str) -> SemanticsName:
    """``value`` checked to be a semantics name."""
    if value == "set":
        return "set"
    if value == "chroma":
        return "chroma"
    raise ValueError(f"semantics: {value!r} is not one of ['set', 'chroma']")


# ------------------------------------------------------------------------------------- documents


def documents_table(dataset: Dataset) -> pa.Table:
    """The documents of a dataset: ``doc`` (its row), ``corpus_id``, ``text``."""
    ids = list(dataset.corpus_ids)
    return pa.table({"doc": pa.array(np.arange(len(ids), dtype=np.int64)), "corpus_id": pa.array(ids, pa.string()),
                     "text": pa.array(list(dataset.texts), pa.large_string())})


# ----------------------------------------------------------------------------------------- chunk


def chunk_stage(documents: pa.Table, chunker: Chunker, *, show_progress: bool | None = None,
                cache_dir: Any = "default") -> pa.Table:
    """Chunk every document: one row per chunk, ``chunk_id`` = row, sorted by document.

    The spans are exact: ``text == document[start:end]``. ``documents`` may be any batch of the
    documents table (``doc`` keeps the batch's document numbers); chunk ids are then local to it.
    A built-in chunker's spans of a document are read from the chunk cache under ``cache_dir``
    (``"default"``, a folder, or ``None`` for none) when an earlier run stored them
    (:mod:`chunkeval.chunk_cache`); the rows are the same either way.
    """
    from .chunk_cache import chunk_cached

    docs = documents.column("doc").to_numpy()
    texts = documents.column("text").to_pylist()
    spans = chunk_cached(chunker, texts, cache_dir=cache_dir, show_progress=show_progress)
    doc = docs[spans.doc] if len(spans) else np.zeros(0, dtype=np.int64)
    start, end = spans.start, spans.end
    pieces = [texts[d][s:e] for d, s, e in zip(spans.doc.tolist(), start.tolist(), end.tolist(), strict=True)]
    return pa.table({"chunk_id": pa.array(np.arange(len(spans), dtype=np.int64)), "doc": pa.array(doc),
                     "start": pa.array(start), "end": pa.array(end), "text": pa.array(pieces, pa.large_string())})


def chunk_spans(chunks: pa.Table) -> Spans:
    """The character spans of a chunks table."""
    return Spans(chunks.column("doc").to_numpy(), chunks.column("start").to_numpy(),
                 chunks.column("end").to_numpy(), name="chunks")


# ----------------------------------------------------------------------------------------- embed


def embed_stage(table: pa.Table, embedder: Any, *, column: str = "text") -> pa.Table:
    """``table`` with a ``vector`` column: ``embedder.embed`` of ``column``'s texts, in row order."""
    texts = table.column(column).to_pylist()
    vectors = np.ascontiguousarray(embedder.embed(texts), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError(f"embedder: embed() returned shape {vectors.shape} for {len(texts)} texts; "
                         "it must return one row per text")
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), pa.float32())
    return table.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, dim))


def vectors_of(table: pa.Table) -> np.ndarray:
    """The ``vector`` column as a C-contiguous ``(n, dim)`` float32 array."""
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    # The child values sliced to this array's rows: FixedSizeListArray.flatten() would import
    # pyarrow.compute (~0.1 s on the warm path).
    values = column.values.slice(column.offset * dim, len(column) * dim)
    return np.ascontiguousarray(values.to_numpy(zero_copy_only=False).reshape(-1, dim))


# ---------------------------------------------------------------------------------------- search


@dataclass
class SearchOutput:
    """Ranked chunk ids per question, and what the search cost."""

    ids: np.ndarray  # (n_questions, k_search) int64, -1 padding at the end
    scores: np.ndarray  # (n_questions, k_search) float32, -inf padding
    hnsw_recall: float | None
    index_bytes: int
    timings: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)  # the retriever's settings, for provenance

    def table(self) -> pa.Table:
        valid = self.ids >= 0
        return pa.table({
            "retrieved_chunk_ids": pa.array([r[v].tolist() for r, v in zip(self.ids, valid, strict=True)],
                                            pa.list_(pa.int64())),
            "retrieved_scores": pa.array([s[v].tolist() for s, v in zip(self.scores, valid, strict=True)],
                                         pa.list_(pa.float32())),
        })


#: Retrieval methods that read the texts (``chunkeval.retrievers``) rather than only the vectors.
TEXT_METHODS = ("bm25", "hybrid")


def search_stage(
    chunk_vectors: np.ndarray | None, question_vectors: np.ndarray | None, k_search: int, *, method: str = "hnsw",
    scope: str = "global", chunk_corpus: np.ndarray | None = None, question_corpus: np.ndarray | None = None,
    hnsw: Mapping[str, Any] | None = None, check_recall: bool = True, chunk_texts: Sequence[str] | None = None,
    question_texts: Sequence[str] | None = None, cache_dir: Any = "default",
) -> SearchOutput:
    """Top-``k_search`` chunks per question: by cosine (``"exact"``, ``"hnsw"``, with HNSW's recall
    against exact search), by BM25 over the texts (``"bm25"``), or the reciprocal-rank fusion of both
    (``"hybrid"``; ``hnsw`` then holds the BM25/fusion parameters).

    ``scope="corpus"`` searches only the chunks whose corpus (``chunk_corpus``) is the question's
    (``question_corpus``). A question whose label is a tuple of corpora (a cross-document question,
    ``Dataset.search_groups()``) searches their union: each distinct set of corpora is one global
    search over its chunks, ids mapped back to chunk rows; ``hnsw_recall`` is then the mean over
    questions and ``index_bytes`` the sum over those searches.

    ``cache_dir`` (``"default"``, a folder, or ``None`` for none) keeps single-threaded HNSW graphs
    between runs (:func:`chunkeval.retrieval.build_index`); the results are the same either way.
    """
    from .retrieval import build_index, recall_at_k

    if scope == "corpus" and question_corpus is not None and any(isinstance(g, tuple) for g in question_corpus):
        if chunk_corpus is None:
            raise ValueError("scope='corpus' needs chunk_corpus: one corpus label per chunk")
        owner = list(chunk_corpus)
        sets = [g if isinstance(g, tuple) else (g,) for g in question_corpus]
        ids = np.full((len(sets), k_search), -1, dtype=np.int64)
        scores = np.full((len(sets), k_search), -np.inf, dtype=np.float32)
        parts: list[tuple[int, SearchOutput]] = []
        for wanted in dict.fromkeys(sets):
            rows = np.asarray([i for i, c in enumerate(owner) if c in wanted], dtype=np.int64)
            asked = np.asarray([i for i, s in enumerate(sets) if s == wanted], dtype=np.int64)
            if len(rows) == 0:
                continue  # no chunk of these corpora: nothing to retrieve, the rows stay padding
            sub = search_stage(
                None if chunk_vectors is None else chunk_vectors[rows],
                None if question_vectors is None else question_vectors[asked], k_search, method=method, hnsw=hnsw,
                check_recall=check_recall, chunk_texts=None if chunk_texts is None else [chunk_texts[i] for i in rows],
                question_texts=None if question_texts is None else [question_texts[i] for i in asked],
                cache_dir=cache_dir)
            ids[asked] = np.where(sub.ids >= 0, rows[np.maximum(sub.ids, 0)], -1)
            scores[asked] = sub.scores
            parts.append((len(asked), sub))
        checked = [(n, part.hnsw_recall) for n, part in parts if part.hnsw_recall is not None]
        recall = sum(n * r for n, r in checked) / sum(n for n, _ in checked) if checked else None
        spent = {name: sum(part.timings.get(name, 0.0) for _, part in parts) for name in ("index", "search")}
        return SearchOutput(ids, scores, recall, sum(part.index_bytes for _, part in parts), dict(spent),
                            parts[0][1].params if parts else {})

    if method in TEXT_METHODS:
        from .retrievers import search_texts

        if chunk_texts is None or question_texts is None:
            raise ValueError(f"retrieval {method!r} reads the texts: pass chunk_texts and question_texts")
        t = time.perf_counter()
        text_method: Literal["bm25", "hybrid"] = "bm25" if method == "bm25" else "hybrid"
        text_scope: Literal["global", "corpus"] = "corpus" if scope == "corpus" else "global"
        ids, scores, info = search_texts(text_method, chunk_texts=list(chunk_texts),
                                         question_texts=list(question_texts), k=k_search, chunk_vectors=chunk_vectors,
                                         question_vectors=question_vectors, scope=text_scope,
                                         chunk_corpus=chunk_corpus, question_corpus=question_corpus,
                                         params=dict(hnsw or {}))
        took = dict(info.get("timings", {}))
        text_timings = {name: float(took[name]) for name in ("index", "search") if name in took}
        text_timings.setdefault("search", time.perf_counter() - t)
        return SearchOutput(ids, scores, None, int(info.get("index_bytes") or 0), text_timings,
                            dict(info.get("params") or {}))
    if chunk_vectors is None or question_vectors is None:
        raise ValueError(f"retrieval {method!r} searches vectors: pass chunk_vectors and question_vectors")

    groups = chunk_corpus if scope == "corpus" else None
    query_groups = question_corpus if scope == "corpus" else None
    timings: dict[str, float] = {}
    t = time.perf_counter()
    params = dict(hnsw or {}) if method == "hnsw" else {}
    # A single-threaded HNSW graph of the same vectors is loaded from cache_dir, not rebuilt (same results).
    index = build_index(chunk_vectors, groups=groups, method=method, scope=scope,  # type: ignore[arg-type]
                        cache_dir=cache_dir, **params)
    timings["index"] = time.perf_counter() - t
    t = time.perf_counter()
    ids, scores = index.search(question_vectors, k_search, query_groups=query_groups)
    timings["search"] = time.perf_counter() - t
    recall = None
    if method == "hnsw" and check_recall:
        exact = build_index(chunk_vectors, groups=groups, method="exact", scope=scope)  # type: ignore[arg-type]
        exact_ids, exact_scores = exact.search(question_vectors, k_search, query_groups=query_groups)
        # A result that ties with an exact one (an identical vector) is not a miss.
        recall = float(recall_at_k(ids, exact_ids, approx_scores=scores, exact_scores=exact_scores))
    return SearchOutput(ids, scores, recall, _index_bytes(index, chunk_vectors), timings)


def _index_bytes(index: Any, vectors: np.ndarray) -> int:
    """The memory the index holds: the vectors, plus the HNSW graph where there is one."""
    total = int(vectors.nbytes)
    for sub in getattr(index, "_indexes", {}).values():
        graph = getattr(sub, "_index", None)
        if graph is not None and hasattr(graph, "index_file_size"):
            total += int(graph.index_file_size())
    return total


# ----------------------------------------------------------------------------------------- score


def parse_k(k: Any) -> tuple[int, list[int], Any]:
    """``(mode, cut-offs, label)`` of a ``k`` argument (mode 0 list, 1 all, 2 auto), checked."""
    from .metrics.api import _parse_k

    mode, ks, label = _parse_k(k)
    return int(mode), [int(v) for v in ks], label


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


def unit_stage(refs: RaggedSpans, chunks: Spans, texts: Sequence[str], units: str = "chars",
               unit_tokenizer: Any = "cl100k_base") -> UnitSpans:
    """References and chunks measured in ``units``: unchanged for ``"chars"``, mapped once with the
    tokenizer's offsets for ``"tokens"`` (docs/metrics.md, *Units*)."""
    if units == "chars":
        return UnitSpans(refs, chunks)
    if units != "tokens":
        raise ValueError(f"units: {units!r} is not one of ['chars', 'tokens']")
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


@dataclass
class Scoring:
    """Metrics at every cut-off, and how many of each question's ranked ids each cut-off scored.

    ``scored[q, j]`` counts the leading entries of the character ranking ``ids[q]`` that cut-off
    ``j`` covers (its retrieved rows are ``ids[q, :scored[q, j]]`` without the ``-1`` padding).
    """

    metrics: SpanMetrics
    scored: np.ndarray
    cutoffs: list[int]  # one per column: k, or results.K_AUTO / results.K_ALL

    def at(self, column: int) -> dict[str, np.ndarray]:
        m = self.metrics.at(self.cutoffs[column]) if self.metrics.multi_k else self.metrics
        return {name: getattr(m, name) for name in m.metric_names() + ("precision_omega", "coverage",
                                                                          "n_evidence_chunks")}


def score_stage(spans: UnitSpans, ids: np.ndarray, *, k: Any, semantics: SemanticsName = "set",
                groups: Any = None, num_threads: int | None = None, backend: BackendName = "auto") -> Scoring:
    """Span and rank metrics of ranked character chunk ids at every cut-off of ``k``, in one engine pass.

    In token units a chunk can hold no token (whitespace under a tokenizer that skips it): such a
    chunk keeps its rank but adds nothing, so cut-off ``k`` scores the token rows among the first
    ``k`` character ranks. The engine then scores every prefix of each token ranking at once and
    each cut-off reads the prefix it covers; the rank metrics, where such a chunk is a rank that is
    not relevant (as in the exported TREC run), come from one more pass (:func:`_rank_with_empty`).
    """
    mode, ks, label = parse_k(k)
    n_chunk_ids = len(spans.chunk_id) if spans.chunk_id is not None else len(spans.chunks)
    ids = _chunk_ids(ids, n_chunk_ids)
    width = ids.shape[1]
    n_valid = (ids >= 0).sum(axis=1)
    cutoffs = ks if mode == 0 else [rs.K_ALL if mode == 1 else rs.K_AUTO]
    empty_chunks = spans.chunk_id is not None and bool((spans.chunk_id < 0).any())
    if not empty_chunks:
        retrieved = retrieved_spans(spans.ranked_ids(ids), spans.chunks)
        return score_retrieved(spans.references, retrieved, spans.chunks, k=k, semantics=semantics, groups=groups,
                               num_threads=num_threads, backend=backend)

    assert spans.chunk_id is not None
    mapped = np.where(ids >= 0, spans.chunk_id[np.maximum(ids, 0)], -1)
    has_tokens = np.zeros((len(ids), width + 1), dtype=np.int64)  # has_tokens[q, c]: token rows in ranks < c
    np.cumsum(mapped >= 0, axis=1, out=has_tokens[:, 1:])
    retrieved = retrieved_spans(spans.ranked_ids(ids), spans.chunks)
    deepest = int(has_tokens[:, -1].max()) if len(ids) else 0
    prefix_ks: Any = list(range(1, deepest + 1)) if deepest else None
    prefixes = span_metrics(spans.references, retrieved, spans.chunks, k=prefix_ks, semantics=semantics,
                            num_threads=num_threads, groups=groups, backend=backend)
    if mode == 0:
        scored = np.minimum(np.asarray(ks, dtype=np.int64)[None, :], width).repeat(len(ids), axis=0)
    elif mode == 1:
        scored = np.full((len(ids), 1), width, dtype=np.int64)
    else:
        scored = np.minimum(prefixes.n_evidence_chunks, width)[:, None]
    token_rows = np.take_along_axis(has_tokens, scored, axis=1)  # token rows each cut-off covers
    columns = {}
    rows = np.arange(len(ids))
    for name in ("recall", "precision", "iou"):
        values = getattr(prefixes, name)
        values = values.reshape(len(ids), -1) if values.ndim == 1 else values
        out = np.zeros(token_rows.shape, dtype=np.float64)
        for j in range(token_rows.shape[1]):
            hit = token_rows[:, j] > 0
            out[hit, j] = values[rows[hit], token_rows[hit, j] - 1]
        columns[name] = out if isinstance(label, tuple) else out[:, 0]
    ranked = _rank_with_empty(spans, ids, k=k, semantics=semantics, num_threads=num_threads, backend=backend)
    metrics = SpanMetrics(columns["recall"], columns["precision"], columns["iou"], prefixes.precision_omega,
                          prefixes.coverage, prefixes.n_evidence_chunks, label, semantics, prefixes.backend,
                          prefixes.groups, **{name: getattr(ranked, name) for name in RANK_METRIC_NAMES})
    scored = np.minimum(scored, n_valid[:, None])
    return Scoring(metrics, scored, cutoffs)


def _rank_with_empty(spans: UnitSpans, ids: np.ndarray, *, k: Any, semantics: SemanticsName,
                     num_threads: int | None, backend: BackendName) -> SpanMetrics:
    """The rank metrics of character chunk ids in token units when some chunks hold no token: each
    such chunk keeps its rank as a row of its own in a document no reference is in (never relevant,
    distinct per chunk id), so the ranks and cut-offs are the character ranking's, like a TREC run of
    the chunk ids. (Its span metrics are not used: :func:`score_stage` computes those.)"""
    assert spans.chunk_id is not None
    chunks = spans.chunks
    empty_ids = np.flatnonzero(spans.chunk_id < 0)
    nowhere = int(max(int(chunks.doc.max(initial=-1)), int(spans.references.doc.max(initial=-1)))) + 1
    row_of = np.where(spans.chunk_id >= 0, spans.chunk_id, len(chunks) + np.cumsum(spans.chunk_id < 0) - 1)
    extended = Spans(np.concatenate([chunks.doc, np.full(len(empty_ids), nowhere, dtype=np.int64)]),
                     np.concatenate([chunks.start, empty_ids]), np.concatenate([chunks.end, empty_ids + 1]),
                     name="chunks")
    rows = np.where(ids >= 0, row_of[np.maximum(ids, 0)], -1)
    retrieved = retrieved_spans(rows, extended)
    return span_metrics(spans.references, retrieved, extended, k=k, semantics=semantics, num_threads=num_threads,
                        backend=backend, ranked=True)


def score_retrieved(references: RaggedSpans, retrieved: RaggedSpans, chunks: Spans | None, *, k: Any,
                    semantics: SemanticsName = "set", groups: Any = None, num_threads: int | None = None,
                    backend: BackendName = "auto") -> Scoring:
    """Span metrics (and, with a chunking, the rank metrics) of ranked retrieved spans (a user's own
    lists, or chunk rows) at every cut-off of ``k`` in one engine pass; ``scored[q, j]`` is the number
    of rows cut-off ``j`` covers."""
    mode, ks, _ = parse_k(k)
    metrics = span_metrics(references, retrieved, chunks, k=k, semantics=semantics, num_threads=num_threads,
                           groups=groups, backend=backend, ranked=chunks is not None)
    n_rows = retrieved.counts()
    if mode == 0:
        scored = np.minimum(n_rows[:, None], np.asarray(ks, dtype=np.int64)[None, :])
    elif mode == 1:
        scored = n_rows[:, None]
    else:
        scored = np.minimum(n_rows, metrics.n_evidence_chunks)[:, None]
    cutoffs = ks if mode == 0 else [rs.K_ALL if mode == 1 else rs.K_AUTO]
    return Scoring(metrics, np.asarray(scored, dtype=np.int64), cutoffs)


def search_size(k: Any, n_evidence: np.ndarray | None = None) -> int:
    """How many results to ask the retriever for: the largest cut-off; for ``"auto"`` Chroma's rule
    ``min(20, max n_evidence_chunks)`` when the evidence counts are known, else 20 (a longer list
    has the same leading results, and each question scores only its first ``n_evidence_chunks``)."""
    mode, ks, _ = parse_k(k)
    if mode == 2:
        if n_evidence is None or not len(n_evidence):
            return CHROMA_AUTO_MAX_RESULTS
        return int(min(CHROMA_AUTO_MAX_RESULTS, max(1, int(np.max(n_evidence)))))
    if mode == 1:
        raise ValueError("k: 'all' would score every chunk; the retriever needs a number of results. Pass a cut-off "
                         "(--k 5), an increasing list (--k 1,3,5,10) or auto")
    return int(max(ks))


def evidence_counts(spans: UnitSpans, semantics: SemanticsName) -> np.ndarray:
    """``n_evidence_chunks`` per question (Chroma's auto cut-off), without scoring any retrieval."""
    nothing = RaggedSpans(np.zeros(spans.references.n_questions + 1, dtype=np.int64), [], [], [])
    return span_metrics(spans.references, nothing, spans.chunks, semantics=semantics).n_evidence_chunks


# ------------------------------------------------------------------------------------ one group


@dataclass(frozen=True)
class Scorer:
    """One scoring of a (chunking, embedder) pair: units and semantics, every cut-off of ``k``."""

    units: str
    semantics: SemanticsName
    k: Any  # a list of cut-offs, or "auto"
    config_ids: tuple[str, ...]  # one per cut-off (one for auto)


@dataclass
class GroupOutput:
    """What :func:`run_group` made: result rows per configuration id and what it measured."""

    tables: dict[str, pa.Table]
    scorings: dict[tuple[str, str], Scoring]
    chunks: pa.Table
    search: SearchOutput
    k_search: int
    question_vectors: np.ndarray | None
    embedding_stats: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    unit_spans: dict[str, UnitSpans] = field(default_factory=dict)  # the spans each scoring's units measured


@dataclass
class GroupPlan:
    """What a group's stages share: the chunk spans, the spans in each scoring's units, the search
    depth that serves every scorer, and each chunk's and question's corpus."""

    spans: Spans
    unit_spans: dict[str, UnitSpans]
    k_search: int
    chunk_corpus: np.ndarray
    question_corpus: np.ndarray
    question_ids: list[str]
    # What scope="corpus" searches per question: its corpus, or for a cross-document question the
    # tuple of the corpora its references lie in.
    search_corpus: np.ndarray | None = None


def plan_group(dataset: Dataset, documents: pa.Table, chunks: pa.Table, scorers: Sequence[Scorer],
               unit_tokenizer: Any = "cl100k_base") -> GroupPlan:
    """Map the spans into every scoring's units once, and size the one search that serves them all:
    the largest cut-off, or Chroma's auto rule in each scoring's units and semantics (the evidence
    chunks are counted there)."""
    spans = chunk_spans(chunks)
    refs = dataset.references()
    texts = list(dataset.texts)
    unit_spans = {u: unit_stage(refs, spans, texts, u, unit_tokenizer) for u in dict.fromkeys(s.units for s in scorers)}
    evidence = {(s.units, s.semantics): evidence_counts(unit_spans[s.units], s.semantics)
                for s in scorers if s.k == "auto"}
    k_search = max(search_size(s.k, evidence.get((s.units, s.semantics))) for s in scorers)
    corpus_of_doc = np.asarray(documents.column("corpus_id").to_pylist(), dtype=object)
    question_corpus = np.asarray([q["corpus_id"] for q in dataset.questions], dtype=object)
    question_ids = [str(q["question_id"]) for q in dataset.questions]
    return GroupPlan(spans, unit_spans, k_search, corpus_of_doc[spans.doc], question_corpus, question_ids,
                     dataset.search_groups())


def group_tables(plan: GroupPlan, scorers: Sequence[Scorer], scorings: Mapping[tuple[str, str], Scoring],
                 search: SearchOutput, attributes: rs.Configuration,
                 cost: Mapping[str, int | None]) -> dict[str, pa.Table]:
    """The results rows of every configuration of a group: one table per ``config_id``."""
    tables: dict[str, pa.Table] = {}
    chunk_corpus = plan.chunk_corpus.tolist()
    start, end = plan.spans.start, plan.spans.end
    for scorer in scorers:
        scoring = scorings[(scorer.units, scorer.semantics)]
        for column, (cutoff, cid) in enumerate(zip(scoring.cutoffs, scorer.config_ids, strict=True)):
            config = replace(attributes, k=cutoff, units=scorer.units, semantics=scorer.semantics)
            scored = scoring.scored[:, column]
            ids_at = [row[:n][row[:n] >= 0] for row, n in zip(search.ids, scored, strict=True)]
            scores_at = [row[:n][ids_row[:n] >= 0] for row, ids_row, n in zip(search.scores, search.ids, scored,
                                                                               strict=True)]
            tables[cid] = rs.results_table(
                config, cid, question_ids=plan.question_ids, corpus_ids=plan.question_corpus.tolist(),
                metrics=scoring.at(column), retrieved_ids=ids_at, retrieved_scores=scores_at,
                retrieved_spans=[[(chunk_corpus[i], int(start[i]), int(end[i])) for i in row.tolist()]
                                 for row in ids_at],
                cost=cost)
    return tables


def run_group(
    dataset: Dataset, chunker: Chunker, embedder: Any, scorers: Sequence[Scorer], attributes: rs.Configuration, *,
    retrieval: str = "hnsw", scope: str = "global", hnsw: Mapping[str, Any] | None = None,
    unit_tokenizer: Any = "cl100k_base", num_threads: int | None = None, check_recall: bool = True,
    question_vectors: np.ndarray | None = None, chunks: pa.Table | None = None, show_progress: bool | None = None,
    cache_dir: Any = "default",
) -> GroupOutput:
    """Chunk, embed, search once for every scorer, then score each: the rows of every configuration.

    ``attributes`` holds what the rows share (chunker, embedder, retrieval); each scorer adds its
    units, semantics and cut-offs. ``question_vectors`` and ``chunks``, when given, are reused
    (a sweep embeds the questions once per embedder and chunks once per chunker). ``cache_dir``
    holds the chunk-span and HNSW caches (``"default"``, a folder, or ``None`` for none).
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    documents = documents_table(dataset)
    if chunks is None:
        chunks = chunk_stage(documents, chunker, show_progress=show_progress, cache_dir=cache_dir)
    plan = plan_group(dataset, documents, chunks, scorers, unit_tokenizer)
    timings["chunk"] = time.perf_counter() - t

    t = time.perf_counter()
    stats_before = dict(getattr(embedder, "stats", {}) or {})
    question_texts = [str(q["question"]) for q in dataset.questions]
    chunk_vectors = None
    if retrieval != "bm25":  # BM25 alone reads only the texts
        # Chunks before questions: precision="auto" calibrates on the first texts it sees.
        chunk_vectors = vectors_of(embed_stage(chunks, embedder))
        if question_vectors is None:
            question_vectors = vectors_of(embed_stage(pa.table({"text": question_texts}), embedder))
    stats_after = dict(getattr(embedder, "stats", {}) or {})
    timings["embed"] = time.perf_counter() - t

    search = search_stage(chunk_vectors, question_vectors, plan.k_search, method=retrieval, scope=scope,
                          chunk_corpus=plan.chunk_corpus, question_corpus=plan.search_corpus,
                          hnsw=hnsw, check_recall=check_recall, chunk_texts=chunks.column("text").to_pylist(),
                          question_texts=question_texts, cache_dir=cache_dir)
    timings.update(search.timings)

    t = time.perf_counter()
    scorings: dict[tuple[str, str], Scoring] = {
        (s.units, s.semantics): score_stage(plan.unit_spans[s.units], search.ids, k=s.k, semantics=s.semantics,
                                            groups=plan.question_corpus, num_threads=num_threads)
        for s in scorers}
    cost = {"n_chunks": len(chunks), "embedded_tokens": _embedded_tokens(embedder, chunks),
            "index_bytes": search.index_bytes}
    tables = group_tables(plan, scorers, scorings, search, attributes, cost)
    timings["score"] = time.perf_counter() - t
    embedding_stats = {key: value - stats_before.get(key, 0) for key, value in stats_after.items()
                       if isinstance(value, (int, float)) and isinstance(stats_before.get(key, 0), (int, float))}
    return GroupOutput(tables, scorings, chunks, search, plan.k_search, question_vectors, embedding_stats, timings,
                       plan.unit_spans)


def _embedded_tokens(embedder: Any, chunks: pa.Table) -> int | None:
    """Tokens the embedder reads for the chunks (its own tokenizer, truncation included), when it can say."""
    count = getattr(embedder, "count_tokens", None)
    if callable(count):
        return int(count(chunks.column("text").to_pylist()))
    return None
