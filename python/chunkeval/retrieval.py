"""Nearest-neighbour search over chunk vectors: exact (numpy) and approximate (hnswlib HNSW).

Both indexes rank by cosine similarity: vectors and queries are L2-normalised on the way in (rows
that already have unit norm are used as they are), and the score is the inner product. Both
return ``(ids, scores)`` with ids as ``int64`` row numbers of the indexed vectors and scores as
``float32``, each row sorted by descending score with ties broken by the lower id. When fewer
than ``k`` vectors exist (in the index, or in a query's scope) the missing columns hold id ``-1``
and score ``-inf``.

:func:`build_index` wraps either index in a :class:`Retriever` that can search all chunks
(``scope="global"``, like the reference toolkit) or only the chunks of each query's own group,
typically its corpus (``scope="corpus"``). :func:`recall_at_k` compares an approximate search
with the exact one, by id or up to ties (an identical vector returned in place of another is no
miss).

hnswlib is imported only when an HNSW index is built. With a cache folder (``build_index``'s
``cache_dir``) a single-threaded HNSW graph is saved after it is built and loaded instead of
rebuilt when the same vectors and graph parameters come again (:meth:`HNSWIndex` ``cache_folder``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["TIE_ATOL", "ExactIndex", "HNSWIndex", "Retriever", "build_index", "hnsw_defaults", "recall_at_k"]

# Elements of one block of the query × vector score matrix (float32): bounds memory at ~64 MiB.
_BLOCK_ELEMENTS = 1 << 24

logger = logging.getLogger("chunkeval.retrieval")

#: Bumped when the saved index's layout or key recipe changes.
HNSW_CACHE_FORMAT = 1


def _unit_rows(values: Any, name: str, dim: int | None = None) -> np.ndarray:
    """``values`` as C-contiguous float32 rows of unit L2 norm; rows already unit are not touched."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        hint = " (one vector? try x[None, :])" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array (rows = vectors), got shape {arr.shape}{hint}")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} columns but the index holds {dim}-dimensional vectors; "
                         "embed the queries with the same model as the chunks")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.shape[0] == 0:
        return arr
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(f"{name}: row {bad} has NaN or infinite values; re-embed that text or drop the row")
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    if (norms == 0).any():
        bad = int(np.argmax(norms == 0))
        raise ValueError(f"{name}: row {bad} is the zero vector, which has no cosine similarity; drop the row")
    if np.abs(norms - 1.0).max() <= 1e-6:
        return arr
    return np.ascontiguousarray(arr / norms[:, None].astype(np.float32))


