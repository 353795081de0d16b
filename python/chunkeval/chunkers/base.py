"""The chunker contract and the helpers every chunker shares."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, cast

import numpy as np

from .._progress import progress
from ..spans import Spans, as_int64_column

__all__ = ["Chunker", "SpanColumns", "chunk_texts", "check_texts", "has_content"]


# Python's ``\s`` on str matches exactly the characters for which ``str.isspace()`` is true (checked over
# every code point in the tests), so ``\S`` finds the first character that is content.
_CONTENT = re.compile(r"\S")


class ProgressBar(Protocol):
    """What the chunkers use of :func:`chunkeval._progress.progress`'s bar."""

    def add_task(self, description: str, total: float | None = None) -> int: ...

    def advance(self, task: int, advance: float = 1) -> None: ...


def progress_bar(show: bool | None) -> AbstractContextManager[ProgressBar]:
    """:func:`chunkeval._progress.progress`, typed with the two methods the chunkers call."""
    return cast("AbstractContextManager[ProgressBar]", progress(show))


def has_content(text: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``keep[i]`` is true when ``text[starts[i]:ends[i]]`` holds a character that is not whitespace.

    Whitespace is what ``str.isspace()`` says it is (spaces, tabs, CR/LF, form feeds, the Unicode
    spaces and separators such as U+00A0, U+2028, U+3000, and the information separators
    U+001C-U+001F). The search stops at the first content character, so the cost is the length of a
    chunk's leading whitespace, not of the chunk.
    """
    search = _CONTENT.search
    return np.fromiter(
        (search(text, s, e) is not None for s, e in zip(starts.tolist(), ends.tolist(), strict=True)),
        dtype=bool, count=len(starts),
    )


class SpanColumns(NamedTuple):
    """One document's spans as two columns, ``starts[i]`` and ``ends[i]`` bounding span ``i``.

    The column form exists for chunkers that compute their spans with numpy. It has its own type
    because a bare ``(array, array)`` is ambiguous: it could just as well be two ``(start, end)``
    pairs, and guessing wrong silently swaps offsets between spans.
    """

    starts: np.ndarray
    ends: np.ndarray


def check_texts(texts: Any) -> Sequence[str]:
    """``texts`` as a sequence of ``str``; a ``TypeError`` names the first bad item."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of documents, got a single str; wrap it in a list: [text]")
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not str; decode or convert every document to str")
    return cast("Sequence[str]", texts)


