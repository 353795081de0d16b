"""Find the exact corpus span of each excerpt a model quoted, or of each piece range it cited.

Exact spans are the product: a reference is ``corpus[start:end]`` with ``start``/``end`` Python
``str`` offsets, and its content is always that slice, never the model's wording. An excerpt is
searched, in order:

``exact_window``  verbatim inside the window the model was shown (nearest occurrence);
``exact_corpus``  verbatim anywhere in the corpus (occurrence nearest the window);
``normalized``    ignoring case, runs of whitespace, typographic quotes and dashes and a leading
                  or trailing ellipsis, in the window first, then in the corpus; offsets are mapped
                  back through a per-character index so the slice is exactly the original text;
``fuzzy``         ``rapidfuzz.fuzz.partial_ratio_alignment`` of the normalized excerpt against the
                  normalized window only, at or above ``fuzzy_threshold`` (0–100); the span is then
                  moved to the word boundaries nearby that maximise ``fuzz.ratio`` to the excerpt;
                  that ratio, also at least ``fuzzy_threshold``, is the recorded score.

Approximate mode shows the window as ~100-character pieces ``<p id=N>…</p>`` cut at whitespace;
:func:`pieces_to_span` turns an inclusive id range into offsets, each reference on its own (no
offset carried over from the previous reference).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .parsing import AnswerError

__all__ = [
    "MATCH_KINDS",
    "Located",
    "CorpusIndex",
    "locate_excerpt",
    "normalize_with_map",
    "normalize_text",
    "tag_pieces",
    "pieces_to_span",
]

#: Match kinds from most to least trustworthy.
MATCH_KINDS = ("exact_window", "exact_corpus", "normalized", "fuzzy")

_WHITESPACE_RUN = re.compile(r"\s{2,}")
_WHITESPACE = re.compile(r"\s+")
# One character in, one character out: keeps the map from normalized to original positions trivial.
_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
}
_ELLIPSES = ("...", "\u2026")


@dataclass(frozen=True)
class Located:
    """Where an excerpt was found: ``corpus[start:end]``, how (one of :data:`MATCH_KINDS`), score 0–100."""

    start: int
    end: int
    match: str
    score: float


def _fold_char(char: str) -> str:
    char = _FOLD.get(char, char)
    lower = char.lower()
    # Some lowercase forms are longer (U+0130 → "i̇"); keeping such a character as is keeps the
    # normalization one-to-one per character.
    return lower if len(lower) == 1 else char


def normalize_with_map(text: str) -> tuple[str, np.ndarray]:
    """``(normalized, index)``: case and quotes folded, whitespace runs → one space.

    ``index[i]`` is the position in ``text`` of normalized character ``i`` (a collapsed run maps to
    its first character), so a normalized match ``[a, b)`` whose ends are not spaces is the
    original slice ``text[index[a] : index[b - 1] + 1]``, and that slice normalizes to exactly the
    matched normalized text.
    """
    folded = text.translate({ord(c): _fold_char(c) for c in set(text)})
    keep = np.ones(len(folded), dtype=bool)
    for run in _WHITESPACE_RUN.finditer(folded):
        keep[run.start() + 1: run.end()] = False
    normalized = _WHITESPACE.sub(" ", folded)
    index = np.flatnonzero(keep).astype(np.int64)
    if len(index) != len(normalized):  # pragma: no cover - would be a bug in the two regexes above
        raise RuntimeError("normalization map is out of step with the normalized text")
    return normalized, index


def normalize_text(text: str) -> str:
    """The normalized form of an excerpt: as :func:`normalize_with_map`, stripped, ellipses removed."""
    normalized = _WHITESPACE.sub(" ", text.translate({ord(c): _fold_char(c) for c in set(text)})).strip()
    changed = True
    while changed and normalized:
        changed = False
        for mark in _ELLIPSES:
            if normalized.startswith(mark):
                normalized, changed = normalized[len(mark):].lstrip(), True
            if normalized.endswith(mark):
                normalized, changed = normalized[: -len(mark)].rstrip(), True
    return normalized


def _nearest(text: str, needle: str, lo: int, hi: int) -> int:
    """Start of the occurrence of ``needle`` in ``text`` nearest to ``[lo, hi)``, or -1."""
    after = text.find(needle, lo)
    before = text.rfind(needle, 0, hi)
    if after == -1:
        return before
    if before == -1 or after <= hi:
        return after
    return before if (lo - before) < (after - lo) else after


class CorpusIndex:
    """One corpus prepared for repeated excerpt searches (the normalized text is built once)."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        self.text = text
        self._normalized: tuple[str, np.ndarray] | None = None

    @property
    def normalized(self) -> tuple[str, np.ndarray]:
        if self._normalized is None:
            self._normalized = normalize_with_map(self.text)
        return self._normalized

    def _normalized_range(self, start: int, end: int) -> tuple[int, int]:
        index = self.normalized[1]
        return int(np.searchsorted(index, start, "left")), int(np.searchsorted(index, end, "left"))

    def _to_original(self, norm_start: int, norm_end: int) -> tuple[int, int]:
        index = self.normalized[1]
        return int(index[norm_start]), int(index[norm_end - 1]) + 1

    def locate(
        self,
        excerpt: str,
        window_start: int = 0,
        window_end: int | None = None,
        *,
        fuzzy_threshold: float = 90.0,
        fuzzy_min_chars: int = 20,
    ) -> Located | None:
        """Find ``excerpt`` (see the module docstring for the order); ``None`` when nothing qualifies."""
        text = self.text
        window_end = len(text) if window_end is None else window_end
        excerpt = excerpt.strip()
        if not 0 <= window_start <= window_end <= len(text):
            raise ValueError(f"window [{window_start}, {window_end}) is not inside the corpus of length {len(text)}")
        if not 0 <= fuzzy_threshold <= 100:
            raise ValueError(f"fuzzy_threshold must be within 0–100 (rapidfuzz scores), got {fuzzy_threshold}")
        if excerpt:
            found = text.find(excerpt, window_start, window_end)
            if found != -1:
                return Located(found, found + len(excerpt), "exact_window", 100.0)
            found = _nearest(text, excerpt, window_start, window_end)
            if found != -1:
                return Located(found, found + len(excerpt), "exact_corpus", 100.0)
        needle = normalize_text(excerpt)
        if not needle:
            return None
        normalized, _ = self.normalized
        norm_lo, norm_hi = self._normalized_range(window_start, window_end)
        found = normalized.find(needle, norm_lo, norm_hi)
        if found == -1:
            found = _nearest(normalized, needle, norm_lo, norm_hi)
        if found != -1:
            start, end = self._to_original(found, found + len(needle))
            return Located(start, end, "normalized", 100.0)
        if len(needle) < fuzzy_min_chars or norm_hi <= norm_lo:
            return None
        from rapidfuzz import fuzz

        window = normalized[norm_lo:norm_hi]
        alignment = fuzz.partial_ratio_alignment(needle, window, score_cutoff=fuzzy_threshold)
        if alignment is None:
            return None
        lo, hi, score = _refine(needle, window, alignment.dest_start, alignment.dest_end)
        if hi <= lo or score < fuzzy_threshold:
            return None
        start, end = self._to_original(norm_lo + lo, norm_lo + hi)
        return Located(start, end, "fuzzy", score)


