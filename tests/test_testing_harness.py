"""chunkeval.testing: the strategies reach the hard cases, check_chunker passes the built-in chunkers
and fails broken ones with a message naming the property."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from chunkeval.chunkers import Chunker, FixedTokenChunker, OffsetChunker, RecursiveChunker, SentenceChunker
from chunkeval.spans import Spans
from chunkeval.testing import (
    ChunkerContractError,
    check_chunker,
    check_chunking,
    document_batches,
    documents,
    ragged_span_batches,
)

# -- strategies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "test"), [
    ("CRLF", lambda t: "\r\n" in t),
    ("a blank line", lambda t: "\n\n" in t),
    ("a combining character", lambda t: "\u0301" in t or "\u0303" in t),
    ("an emoji", lambda t: "😀" in t or "👩\u200d💻" in t),
    ("a passage repeated three times", lambda t: re.search(r"(.{12,}?)\1\1", t, flags=re.S) is not None),
    ("whitespace only", lambda t: t != "" and t.isspace()),
])
def test_documents_reach_the_hard_cases(what: str, test: Any) -> None:
    example = find(documents(), test, settings=settings(max_examples=2000, database=None))
    assert test(example), what


@settings(max_examples=60, deadline=None)
@given(ragged_span_batches())
def test_ragged_span_batches_are_valid_and_inside_their_documents(batch: Any) -> None:
    spans, lengths = batch
    assert len(spans.offsets) == spans.n_questions + 1
    assert np.all(spans.start < spans.end)
    assert np.all(spans.end <= lengths[spans.doc])


def test_ragged_span_batches_reach_empty_questions_and_duplicates() -> None:
    find(ragged_span_batches(), lambda b: b[0].n_questions >= 2 and 0 in b[0].counts().tolist(),
         settings=settings(database=None))

    def has_duplicate(batch: Any) -> bool:
        rows = list(zip(batch[0].doc.tolist(), batch[0].start.tolist(), batch[0].end.tolist(), strict=True))
        return len(set(rows)) < len(rows)

    find(ragged_span_batches(), has_duplicate, settings=settings(database=None))


# -- the built-in chunkers pass ---------------------------------------------------------------------


@pytest.mark.parametrize("chunker", [
    FixedTokenChunker(12, 4, tokenizer="chars"),
    RecursiveChunker(40, 10, length="chars"),
    RecursiveChunker(30, 0, length="chars", strip=True),
    SentenceChunker(2),
], ids=["fixed", "recursive", "recursive-strip", "sentence"])
def test_built_in_chunkers_keep_the_contract(chunker: Chunker) -> None:
    check_chunker(chunker, max_examples=30)


# -- broken chunkers fail, naming the property ------------------------------------------------------


def drop_last_character(text: str) -> list[tuple[int, int]]:
    return [(0, len(text) - 1)] if len(text) > 1 and not text[:-1].isspace() else []


def test_a_chunker_that_loses_text_fails() -> None:
    with pytest.raises(ChunkerContractError, match=r"^chunker 'offsets:drop_last_character' breaks the contract: "
                                                   r"nothing lost beyond what the chunker strips: document 0, text "
                                                   r"\[\d+, \d+\) = '.+' is in no chunk"):
        check_chunker(OffsetChunker(drop_last_character), max_examples=50)


def test_lost_names_what_a_chunker_may_drop() -> None:
    # A chunker that drops one trailing character passes when it declares so (any single character).
    check_chunker(OffsetChunker(drop_last_character), max_examples=30,
                  lost=lambda gap: len(gap.strip()) <= 1)
    check_chunker(OffsetChunker(drop_last_character), max_examples=10, lost="anything")


class Flaky(Chunker):
    """Different spans on every call."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def config(self) -> dict[str, Any]:
        return {"type": "flaky"}

    def _spans(self, text: str) -> Iterable[tuple[int, int]]:
        self.calls += 1
        cut = 1 + self.calls % 2
        return [(0, cut), (cut, len(text))] if len(text) > 2 and text[:cut].strip() and text[cut:].strip() else []


def test_a_nondeterministic_chunker_fails() -> None:
    with pytest.raises(ChunkerContractError, match=r"^chunker 'flaky' breaks the contract: deterministic: a second "
                                                   r"chunk\(\) of the same 1 text\(s\) gave"):
        check_chunking(Flaky(), ["ab cd ef"], lost="anything")


class BatchDependent(Chunker):
    """Chunks a document differently when it is not the first of its batch."""

    name = "batchy"

    def config(self) -> dict[str, Any]:
        return {"type": "batchy"}

    def _spans(self, text: str) -> Iterable[tuple[int, int]]:
        raise AssertionError("unused")

    def _document_spans(self, doc: int, text: str) -> Any:
        return [(0, len(text))] if doc == 0 else [(0, 1), (1, len(text))]


def test_a_chunker_whose_spans_depend_on_the_batch_fails() -> None:
    with pytest.raises(ChunkerContractError, match=r"^chunker 'batchy' breaks the contract: each document chunked "
                                                   r"independently: document 1 alone gives 1 spans, in the batch 2"):
        check_chunking(BatchDependent(), ["abc", "xyz"])


class RawSpans(Chunker):
    """Returns a fixed Spans table without the base class's checks."""

    name = "raw"

    def __init__(self, doc: list[int], start: list[int], end: list[int]) -> None:
        self.rows = (doc, start, end)

    def config(self) -> dict[str, Any]:
        return {"type": "raw"}

    def _spans(self, text: str) -> Iterable[tuple[int, int]]:
        raise AssertionError("unused")

    def chunk(self, texts: Any, *, show_progress: bool | None = None) -> Spans:
        return Spans(*self.rows)


@pytest.mark.parametrize(("rows", "message"), [
    (([0, 0], [5, 0], [8, 3]), r"spans sorted by doc, start, end: span 1 \(0, 0, 3\) comes after \(0, 5, 8\)"),
    (([0], [0], [20]), r"spans inside their document: document 0, span 0 \[0, 20\) in a text of length 9"),
    (([1], [0], [2]), r"spans inside their document: span 0 names document 1 of 1"),
    (([0], [3], [4]), r"no whitespace-only chunk: document 0, span 0 \[3, 4\) is ' '"),
])
def test_broken_span_tables_fail(rows: Any, message: str) -> None:
    with pytest.raises(ChunkerContractError, match=r"^chunker 'raw' breaks the contract: " + message):
        check_chunking(RawSpans(*rows), ["abc defgh"], lost="anything")


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"chunker must be a chunkeval Chunker, got function; wrap a library splitter"):
        check_chunker(drop_last_character)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_examples must be an int >= 1, got 0"):
        check_chunker(SentenceChunker(2), max_examples=0)
    with pytest.raises(ValueError, match=r"lost must be 'whitespace', 'anything' or a function"):
        check_chunker(SentenceChunker(2), lost="nothing")  # type: ignore[arg-type]


def test_custom_text_strategy() -> None:
    check_chunker(SentenceChunker(1), max_examples=10, texts=st.lists(st.sampled_from(["A. B.", "C\r\n\r\nD."]),
                                                                      min_size=1, max_size=3))
    batch = find(document_batches(max_documents=3), lambda b: len(b) == 3, settings=settings(database=None))
    assert len(batch) == 3
