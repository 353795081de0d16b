"""Chunkers: exact spans worked out by hand, token windows checked against decoded tokens,
tiling, repeated text, adapters and spec parsing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkeval.chunkers import (
    Chunker,
    FixedTokenChunker,
    OffsetChunker,
    RecursiveChunker,
    SentenceChunker,
    TextChunker,
    chunk_texts,
    get_chunker,
    sentence_spans,
)
from chunkeval.chunkers.base import SpanColumns
from chunkeval.datasets import load
from chunkeval.spans import Spans
from chunkeval.tokenizers import get_tokenizer


@pytest.fixture(scope="module")
def corpora() -> list[str]:
    return load().texts


def spans_of(spans: Spans, doc: int = 0) -> list[tuple[int, int]]:
    rows = spans.doc == doc
    return list(zip(spans.start[rows].tolist(), spans.end[rows].tolist(), strict=True))


def assert_tiles(spans: Spans, texts: list[str]) -> None:
    """Chunks tile every document except for whitespace-only gaps (where a chunk would have held
    nothing but whitespace), and no chunk is whitespace-only."""
    for doc, text in enumerate(texts):
        pieces = spans_of(spans, doc)
        bounds = [0] + [x for piece in pieces for x in piece] + [len(text)]
        gaps = list(zip(bounds[::2], bounds[1::2], strict=True))
        assert all(s <= e and (s == e or text[s:e].isspace()) for s, e in gaps), gaps
        assert not any(text[s:e].isspace() for s, e in pieces)


def assert_well_formed(spans: Spans, texts: list[str]) -> None:
    assert np.all(spans.end > spans.start)
    spans.check_within([len(t) for t in texts])
    order = np.lexsort((spans.end, spans.start, spans.doc))
    assert np.array_equal(order, np.arange(len(spans)))


# ---------------------------------------------------------------------------------------------
# FixedTokenChunker


def test_fixed_char_windows_by_hand() -> None:
    text = "abcdefghij"
    assert spans_of(FixedTokenChunker(4, 0, "chars").chunk([text])) == [(0, 4), (4, 8), (8, 10)]
    assert spans_of(FixedTokenChunker(4, 1, "chars").chunk([text])) == [(0, 4), (3, 7), (6, 10)]
    assert spans_of(FixedTokenChunker(10, 3, "chars").chunk([text])) == [(0, 10)]
    assert spans_of(FixedTokenChunker(4, 2, "chars").chunk([text])) == [(0, 4), (2, 6), (4, 8), (6, 10)]


def test_fixed_tiktoken_by_hand() -> None:
    # "hello world" is two cl100k tokens: "hello" [0, 5) and " world" [5, 11).
    assert spans_of(FixedTokenChunker(1).chunk(["hello world"])) == [(0, 5), (5, 11)]
    assert spans_of(FixedTokenChunker(2).chunk(["hello world", ""])) == [(0, 11)]


def test_fixed_default_reproduces_chroma_chunk_count(corpora: list[str]) -> None:
    chunker = FixedTokenChunker()  # Chroma's default: 200 tokens, no overlap, cl100k_base
    spans = chunker.chunk(corpora)
    tokenizer = get_tokenizer("cl100k_base")
    expected = sum(math.ceil(tokenizer.count(t) / 200) for t in corpora)
    assert expected == 1644 and len(spans) == 1644
    assert_well_formed(spans, corpora)
    assert_tiles(spans, corpora)


@pytest.mark.parametrize(("size", "overlap"), [(50, 0), (50, 10), (37, 36), (7, 3)])
def test_fixed_windows_hold_exactly_size_tokens(size: int, overlap: int, corpora: list[str]) -> None:
    # On ASCII text every token boundary is a character boundary, so each window's text must be
    # exactly the bytes of its `size` tokens (decoded independently of the offsets).
    tokenizer = get_tokenizer("cl100k_base")
    text = "".join(c for c in corpora[4][:6000] if c.isascii())
    ids = tokenizer.encode(text)
    spans = FixedTokenChunker(size, overlap).chunk([text])
    step = size - overlap
    assert len(spans) == 1 + math.ceil(max(0, len(ids) - size) / step)
    for i, (start, end) in enumerate(spans_of(spans)):
        window = ids[i * step: i * step + size]
        assert len(window) == size or i == len(spans) - 1
        assert text[start:end].encode("utf-8") == tokenizer.decode_bytes(window)  # type: ignore[attr-defined]
        if i + 1 < len(spans) and overlap:
            shared = ids[(i + 1) * step: i * step + size]
            assert len(shared) == overlap
            next_start = int(spans.start[i + 1])
            assert text[next_start:end].encode("utf-8") == tokenizer.decode_bytes(shared)  # type: ignore[attr-defined]


def test_fixed_windows_tile_multibyte_text() -> None:
    text = "日本語のテキスト😀 and e\u0301mojis 👨\u200d👩\u200d👧 " * 20
    for size in (1, 2, 3, 17):
        spans = FixedTokenChunker(size).chunk([text])
        assert_well_formed(spans, [text])
        assert_tiles(spans, [text])


def test_fixed_with_hf_tokenizer() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    spans = FixedTokenChunker(3, 1, "all-MiniLM-L6-v2").chunk([text])
    # MiniLM tokens: the quick brown fox jumps over the lazy dog .
    assert chunk_texts(spans, [text]) == [
        "The quick brown", "brown fox jumps", "jumps over the", "the lazy dog", "dog.",
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 0}, ValueError, "size must be >= 1"),
        ({"size": -5}, ValueError, "size must be >= 1"),
        ({"size": 10, "overlap": 10}, ValueError, r"overlap \(10\) must be smaller than size \(10\)"),
        ({"size": 10, "overlap": -1}, ValueError, "overlap must be >= 0"),
        ({"size": 10.0}, TypeError, "size must be an int"),
        ({"size": True}, TypeError, "size must be an int"),
        ({"tokenizer": "no-such-tokenizer"}, ValueError, "unknown tokenizer"),
    ],
)
def test_fixed_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        FixedTokenChunker(**kwargs)


# ---------------------------------------------------------------------------------------------
# RecursiveChunker


def test_recursive_by_hand() -> None:
    text = "aaa bbb. ccc ddd\n\neee fff ggg"
    spans = RecursiveChunker(10, length="chars").chunk([text])
    # "\n\n" splits [0,18) | [18,29); [0,18) is too long: "\n" splits [0,17) | [17,18);
    # [0,17) is too long: "." splits [0,8) | [8,17), which do not fit together; [18,29) is
    # too long: " " splits [18,22) [22,26) [26,29), merged to [18,26) and [26,29). The chunk
    # [17,18) would be the lone "\n" of the "\n\n": whitespace only, so it is dropped (a gap).
    assert spans_of(spans) == [(0, 8), (8, 17), (18, 26), (26, 29)]
    assert chunk_texts(spans, [text]) == ["aaa bbb.", " ccc ddd\n", "eee fff ", "ggg"]


def test_recursive_overlap_by_hand() -> None:
    text = "a b c d e f"
    spans = RecursiveChunker(5, 2, length="chars").chunk([text])
    assert spans_of(spans) == [(0, 4), (2, 6), (4, 8), (6, 11)]


def test_recursive_strip_by_hand() -> None:
    text = "  one two\n\n\n\nthree  "
    plain = RecursiveChunker(8, length="chars").chunk([text])
    # "\n\n" cuts [0,11) [11,13) [13,20); [0,11) is re-cut by "\n" into [0,10) [10,11), and
    # [0,10) by " " into pieces merged to [0,6) [6,10); [11,13) and [13,20) do not fit together.
    # [10,11) "\n" and [11,13) "\n\n" hold only whitespace and are dropped, leaving a gap.
    assert chunk_texts(plain, [text]) == ["  one ", "two\n", "three  "]
    assert spans_of(plain) == [(0, 6), (6, 10), (13, 20)]
    assert_tiles(plain, [text])
    stripped = RecursiveChunker(8, length="chars", strip=True).chunk([text])
    assert chunk_texts(stripped, [text]) == ["one", "two", "three"]
    assert spans_of(stripped) == [(2, 5), (6, 9), (13, 18)]


def test_recursive_tokens_stay_within_size(corpora: list[str]) -> None:
    texts = [corpora[0][:20000], corpora[3][:20000]]
    tokenizer = get_tokenizer("cl100k_base")
    for size, overlap in [(100, 0), (60, 20)]:
        chunker = RecursiveChunker(size, overlap)
        spans = chunker.chunk(texts)
        assert_well_formed(spans, texts)
        if overlap == 0:
            assert_tiles(spans, texts)
        counts = [tokenizer.count(t) for t in chunk_texts(spans, texts)]
        assert max(counts) <= size
        assert np.mean(counts) > size / 3  # merging happened


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .?!\n")), max_size=80), st.integers(1, 12))
def test_recursive_chars_property(text: str, size: int) -> None:
    spans = RecursiveChunker(size, length="chars").chunk([text])
    assert_well_formed(spans, [text])
    assert_tiles(spans, [text])
    assert np.all(spans.lengths() <= size)


def test_recursive_bad_arguments() -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        RecursiveChunker(0)
    with pytest.raises(ValueError, match="overlap"):
        RecursiveChunker(10, 10)
    with pytest.raises(ValueError, match="length must be 'tokens' or 'chars'"):
        RecursiveChunker(10, length="words")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="separators must be a list"):
        RecursiveChunker(10, separators="\n")
    with pytest.raises(ValueError, match="unknown tokenizer"):
        RecursiveChunker(10, tokenizer="bogus")


# ---------------------------------------------------------------------------------------------
# SentenceChunker


def test_sentences_by_hand() -> None:
    text = "Hello world. How are you?  Fine!\nOK"
    starts, ends = sentence_spans(text)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == [(0, 13), (13, 27), (27, 33), (33, 35)]
    assert spans_of(SentenceChunker(1).chunk([text])) == [(0, 13), (13, 27), (27, 33), (33, 35)]
    assert spans_of(SentenceChunker(2).chunk([text])) == [(0, 27), (27, 35)]
    assert spans_of(SentenceChunker(5).chunk([text])) == [(0, 35)]


def test_sentence_edge_cases() -> None:
    texts = ["Pi is 3.14 today. Yes. ", "   ", "", "No stop at all", "\n\nA. \r\n\t\u3000B."]
    spans = SentenceChunker(1).chunk(texts)
    assert spans_of(spans, 0) == [(0, 18), (18, 23)]
    assert spans_of(spans, 1) == []  # a whitespace-only document has no chunk
    assert spans_of(spans, 2) == []
    assert spans_of(spans, 3) == [(0, 14)]
    # Sentences: "\n\nA. \r\n\t\u3000" (the leading blank lines belong to the first) and "B.".
    assert spans_of(spans, 4) == [(0, 9), (9, 11)]
    with pytest.raises(ValueError, match="sentences_per_chunk must be >= 1"):
        SentenceChunker(0)


# ---------------------------------------------------------------------------------------------
# Repeated text and adapters

PARAGRAPH = "The cat sat on the mat. It was warm."
L = len(PARAGRAPH)
REPEATED = "\n\n".join([PARAGRAPH] * 3)


def test_repeated_paragraph_gets_the_right_spans() -> None:
    recursive = RecursiveChunker(L + 2, length="chars").chunk([REPEATED])
    assert spans_of(recursive) == [(0, L + 2), (L + 2, 2 * L + 4), (2 * L + 4, 3 * L + 4)]
    split = TextChunker(lambda t: t.split("\n\n")).chunk([REPEATED])
    assert spans_of(split) == [(0, L), (L + 2, 2 * L + 2), (2 * L + 4, 3 * L + 4)]
    merged = TextChunker(lambda t: [PARAGRAPH + "\n\n" + PARAGRAPH, PARAGRAPH]).chunk([REPEATED])
    assert spans_of(merged) == [(0, 2 * L + 2), (2 * L + 4, 3 * L + 4)]
    pair = PARAGRAPH + "\n\n" + PARAGRAPH
    overlapping = TextChunker(lambda t: [pair, pair], overlapping=True).chunk([REPEATED])
    assert spans_of(overlapping) == [(0, 2 * L + 2), (L + 2, 3 * L + 4)]


def test_text_chunker_errors() -> None:
    missing = "not in the text at all, and longer than forty characters"
    with pytest.raises(ValueError,
                       match=r"document 1, chunk 1 \('not in the text at all, and longer than '\) not found"):
        TextChunker(lambda t: [t[:3]] + ([missing] if len(t) > 3 else [])).chunk(["abc", "abcdef"])
    pair = PARAGRAPH + "\n\n" + PARAGRAPH
    with pytest.raises(ValueError, match="pass overlapping=True"):
        TextChunker(lambda t: [pair, pair]).chunk([REPEATED])
    with pytest.raises(TypeError, match="chunk 0 is int"):
        TextChunker(lambda t: [1]).chunk(["abc"])  # type: ignore[list-item]
    assert spans_of(TextChunker(lambda t: ["", "ab", ""]).chunk(["xab"])) == [(1, 3)]


def test_offset_chunker_sorts_and_validates() -> None:
    spans = OffsetChunker(lambda t: [(5, 10), (0, 5)]).chunk(["0123456789", "abcdefghij"])
    assert spans.doc.tolist() == [0, 0, 1, 1]
    assert spans.start.tolist() == [0, 5, 0, 5]
    with pytest.raises(ValueError, match=r"document 0, span 1 \[3, 3\) is empty"):
        OffsetChunker(lambda t: [(0, 3), (3, 3)]).chunk(["abcdef"])
    with pytest.raises(ValueError, match=r"document 1, span 0 \[0, 7\) ends past the document \(length 6\)"):
        OffsetChunker(lambda t: [(0, 7)] if t == "abcdef" else [(0, 1)]).chunk(["abcdefg", "abcdef"])
    with pytest.raises(TypeError, match="span starts: row 0 is a boolean"):
        OffsetChunker(lambda t: [(True, 2)]).chunk(["abc"])
    with pytest.raises(TypeError, match="span ends: row 0 is str '2'"):
        OffsetChunker(lambda t: [(0, "2")]).chunk(["abc"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"\(start, end\) pair"):
        OffsetChunker(lambda t: [(0, 1, 2)]).chunk(["abc"])  # type: ignore[list-item]


def test_offset_chunker_reads_a_tuple_of_two_arrays_as_two_pairs() -> None:
    text = "0123456789"
    # (array([0, 3]), array([5, 9])) is the spans (0, 3) and (5, 9), not the columns starts=[0, 3], ends=[5, 9].
    spans = OffsetChunker(lambda t: (np.array([0, 3]), np.array([5, 9]))).chunk([text])  # type: ignore[arg-type, return-value]
    assert spans_of(spans) == [(0, 3), (5, 9)]
    assert spans_of(OffsetChunker(lambda t: np.array([[5, 9], [0, 3]])).chunk([text])) == [(0, 3), (5, 9)]
    # Two arrays of any other length are not pairs: an error, not a guess at columns.
    with pytest.raises(ValueError, match=r"document 0, span 0 is .*\(start, end\) pair"):
        OffsetChunker(lambda t: (np.array([0, 3, 6]), np.array([3, 6, 9]))).chunk([text])  # type: ignore[arg-type, return-value]


def test_offset_chunker_never_truncates_float_offsets() -> None:
    text = "0123456789"
    integral = OffsetChunker(lambda t: [(0.0, 2.0), (2.0, 5.0)])  # type: ignore[list-item]
    assert spans_of(integral.chunk([text])) == [(0, 2), (2, 5)]
    with pytest.raises(ValueError, match=r"document 0, span starts: row 0 is 0\.7; offsets must be finite integers"):
        OffsetChunker(lambda t: (np.array([0.7, 5.5]), np.array([3.0, 9.0]))).chunk([text])  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match=r"document 0, span ends: row 1 is 9\.5"):
        OffsetChunker(lambda t: [(0, 3), (5, 9.5)]).chunk([text])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"span starts: row 0 is nan"):
        OffsetChunker(lambda t: [(float("nan"), 3)]).chunk([text])  # type: ignore[list-item]


def test_span_columns_are_the_column_form() -> None:
    class Columns(Chunker):
        name = "columns"

        def config(self) -> dict[str, object]:
            return {"type": "columns"}

        def _spans(self, text: str) -> SpanColumns:
            return SpanColumns(np.array([5, 0]), np.array([9, 3]))

    assert spans_of(Columns().chunk(["0123456789"])) == [(0, 3), (5, 9)]
    assert isinstance(FixedTokenChunker(3, 0, tokenizer="chars")._spans("abcdefg"), SpanColumns)
    assert isinstance(SentenceChunker(1)._spans("A. B."), SpanColumns)


def test_chunk_input_checks_and_chunk_texts() -> None:
    chunker = SentenceChunker(1)
    with pytest.raises(TypeError, match="got a single str"):
        chunker.chunk("A. B.")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        chunker.chunk(["A.", 3])  # type: ignore[list-item]
    texts = ["A. B.", "C."]
    spans = chunker.chunk(texts)
    assert chunk_texts(spans, texts) == ["A. ", "B.", "C."]
    assert len(chunker.chunk([])) == 0


def test_chunkers_are_deterministic_and_well_formed(corpora: list[str]) -> None:
    texts = [t[:30000] for t in corpora]
    for spec in ("fixed:120:20", "recursive:150:0", "recursive:600:100:chars", "sentence:5"):
        chunker = get_chunker(spec)
        first = chunker.chunk(texts)
        assert first == chunker.chunk(texts)
        assert_well_formed(first, texts)
        assert set(first.doc.tolist()) == set(range(len(texts)))


# ---------------------------------------------------------------------------------------------
# Specs


def test_get_chunker_specs() -> None:
    assert get_chunker("fixed:200:0") == FixedTokenChunker(200, 0)
    assert get_chunker("fixed:200") == FixedTokenChunker(200, 0)
    assert get_chunker("fixed:1000:100:chars") == FixedTokenChunker(1000, 100, "chars")
    assert get_chunker("fixed:64:0:tiktoken:cl100k_base").tokenizer.name == "tiktoken:cl100k_base"  # type: ignore[attr-defined]
    assert get_chunker("recursive:400:0") == RecursiveChunker(400, 0)
    assert get_chunker("recursive:800:0:chars") == RecursiveChunker(800, 0, length="chars")
    assert get_chunker("sentence:10") == SentenceChunker(10)
    assert get_chunker({"type": "recursive", "size": 400, "length": "chars"}) == RecursiveChunker(400, length="chars")
    chunker = SentenceChunker(3)
    assert get_chunker(chunker) is chunker
    assert FixedTokenChunker(200, 0).name == "fixed:200:0"
    assert RecursiveChunker(800, 0, length="chars").name == "recursive:800:0:chars"


@pytest.mark.parametrize(
    "chunker",
    [
        FixedTokenChunker(200, 0),
        FixedTokenChunker(50, 5, "chars"),
        RecursiveChunker(300, 30),
        RecursiveChunker(300, 0, separators=["\n", ""], length="chars", strip=True),
        SentenceChunker(15),
    ],
    ids=lambda c: c.name,
)
def test_config_round_trips(chunker: Chunker) -> None:
    rebuilt = get_chunker(chunker.config())
    assert rebuilt == chunker and rebuilt.name == chunker.name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fixed", "lacks a size"),
        ("fixed:abc", "size 'abc' is not an integer"),
        ("fixed:10:x", "overlap 'x' is not an integer"),
        ("sentence", r"chunker spec 'sentence': lacks <n>, the sentences per chunk"),
        ("nope:3", "unknown chunker spec 'nope:3'"),
        ({"type": "mystery"}, "unknown or missing 'type'"),
        ({"size": 3}, "unknown or missing 'type'"),
        ({"type": "fixed", "bogus": 1}, "unexpected keyword"),
        ({"type": "offsets"}, "cannot be rebuilt"),
        ("fixed:10:10", "must be smaller than size"),
    ],
)
def test_get_chunker_bad_specs(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_chunker(spec)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a str or a dict"):
        get_chunker(3)  # type: ignore[arg-type]