def _refine(needle: str, window: str, lo: int, hi: int) -> tuple[int, int, float]:
    """Best word-aligned span near a partial-ratio alignment, by ``fuzz.ratio`` to the needle.

    ``partial_ratio`` compares windows as long as the needle, so a model that added or dropped a few
    words gets a span that runs into the next sentence or stops short; trying word boundaries
    within a fifth of the needle's length on both sides recovers the passage it meant.
    """
    from rapidfuzz import fuzz

    slack = max(10, len(needle) // 5)

    def boundaries(a: int, b: int) -> list[int]:
        a, b = max(0, a), min(len(window), b)
        return [p for p in range(a, b + 1)
                if p == 0 or p == len(window) or not (window[p - 1].isalnum() and window[p].isalnum())]

    best = (-1.0, lo, hi)
    for start in boundaries(lo - slack, lo + slack):
        while start < len(window) and window[start] == " ":
            start += 1
        for end in boundaries(max(start + 1, hi - slack), hi + slack):
            while end > start and window[end - 1] == " ":
                end -= 1
            if end <= start:
                continue
            score = fuzz.ratio(needle, window[start:end])
            # Ties go to the longer span: a fuzzy reference should not drop words of the passage.
            if score > best[0] or (score == best[0] and end - start > best[2] - best[1]):
                best = (score, start, end)
    return best[1], best[2], round(float(best[0]), 2)


def locate_excerpt(
    corpus: str,
    excerpt: str,
    window_start: int = 0,
    window_end: int | None = None,
    *,
    fuzzy_threshold: float = 90.0,
    fuzzy_min_chars: int = 20,
) -> Located | None:
    """One-off :meth:`CorpusIndex.locate` (build a :class:`CorpusIndex` to search one corpus often)."""
    return CorpusIndex(corpus).locate(excerpt, window_start, window_end,
                                      fuzzy_threshold=fuzzy_threshold, fuzzy_min_chars=fuzzy_min_chars)


def tag_pieces(window_text: str, piece_chars: int = 100) -> tuple[str, list[int]]:
    """Cut a window into pieces of at most ``piece_chars`` characters and tag them ``<p id=N>…</p>``.

    A piece ends just after the last whitespace it can hold (a word longer than the piece is cut
    hard). Returns the tagged text and the boundaries: piece ``i`` is
    ``window_text[bounds[i]:bounds[i + 1]]``, and the pieces concatenate to the window exactly.
    """
    if piece_chars < 1:
        raise ValueError(f"piece_chars must be at least 1, got {piece_chars}")
    bounds = [0]
    position, length = 0, len(window_text)
    while position < length:
        end = min(position + piece_chars, length)
        if end < length:
            cut = end
            while cut > position and not window_text[cut - 1].isspace():
                cut -= 1
            if cut > position:
                end = cut
        bounds.append(end)
        position = end
    pairs = zip(bounds, bounds[1:], strict=False)
    tagged = "".join(f"<p id={i}>{window_text[a:b]}</p>" for i, (a, b) in enumerate(pairs))
    return tagged, bounds


def pieces_to_span(bounds: Sequence[int], window_start: int, first: int, last: int) -> tuple[int, int]:
    """Corpus offsets of pieces ``first..last`` (inclusive) of a window starting at ``window_start``.

    Raises ``AnswerError("bad_piece_range")`` for ids outside the window or ``first > last``.
    """
    n_pieces = len(bounds) - 1
    if not (0 <= first <= last < n_pieces):
        raise AnswerError("bad_piece_range", f"piece range {first}..{last} is not within 0..{n_pieces - 1} "
                                             "with start <= end")
    return window_start + bounds[first], window_start + bounds[last + 1]
