"""Cluster-semantic chunking: cut where the meaning changes, by dynamic programming over embeddings.

The reference toolkit's ``ClusterSemanticChunker`` (Chroma's chunking-evaluation report), in exact
character spans:

1. **Pieces.** Each document is cut into small consecutive pieces of at most ``piece_size`` units
   (tokens or characters) that tile it exactly. A piece ends at the best place inside the last
   half of its window: after a blank line, else after a line break, else after a sentence end,
   else at a word boundary, else wherever the window ends.
2. **Embeddings.** Every piece is embedded (rows L2-normalised), and the cosine similarity of two
   pieces is the dot product of their rows. Similarities are *centred* on the document's mean
   pairwise similarity ``μ`` (``s'(a, b) = cos(a, b) - μ``), as in the reference: a chunk gains
   from holding two pieces only when they are more alike than two pieces of this document
   usually are. Without centring every similarity is positive and the largest chunks would
   always win.
3. **Dynamic programming.** A chunk is a run of consecutive pieces whose lengths sum to at most
   ``max_size``; its reward is the sum of ``s'(a, b)`` over its pairs of pieces ``a < b``. The
   segmentation of the document maximising the total reward is found exactly in
   ``O(n · w)`` vector work (``O(n · w²)`` arithmetic) for ``n`` pieces and at most ``w`` pieces per
   chunk, from prefix sums of the band of the similarity matrix within ``w`` of the diagonal; the
   ``n × n`` matrix is never built, and ``μ`` comes from the sum of the rows in ``O(n · dim)``.
   Among equal totals the chunk that starts earliest (the longest) is taken.

Chunks tile every document (no character is lost, no span is empty), except that a chunk made only of
whitespace (``str.isspace()``) is dropped, leaving a gap: a document of blank lines has no chunks.
Chunk lengths in tokens are
counted on the tokenization of the whole document (a piece's length is the number of tokens that
start inside it), so they are exact for that tokenization.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..spans import Spans
from ..tokenizers import Tokenizer, get_tokenizer
from .base import Chunker, SpanColumns, check_size, check_texts, has_content, progress_bar
from .fixed import token_spec
from .spec import format_spec

__all__ = ["ClusterSemanticChunker", "EmbedderLike", "embedder_label", "segment_pieces", "split_pieces"]


@runtime_checkable
class EmbedderLike(Protocol):
    """Anything with ``embed(texts) -> array`` of one row per text (:class:`chunkeval.embedding.Embedder`)."""

    def embed(self, texts: list[str]) -> np.ndarray: ...


def embedder_label(embedder: EmbedderLike) -> str:
    """The model an embedder object runs, as a spec names it: the bundled model's name, a local
    model's directory, else its ``model_name``/``name`` attribute or its class name."""
    name = getattr(embedder, "model_name", None) or getattr(embedder, "name", None)
    model_dir = getattr(getattr(embedder, "spec", None), "model_dir", None)
    if name != DEFAULT_EMBEDDER and isinstance(model_dir, (str, os.PathLike)):
        return os.fspath(model_dir)
    return str(name or type(embedder).__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_DEFAULT_TOKENIZER = "cl100k_base"
# Embed this many pieces per call: bounds the memory of the vectors held at once.
_EMBED_GROUP = 32768

# Preference of a cut position, lower is better: see the module docstring, step 1.
_TIER_PARAGRAPH, _TIER_LINE, _TIER_SENTENCE, _TIER_WORD, _TIER_ANY = 0, 1, 2, 3, 4
_WHITESPACE = np.array([ord(c) for c in " \t\n\r\x0b\x0c\xa0\u2028\u2029\u3000"], dtype=np.uint32)
_SENTENCE_END = np.array([ord(c) for c in ".!?\u3002"], dtype=np.uint32)


def _cut_tiers(text: str, positions: np.ndarray) -> np.ndarray:
    """The preference tier of cutting ``text`` at each of ``positions`` (all in ``1..len(text)-1``)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    tiers = np.full(len(positions), _TIER_ANY, dtype=np.int8)
    if len(positions) == 0:
        return tiers
    prev1 = codes[positions - 1]
    prev2 = np.where(positions >= 2, codes[np.maximum(positions - 2, 0)], 0)
    here = codes[positions]
    prev1_space = np.isin(prev1, _WHITESPACE)
    here_space = np.isin(here, _WHITESPACE)
    word = prev1_space | here_space
    # "3.5" is no sentence end: the full stop must be followed by whitespace.
    sentence = (np.isin(prev1, _SENTENCE_END) & here_space) | (prev1_space & np.isin(prev2, _SENTENCE_END))
    newline = ord("\n")
    # Assign from the weakest preference to the strongest so that the best tier wins.
    tiers[word] = _TIER_WORD
    tiers[sentence] = _TIER_SENTENCE
    tiers[prev1 == newline] = _TIER_LINE
    tiers[(prev1 == newline) & (prev2 == newline)] = _TIER_PARAGRAPH
    return tiers


def split_pieces(
    text: str, piece_size: int, token_offsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``text`` into consecutive pieces of at most ``piece_size`` units that tile it.

    Units are characters when ``token_offsets`` is ``None``, else tokens: ``token_offsets`` is the
    tokenizer's ``(n_tokens, 2)`` character ranges; tokens with an empty range are ignored and a
    piece may only end where a token starts. Returns ``(starts, ends, lengths)`` (int64 arrays,
    ``lengths`` in units). A single unit longer than ``piece_size`` (several tokens starting at the
    same character) becomes a piece of its own. An empty text has no pieces.
    """
    n_chars = len(text)
    if n_chars == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    if token_offsets is None:
        unit_starts = np.arange(n_chars, dtype=np.int64)
        weights = np.ones(n_chars, dtype=np.int64)
    else:
        offsets = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
        starts = np.sort(offsets[offsets[:, 1] > offsets[:, 0], 0])
        unit_starts, weights = np.unique(starts, return_counts=True)
        weights = weights.astype(np.int64)
        if len(unit_starts) == 0:
            # No token at all (e.g. whitespace under a tokenizer that skips it): one piece, no length.
            return np.array([0], np.int64), np.array([n_chars], np.int64), np.array([0], np.int64)
    m = len(unit_starts)
    # pos[i] is where unit i starts; the first unit also owns any text before it, the last the rest.
    pos = np.empty(m + 1, dtype=np.int64)
    pos[0] = 0
    pos[1:m] = unit_starts[1:]
    pos[m] = n_chars
    cumulative = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(weights, out=cumulative[1:])
    tiers = np.full(m + 1, _TIER_ANY, dtype=np.int8)
    tiers[1:m] = _cut_tiers(text, pos[1:m])
    half = max(1, piece_size // 2)
    cuts = [0]
    a = 0
    while a < m:
        b_max = int(np.searchsorted(cumulative, cumulative[a] + piece_size, side="right")) - 1
        b_max = max(b_max, a + 1)
        if b_max >= m:
            cuts.append(m)
            break
        b_min = int(np.searchsorted(cumulative, cumulative[a] + half, side="left"))
        b_min = min(max(b_min, a + 1), b_max)
        window = tiers[b_min:b_max + 1]
        best_tier = window.min()
        b = b_min + int(np.flatnonzero(window == best_tier)[-1])
        cuts.append(b)
        a = b
    cut_units = np.asarray(cuts, dtype=np.int64)
    return pos[cut_units[:-1]], pos[cut_units[1:]], np.diff(cumulative[cut_units])


def segment_pieces(vectors: np.ndarray, lengths: Sequence[int] | np.ndarray, max_size: int) -> np.ndarray:
    """The best segmentation of consecutive pieces into chunks; returns each chunk's end piece (exclusive).

    ``vectors`` are the pieces' L2-normalised embeddings (``n × dim``), ``lengths`` their sizes. A
    chunk is a run of pieces with total length ``<= max_size`` (a single piece is always allowed);
    the total reward ``Σ_chunks Σ_{a<b in chunk} (vectors[a]·vectors[b] - μ)`` is maximised, with
    ``μ`` the mean similarity over all pairs of pieces. The result ``ends`` (int64, increasing,
    last ``== n``) says chunk ``k`` holds pieces ``ends[k-1]:ends[k]`` (``ends[-1]`` taken as 0).
    """
    x = np.asarray(vectors, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if x.ndim != 2 or len(x) != n:
        raise ValueError(f"vectors must have one row per piece: got shape {x.shape} for {n} pieces")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.array([1], dtype=np.int64)
    total = x.sum(axis=0)
    mean_similarity = (float(total @ total) - float(np.einsum("ij,ij->", x, x))) / (n * (n - 1))
    # first[e]: the earliest piece a chunk ending at piece e may start at.
    prefix = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=prefix[1:])
    first = np.searchsorted(prefix, prefix[1:] - max_size, side="left")
    first = np.minimum(first, np.arange(n))
    width = int((np.arange(n) - first).max()) + 1
    # band_sum[i, k] = Σ_{d=1..k} s'(i, i + d): the reward piece i adds to a chunk reaching i + k.
    band = np.zeros((n, width), dtype=np.float64)
    for d in range(1, width):
        band[: n - d, d] = np.einsum("ij,ij->i", x[: n - d], x[d:]) - mean_similarity
    band_sum = np.cumsum(band, axis=1)
    best = np.zeros(n + 1, dtype=np.float64)
    choice = np.zeros(n + 1, dtype=np.int64)
    for e in range(n):
        starts = np.arange(first[e], e + 1)
        # reward(i..e) = Σ_{a=i}^{e-1} band_sum[a, e - a]: a suffix sum over the candidate starts.
        gains = np.zeros(len(starts), dtype=np.float64)
        gains[:-1] = band_sum[starts[:-1], e - starts[:-1]]
        reward = np.cumsum(gains[::-1])[::-1]
        totals = best[starts] + reward
        k = int(np.argmax(totals))
        best[e + 1] = totals[k]
        choice[e + 1] = starts[k]
    ends = []
    e = n
    while e > 0:
        ends.append(e)
        e = int(choice[e])
    return np.asarray(ends[::-1], dtype=np.int64)


class ClusterSemanticChunker(Chunker):
    """Chunks whose pieces are alike: embedding-driven boundaries found by dynamic programming.

    Parameters
    ----------
    max_size:
        The largest chunk, in ``length`` units (a chunk is always at least one piece).
    piece_size:
        The largest piece, in ``length`` units; must not exceed ``max_size``. The reference uses
        50 tokens.
    length:
        ``"tokens"`` (counted with ``tokenizer``) or ``"chars"``.
    tokenizer:
        Any :func:`chunkeval.tokenizers.get_tokenizer` spec or tokenizer (ignored for ``"chars"``).
    embedder:
        An object with ``embed(list[str]) -> np.ndarray`` (one row per text), a local model name or
        path for :class:`chunkeval.embedding.Embedder`, or ``None`` for the bundled
        all-MiniLM-L6-v2. Built on the first :meth:`chunk` call, so constructing the chunker is
        cheap. Rows are re-normalised to unit length, so cosine is a dot product either way.
        From a spec, :func:`~chunkeval.chunkers.get_chunker` takes the run's embedder (its
        ``embedder=`` argument) or the spec's ``embedder=<model>``, and refuses a spec with neither.

    See the module docstring for the algorithm.
    """

    def __init__(
        self,
        max_size: int = 400,
        piece_size: int = 50,
        length: Literal["tokens", "chars"] = "tokens",
        tokenizer: str | Tokenizer = _DEFAULT_TOKENIZER,
        embedder: EmbedderLike | str | os.PathLike[str] | None = None,
    ) -> None:
        self.max_size = check_size(max_size, "max_size")
        self.piece_size = check_size(piece_size, "piece_size")
        if self.piece_size > self.max_size:
            raise ValueError(
                f"piece_size ({self.piece_size}) must not exceed max_size ({self.max_size}); a chunk is made of pieces"
            )
        if length not in ("tokens", "chars"):
            raise ValueError(f"length must be 'tokens' or 'chars', got {length!r}")
        self.length = length
        self.tokenizer: Tokenizer | None = get_tokenizer(tokenizer) if length == "tokens" else None
        if self.tokenizer is not None and token_spec(self.tokenizer) == "chars":
            self.length, self.tokenizer = "chars", None
        self._embedder: EmbedderLike | None
        if embedder is None or isinstance(embedder, (str, os.PathLike)):
            self._embedder_spec: str = os.fspath(embedder) if embedder is not None else DEFAULT_EMBEDDER
            self._embedder = None
        elif callable(getattr(embedder, "embed", None)):
            self._embedder_spec = embedder_label(embedder)
            self._embedder = embedder
        else:
            raise TypeError(
                f"embedder must have an embed(list[str]) -> np.ndarray method, or be a model name/path or None; "
                f"got {type(embedder).__name__}"
            )
        self.name = f"semantic:{self.max_size}:{self.piece_size}"
        if self.length == "chars":
            self.name += ":chars"
        elif token_spec(self.tokenizer) != _DEFAULT_TOKENIZER:  # type: ignore[arg-type]
            self.name += ":" + token_spec(self.tokenizer)  # type: ignore[arg-type]

    @property
    def embedder(self) -> EmbedderLike:
        """The embedder, built on first use (a model load takes seconds)."""
        if self._embedder is None:
            from ..embedding import Embedder

            self._embedder = Embedder(self._embedder_spec)
        return self._embedder

    @property
    def spec(self) -> str:
        """``semantic:<max_size>:<piece_size>[:<tokenizer>|:chars]:embedder=<model>``."""
        tokenizer = None if self.tokenizer is None else token_spec(self.tokenizer)
        return format_spec("semantic", [self.max_size, self.piece_size], tokenizer, _DEFAULT_TOKENIZER,
                           options={"embedder": self._embedder_spec})

    def config(self) -> dict[str, Any]:
        return {
            "type": "cluster_semantic",
            "max_size": self.max_size,
            "piece_size": self.piece_size,
            "length": self.length,
            "tokenizer": None if self.tokenizer is None else token_spec(self.tokenizer),
            "embedder": self._embedder_spec,
        }

    def pieces(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(starts, ends, lengths)`` of the pieces of one document (see :func:`split_pieces`)."""
        offsets = None if self.tokenizer is None else self.tokenizer.offsets(text)
        return split_pieces(text, self.piece_size, offsets)

    def _spans(self, text: str) -> SpanColumns:
        spans = self.chunk([text], show_progress=False)
        return SpanColumns(spans.start, spans.end)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.embedder.embed(texts))
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(
                f"embedder returned shape {vectors.shape} for {len(texts)} texts; it must return one row per text"
            )
        vectors = vectors.astype(np.float64)
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise ValueError(f"embedder returned a non-finite vector for piece {row} ({texts[row][:40]!r})")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0))

    def chunk(self, texts: Sequence[str], *, show_progress: bool | None = None) -> Spans:
        """Chunk every document; ``doc`` of a span is the index of its document in ``texts``."""
        texts = check_texts(texts)
        out_doc: list[np.ndarray] = []
        out_start: list[np.ndarray] = []
        out_end: list[np.ndarray] = []
        with progress_bar(show_progress) as bar:
            task = bar.add_task(f"chunk {self.name}", total=len(texts))
            group: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
            group_pieces = 0

            def flush() -> None:
                nonlocal group, group_pieces
                if not group:
                    return
                piece_texts = [texts[doc][s:e] for doc, starts, ends, _ in group
                               for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
                vectors = self._embed(piece_texts)
                row = 0
                for doc, starts, ends, lengths in group:
                    n = len(starts)
                    chunk_ends = segment_pieces(vectors[row:row + n], lengths, self.max_size)
                    row += n
                    chunk_starts = np.concatenate(([0], chunk_ends[:-1]))
                    span_starts, span_ends = starts[chunk_starts], ends[chunk_ends - 1]
                    keep = has_content(texts[doc], span_starts, span_ends)
                    out_doc.append(np.full(int(keep.sum()), doc, dtype=np.int64))
                    out_start.append(span_starts[keep])
                    out_end.append(span_ends[keep])
                    bar.advance(task)
                group, group_pieces = [], 0

            for doc, text in enumerate(texts):
                starts, ends, lengths = self.pieces(text)
                if len(starts) == 0:
                    bar.advance(task)
                    continue
                group.append((doc, starts, ends, lengths))
                group_pieces += len(starts)
                if group_pieces >= _EMBED_GROUP:
                    flush()
            flush()
        if not out_doc:
            return Spans([], [], [])
        doc_col = np.concatenate(out_doc)
        order = np.argsort(doc_col, kind="stable")
        return Spans(doc_col[order], np.concatenate(out_start)[order], np.concatenate(out_end)[order],
                     name=f"{self.name} chunks")