def check_size(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer argument ``>= minimum`` (bools and floats are refused, not cast)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


class Chunker(abc.ABC):
    """Splits documents into exact character spans.

    ``chunk(texts)`` returns :class:`~chunkeval.spans.Spans` whose ``doc`` is the index into
    ``texts``; rows are sorted by doc, then start (then end); no span is empty or whitespace-only
    (a span of only ``str.isspace()`` characters is dropped, so a chunker may leave gaps of
    whitespace but never emits a chunk without content); the same input always gives the same
    spans. Spans are computed from positions, never by searching for a
    chunk's text (except :class:`~chunkeval.chunkers.TextChunker`, which exists to wrap splitters
    that only return strings).

    Subclasses implement :meth:`_spans` for one document and :meth:`config`.
    """

    #: short label used in tables and file names, e.g. ``"fixed:200:0"``
    name: str

    @property
    def spec(self) -> str:
        """The string spec :func:`~chunkeval.chunkers.get_chunker` rebuilds an equal chunker from
        (the :attr:`name` unless a chunker has options its name leaves out)."""
        return self.name

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that determines the output, as plain JSON values (``{"type": ..., ...}``).

        For the built-in chunkers ``get_chunker(chunker.config())`` rebuilds an equal chunker.
        """

    @abc.abstractmethod
    def _spans(self, text: str) -> Iterable[tuple[int, int]] | SpanColumns:
        """Spans of one document: :class:`SpanColumns` or an iterable of ``(start, end)`` pairs.

        Anything that is not a :class:`SpanColumns` is read as pairs, so a plain tuple of two
        arrays means two spans, never a starts column and an ends column.
        """

    def _document_spans(self, doc: int, text: str) -> Any:
        """Spans of document number ``doc`` (the number only serves error messages)."""
        return self._spans(text)

    def chunk(self, texts: Sequence[str], *, show_progress: bool | None = None) -> Spans:
        """Chunk every document; ``doc`` of a span is the index of its document in ``texts``."""
        texts = check_texts(texts)
        docs: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        with progress_bar(show_progress) as bar:
            task = bar.add_task(f"chunk {self.name}", total=len(texts))
            for doc, text in enumerate(texts):
                start, end = _as_span_columns(self._document_spans(doc, text), doc, len(text), self.name)
                keep = has_content(text, start, end)
                if not keep.all():
                    start, end = start[keep], end[keep]
                docs.append(np.full(len(start), doc, dtype=np.int64))
                starts.append(start)
                ends.append(end)
                bar.advance(task)
        if not texts:
            return Spans([], [], [])
        return Spans(np.concatenate(docs), np.concatenate(starts), np.concatenate(ends), name=f"{self.name} chunks")

    def __call__(self, texts: Sequence[str]) -> Spans:
        return self.chunk(texts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chunker):
            return NotImplemented
        return type(self) is type(other) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.config().items()))))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({params})"


def _as_span_columns(result: Any, doc: int, text_length: int, chunker: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one document's spans and sort them by (start, end).

    ``result`` is a :class:`SpanColumns` (built-in chunkers) or an iterable of ``(start, end)``
    pairs (everything else, :class:`~chunkeval.chunkers.OffsetChunker` output included). Offsets
    go through :func:`~chunkeval.spans.as_int64_column`, so fractional floats are an error, not
    truncated.
    """
    where = f"{chunker}: document {doc}"
    if isinstance(result, SpanColumns):
        start = as_int64_column(result.starts, f"{where}, span starts")
        end = as_int64_column(result.ends, f"{where}, span ends")
        if len(start) != len(end):
            raise ValueError(
                f"{where}: SpanColumns has {len(start)} starts but {len(end)} ends; "
                "every span needs one start and one end"
            )
    else:
        if isinstance(result, (str, bytes)):
            raise TypeError(f"{where}: spans are a {type(result).__name__}; return an iterable of (start, end) pairs")
        pairs = list(result)
        for row, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list, np.ndarray)) and len(pair) == 2):
                raise ValueError(f"{where}, span {row} is {pair!r}; each span must be a (start, end) pair")
        # Object columns make as_int64_column check every value (bools, strings, fractions) by row;
        # numpy scalars become Python ones so an error shows 0.7, not np.float64(0.7).
        start = as_int64_column(_object_column(p[0] for p in pairs), f"{where}, span starts")
        end = as_int64_column(_object_column(p[1] for p in pairs), f"{where}, span ends")
    bad = (start < 0) | (end <= start) | (end > text_length)
    if bad.any():
        row = int(np.argmax(bad))
        s, e = int(start[row]), int(end[row])
        if e <= s:
            why = "is empty" if e == s else "is reversed"
        elif s < 0:
            why = "starts before 0"
        else:
            why = f"ends past the document (length {text_length})"
        raise ValueError(
            f"{chunker}: document {doc}, span {row} [{s}, {e}) {why}; spans must satisfy "
            "0 <= start < end <= len(text) (drop empty chunks)"
        )
    order = np.lexsort((end, start))
    if not np.array_equal(order, np.arange(len(order))):
        start, end = start[order], end[order]
    return np.ascontiguousarray(start), np.ascontiguousarray(end)


def _object_column(values: Iterable[Any]) -> np.ndarray:
    # fromiter never broadcasts, so a nested list stays one (bad) value that is reported by row.
    return np.fromiter((v.item() if isinstance(v, np.generic) else v for v in values), dtype=object)


def chunk_texts(spans: Spans, texts: Sequence[str]) -> list[str]:
    """The text of every span: ``texts[doc][start:end]``, in row order."""
    if not isinstance(spans, Spans):
        raise TypeError(f"spans must be a chunkeval.spans.Spans, got {type(spans).__name__}")
    texts = check_texts(texts)
    spans.check_within([len(t) for t in texts], name="spans")
    return [texts[d][s:e] for d, s, e in zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True)]
