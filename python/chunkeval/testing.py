"""Property-based tests for chunkers: hypothesis strategies and :func:`check_chunker`.

Call :func:`check_chunker` from your own pytest suite to check that a chunker keeps the chunker
contract on documents that break naive splitters (repeated passages, blank lines, CRLF line ends,
combining characters, emoji)::

    from chunkeval.chunkers import from_langchain
    from chunkeval.testing import check_chunker
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    def test_my_splitter():
        check_chunker(from_langchain(RecursiveCharacterTextSplitter(chunk_size=60, chunk_overlap=10)))

The contract (:class:`chunkeval.chunkers.Chunker`): ``chunk(texts)`` returns
:class:`~chunkeval.spans.Spans` whose rows lie inside their document (``0 <= start < end <=
len(text)``, ``doc`` an index into ``texts``), sorted by doc, start, end; no chunk is whitespace-only;
the same input gives the same spans, and a document gives the same spans alone as in a batch; and
the text no chunk covers is only what the chunker declares it strips (whitespace by default). A
broken property raises :class:`ChunkerContractError` naming the property, the document and the span.

Strategies: :func:`documents` (one text), :func:`document_batches` (lists of texts) and
:func:`ragged_span_batches` (a :class:`~chunkeval.spans.RaggedSpans` plus its document lengths,
for the engine).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - hypothesis is a test dependency
    raise ImportError(f"chunkeval.testing needs hypothesis: pip install hypothesis ({exc})") from None

from .chunkers.base import Chunker
from .spans import RaggedSpans, Spans

__all__ = ["ChunkerContractError", "check_chunker", "check_chunking", "document_batches", "documents",
           "ragged_span_batches"]

#: What text a chunker may leave uncovered: ``"whitespace"`` (gaps of ``str.isspace()`` characters),
#: ``"anything"`` (no coverage check), or a predicate on each uncovered gap's text.
Lost = Literal["whitespace", "anything"] | Callable[[str], bool]

_WORDS = ("alpha", "beta", "gamma", "Ünïcode", "naïve", "e\u0301te\u0301", "n\u0303", "日本語", "😀", "👩\u200d💻",
          "🇫🇷", "x", "42", "a.b", "end.")
_GAPS = (" ", "  ", "\n", "\n\n", "\r\n", "\r\n\r\n", "\t", "\n \n", "\u00a0", "\u2028", ". ", ", ")


class ChunkerContractError(AssertionError):
    """A chunker broke its contract; the message names the property, the document and the span."""


@st.composite
def _passage(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12))
    gaps = draw(st.lists(st.sampled_from(_GAPS), min_size=len(words), max_size=len(words)))
    return "".join(w + g for w, g in zip(words, gaps, strict=True))


@st.composite
def documents(draw: st.DrawFn, max_passages: int = 12) -> str:
    """A document built from a few passages, each possibly repeated many times, joined by blank
    lines, CRLF or nothing; words include combining characters, emoji (ZWJ sequences and flags),
    CJK and non-breaking spaces. Sometimes empty, whitespace-only or free text."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(("", " ", "\n\n", "\r\n\r\n", "\t \u3000")))
    if kind == 1:
        return draw(st.text(max_size=200))
    pool = draw(st.lists(_passage(), min_size=1, max_size=3))
    picks = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=max_passages))
    joins = draw(st.lists(st.sampled_from(("", "\n\n", "\r\n\r\n", "\n", " ")), min_size=len(picks),
                          max_size=len(picks)))
    return "".join(p + j for p, j in zip(picks, joins, strict=True))


def document_batches(max_documents: int = 4) -> st.SearchStrategy[list[str]]:
    """Lists of 1..``max_documents`` :func:`documents`."""
    return st.lists(documents(), min_size=1, max_size=max_documents)


@st.composite
def ragged_span_batches(draw: st.DrawFn, max_questions: int = 6, max_docs: int = 3, max_length: int = 400,
                        max_rows: int = 8) -> tuple[RaggedSpans, np.ndarray]:
    """``(spans, doc_lengths)``: a :class:`RaggedSpans` of 0..``max_questions`` questions with
    0..``max_rows`` spans each (empty questions, duplicates, overlaps, spans touching a document's
    end), inside documents of the drawn lengths."""
    lengths = draw(st.lists(st.integers(1, max_length), min_size=1, max_size=max_docs))
    rows: list[list[tuple[int, int, int]]] = []
    for _ in range(draw(st.integers(0, max_questions))):
        question: list[tuple[int, int, int]] = []
        for _ in range(draw(st.integers(0, max_rows))):
            doc = draw(st.integers(0, len(lengths) - 1))
            start = draw(st.integers(0, lengths[doc] - 1))
            end = draw(st.integers(start + 1, lengths[doc]))
            question.append((doc, start, end))
            if draw(st.integers(0, 7)) == 0:
                question.append((doc, start, end))
        rows.append(question)
    return RaggedSpans.from_lists(rows), np.array(lengths, dtype=np.int64)


