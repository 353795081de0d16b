"""No built-in chunker emits a whitespace-only chunk: hypothesis over texts full of blank lines, CRLF,
tabs and Unicode spaces, for every chunker and adapter; content is never lost; the bundled
benchmark's lone-"\\n" chunks of the recursive chunker are gone and nothing else moved."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkeval.chunkers import (
    Chunker,
    ClusterSemanticChunker,
    FixedTokenChunker,
    OffsetChunker,
    RecursiveChunker,
    SentenceChunker,
    TextChunker,
    get_chunker,
)
from chunkeval.chunkers.base import SpanColumns, has_content
from chunkeval.datasets import load
from chunkeval.spans import Spans

# Every character str.isspace() accepts that a user's file is likely to hold, plus the rarer ones.
UNICODE_SPACES = ["\u00a0", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f",
                  "\u205f", "\u3000", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f"]
WHITESPACE = [" ", "  ", "\t", "\n", "\n\n", "\n\n\n\n", "\r\n", "\r\n\r\n", " \n \n", "\t\n", *UNICODE_SPACES]
WORDS = ["word", "The cat.", "Yes!", "why?", "3.14", "é", "日本語", "😀", "a", "end.\n"]

blank_heavy = st.lists(st.sampled_from(WHITESPACE * 2 + WORDS), max_size=40).map("".join)
only_blank = st.lists(st.sampled_from(WHITESPACE), min_size=1, max_size=12).map("".join)
documents = st.lists(st.one_of(blank_heavy, only_blank), min_size=1, max_size=3)


class CharCountEmbedder:
    """Test input for the semantic chunker: counts of a few character classes, so pieces that share
    letters, digits or whitespace are alike. Never a zero row (the last entry is a constant)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        classes: list[Callable[[str], bool]] = [str.isalpha, str.isdigit, str.isspace, lambda c: c in ".!?"]
        rows = [[sum(1 for ch in t if test(ch)) for test in classes] + [1] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def _words_and_gaps(text: str) -> list[tuple[int, int]]:
    """An offset splitter that returns every run of non-space and every run of space."""
    return [m.span() for m in re.finditer(r"\S+|\s+", text)]


def _strings_and_gaps(text: str) -> list[str]:
    return re.findall(r"\S+|\s+", text)


def _check(chunker: Chunker, texts: list[str], *, tiles: bool) -> Spans:
    spans = chunker.chunk(texts)
    assert np.all(spans.end > spans.start)
    spans.check_within([len(t) for t in texts])
    covered = [np.zeros(len(t), dtype=bool) for t in texts]
    for d, s, e in zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True):
        piece = texts[d][s:e]
        assert piece and not piece.isspace(), f"{chunker.name}: whitespace-only chunk {piece!r} in doc {d}"
        covered[d][s:e] = True
    for d, text in enumerate(texts):
        lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[d][i]]
        assert not lost, f"{chunker.name}: doc {d} lost content at {lost[:5]}"
        if tiles:
            # The chunks tile the document except where only whitespace is left out.
            rows = spans.doc == d
            bounds = [0, *np.column_stack([spans.start[rows], spans.end[rows]]).ravel().tolist(), len(text)]
            for s, e in zip(bounds[::2], bounds[1::2], strict=True):
                assert s <= e and (s == e or text[s:e].isspace()), (chunker.name, d, s, e)
    return spans


TILING = [
    FixedTokenChunker(1), FixedTokenChunker(3), FixedTokenChunker(2, 0, "chars"), FixedTokenChunker(5, 0, "chars"),
    RecursiveChunker(4, length="chars"), RecursiveChunker(12, length="chars"), RecursiveChunker(3),
    RecursiveChunker(8, separators=["\n", ""], length="chars"),
    SentenceChunker(1), SentenceChunker(3),
    ClusterSemanticChunker(max_size=12, piece_size=4, length="chars", embedder=CharCountEmbedder()),
    ClusterSemanticChunker(max_size=6, piece_size=2, embedder=CharCountEmbedder()),
    OffsetChunker(_words_and_gaps), TextChunker(_strings_and_gaps),
]
OVERLAPPING_OR_STRIPPED = [
    FixedTokenChunker(4, 2), FixedTokenChunker(6, 3, "chars"),
    RecursiveChunker(10, 4, length="chars"), RecursiveChunker(10, length="chars", strip=True),
    RecursiveChunker(6, 2, strip=True),
]


@pytest.mark.parametrize("chunker", TILING, ids=lambda c: c.name)
@settings(max_examples=40, deadline=None)
@given(texts=documents)
def test_tiling_chunkers_never_emit_whitespace_only_chunks(chunker: Chunker, texts: list[str]) -> None:
    _check(chunker, texts, tiles=True)


