"""Tokenizers: exact, monotone character offsets (tiktoken byte rule, HF fast tokenizers, chars)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkeval.tokenizers import (
    CharTokenizer,
    HFTokenizer,
    TiktokenTokenizer,
    Tokenizer,
    _monotone,
    get_tokenizer,
)


@pytest.fixture(scope="module")
def cl100k() -> TiktokenTokenizer:
    tokenizer = get_tokenizer("cl100k_base")
    assert isinstance(tokenizer, TiktokenTokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def minilm() -> HFTokenizer:
    tokenizer = get_tokenizer("all-MiniLM-L6-v2")
    assert isinstance(tokenizer, HFTokenizer)
    return tokenizer


def reference_offsets(tokenizer: TiktokenTokenizer, text: str) -> list[tuple[int, int]]:
    """The offset rule, restated token by token: a token's range is the characters whose first
    UTF-8 byte lies inside the token's bytes."""
    char_of_first_byte = {}
    byte = 0
    for index, char in enumerate(text):
        char_of_first_byte[byte] = index
        byte += len(char.encode("utf-8"))
    out = []
    position = 0
    char_count = 0
    for token in tokenizer.encode(text):
        width = len(tokenizer.decode_bytes([token]))
        start = char_count
        char_count += sum(1 for b in range(position, position + width) if b in char_of_first_byte)
        position += width
        out.append((start, char_count))
    return out


def check_tiling(text: str, offsets: np.ndarray) -> None:
    assert offsets.dtype == np.int64 and offsets.shape[1] == 2
    if len(text) == 0:
        assert offsets.shape == (0, 2)
        return
    assert offsets[0, 0] == 0
    assert offsets[-1, 1] == len(text)
    assert np.all(offsets[:, 1] >= offsets[:, 0])
    assert np.array_equal(offsets[1:, 0], offsets[:-1, 1])


MIXED = "Héllo 😀 日本語 e\u0301 naïve <|endoftext|> 👨\u200d👩\u200d👧 end"


def test_tiktoken_ranges_tile_mixed_text(cl100k: TiktokenTokenizer) -> None:
    ids, offsets = cl100k.encode_with_offsets(MIXED)
    check_tiling(MIXED, offsets)
    assert ids.tolist() == cl100k.encode(MIXED)
    assert cl100k.count(MIXED) == len(ids)
    assert [tuple(r) for r in offsets.tolist()] == reference_offsets(cl100k, MIXED)
    data = MIXED.encode("utf-8")
    byte = 0
    whole = 0
    for token, (start, end) in zip(ids.tolist(), offsets.tolist(), strict=True):
        raw = cl100k.decode_bytes([token])
        starts_on_char = byte == len(MIXED[:start].encode("utf-8"))
        ends_on_char = byte + len(raw) == len(MIXED[:end].encode("utf-8"))
        if starts_on_char and ends_on_char:
            assert MIXED[start:end].encode("utf-8") == raw
            whole += 1
        byte += len(raw)
    assert byte == len(data)
    assert whole >= 15  # most tokens are whole; the test must not pass vacuously


def test_tiktoken_split_character_goes_to_the_token_with_its_first_byte(cl100k: TiktokenTokenizer) -> None:
    # cl100k splits "語" (e8 aa 9e) into two tokens: b"\xe8\xaa" and b"\x9e".
    ids, offsets = cl100k.encode_with_offsets("語")
    assert [cl100k.decode_bytes([t]) for t in ids.tolist()] == [b"\xe8\xaa", b"\x9e"]
    assert offsets.tolist() == [[0, 1], [1, 1]]


def test_tiktoken_known_ids_and_offsets(cl100k: TiktokenTokenizer) -> None:
    ids, offsets = cl100k.encode_with_offsets("hello world")
    assert ids.tolist() == [15339, 1917]
    assert offsets.tolist() == [[0, 5], [5, 11]]
    assert cl100k.name == "tiktoken:cl100k_base"
    assert get_tokenizer("tiktoken:cl100k_base").encode("hello world") == [15339, 1917]


def test_tiktoken_special_token_text_is_plain_text(cl100k: TiktokenTokenizer) -> None:
    text = "a <|endoftext|> b"
    assert 100257 not in cl100k.encode(text)
    check_tiling(text, cl100k.offsets(text))


def test_tiktoken_empty_text_and_lone_surrogate(cl100k: TiktokenTokenizer) -> None:
    assert cl100k.offsets("").shape == (0, 2)
    with pytest.raises(ValueError, match="lone surrogate at index 1"):
        cl100k.offsets("a\ud800b")
    with pytest.raises(TypeError, match="must be a str"):
        cl100k.offsets(b"bytes")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_tiktoken_offsets_property(text: str) -> None:
    tokenizer = get_tokenizer("cl100k_base")
    offsets = tokenizer.offsets(text)
    check_tiling(text, offsets)
    assert [tuple(r) for r in offsets.tolist()] == reference_offsets(tokenizer, text)  # type: ignore[arg-type]


def test_char_tokenizer() -> None:
    tokenizer = get_tokenizer("chars")
    assert isinstance(tokenizer, CharTokenizer)
    assert tokenizer.encode("añ😀") == [97, 241, 128512]
    assert tokenizer.offsets("añ😀").tolist() == [[0, 1], [1, 2], [2, 3]]
    ids, offsets = tokenizer.encode_with_offsets("ab")
    assert ids.tolist() == [97, 98] and offsets.tolist() == [[0, 1], [1, 2]]
    assert tokenizer.count("añ😀") == 3


def test_monotone_gives_repeated_characters_to_the_first_token() -> None:
    raw = np.array([[0, 2], [0, 2], [1, 3], [5, 6], [4, 5]], dtype=np.int64)
    assert _monotone(raw).tolist() == [[0, 2], [2, 2], [2, 3], [5, 6], [6, 6]]


def test_hf_minilm_offsets(minilm: HFTokenizer) -> None:
    assert isinstance(minilm, Tokenizer)
    ids, offsets = minilm.encode_with_offsets("Hello world")
    assert ids.tolist() == [7592, 2088]  # no [CLS]/[SEP]
    assert offsets.tolist() == [[0, 5], [6, 11]]
    assert minilm.name.startswith("hf:model@")
    text = "Héllo 😀 日本語 e\u0301 naïve"
    offsets = minilm.offsets(text)
    assert np.all(offsets[:, 1] >= offsets[:, 0])
    assert np.all(offsets[1:, 0] >= offsets[:-1, 1])
    assert [text[s:e] for s, e in offsets.tolist()] == ["Héllo", "😀", "日", "本", "語", "e", "naïve"]


def test_hf_no_truncation_or_padding(minilm: HFTokenizer) -> None:
    text = " ".join(["word"] * 300)  # the model's tokenizer.json truncates and pads to 128
    assert minilm.count(text) == 300
    assert len(minilm.offsets(text)) == 300
    assert minilm.count("") == 0


def test_get_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tokenizer 'no-such-tokenizer'"):
        get_tokenizer("no-such-tokenizer")
    with pytest.raises(ValueError, match="unknown tiktoken encoding 'nope'"):
        get_tokenizer("tiktoken:nope")
    with pytest.raises(ValueError, match="not a local directory"):
        get_tokenizer(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="could not load a tokenizer"):
        HFTokenizer(tmp_path)
    with pytest.raises(TypeError, match="tokenizer must be"):
        get_tokenizer(42)  # type: ignore[arg-type]
    assert get_tokenizer("cl100k_base") is get_tokenizer("cl100k_base")