def _fail(chunker: Chunker, prop: str, detail: str) -> ChunkerContractError:
    return ChunkerContractError(f"chunker {chunker.name!r} breaks the contract: {prop}: {detail}")


def check_chunking(chunker: Chunker, texts: Sequence[str], *, lost: Lost = "whitespace") -> Spans:
    """Check the contract on one batch of ``texts``; returns the spans. Raises
    :class:`ChunkerContractError` on the first broken property."""
    spans = chunker.chunk(list(texts), show_progress=False)
    if not isinstance(spans, Spans):
        raise _fail(chunker, "chunk() returns Spans", f"got {type(spans).__name__}")
    doc, start, end = spans.doc.tolist(), spans.start.tolist(), spans.end.tolist()
    for row, (d, s, e) in enumerate(zip(doc, start, end, strict=True)):
        if not 0 <= d < len(texts):
            raise _fail(chunker, "spans inside their document", f"span {row} names document {d} of {len(texts)}")
        if not 0 <= s < e <= len(texts[d]):
            raise _fail(chunker, "spans inside their document",
                        f"document {d}, span {row} [{s}, {e}) in a text of length {len(texts[d])}")
        if texts[d][s:e].isspace():
            raise _fail(chunker, "no whitespace-only chunk", f"document {d}, span {row} [{s}, {e}) is "
                        f"{texts[d][s:e]!r}")
    keys = list(zip(doc, start, end, strict=True))
    for row in range(1, len(keys)):
        if keys[row] < keys[row - 1]:
            raise _fail(chunker, "spans sorted by doc, start, end", f"span {row} {keys[row]} comes after "
                        f"{keys[row - 1]}")
    again = chunker.chunk(list(texts), show_progress=False)
    if list(zip(again.doc.tolist(), again.start.tolist(), again.end.tolist(), strict=True)) != keys:
        raise _fail(chunker, "deterministic", f"a second chunk() of the same {len(texts)} text(s) gave "
                    f"{len(again)} spans, not the same {len(keys)}")
    for d, text in enumerate(texts):
        alone = chunker.chunk([text], show_progress=False)
        mine = [(s, e) for dd, s, e in keys if dd == d]
        if list(zip(alone.start.tolist(), alone.end.tolist(), strict=True)) != mine:
            raise _fail(chunker, "each document chunked independently",
                        f"document {d} alone gives {len(alone)} spans, in the batch {len(mine)}")
        if lost != "anything":
            _check_coverage(chunker, d, text, mine, lost)
    return spans


def _check_coverage(chunker: Chunker, d: int, text: str, spans: list[tuple[int, int]], lost: Lost) -> None:
    covered = np.zeros(len(text) + 1, dtype=np.int64)
    for s, e in spans:
        covered[s] += 1
        covered[e] -= 1
    inside = np.cumsum(covered)[: len(text)] > 0
    for gap in re.finditer(r"0+", "".join("1" if c else "0" for c in inside.tolist())):
        piece = text[gap.start():gap.end()]
        ok = piece.isspace() if lost == "whitespace" else bool(lost(piece))  # type: ignore[operator]
        if not ok:
            raise _fail(chunker, "nothing lost beyond what the chunker strips",
                        f"document {d}, text [{gap.start()}, {gap.end()}) = {piece[:40]!r} is in no chunk "
                        f"(pass lost=... to check_chunker if the chunker drops such text on purpose)")


def check_chunker(chunker: Chunker, *, max_examples: int = 50, lost: Lost = "whitespace",
                  texts: st.SearchStrategy[list[str]] | None = None) -> None:
    """Check ``chunker`` against the chunker contract on ``max_examples`` hypothesis-drawn batches
    (:func:`document_batches` unless ``texts`` is given). ``lost`` is what the chunker may leave
    out of every chunk (see :data:`Lost`). Raises :class:`ChunkerContractError` (an
    ``AssertionError``, so pytest reports it as a failure) with hypothesis's smallest failing
    example; returns ``None`` when every example passes."""
    if not isinstance(chunker, Chunker):
        raise TypeError(f"chunker must be a chunkeval Chunker, got {type(chunker).__name__}; wrap a library "
                        "splitter with chunkeval.chunkers.from_langchain/from_llamaindex/from_chonkie")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be an int >= 1, got {max_examples!r}")
    if not (lost in ("whitespace", "anything") or callable(lost)):
        raise ValueError(f"lost must be 'whitespace', 'anything' or a function of the uncovered text, got {lost!r}")
    strategy = texts if texts is not None else document_batches()

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy)
    def run(batch: list[str]) -> None:
        check_chunking(chunker, batch, lost=lost)

    run()