def _check_k(k: Any, name: str = "k") -> int:
    """``k`` (or another count named ``name``) as a positive int; a bool or a float is refused."""
    if isinstance(k, bool):
        raise TypeError(f"{name} must be a positive int, got a bool")
    try:
        value = operator.index(k)
    except TypeError:
        raise TypeError(f"{name} must be a positive int, got {type(k).__name__}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _empty_result(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_queries, k), -1, dtype=np.int64), np.full((n_queries, k), -np.inf, dtype=np.float32)


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int >= {minimum}, got a bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


class ExactIndex:
    """Exact cosine top-k: blocked matrix product, then ``np.partition`` and a sort of the candidates.

    Ties are broken by the lower id, also at the k-th place (every vector scoring exactly the k-th
    score is a candidate, and the lowest ids among them win), so the result is fully determined.
    """

    method = "exact"

    def __init__(self, vectors: Any) -> None:
        self.vectors = _unit_rows(vectors, "vectors")
        self.n: int = int(self.vectors.shape[0])
        self.dim: int = int(self.vectors.shape[1])

    def __len__(self) -> int:
        return self.n

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ids (``int64``, ``(n_queries, k)``) and cosine scores (``float32``), best first.

        Columns beyond the number of indexed vectors hold id ``-1`` and score ``-inf``.
        """
        k = _check_k(k)
        q = _unit_rows(queries, "queries", self.dim)
        ids, scores = _empty_result(len(q), k)
        kk = min(k, self.n)
        if kk == 0 or len(q) == 0:
            return ids, scores
        block = max(1, _BLOCK_ELEMENTS // self.n)
        for b in range(0, len(q), block):
            sim = q[b:b + block] @ self.vectors.T
            top_ids, top_scores = _top_k_rows(sim, kk)
            ids[b:b + block, :kk] = top_ids
            scores[b:b + block, :kk] = top_scores
        return ids, scores


def _top_k_rows(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``sim``: the ``k`` largest values, ties by the lower column, best first."""
    rows, n = sim.shape
    if k == n:
        order = np.argsort(-sim, axis=1, kind="stable")  # stable: equal scores keep ascending ids
        return order.astype(np.int64, copy=False), np.take_along_axis(sim, order, axis=1)
    kth_largest = np.partition(sim, n - k, axis=1)[:, n - k]
    row_idx, col_idx = np.nonzero(sim >= kth_largest[:, None])  # >= k per row; more when tied
    values = sim[row_idx, col_idx]
    order = np.lexsort((col_idx, -values, row_idx))
    counts = np.bincount(row_idx, minlength=rows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    take = order[starts[:, None] + np.arange(k)[None, :]]
    return col_idx[take].astype(np.int64, copy=False), values[take]


class HNSWIndex:
    """Approximate cosine top-k with hnswlib (HNSW graph, inner product on unit vectors).

    ``M`` and ``ef_construction`` shape the graph; ``ef_search`` is the search beam, raised to
    ``k`` when smaller (hnswlib cannot return more than ``ef`` results). With ``num_threads=1``
    construction is deterministic for a given ``seed``; more threads build faster but insert in a
    racy order, so results may differ slightly between runs. Scores are recomputed exactly (float32
    dot products) for the returned ids, and each row is ordered by (-score, id) like
    :class:`ExactIndex`.

    ``cache_folder`` (not an HNSW setting: it changes no result) keeps single-threaded graphs: the
    graph of the same vectors (sha256 of their unit float32 rows), ``M``, ``ef_construction``,
    ``seed``, dimension and hnswlib binary is loaded with ``load_index`` instead of rebuilt;
    because such a build is deterministic, the loaded graph is the one a build would make. A
    graph file is trusted only when its sidecar ``.json`` holds the same key and the file's sha256
    (a damaged or foreign file is rebuilt and rewritten, never loaded into hnswlib).
    """

    method = "hnsw"

    def __init__(self, vectors: Any, *, M: int = 16, ef_construction: int = 200, ef_search: int = 100,
                 seed: int = 0, num_threads: int = 1, cache_folder: str | os.PathLike[str] | None = None) -> None:
        self.M = _positive_int(M, "M", 2)
        self.ef_construction = _positive_int(ef_construction, "ef_construction")
        self.ef_search = _positive_int(ef_search, "ef_search")
        self.seed = _positive_int(seed, "seed", 0)
        self.num_threads = _positive_int(num_threads, "num_threads")
        self.vectors = _unit_rows(vectors, "vectors")
        self.n: int = int(self.vectors.shape[0])
        self.dim: int = int(self.vectors.shape[1])
        self._index: Any = None
        if self.n:
            try:
                import hnswlib
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("method='hnsw' needs hnswlib: pip install 'chunkeval[retrieval]' "
                                  "(or use method='exact')") from exc
            folder = Path(cache_folder).expanduser() if cache_folder is not None and self.num_threads == 1 else None
            self._index = self._load(hnswlib, folder) if folder is not None else None
            if self._index is None:
                self._index = self._build(hnswlib)
                if folder is not None:
                    self._save(folder)

    def _build(self, hnswlib: Any) -> Any:
        index = hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(max_elements=self.n, ef_construction=self.ef_construction, M=self.M, random_seed=self.seed)
        index.add_items(self.vectors, np.arange(self.n), num_threads=self.num_threads)
        return index

    def _cache_key(self) -> str:
        import hnswlib

        # The binary that builds the graph, by size and modification time: a reinstall or another
        # version is another key (cheaper than reading the package metadata).
        binary = os.stat(hnswlib.__file__) if getattr(hnswlib, "__file__", None) else None
        library = [binary.st_size, binary.st_mtime_ns] if binary is not None else None
        settings = {"format": HNSW_CACHE_FORMAT, "hnswlib": library, "space": "ip", "dim": self.dim, "n": self.n,
                    "M": self.M, "ef_construction": self.ef_construction, "seed": self.seed}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        digest.update(self.vectors.tobytes())
        return digest.hexdigest()

    def _paths(self, folder: Path) -> tuple[Path, Path, str]:
        key = self._cache_key()
        return folder / key[:2] / f"{key}.hnsw", folder / key[:2] / f"{key}.json", key

    def _load(self, hnswlib: Any, folder: Path) -> Any:
        """The saved graph of this build, or ``None`` (absent, damaged, or not this build's)."""
        graph, sidecar, key = self._paths(folder)
        try:
            record = json.loads(sidecar.read_text())
            data = graph.read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("HNSW cache: ignoring unreadable index %s (%s); it is rebuilt", graph, exc)
            return None
        if not isinstance(record, dict) or record.get("key") != key or \
                record.get("sha256") != hashlib.sha256(data).hexdigest():
            logger.warning("HNSW cache: ignoring index %s that does not match its record; it is rebuilt", graph)
            return None
        index = hnswlib.Index(space="ip", dim=self.dim)
        try:
            index.load_index(str(graph), max_elements=self.n)
        except (RuntimeError, ValueError) as exc:
            logger.warning("HNSW cache: hnswlib could not load %s (%s); it is rebuilt", graph, exc)
            return None
        if index.element_count != self.n or index.dim != self.dim or index.M != self.M:
            logger.warning("HNSW cache: index %s holds another graph; it is rebuilt", graph)
            return None
        return index

    def _save(self, folder: Path) -> None:
        """Graph first, then the sidecar naming its sha256: a reader trusts only a matching pair."""
        from ._io import write_bytes_atomic

        graph, sidecar, key = self._paths(folder)
        try:
            graph.parent.mkdir(parents=True, exist_ok=True)
            # A folder of our own beside the target (two builds may save at once); hnswlib creates the
            # file in it with the usual permissions, and a rename moves it into place whole.
            with tempfile.TemporaryDirectory(prefix=f".{graph.name}.", dir=graph.parent) as tmp_dir:
                tmp = Path(tmp_dir) / graph.name
                self._index.save_index(str(tmp))
                data = tmp.read_bytes()
                os.replace(tmp, graph)
            write_bytes_atomic(sidecar, json.dumps({"key": key, "sha256": hashlib.sha256(data).hexdigest()}).encode())
        except (OSError, RuntimeError) as exc:  # a read-only or full cache costs the next run a build, no more
            logger.warning("HNSW cache: could not save %s (%s)", graph, exc)

    def __len__(self) -> int:
        return self.n

    def params(self) -> dict[str, int]:
        return {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "seed": self.seed, "num_threads": self.num_threads}

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k``; same output contract as :meth:`ExactIndex.search`."""
        k = _check_k(k)
        q = _unit_rows(queries, "queries", self.dim)
        ids, scores = _empty_result(len(q), k)
        kk = min(k, self.n)
        if kk == 0 or len(q) == 0:
            return ids, scores
        self._index.set_ef(max(self.ef_search, kk))
        try:
            labels, _ = self._index.knn_query(q, k=kk, num_threads=self.num_threads)
        except RuntimeError as exc:
            raise RuntimeError(f"hnswlib could not return {kk} neighbours ({exc}); raise ef_search or M, "
                               "or use method='exact'") from exc
        labels = labels.astype(np.int64)
        exact_scores = np.einsum("qd,qkd->qk", q, self.vectors[labels])
        order = np.lexsort((labels, -exact_scores), axis=-1)
        ids[:, :kk] = np.take_along_axis(labels, order, axis=1)
        scores[:, :kk] = np.take_along_axis(exact_scores, order, axis=1)
        return ids, scores


class Retriever:
    """Top-k search over chunk vectors, globally or within each query's group (corpus).

    Built by :func:`build_index`. ``scope="global"`` holds one index over all vectors;
    ``scope="corpus"`` one index per group, and a query searches only the vectors of its own group
    (``query_groups``). Ids are always global row numbers of the vectors given to
    :func:`build_index`.
    """

    def __init__(self, indexes: dict[Hashable, Any], members: dict[Hashable, np.ndarray] | None,
                 method: str, scope: str, n: int, dim: int, params: dict[str, Any]) -> None:
        self._indexes = indexes
        self._members = members
        self.method = method
        self.scope = scope
        self.n = n
        self.dim = dim
        self.params = params

    def __len__(self) -> int:
        return self.n

    def config(self) -> dict[str, Any]:
        return {"method": self.method, "scope": self.scope, "n": self.n, "dim": self.dim,
                "n_indexes": len(self._indexes), **self.params}

    def search(self, queries: Any, k: int, query_groups: Sequence[Hashable] | np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` global ids (``int64``) and cosine scores (``float32``) per query, best first.

        ``query_groups`` (one group per query, same labels as ``groups``) is required for
        ``scope="corpus"`` and ignored for ``scope="global"``. Missing columns (a group with fewer
        than ``k`` vectors) hold id ``-1`` and score ``-inf``.
        """
        k = _check_k(k)
        if self.scope == "global":
            result: tuple[np.ndarray, np.ndarray] = self._indexes[None].search(queries, k)
            return result
        q = _unit_rows(queries, "queries", self.dim)
        if query_groups is None:
            raise ValueError("query_groups is required with scope='corpus': pass each query's group "
                             "(e.g. its corpus id), or build the index with scope='global'")
        labels = _group_labels(query_groups, "query_groups", len(q))
        ids, scores = _empty_result(len(q), k)
        assert self._members is not None
        by_group: dict[Hashable, list[int]] = {}
        for row, label in enumerate(labels):
            by_group.setdefault(label, []).append(row)
        for label, rows in by_group.items():
            if label not in self._indexes:
                raise ValueError(f"query_groups[{rows[0]}] = {label!r} names a group with no indexed vectors "
                                 f"(groups: {sorted(map(repr, self._indexes))[:10]}); check the corpus ids")
            local_ids, local_scores = self._indexes[label].search(q[rows], k)
            members = self._members[label]
            ids[rows] = np.where(local_ids >= 0, members[np.maximum(local_ids, 0)], -1)
            scores[rows] = local_scores
        return ids, scores


def _group_labels(groups: Any, name: str, n: int, what: str = "label") -> list[Hashable]:
    """One hashable label per row (``what`` names it in errors: a group label, a corpus id)."""
    arr = np.asarray(groups)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must be 1-D with one {what} per row ({n}), got shape {arr.shape}")
    labels: list[Hashable] = arr.tolist()
    for i, label in enumerate(labels):
        if label is None or (isinstance(label, float) and label != label):
            raise ValueError(f"{name}[{i}] is missing; every row needs a {'group label' if what == 'label' else what}")
    return labels


#: Keyword arguments of :class:`HNSWIndex` that change no result, so are no setting of a run.
_NOT_SETTINGS = ("cache_folder",)


def hnsw_defaults() -> dict[str, Any]:
    """:class:`HNSWIndex`'s keyword parameters and their defaults: the one list of HNSW settings
    that the pipeline, the sweep files and the CLI accept."""
    import inspect

    return {name: p.default for name, p in inspect.signature(HNSWIndex.__init__).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in _NOT_SETTINGS}


def build_index(vectors: Any, groups: Sequence[Hashable] | np.ndarray | None = None, *,
                method: Literal["hnsw", "exact"] = "hnsw", scope: Literal["global", "corpus"] | None = None,
                cache_dir: str | os.PathLike[str] | None = None, **params: Any) -> Retriever:
    """Build a :class:`Retriever` over ``vectors`` (one row per chunk).

    Parameters
    ----------
    vectors:
        ``(n, dim)`` real array; rows are L2-normalised if they are not already.
    groups:
        One label per row (e.g. the chunk's corpus id). Required for ``scope="corpus"``.
    method:
        ``"hnsw"`` (:class:`HNSWIndex`; ``params`` are its keyword arguments ``M``,
        ``ef_construction``, ``ef_search``, ``seed``, ``num_threads``) or ``"exact"``
        (:class:`ExactIndex`; no parameters).
    scope:
        ``"global"``: one index over all rows. ``"corpus"``: one index per group. Default:
        ``"corpus"`` when ``groups`` is given, else ``"global"``.
    cache_dir:
        ``None`` (default): build every HNSW graph. ``"default"`` (the cache folder of
        :func:`chunkeval.evaluate.default_cache_dir`) or a folder: keep single-threaded graphs in
        its ``hnsw/`` subfolder and load them when the same vectors and parameters come again
        (same results as a build; see :class:`HNSWIndex`). Exact indexes are never cached.
    """
    if method not in ("hnsw", "exact"):
        raise ValueError(f"method={method!r} is not 'hnsw' or 'exact'")
    if scope is None:
        scope = "global" if groups is None else "corpus"
    if scope not in ("global", "corpus"):
        raise ValueError(f"scope={scope!r} is not 'global' or 'corpus'")
    if method == "exact" and params:
        raise TypeError(f"method='exact' takes no parameters, got {sorted(params)}")
    allowed = set(hnsw_defaults())
    if method == "hnsw" and set(params) - allowed:
        raise TypeError(f"unknown HNSW parameters {sorted(set(params) - allowed)}; allowed: {sorted(allowed)}")
    unit = _unit_rows(vectors, "vectors")
    n, dim = unit.shape

    folder = None
    if method == "hnsw" and cache_dir is not None:
        from .chunk_cache import cache_folder

        folder = cache_folder(cache_dir, "hnsw")

    def make(rows: np.ndarray) -> Any:
        return HNSWIndex(rows, cache_folder=folder, **params) if method == "hnsw" else ExactIndex(rows)

    if scope == "global":
        return Retriever({None: make(unit)}, None, method, scope, n, dim, dict(params))
    if groups is None:
        raise ValueError("scope='corpus' needs groups: one label (e.g. corpus id) per vector row")
    labels = _group_labels(groups, "groups", n)
    rows_of: dict[Hashable, list[int]] = {}
    for row, label in enumerate(labels):
        rows_of.setdefault(label, []).append(row)
    members = {label: np.asarray(rows, dtype=np.int64) for label, rows in rows_of.items()}
    indexes = {label: make(unit[rows]) for label, rows in members.items()}
    return Retriever(indexes, members, method, scope, n, dim, dict(params))


#: Two cosines closer than this are the same score for :func:`recall_at_k`: eight float32 epsilons
#: (about 9.5e-7), the rounding a float32 unit vector's entries and norm leave in a cosine.
TIE_ATOL = 8 * float(np.finfo(np.float32).eps)


def recall_at_k(approx_ids: Any, exact_ids: Any, *, approx_scores: Any = None, exact_scores: Any = None,
                queries: Any = None, vectors: Any = None, atol: float = TIE_ATOL) -> float:
    """Recall of an approximate search against the exact one, averaged over queries.

    **By id** (ids only): ``recall_q = |approx_q ∩ exact_q| / |exact_q|``, where ``exact_q``
    ignores ``-1`` padding. An approximate result that ties with an exact one (an identical
    vector, say) but has another id counts as a miss.

    **Up to ties**, from the cosine of every returned id: either ``approx_scores`` and
    ``exact_scores`` as the two searches returned them (both indexes return exact float32 cosines
    of their ids, which differ by a few float32 roundings between the two code paths, well within
    ``atol``), or ``queries`` and ``vectors``, the arrays both searches ran on, from which every
    score is recomputed the same way (float64 dot products of the L2-normalised float32 rows, so
    identical vectors score identically). For query ``q`` with ``m`` valid exact results whose
    lowest score is ``s_k``, an exact result is *required* when its score exceeds ``s_k + atol``:
    every correct top-k holds it. Any other returned id is *tied* when its score is
    ``>= s_k - atol``: it could stand in the exact top-k. Then

    ``recall_q = (|approx_q ∩ required_q| + min(|tied approx_q|, m - |required_q|)) / m``

    which is the largest overlap of ``approx_q`` with any correct top-k. A search that returns
    another copy of a vector, or another of several vectors tied at the k-th score, loses
    nothing; a tie never makes up for a missed required result. Repeated ids in a row count once.
    ``atol`` defaults to :data:`TIE_ATOL` (eight float32 epsilons).

    Queries whose exact result is empty are left out; if every query is, the result is NaN.
    """
    approx = np.asarray(approx_ids)
    exact = np.asarray(exact_ids)
    if approx.ndim != 2 or approx.shape != exact.shape:
        raise ValueError(f"approx_ids and exact_ids must be 2-D arrays of the same shape, got {approx.shape} "
                         f"and {exact.shape}; search both with the same queries and k")
    if approx.dtype.kind not in "iu" or exact.dtype.kind not in "iu":
        raise TypeError("approx_ids and exact_ids must be integer id arrays (as returned by search)")
    by_scores = approx_scores is not None or exact_scores is not None
    by_vectors = queries is not None or vectors is not None
    if by_scores and by_vectors:
        raise ValueError("recall_at_k: pass approx_scores and exact_scores, or queries and vectors, not both")
    if by_scores and (approx_scores is None or exact_scores is None):
        raise ValueError("recall_at_k: pass both approx_scores and exact_scores (to count ties as hits) or neither")
    if by_vectors and (queries is None or vectors is None):
        raise ValueError("recall_at_k: pass both queries and vectors (to count ties as hits) or neither")
    valid = exact >= 0
    n_valid = valid.sum(axis=1)
    keep = n_valid > 0
    if not keep.any():
        return float("nan")
    if not (by_scores or by_vectors):
        hit = (exact[:, :, None] == approx[:, None, :]).any(axis=2) & valid
        return float(np.mean(hit.sum(axis=1)[keep] / n_valid[keep]))
    if not np.isfinite(atol) or atol < 0:
        raise ValueError(f"atol must be a finite number >= 0, got {atol}")
    if by_scores:
        approx_s = _score_array(approx_scores, "approx_scores", approx.shape)
        exact_s = _score_array(exact_scores, "exact_scores", exact.shape)
    else:
        approx_s, exact_s = _recomputed_scores(approx, exact, queries, vectors)
    hits = _tie_aware_hits(approx, exact, approx_s, exact_s, float(atol))
    return float(np.mean(hits[keep] / n_valid[keep]))


def _score_array(scores: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape} but the ids have {shape}; pass the scores the search "
                         "returned with those ids")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _recomputed_scores(approx: np.ndarray, exact: np.ndarray, queries: Any, vectors: Any
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of every returned id, computed one way for both searches."""
    x = _unit_rows(vectors, "vectors")
    q = _unit_rows(queries, "queries", x.shape[1])
    if len(q) != len(exact):
        raise ValueError(f"queries has {len(q)} rows but the id arrays have {len(exact)}; pass the queries "
                         "both searches ran on")
    for name, ids in (("approx_ids", approx), ("exact_ids", exact)):
        if ids.size and int(ids.max()) >= len(x):
            raise ValueError(f"{name} holds id {int(ids.max())} but vectors has {len(x)} rows; pass the vectors "
                             "both searches ran on (ids are their row numbers)")
    q64 = q.astype(np.float64)

    def scores(ids: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("qd,qkd->qk", q64, x[np.maximum(ids, 0)].astype(np.float64)))

    return scores(approx), scores(exact)


def _tie_aware_hits(approx: np.ndarray, exact: np.ndarray, approx_scores: np.ndarray, exact_scores: np.ndarray,
                    atol: float) -> np.ndarray:
    """Per query, the numerator of :func:`recall_at_k`'s tie-aware recall."""
    valid_exact = exact >= 0
    # A repeated id in an approximate row counts once: keep its first occurrence.
    k = approx.shape[1]
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)
    repeated = ((approx[:, :, None] == approx[:, None, :]) & earlier[None]).any(axis=2)
    valid_approx = (approx >= 0) & ~repeated
    exact_s = np.where(valid_exact, exact_scores, np.inf)
    kth = exact_s.min(axis=1)
    required = valid_exact & (exact_s > (kth + atol)[:, None])
    in_required = ((approx[:, :, None] == exact[:, None, :]) & required[:, None, :]).any(axis=2) & valid_approx
    with np.errstate(invalid="ignore"):  # padded rows hold -inf scores
        tied = valid_approx & ~in_required & (approx_scores >= (kth - atol)[:, None])
    room = valid_exact.sum(axis=1) - required.sum(axis=1)
    return np.asarray(in_required.sum(axis=1) + np.minimum(tied.sum(axis=1), room))
