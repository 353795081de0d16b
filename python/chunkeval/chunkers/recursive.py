"""Recursive separator splitting with greedy merging, in exact character offsets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..tokenizers import Tokenizer
from .base import Chunker, check_size
from .fixed import chunker_tokenizer, token_spec
from .spec import format_spec

__all__ = ["RecursiveChunker", "DEFAULT_SEPARATORS"]

DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ".", "?", "!", " ", "")

_DEFAULT_TOKENIZER = "cl100k_base"


class RecursiveChunker(Chunker):
    """LangChain-style recursive splitting, computed on positions instead of strings.

    For a stretch of text:

    1. pick the first separator in ``separators`` that occurs in it (``""`` always "occurs" and
       means: split between every character);
    2. cut after every occurrence of that separator: the separator stays at the *end* of the piece
       before it, so the pieces tile the stretch exactly;
    3. pieces that fit (measure ``<= size``) are kept; a piece that is too long is split again the
       same way with the separators after the chosen one (or kept whole when none are left);
    4. consecutive pieces that fit are merged greedily: a chunk grows piece by piece while its
       measure stays ``<= size``; when the next piece does not fit, the chunk is emitted and pieces
       are dropped from its front until what is left measures ``<= overlap`` and leaves room for
       the next piece; what is left is carried into the next chunk.

    As in LangChain, merging happens among the pieces of one level: a chunk never spans the
    boundary of a piece that had to be split further.

    **Measure.** With ``length="tokens"`` a chunk's measure is ``tokenizer.count(chunk text)`` of
    the actual candidate chunk (not a sum over its pieces), so every chunk is at most ``size``
    tokens unless a single unsplittable piece is longer. With ``length="chars"`` it is the number of
    characters and the tokenizer is not used.

    **Whitespace.** A chunk of whitespace only (``str.isspace()``) is never emitted: it is dropped,
    leaving a gap. It arises when a piece that had to be split further is followed by a bare
    separator, e.g. the second ``"\n"`` of a ``"\n\n"`` piece re-split on ``"\n"``. Otherwise, by
    default (``strip=False``), nothing is removed: with ``overlap=0`` the chunks tile the document
    except for those whitespace-only gaps. With ``strip=True`` each chunk's span is also narrowed
    to exclude leading and trailing whitespace, like LangChain's ``strip_whitespace``; the
    whitespace between chunks then belongs to no chunk (``coverage`` in the metrics can drop below
    1 only if a reference starts or ends with whitespace).

    Differences from the reference toolkit's ``RecursiveTokenChunker`` (LangChain's
    ``RecursiveCharacterTextSplitter`` with ``keep_separator=True``): separators stay with the
    piece *before* them (LangChain puts them at the start of the next piece), a piece of exactly
    ``size`` counts as fitting, measures are of the real chunk text, and chunks are never located
    by text search.
    """

    def __init__(
        self,
        size: int = 400,
        overlap: int = 0,
        separators: Sequence[str] = DEFAULT_SEPARATORS,
        length: Literal["tokens", "chars"] = "tokens",
        tokenizer: str | Tokenizer = _DEFAULT_TOKENIZER,
        strip: bool = False,
    ) -> None:
        self.size = check_size(size, "size")
        self.overlap = check_size(overlap, "overlap", minimum=0)
        if self.overlap >= self.size:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than size ({self.size}); a chunk carries at most "
                "overlap units of the previous one"
            )
        if isinstance(separators, str) or not isinstance(separators, Sequence):
            raise TypeError(
                f"separators must be a list of str (tried in order), got {type(separators).__name__}; "
                'e.g. ["\\n\\n", "\\n", " ", ""]'
            )
        for i, sep in enumerate(separators):
            if not isinstance(sep, str):
                raise TypeError(f"separators[{i}] is {type(sep).__name__}, not str")
        if not separators:
            raise ValueError('separators is empty; pass at least one, e.g. [""] to split between characters')
        self.separators = tuple(separators)
        if length not in ("tokens", "chars"):
            raise ValueError(f"length must be 'tokens' or 'chars', got {length!r}")
        if not isinstance(strip, bool):
            raise TypeError(f"strip must be a bool, got {type(strip).__name__}")
        self.strip = strip
        self.length = length
        self.tokenizer: Tokenizer | None = chunker_tokenizer(tokenizer) if length == "tokens" else None
        if self.tokenizer is not None and token_spec(self.tokenizer) == "chars":
            # Counting CharTokenizer tokens is counting characters; say so once, in one spelling.
            self.length, self.tokenizer = "chars", None
        parts = [f"recursive:{self.size}:{self.overlap}"]
        if self.length == "chars":
            parts.append("chars")
        elif token_spec(self.tokenizer) != _DEFAULT_TOKENIZER:  # type: ignore[arg-type]
            parts.append(token_spec(self.tokenizer))  # type: ignore[arg-type]
        self.name = ":".join(parts)
        if self.separators != DEFAULT_SEPARATORS:
            self.name += ":custom-separators"
        if self.strip:
            self.name += ":strip"

    @property
    def spec(self) -> str:
        """``recursive:<size>:<overlap>[:<tokenizer>|:chars][:strip][:separators=<JSON list>]``."""
        custom = {} if self.separators == DEFAULT_SEPARATORS else {"separators": list(self.separators)}
        tokenizer = None if self.tokenizer is None else token_spec(self.tokenizer)
        return format_spec("recursive", [self.size, self.overlap], tokenizer, _DEFAULT_TOKENIZER,
                           flags=["strip"] if self.strip else [], options=custom)

    def config(self) -> dict[str, Any]:
        return {
            "type": "recursive",
            "size": self.size,
            "overlap": self.overlap,
            "separators": list(self.separators),
            "length": self.length,
            "tokenizer": None if self.tokenizer is None else token_spec(self.tokenizer),
            "strip": self.strip,
        }

    def _spans(self, text: str) -> list[tuple[int, int]]:
        if not text:
            return []
        measure = _char_measure if self.tokenizer is None else _token_measure(text, self.tokenizer.count)
        chunks = _split(text, 0, len(text), self.separators, measure, self.size, self.overlap)
        if self.strip:
            chunks = [c for c in (_strip(text, s, e) for s, e in chunks) if c is not None]
        return chunks


def _char_measure(start: int, end: int) -> int:
    return end - start


def _token_measure(text: str, count: Callable[[str], int]) -> Callable[[int, int], int]:
    """``count`` of ``text[start:end]``, remembered per span (merging asks for the same spans again)."""
    cache: dict[tuple[int, int], int] = {}

    def measure(start: int, end: int) -> int:
        key = (start, end)
        value = cache.get(key)
        if value is None:
            value = cache[key] = count(text[start:end])
        return value

    return measure


def _pieces(text: str, lo: int, hi: int, separator: str) -> list[tuple[int, int]]:
    """Cut ``[lo, hi)`` after every occurrence of ``separator`` (``""``: after every character)."""
    if separator == "":
        return [(i, i + 1) for i in range(lo, hi)]
    pieces = []
    start = lo
    width = len(separator)
    found = text.find(separator, start, hi)
    while found != -1:
        end = found + width
        pieces.append((start, end))
        start = end
        found = text.find(separator, start, hi)
    if start < hi:
        pieces.append((start, hi))
    return pieces


def _split(
    text: str,
    lo: int,
    hi: int,
    separators: Sequence[str],
    measure: Callable[[int, int], int],
    size: int,
    overlap: int,
) -> list[tuple[int, int]]:
    separator, rest = separators[-1], tuple[str, ...]()
    for i, candidate in enumerate(separators):
        if candidate == "":
            separator, rest = "", ()
            break
        if text.find(candidate, lo, hi) != -1:
            separator, rest = candidate, tuple(separators[i + 1:])
            break
    chunks: list[tuple[int, int]] = []
    fitting: list[tuple[int, int]] = []
    for s, e in _pieces(text, lo, hi, separator):
        if measure(s, e) <= size:
            fitting.append((s, e))
            continue
        if fitting:
            chunks.extend(_merge(fitting, measure, size, overlap))
            fitting = []
        if rest:
            chunks.extend(_split(text, s, e, rest, measure, size, overlap))
        else:
            chunks.append((s, e))
    if fitting:
        chunks.extend(_merge(fitting, measure, size, overlap))
    return chunks


def _merge(
    pieces: list[tuple[int, int]], measure: Callable[[int, int], int], size: int, overlap: int
) -> list[tuple[int, int]]:
    """Greedy merge of contiguous pieces; the window is ``pieces[first:last+1]``."""
    chunks = []
    first = 0
    for last, (_, piece_end) in enumerate(pieces):
        if last > first and measure(pieces[first][0], piece_end) > size:
            chunks.append((pieces[first][0], pieces[last - 1][1]))
            # Carry the tail of the emitted chunk: drop pieces from its front until the carried
            # part is within overlap and the next piece fits beside it.
            while first < last and (
                measure(pieces[first][0], pieces[last - 1][1]) > overlap
                or measure(pieces[first][0], piece_end) > size
            ):
                first += 1
    if pieces:
        chunks.append((pieces[first][0], pieces[-1][1]))
    return chunks


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
