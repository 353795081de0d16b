"""Retrievers users already run: BM25 (bm25s), hybrid (reciprocal-rank fusion), their own, Chroma.

:func:`search_texts` ranks chunks for questions given as text, with the same output contract as
:mod:`chunkeval.retrieval`: ids ``(n_questions, k)`` ``int64`` chunk row numbers, padded with
``-1``; scores ``float32``, padded with ``-inf``; each row best first, ties broken by the lower
chunk id. ``method`` is

* ``"bm25"``: a real BM25 by `bm25s <https://github.com/xhluca/bm25s>`_, tokenizer settings and
  BM25 parameters from ``params`` (see :data:`BM25_DEFAULTS`) and recorded in ``info``;
* ``"hybrid"``: reciprocal-rank fusion of exact dense search on the given vectors and BM25,
  ``score(c) = sum over the two lists of 1 / (rrf_k + rank_list(c))`` (rank from 1; a chunk absent
  from a list gets nothing from it), each list fetched to ``depth`` (default ``max(k, 100)``);
* any object with a :class:`Retriever`'s ``search`` method, e.g. :class:`ChromaRetriever`: the way
  to score a vector database or a search service.

Heavy packages (bm25s, PyStemmer, chromadb) are imported only when used:
``pip install 'chunkeval[retrievers]'``.
"""

from __future__ import annotations

import importlib
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from .retrieval import _check_k, _top_k_rows, _unit_rows, build_index

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BM25_DEFAULTS", "HYBRID_DEFAULTS", "BM25Index", "ChromaRetriever", "Retriever", "rrf_fuse",
           "search_texts"]

#: BM25 settings and their defaults (bm25s' own defaults, plus an English stemmer as in the usual
#: Lucene-style baseline). ``lower``: lowercase before splitting; ``token_pattern``: the regex whose
#: matches are the tokens; ``stopwords``: a bm25s language name (``"english"``, ``"en"``, ...), a
#: list of words, or ``None``; ``stemmer``: a PyStemmer algorithm (``"english"``, ...) or ``None``;
#: ``k1``, ``b``, ``delta`` (BM25L/BM25+ only); ``method``: the bm25s variant (``"lucene"``,
#: ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``); ``idf_method``: ``None`` = as ``method``;
#: ``unmatched``: ``"drop"`` leaves chunks that share no token with the question out of the ranking
#: (padding instead), ``"keep"`` ranks them too (at the score of an empty match, by chunk id).
BM25_DEFAULTS: dict[str, Any] = {
    "lower": True, "token_pattern": r"(?u)\b\w\w+\b", "stopwords": "english", "stemmer": "english",
    "k1": 1.5, "b": 0.75, "delta": 0.5, "method": "lucene", "idf_method": None, "unmatched": "drop",
}
#: Hybrid settings on top of :data:`BM25_DEFAULTS`: ``rrf_k`` (int >= 0) and ``depth`` (how many
#: results each list contributes; ``None`` = ``max(k, 100)``).
HYBRID_DEFAULTS: dict[str, Any] = {"rrf_k": 60, "depth": None}
_BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
# Questions scored per block: bounds the dense score block at ~64 MiB of float32.
_BLOCK_ELEMENTS = 1 << 24


@runtime_checkable
class Retriever(Protocol):
    """What :func:`search_texts` needs of a retriever: the way to plug in a vector database.

    ``search(question_texts, k)`` returns ``(ids, scores)``: ``ids`` an ``(n, k)`` integer array of
    chunk row numbers (the row of each chunk in the ``chunk_texts`` the retriever indexed), ``-1``
    where it has fewer than ``k`` results; ``scores`` an ``(n, k)`` real array, higher is better.
    :func:`search_texts` checks both and puts each row in the canonical order (best first, ties by
    the lower id, padding last), so a retriever need not break ties itself. See
    :class:`ChromaRetriever` for a worked example.
    """

    def search(self, question_texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]: ...


# ------------------------------------------------------------------------------------ checks


def _texts(values: object, name: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a list of str, got {type(values).__name__}; wrap a single text in a list")
    out = list(values)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__}, not str; pass the texts themselves")
    return out


def _number(params: Mapping[str, Any], key: str, low: float, high: float = math.inf) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= float(value) <= high:
        raise ValueError(f"params[{key!r}] = {value!r} must be a number in [{low}, {high}]")
    return float(value)


