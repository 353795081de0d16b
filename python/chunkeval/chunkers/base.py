"""The chunker contract and the helpers every chunker shares."""

from __future__ import annotations

import abc
from typing import Any, Iterable, Sequence

import numpy as np

from .._progress import progress
from ..spans import Spans

__all__ = ["Chunker", "chunk_texts", "check_texts"]


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
    return texts


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
    ``texts``; rows are sorted by doc, then start (then end); no span is empty; the same input
    always gives the same spans. Spans are computed from positions, never by searching for a
    chunk's text (except :class:`~chunkeval.chunkers.TextChunker`, which exists to wrap splitters
    that only return strings).

    Subclasses implement :meth:`_spans` for one document and :meth:`config`.
    """

    #: short label used in tables and file names, e.g. ``"fixed:200:0"``
    name: str

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that determines the output, as plain JSON values (``{"type": ..., ...}``).

        For the built-in chunkers ``get_chunker(chunker.config())`` rebuilds an equal chunker.
        """

    @abc.abstractmethod
    def _spans(self, text: str) -> Iterable[tuple[int, int]] | tuple[np.ndarray, np.ndarray]:
        """Spans of one document: ``(starts, ends)`` arrays or an iterable of ``(start, end)`` pairs."""

    def _document_spans(self, doc: int, text: str) -> Any:
        """Spans of document number ``doc`` (the number only serves error messages)."""
        return self._spans(text)

    def chunk(self, texts: Sequence[str], *, show_progress: bool | None = None) -> Spans:
        """Chunk every document; ``doc`` of a span is the index of its document in ``texts``."""
        texts = check_texts(texts)
        docs: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        with progress(show_progress) as bar:
            task = bar.add_task(f"chunk {self.name}", total=len(texts))
            for doc, text in enumerate(texts):
                start, end = _as_span_columns(self._document_spans(doc, text), doc, len(text), self.name)
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
    """Validate one document's spans and sort them by (start, end)."""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], np.ndarray):
        start = np.asarray(result[0], dtype=np.int64)
        end = np.asarray(result[1], dtype=np.int64)
    else:
        pairs = list(result)
        for row, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list, np.ndarray)) and len(pair) == 2):
                raise ValueError(
                    f"{chunker}: document {doc}, span {row} is {pair!r}; each span must be a (start, end) pair"
                )
            for value in pair:
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                    raise TypeError(
                        f"{chunker}: document {doc}, span {row} is {tuple(pair)!r}; offsets must be ints "
                        "(str indices into the document)"
                    )
        start = np.array([int(p[0]) for p in pairs], dtype=np.int64)
        end = np.array([int(p[1]) for p in pairs], dtype=np.int64)
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


def chunk_texts(spans: Spans, texts: Sequence[str]) -> list[str]:
    """The text of every span: ``texts[doc][start:end]``, in row order."""
    if not isinstance(spans, Spans):
        raise TypeError(f"spans must be a chunkeval.spans.Spans, got {type(spans).__name__}")
    texts = check_texts(texts)
    spans.check_within([len(t) for t in texts], name="spans")
    return [texts[d][s:e] for d, s, e in zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist())]