@pytest.mark.parametrize("chunker", OVERLAPPING_OR_STRIPPED, ids=lambda c: c.name)
@settings(max_examples=40, deadline=None)
@given(texts=documents)
def test_overlapping_and_stripping_chunkers_never_emit_whitespace_only_chunks(
    chunker: Chunker, texts: list[str]
) -> None:
    _check(chunker, texts, tiles=False)


def test_whitespace_only_documents_have_no_chunks() -> None:
    blank = ["\n\n\n", "\r\n\t \u3000\u00a0", " " * 50]
    for chunker in [*TILING, *OVERLAPPING_OR_STRIPPED]:
        spans = chunker.chunk(blank)
        assert len(spans) == 0, chunker.name


def test_recursive_drops_the_lone_newline_of_a_resplit_paragraph_break() -> None:
    # The case of the issue: "xxxxxx\n\n" is too long, is re-split on "\n" into "xxxxxx\n" (too
    # long again: split on "" and merged) and the lone "\n", which no longer becomes a chunk.
    text = "xxxxxx\n\nyy"
    chunker = RecursiveChunker(5, length="chars")
    assert list(chunker._spans(text)) == [(0, 5), (5, 7), (7, 8), (8, 10)]  # what the splitter cuts
    spans = chunker.chunk([text])
    assert list(zip(spans.start.tolist(), spans.end.tolist(), strict=True)) == [(0, 5), (5, 7), (8, 10)]


def test_has_content_agrees_with_isspace_on_every_code_point() -> None:
    text = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    positions = np.arange(len(text), dtype=np.int64)
    keep = has_content(text, positions, positions + 1)
    assert keep.tolist() == [not ch.isspace() for ch in text]
    assert int((~keep).sum()) == sum(1 for ch in text if ch.isspace()) == 29


def test_offset_chunker_whitespace_spans_are_dropped_by_row() -> None:
    text = "ab \n\ncd"
    chunker = OffsetChunker(lambda t: [(0, 2), (2, 5), (5, 7), (2, 3)])
    spans = chunker.chunk([text])
    assert list(zip(spans.start.tolist(), spans.end.tolist(), strict=True)) == [(0, 2), (5, 7)]
    # Validation still comes first: an empty whitespace span is an error, not silently dropped.
    with pytest.raises(ValueError, match=r"document 0, span 1 \[3, 3\) is empty"):
        OffsetChunker(lambda t: [(0, 2), (3, 3)]).chunk([text])


@pytest.fixture(scope="module")
def corpora() -> list[str]:
    return load().texts


def _raw_spans(chunker: Chunker, texts: list[str]) -> list[tuple[int, int, int]]:
    """What the chunker's splitter cuts, before chunk() drops whitespace-only spans."""
    out: list[tuple[int, int, int]] = []
    for d, text in enumerate(texts):
        raw = chunker._spans(text)
        pairs = zip(raw.starts.tolist(), raw.ends.tolist(), strict=True) if isinstance(raw, SpanColumns) else raw
        out.extend((d, int(s), int(e)) for s, e in pairs)
    return out


def test_default_fixed_chunker_on_the_benchmark_is_unchanged(corpora: list[str]) -> None:
    # fixed:200:0 cuts no whitespace-only window on the bundled benchmark, so its 1,644 spans are
    # exactly the splitter's: the filter changed nothing.
    chunker = get_chunker("fixed:200:0")
    spans = chunker.chunk(corpora)
    got = list(zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True))
    assert len(got) == 1644 and got == sorted(_raw_spans(chunker, corpora))


@pytest.mark.slow
def test_recursive_400_200_on_the_benchmark_loses_only_its_189_lone_newlines(corpora: list[str]) -> None:
    chunker = get_chunker("recursive:400:200")
    raw = _raw_spans(chunker, corpora)
    blank = [(d, s, e) for d, s, e in raw if corpora[d][s:e].isspace()]
    assert len(raw) == 1595 and len(blank) == 189
    assert {corpora[d][s:e] for d, s, e in blank} == {"\n"}
    spans = chunker.chunk(corpora)
    got = list(zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True))
    assert len(got) == 1406 and got == sorted(set(raw) - set(blank))


@pytest.mark.slow
def test_semantic_chunker_with_the_real_embedder_on_blank_lines(embedding_cache: object) -> None:
    from chunkeval.embedding import Embedder

    embedder = Embedder(device="cpu", cache_dir=embedding_cache, show_progress=False)  # type: ignore[arg-type]
    text = "Bake the cake.\n\n\n\n\r\n\t\n" + "\u3000 \n" * 30 + "Stars orbit the galaxy.\n\n"
    chunker = ClusterSemanticChunker(max_size=12, piece_size=4, embedder=embedder)
    _check(chunker, [text, "\n \n \n"], tiles=True)