def _bm25_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """:data:`BM25_DEFAULTS` updated with ``params``, checked."""
    out = {**BM25_DEFAULTS, **params}
    out["k1"] = _number(out, "k1", 0.0)
    out["b"] = _number(out, "b", 0.0, 1.0)
    out["delta"] = _number(out, "delta", 0.0)
    for key in ("method", "idf_method"):
        if out[key] not in _BM25_METHODS and not (key == "idf_method" and out[key] is None):
            raise ValueError(f"params[{key!r}] = {out[key]!r} is not one of {list(_BM25_METHODS)}")
    if not isinstance(out["lower"], bool):
        raise TypeError(f"params['lower'] must be True or False, got {out['lower']!r}")
    if out["unmatched"] not in ("drop", "keep"):
        raise ValueError(f"params['unmatched'] = {out['unmatched']!r} is not 'drop' or 'keep'")
    if not isinstance(out["token_pattern"], str):
        raise TypeError(f"params['token_pattern'] must be a regex str, got {type(out['token_pattern']).__name__}")
    try:
        re.compile(out["token_pattern"])
    except re.error as exc:
        raise ValueError(f"params['token_pattern'] = {out['token_pattern']!r} is not a valid regex ({exc})") from None
    stop = out["stopwords"]
    if not (stop is None or isinstance(stop, str)
            or (isinstance(stop, list | tuple) and all(isinstance(w, str) for w in stop))):
        raise TypeError("params['stopwords'] must be a language name, a list of words or None")
    if out["stemmer"] is not None and not isinstance(out["stemmer"], str):
        raise TypeError("params['stemmer'] must be a PyStemmer algorithm name (e.g. 'english') or None")
    return out


def _split_params(params: Mapping[str, Any] | None, allowed: Mapping[str, Any], method: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"unknown {method} parameters {unknown}; allowed: {sorted(allowed)}")
    return dict(params)


# -------------------------------------------------------------------------------------- BM25


def _import_bm25s() -> Any:
    try:  # import_module: bm25s ships no type information
        return importlib.import_module("bm25s")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("BM25 needs bm25s: pip install 'chunkeval[retrievers]' (or pip install bm25s)") from exc


def _stemmer(name: str | None) -> Any:
    if name is None:
        return None
    try:  # PyStemmer ships no type information
        stemmer: Any = importlib.import_module("Stemmer")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("params['stemmer'] needs PyStemmer: pip install PyStemmer, or pass stemmer=None") from exc
    if name not in stemmer.algorithms():
        raise ValueError(f"params['stemmer'] = {name!r} is not a PyStemmer algorithm; one of {stemmer.algorithms()}")
    return stemmer.Stemmer(name)


