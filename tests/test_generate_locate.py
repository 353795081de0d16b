"""Excerpt location and piece tagging: every span found is exactly the corpus text it claims to be."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chunkeval.generate.locate import (
    CorpusIndex,
    locate_excerpt,
    normalize_text,
    normalize_with_map,
    pieces_to_span,
    tag_pieces,
)
from chunkeval.generate.parsing import AnswerError

# Letters with case, characters whose lowercase is longer (İ) or that casefold oddly (ß), typographic
# quotes and dashes the normalization folds, and several kinds of whitespace.
ALPHABET = "abcdeABCDE xyz İßé.,;'\u2019\u201c\"-\u2014\n\t  0123"
corpora = st.text(alphabet=ALPHABET, min_size=1, max_size=300)


def slice_bounds(text: str, data: st.DataObject) -> tuple[int, int]:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    return start, end


def perturb(excerpt: str, data: st.DataObject) -> str:
    """Flip case of letters and replace every whitespace run by another whitespace run."""
    out = []
    for piece in re.split(r"(\s+)", excerpt):
        if not piece:
            continue
        if piece.isspace():
            out.append(data.draw(st.sampled_from([" ", "\n", "  ", "\t\n ", "\u00a0"])))
        else:
            flips = data.draw(st.lists(st.booleans(), min_size=len(piece), max_size=len(piece)))
            swapped = (c.swapcase() if f and len(c.swapcase()) == 1 else c for c, f in zip(piece, flips, strict=True))
            out.append("".join(swapped))
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(corpora, st.data())
def test_verbatim_excerpts_are_exact(text: str, data: st.DataObject) -> None:
    start, end = slice_bounds(text, data)
    excerpt = text[start:end]
    assume(excerpt.strip())
    found = locate_excerpt(text, excerpt)
    assert found is not None and found.match == "exact_window" and found.score == 100.0
    assert text[found.start:found.end] == excerpt.strip()


@settings(max_examples=300, deadline=None)
@given(corpora, st.data())
def test_perturbed_excerpts_map_back_to_exact_original_text(text: str, data: st.DataObject) -> None:
    start, end = slice_bounds(text, data)
    excerpt = perturb(text[start:end], data)
    assume(normalize_text(excerpt))
    found = locate_excerpt(text, excerpt, fuzzy_threshold=100.0)
    assert found is not None and found.match in ("exact_window", "normalized")
    matched = text[found.start:found.end]
    assert normalize_text(matched) == normalize_text(excerpt)
    assert matched == matched.strip()  # never starts or ends on whitespace


@settings(max_examples=200, deadline=None)
@given(corpora, st.data())
def test_window_searches_stay_in_the_window_or_say_so(text: str, data: st.DataObject) -> None:
    window_start, window_end = slice_bounds(text, data)
    start, end = slice_bounds(text, data)
    excerpt = perturb(text[start:end], data)
    assume(normalize_text(excerpt))
    found = CorpusIndex(text).locate(excerpt, window_start, window_end, fuzzy_threshold=80.0, fuzzy_min_chars=5)
    if found is None:
        return
    matched = text[found.start:found.end]
    assert 0 <= found.start < found.end <= len(text)
    if found.match in ("exact_window", "fuzzy"):
        assert window_start <= found.start and found.end <= window_end
    if found.match in ("exact_window", "exact_corpus"):
        assert matched == excerpt.strip()
    if found.match == "normalized":
        assert normalize_text(matched) == normalize_text(excerpt)
    if found.match == "fuzzy":
        assert 80.0 <= found.score <= 100.0
        assert matched == matched.strip()


@settings(max_examples=200, deadline=None)
@given(corpora)
def test_normalization_map_is_per_character(text: str) -> None:
    normalized, index = normalize_with_map(text)
    assert len(normalized) == len(index)
    assert list(index) == sorted(set(index.tolist()))
    for i, position in enumerate(index.tolist()):
        original = text[position]
        if original.isspace():
            assert normalized[i] == " "
            assert position == 0 or not text[position - 1].isspace()  # a run maps to its first character
        else:
            assert normalize_text(original) == normalized[i]


def test_window_occurrence_preferred_then_the_nearest_outside() -> None:
    text = "alpha beta. " * 3 + "filler " * 20 + "alpha beta. tail"
    last = text.rindex("alpha beta.")
    found = locate_excerpt(text, "alpha beta.", window_start=last - 5, window_end=len(text))
    assert found is not None
    assert (found.start, found.match) == (last, "exact_window")
    # Not in the window [60, 100): the occurrence nearest to it wins.
    found = locate_excerpt(text, "alpha beta.", window_start=60, window_end=100)
    assert found is not None
    assert (found.start, found.match) == (24, "exact_corpus")  # 36 before the window, vs 116 after it


def test_normalized_matches_with_quotes_dashes_and_ellipses() -> None:
    text = 'He said "don\'t stop" \u2014 then   left.\nThe End'
    found = locate_excerpt(text, "...he said \u201cdon\u2019t stop\u201d - then left. the end\u2026")
    assert found is not None
    assert found.match == "normalized" and text[found.start:found.end] == text
    found = locate_excerpt("Großes İstanbul  Haus", "großes İstanbul haus")
    assert found is not None
    assert found.match == "normalized" and (found.start, found.end) == (0, 21)


def test_fuzzy_matching_is_limited_to_the_window_and_to_long_excerpts() -> None:
    sentence = "The museum displays the logbooks, a fog bell and the brass lens."
    text = "x " * 200 + sentence + " y" * 200
    slip = "The museum displays the log books, a fog bell and the brass lens."
    start = text.index(sentence)
    found = locate_excerpt(text, slip, start - 50, start + len(sentence) + 50)
    assert found is not None
    assert found.match == "fuzzy" and text[found.start:found.end] == sentence and 90 <= found.score < 100
    assert locate_excerpt(text, slip, 0, start - 10) is None  # outside the window
    assert locate_excerpt(text, slip, fuzzy_threshold=100.0) is None
    assert locate_excerpt("short text here", "shirt text", fuzzy_threshold=50.0) is None  # under fuzzy_min_chars
    assert locate_excerpt(text, "nothing like it anywhere in the corpus at all") is None


def test_locate_rejects_bad_windows() -> None:
    with pytest.raises(ValueError, match="is not inside the corpus"):
        locate_excerpt("abc", "a", 2, 10)
    with pytest.raises(ValueError, match="fuzzy_threshold"):
        locate_excerpt("abc", "a", fuzzy_threshold=101)
    with pytest.raises(TypeError, match="text must be str"):
        CorpusIndex(b"abc")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab cd\nef\t", max_size=600), st.integers(10, 120))
def test_pieces_cover_the_window_and_break_at_whitespace(window: str, piece_chars: int) -> None:
    tagged, bounds = tag_pieces(window, piece_chars)
    pieces = [window[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert "".join(pieces) == window and bounds[0] == 0 and bounds[-1] == len(window)
    assert all(0 < len(p) <= piece_chars for p in pieces)
    for piece in pieces[:-1]:
        assert piece[-1].isspace() or (len(piece) == piece_chars and not any(c.isspace() for c in piece))
    assert tagged == "".join(f"<p id={i}>{p}</p>" for i, p in enumerate(pieces))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab cd\nef", min_size=1, max_size=2000), st.data())
def test_every_cited_range_maps_to_its_pieces(corpus: str, data: st.DataObject) -> None:
    """Independently of the order references come in: no reference is shifted by another."""
    window_start, window_end = slice_bounds(corpus, data)
    window = corpus[window_start:window_end]
    _, bounds = tag_pieces(window, 50)
    pieces = [window[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    n = len(pieces)
    ranges = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).map(sorted), min_size=1, max_size=5)
    )
    for first, last in ranges:
        start, end = pieces_to_span(bounds, window_start, first, last)
        assert corpus[start:end] == "".join(pieces[first:last + 1])


def test_bad_piece_ranges() -> None:
    _, bounds = tag_pieces("one two three four five six seven", 10)
    for first, last in ((0, len(bounds) - 1), (-1, 0), (2, 1)):
        with pytest.raises(AnswerError) as info:
            pieces_to_span(bounds, 0, first, last)
        assert info.value.reason == "bad_piece_range"
    with pytest.raises(ValueError, match="piece_chars"):
        tag_pieces("x", 0)
