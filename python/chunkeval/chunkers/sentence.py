"""Groups of N sentences (the 5/10/15/20-sentence sweeps of the domain-specific RAG literature)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .base import Chunker, SpanColumns, check_size

__all__ = ["SentenceChunker", "sentence_spans"]

# A sentence ends after ".", "!" or "?" and the whitespace run that follows it.
_SENTENCE_END = re.compile(r"[.!?]\s+")


def sentence_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the sentences of ``text``; they tile ``text`` exactly.

    A sentence ends where a run of whitespace that follows ``.``, ``!`` or ``?`` ends (the
    whitespace belongs to the sentence before it); the last sentence runs to the end of the text.
    The rule is deliberately simple: abbreviations ("Dr. Smith") and decimals followed by a space
    end a sentence, a closing quote after the stop ("...end." She) does not.
    """
    if not text:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    boundaries = [m.end() for m in _SENTENCE_END.finditer(text)]
    if not boundaries or boundaries[-1] != len(text):
        boundaries.append(len(text))
    ends = np.asarray(boundaries, dtype=np.int64)
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    return starts, ends


class SentenceChunker(Chunker):
    """``sentences_per_chunk`` consecutive sentences per chunk, no overlap; chunks tile the text.

    Sentences are split by :func:`sentence_spans` (after ``.``, ``!``, ``?`` followed by whitespace,
    the whitespace going with the sentence before it). The last chunk of a document may hold fewer
    sentences. A chunk of whitespace only (a document, or its start, that is only blank lines) is
    dropped, so the chunks tile the text except for such whitespace.
    """

    def __init__(self, sentences_per_chunk: int = 5) -> None:
        self.sentences_per_chunk = check_size(sentences_per_chunk, "sentences_per_chunk")
        self.name = f"sentence:{self.sentences_per_chunk}"

    def config(self) -> dict[str, Any]:
        return {"type": "sentence", "sentences_per_chunk": self.sentences_per_chunk}

    def _spans(self, text: str) -> SpanColumns:
        starts, ends = sentence_spans(text)
        if len(starts) == 0:
            return SpanColumns(starts, ends)
        n = self.sentences_per_chunk
        first = np.arange(0, len(starts), n)
        last = np.minimum(first + n, len(starts)) - 1
        return SpanColumns(np.ascontiguousarray(starts[first]), np.ascontiguousarray(ends[last]))