class BM25Index:
    """A bm25s BM25 index over ``chunk_texts``, searched with question texts.

    Questions and chunks go through the same bm25s tokenizer (lowercasing, ``token_pattern``
    splitting, stopword removal, then stemming). A chunk's score is bm25s' own: the sum, over the
    question's tokens (a repeated token counts each time), of ``idf(t) * tfc(t, chunk)`` in the
    chosen variant, e.g. ``"lucene"``: ``ln(1 + (N - df + 0.5) / (df + 0.5)) * tf / (tf + k1 (1 - b
    + b |c| / avg|c|))``. ``search`` follows the :class:`Retriever` protocol.
    """

    method = "bm25"

    def __init__(self, chunk_texts: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        self.params = _bm25_params(params or {})
        texts = _texts(chunk_texts, "chunk_texts")
        self.n = len(texts)
        bm25s = _import_bm25s()
        self._bm25s = bm25s
        self._stem = _stemmer(self.params["stemmer"])
        self._tokenize([""])  # checks the stopword setting even when there is nothing to index
        tokens = self._tokenize(texts)
        self._retriever: Any = None
        self._empty = not any(tokens)
        if self.n and not self._empty:
            retriever = bm25s.BM25(k1=self.params["k1"], b=self.params["b"], delta=self.params["delta"],
                                   method=self.params["method"], idf_method=self.params["idf_method"])
            retriever.index(tokens, show_progress=False)
            self._retriever = retriever

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        if not texts:
            return []
        stop = self.params["stopwords"]
        try:
            tokens: list[list[str]] = self._bm25s.tokenize(
                texts, lower=self.params["lower"], token_pattern=self.params["token_pattern"],
                stopwords=stop, stemmer=self._stem, return_ids=False,
                show_progress=False)
        except ValueError as exc:  # an unknown stopword language
            raise ValueError(f"params['stopwords'] = {stop!r}: {exc}") from None
        return tokens

    def __len__(self) -> int:
        return self.n

    def index_bytes(self) -> int:
        """Memory of the score matrix (bm25s' sparse data, indices and pointers)."""
        if self._retriever is None:
            return 0
        scores = self._retriever.scores
        return int(sum(scores[key].nbytes for key in ("data", "indices", "indptr")))

    def scores(self, question_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk's bm25s score per question (``float32``, ``(n_questions, n)``), and whether
        the chunk shares a token with the question (``bool``, same shape)."""
        queries = self._tokenize(_texts(question_texts, "question_texts"))
        scores = np.zeros((len(queries), self.n), dtype=np.float32)
        matched = np.zeros((len(queries), self.n), dtype=bool)
        if self._retriever is None:
            return scores, matched
        index = self._retriever.scores
        indptr, indices = index["indptr"], index["indices"]
        n_terms = len(indptr) - 1
        for row, query in enumerate(queries):
            ids = [t for t in self._retriever.get_tokens_ids(query) if t < n_terms]
            if ids:
                scores[row] = self._retriever.get_scores_from_ids(ids)
                for t in set(ids):
                    matched[row, indices[indptr[t]:indptr[t + 1]]] = True
        return scores, matched

    def search(self, question_texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` chunk ids and BM25 scores per question, best first, ties by the lower id."""
        k = _check_k(k)
        texts = _texts(question_texts, "question_texts")
        ids = np.full((len(texts), k), -1, dtype=np.int64)
        out = np.full((len(texts), k), -np.inf, dtype=np.float32)
        if not self.n or not texts:
            return ids, out
        block = max(1, _BLOCK_ELEMENTS // self.n)
        for b in range(0, len(texts), block):
            scores, matched = self.scores(texts[b:b + block])
            if self.params["unmatched"] == "drop":
                scores = np.where(matched, scores, -np.inf).astype(np.float32)
            kk = min(k, self.n)
            top_ids, top_scores = _top_k_rows(scores, kk)
            top_ids = np.where(np.isneginf(top_scores), -1, top_ids)
            ids[b:b + block, :kk] = top_ids
            out[b:b + block, :kk] = top_scores
        return ids, out

    def provenance(self) -> dict[str, Any]:
        """The settings that determine the ranking, with the bm25s and PyStemmer versions."""
        stop = self.params["stopwords"]
        out = {**self.params, "stopwords": stop if stop is None or isinstance(stop, str) else sorted(stop),
               "bm25s_version": _version("bm25s")}
        if self._stem is not None:
            out["pystemmer_version"] = _version("PyStemmer")
        return out


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:  # pragma: no cover - an unusual install
        return "unknown"


# ----------------------------------------------------------------------------------- fusion


def rrf_fuse(dense_ids: np.ndarray, sparse_ids: np.ndarray, k: int, rrf_k: int = 60
             ) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion of two ranked id lists per row (``-1`` = padding).

    ``score(c) = 1 / (rrf_k + r_dense(c)) + 1 / (rrf_k + r_sparse(c))``, ranks from 1, a missing
    list contributing 0. Each score is one correctly rounded division of exact integers
    (``(x + y) / (x y)`` with ``x = rrf_k + r``), so equal fusions are exactly equal and ties go to
    the lower chunk id. Returns the top ``k`` (``int64`` ids, ``float32`` scores), padded.
    """
    k = _check_k(k)
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | np.integer) or rrf_k < 0:
        raise ValueError(f"rrf_k must be an int >= 0, got {rrf_k!r}")
    a, b = np.asarray(dense_ids), np.asarray(sparse_ids)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(f"dense_ids and sparse_ids must be 2-D with one row per question, got {a.shape} and {b.shape}")
    n = len(a)
    ids = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise TypeError(f"dense_ids and sparse_ids must be integer id arrays, got {a.dtype} and {b.dtype}")
    # One record per (question, list, chunk): the chunk's rrf_k + rank in that list, in rank order.
    row = np.concatenate([np.repeat(np.arange(n, dtype=np.int64), a.shape[1]),
                          np.repeat(np.arange(n, dtype=np.int64), b.shape[1])])
    cid = np.concatenate([a.ravel(), b.ravel()]).astype(np.int64)
    src = np.concatenate([np.zeros(a.size, dtype=np.int64), np.ones(b.size, dtype=np.int64)])
    x = np.concatenate([np.tile(np.arange(1, a.shape[1] + 1), n), np.tile(np.arange(1, b.shape[1] + 1), n)])
    x = x.astype(np.int64) + int(rrf_k)
    keep = cid >= 0
    row, cid, src, x = row[keep], cid[keep], src[keep], x[keep]
    width = int(cid.max()) + 1 if len(cid) else 1
    key = (row * width + cid) * 2 + src
    order = np.argsort(key, kind="stable")  # stable: a chunk repeated in one list keeps its best rank first
    key, x = key[order], x[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, x = key[first], x[first]
    group = key >> 1  # (question, chunk); at most one record per list, dense first
    heads = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])) if len(group) else np.zeros(0, bool))
    pair = np.zeros(len(heads), dtype=bool)
    pair[:-1] = np.diff(heads) == 2
    if len(heads):
        pair[-1] = len(group) - heads[-1] == 2
    x0 = x[heads]
    x1 = np.where(pair, x[np.minimum(heads + 1, max(len(x) - 1, 0))], 1)
    # 1/x0 + 1/x1 as one division of exact integers: equal sums give bit-equal doubles.
    value = np.where(pair, x0 + x1, 1) / (x0 * x1)
    row, cid = group[heads] // width, group[heads] % width
    order = np.lexsort((-value, row))  # stable: equal scores keep ascending chunk ids
    row, cid, value = row[order], cid[order], value[order]
    counts = np.bincount(row, minlength=n)
    rank = np.arange(len(row)) - np.concatenate(([0], np.cumsum(counts)[:-1]))[row]
    top = rank < k
    ids[row[top], rank[top]] = cid[top]
    scores[row[top], rank[top]] = value[top]
    return ids, scores


# ------------------------------------------------------------------------------ search_texts


def _canonical(ids: Any, scores: Any, k: int, n_questions: int, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """A user retriever's output checked and put in canonical order."""
    ids_arr, scores_arr = np.asarray(ids), np.asarray(scores)
    if ids_arr.shape != (n_questions, k) or scores_arr.shape != (n_questions, k):
        raise ValueError(f"the retriever returned ids of shape {ids_arr.shape} and scores of shape {scores_arr.shape}, "
                         f"expected ({n_questions}, {k}) each; pad missing results with id -1")
    if ids_arr.dtype.kind not in "iu":
        raise TypeError(f"the retriever returned ids of dtype {ids_arr.dtype}; return integer chunk row numbers")
    if scores_arr.dtype.kind not in "fiu":
        raise TypeError(f"the retriever returned scores of dtype {scores_arr.dtype}; return real numbers")
    ids64 = ids_arr.astype(np.int64)
    s32 = scores_arr.astype(np.float32)
    bad = (ids64 < -1) | (ids64 >= n_chunks)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise ValueError(f"the retriever returned id {int(ids64[row, col])} for question {row} but there are "
                         f"{n_chunks} chunks; return chunk row numbers (0..{n_chunks - 1}) or -1 for padding")
    valid = ids64 >= 0
    nan = np.isnan(s32) & valid
    if nan.any():
        row = int(np.argwhere(nan)[0][0])
        raise ValueError(f"the retriever returned a NaN score for question {row}; return real scores")
    srt = np.sort(np.where(valid, ids64, -1 - np.arange(k)[None, :]), axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        row = int(np.argwhere(dup)[0][0])
        raise ValueError(f"the retriever returned a chunk twice for question {row}; return each chunk at most once")
    key_ids = np.where(valid, ids64, np.iinfo(np.int64).max)
    key_scores = np.where(valid, -s32.astype(np.float64), np.inf)
    order = np.lexsort((key_ids, key_scores), axis=-1)
    out_ids = np.take_along_axis(np.where(valid, ids64, -1), order, axis=1)
    out_scores = np.take_along_axis(np.where(valid, s32, np.float32(-np.inf)), order, axis=1)
    return out_ids, out_scores.astype(np.float32)


def _scoped(chunk_texts: list[str], question_texts: list[str], scope: str, chunk_corpus: Any,
            question_corpus: Any, search: Callable[[list[int], list[int]], tuple[np.ndarray, np.ndarray]], k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Run ``search(chunk_rows, question_rows)`` (local ids) once globally or once per corpus."""
    if scope == "global":
        return search(list(range(len(chunk_texts))), list(range(len(question_texts))))
    chunk_labels = _labels(chunk_corpus, "chunk_corpus", len(chunk_texts))
    question_labels = _labels(question_corpus, "question_corpus", len(question_texts))
    members: dict[Hashable, list[int]] = {}
    for row, label in enumerate(chunk_labels):
        members.setdefault(label, []).append(row)
    asked: dict[Hashable, list[int]] = {}
    for row, label in enumerate(question_labels):
        if label not in members:
            raise ValueError(f"question_corpus[{row}] = {label!r} has no chunks; check the corpus ids "
                             "(chunk_corpus) or use scope='global'")
        asked.setdefault(label, []).append(row)
    ids = np.full((len(question_texts), k), -1, dtype=np.int64)
    scores = np.full((len(question_texts), k), -np.inf, dtype=np.float32)
    for label, rows in asked.items():
        local_ids, local_scores = search(members[label], rows)
        rows_of = np.asarray(members[label], dtype=np.int64)
        ids[rows] = np.where(local_ids >= 0, rows_of[np.maximum(local_ids, 0)], -1)
        scores[rows] = local_scores
    return ids, scores


def _labels(values: Any, name: str, n: int) -> list[Hashable]:
    if values is None:
        raise ValueError(f"{name} is required with scope='corpus': pass one corpus id per row, or use scope='global'")
    from .retrieval import _group_labels

    return _group_labels(values, name, n, "corpus id")


def _vectors(chunk_vectors: Any, question_vectors: Any, n_chunks: int, n_questions: int
             ) -> tuple[np.ndarray, np.ndarray]:
    if chunk_vectors is None or question_vectors is None:
        raise ValueError("method='hybrid' needs chunk_vectors and question_vectors (the dense half); "
                         "embed them, or use method='bm25'")
    cv = _unit_rows(chunk_vectors, "chunk_vectors")
    qv = _unit_rows(question_vectors, "question_vectors", cv.shape[1])
    if len(cv) != n_chunks:
        raise ValueError(f"chunk_vectors has {len(cv)} rows but chunk_texts has {n_chunks}; pass one vector per chunk")
    if len(qv) != n_questions:
        raise ValueError(f"question_vectors has {len(qv)} rows but question_texts has {n_questions}; "
                         "pass one vector per question")
    return cv, qv


def search_texts(
    method: Literal["bm25", "hybrid"] | Retriever, *, chunk_texts: Sequence[str], question_texts: Sequence[str],
    k: int, chunk_vectors: np.ndarray | None = None, question_vectors: np.ndarray | None = None,
    scope: Literal["global", "corpus"] = "global", chunk_corpus: Sequence[Hashable] | np.ndarray | None = None,
    question_corpus: Sequence[Hashable] | np.ndarray | None = None, params: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Top-``k`` chunks per question: ``(ids, scores, info)``.

    ``ids`` ``(n_questions, k)`` ``int64`` chunk rows, ``-1`` padding; ``scores`` ``float32``,
    ``-inf`` padding; best first, ties by the lower chunk id. ``scope="corpus"`` searches only the
    chunks of the question's own corpus (``chunk_corpus`` / ``question_corpus``): one BM25 index
    per corpus, so IDF and average length are that corpus's. ``params``: :data:`BM25_DEFAULTS` for
    ``"bm25"``, those and :data:`HYBRID_DEFAULTS` for ``"hybrid"``, none for a :class:`Retriever`.
    ``info``: ``method``, ``params`` (the full settings used, with package versions), ``timings``
    (``index``, ``search`` seconds) and ``index_bytes`` (``None`` when a retriever cannot say).
    """
    k = _check_k(k)
    chunks = _texts(chunk_texts, "chunk_texts")
    questions = _texts(question_texts, "question_texts")
    if scope not in ("global", "corpus"):
        raise ValueError(f"scope={scope!r} is not 'global' or 'corpus'")
    if isinstance(method, str):
        if method == "bm25":
            return _search_bm25(chunks, questions, k, scope, chunk_corpus, question_corpus,
                                _split_params(params, BM25_DEFAULTS, "bm25"))
        if method == "hybrid":
            cv, qv = _vectors(chunk_vectors, question_vectors, len(chunks), len(questions))
            return _search_hybrid(chunks, questions, k, scope, chunk_corpus, question_corpus, cv, qv,
                                  _split_params(params, {**BM25_DEFAULTS, **HYBRID_DEFAULTS}, "hybrid"))
        raise ValueError(f"method={method!r} is not 'bm25', 'hybrid' or a Retriever object (with search(texts, k))")
    if not callable(getattr(method, "search", None)):
        raise TypeError(f"method must be 'bm25', 'hybrid' or an object with search(question_texts, k), "
                        f"got {type(method).__name__}")
    if params:
        raise TypeError(f"a Retriever object takes no params, got {sorted(params)}; configure the retriever itself")
    if scope == "corpus":
        raise ValueError("scope='corpus' cannot be applied to a Retriever object (it searches what it indexed); "
                         "index each corpus in its own retriever, or use scope='global'")
    t = time.perf_counter()
    raw_ids, raw_scores = method.search(questions, k)
    search_s = time.perf_counter() - t
    ids, scores = _canonical(raw_ids, raw_scores, k, len(questions), len(chunks))
    size = getattr(method, "index_bytes", None)
    size = size() if callable(size) else size
    return ids, scores, {"method": type(method).__name__, "params": {}, "timings": {"index": 0.0, "search": search_s},
                         "index_bytes": int(size) if isinstance(size, int | np.integer) else None}


def _search_bm25(chunks: list[str], questions: list[str], k: int, scope: str, chunk_corpus: Any,
                 question_corpus: Any, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    checked = _bm25_params(params)
    timings = {"index": 0.0, "search": 0.0}
    sizes: list[int] = []
    provenance: dict[str, Any] = {}

    def search(chunk_rows: list[int], question_rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        nonlocal provenance
        t = time.perf_counter()
        index = BM25Index([chunks[i] for i in chunk_rows], checked)
        timings["index"] += time.perf_counter() - t
        t = time.perf_counter()
        result = index.search([questions[i] for i in question_rows], k)
        timings["search"] += time.perf_counter() - t
        sizes.append(index.index_bytes())
        provenance = index.provenance()
        return result

    if not chunks:  # nothing to index: still validate the settings and say which were used
        provenance = BM25Index([], checked).provenance()
    ids, scores = _scoped(chunks, questions, scope, chunk_corpus, question_corpus, search, k)
    return ids, scores, {"method": "bm25", "params": provenance, "scope": scope, "timings": timings,
                         "index_bytes": int(sum(sizes))}


def _search_hybrid(chunks: list[str], questions: list[str], k: int, scope: str, chunk_corpus: Any,
                   question_corpus: Any, cv: np.ndarray, qv: np.ndarray, params: dict[str, Any]
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    rrf_k = params.pop("rrf_k", HYBRID_DEFAULTS["rrf_k"])
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
        raise ValueError(f"params['rrf_k'] = {rrf_k!r} must be an int >= 0 (60 is the usual choice)")
    depth = params.pop("depth", None)
    depth = max(k, 100) if depth is None else _check_k(depth, "params['depth']")
    if depth < k:
        raise ValueError(f"params['depth'] = {depth} is below k = {k}; each list must reach at least k results")
    sparse_ids, _, info = _search_bm25(chunks, questions, depth, scope, chunk_corpus, question_corpus, params)
    t = time.perf_counter()
    groups = chunk_corpus if scope == "corpus" else None
    dense = build_index(cv, groups=groups, method="exact", scope=scope)  # type: ignore[arg-type]
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    dense_ids, _ = dense.search(qv, depth, query_groups=question_corpus if scope == "corpus" else None)
    ids, scores = rrf_fuse(dense_ids, sparse_ids, k, rrf_k)
    search_s = time.perf_counter() - t
    timings = {"index": info["timings"]["index"] + index_s, "search": info["timings"]["search"] + search_s,
               "bm25_index": info["timings"]["index"], "bm25_search": info["timings"]["search"],
               "dense_index": index_s}
    return ids, scores, {"method": "hybrid", "params": {**info["params"], "rrf_k": rrf_k, "depth": depth,
                                                        "dense": "exact"},
                         "scope": scope, "timings": timings, "index_bytes": info["index_bytes"] + int(cv.nbytes)}


# ----------------------------------------------------------------------------------- Chroma


class ChromaRetriever:
    """A :class:`Retriever` over a real local Chroma collection: the protocol's worked example.

    Indexes ``chunk_vectors`` (one row per chunk, with its text as the document; Chroma id = the
    chunk's row number as a string) in a ``chromadb.PersistentClient`` collection at ``path`` (a new
    temporary folder, removed by :meth:`close`, when ``None``), with cosine distance; the score is
    ``1 - distance``. No embedding model is loaded: ``search(question_texts, k)`` embeds the
    questions with ``embed`` (a function texts -> vectors, the same model as the chunks), and
    :meth:`search_vectors` takes question vectors directly. Chroma's HNSW is approximate;
    ``ef_search`` and ``ef_construction`` set its beams.
    """

    def __init__(self, chunk_texts: Sequence[str], chunk_vectors: np.ndarray, *,
                 embed: Callable[[list[str]], np.ndarray] | None = None, path: str | None = None,
                 collection: str = "chunkeval-chunks", ef_search: int = 200, ef_construction: int = 200) -> None:
        texts = _texts(chunk_texts, "chunk_texts")
        vectors = _unit_rows(chunk_vectors, "chunk_vectors")
        if len(vectors) != len(texts):
            raise ValueError(f"chunk_vectors has {len(vectors)} rows but chunk_texts has {len(texts)}; "
                             "pass one vector per chunk")
        if embed is not None and not callable(embed):
            raise TypeError(f"embed must be a function list[str] -> (n, dim) array, got {type(embed).__name__}")
        try:  # import_module: mypy need not see chromadb where the extra is not installed
            chromadb: Any = importlib.import_module("chromadb")
            settings: Any = importlib.import_module("chromadb.config").Settings
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("ChromaRetriever needs chromadb: pip install 'chunkeval[retrievers]'") from exc
        self.embed = embed
        self.n = len(texts)
        self.dim = int(vectors.shape[1])
        self._owned = path is None
        self.path = tempfile.mkdtemp(prefix="chunkeval-chroma-") if path is None else str(path)
        self._client: Any = chromadb.PersistentClient(path=self.path, settings=settings(anonymized_telemetry=False))
        self._collection: Any = self._client.create_collection(
            collection, embedding_function=None,
            configuration={"hnsw": {"space": "cosine", "ef_search": _check_k(ef_search, "ef_search"),
                                    "ef_construction": _check_k(ef_construction, "ef_construction")}})
        batch = int(self._client.get_max_batch_size())
        for start in range(0, self.n, batch):
            stop = min(start + batch, self.n)
            self._collection.add(ids=[str(i) for i in range(start, stop)], embeddings=vectors[start:stop],
                                 documents=texts[start:stop])

    def __len__(self) -> int:
        return self.n

    def search(self, question_texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` chunk rows and cosine scores for question texts, embedded with ``embed``."""
        texts = _texts(question_texts, "question_texts")
        if self.embed is None:
            raise ValueError("ChromaRetriever.search needs embed= (texts -> vectors, the chunks' model); "
                             "or call search_vectors with question vectors")
        return self.search_vectors(np.asarray(self.embed(texts)) if texts else np.zeros((0, self.dim)), k)

    def search_vectors(self, question_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` chunk rows (``int64``, ``-1`` padding) and ``1 - cosine distance`` scores
        (``float32``, ``-inf`` padding) per question vector, best first, ties by the lower id."""
        k = _check_k(k)
        q = _unit_rows(question_vectors, "question_vectors", self.dim)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        kk = min(k, self.n)
        if kk == 0 or len(q) == 0:
            return ids, scores
        result = self._collection.query(query_embeddings=q, n_results=kk, include=["distances"])
        for row, (found, distances) in enumerate(zip(result["ids"], result["distances"], strict=True)):
            ids[row, :len(found)] = [int(x) for x in found]
            scores[row, :len(found)] = 1.0 - np.asarray(distances, dtype=np.float32)
        return _canonical(ids, scores, k, len(q), self.n)

    def index_bytes(self) -> int:
        """Bytes Chroma's folder holds on disk."""
        import os

        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(self.path) for f in files)

    def close(self) -> None:
        """Close the client and remove the folder when it was a temporary one."""
        client, self._client = self._client, None
        if client is not None:
            close = getattr(client, "close", None)
            if callable(close):
                close()
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> ChromaRetriever:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
