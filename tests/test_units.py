"""char_spans_to_token_spans: the contract's rule for token units, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from chunkeval import RaggedSpans, Spans, char_spans_to_token_spans, span_metrics

# "ab cd ef" tokenized GPT-style ("ab", " cd", " ef") with an empty-range token before " ef".
GPT = [np.array([[0, 2], [2, 5], [5, 5], [5, 8]])]
# The same text tokenized BERT-style: whitespace belongs to no token.
BERT = {0: np.array([[0, 2], [3, 5], [6, 8]])}


def test_positive_overlap_selects_tokens_and_empty_tokens_are_ignored() -> None:
    spans = Spans([0, 0, 0, 0, 0], [3, 1, 2, 6, 0], [4, 3, 3, 8, 8])
    out = char_spans_to_token_spans(spans, GPT)
    # 'c' -> " cd" (1); 'b ' -> "ab", " cd"; ' ' -> " cd"; 'ef' -> " ef", numbered 2 once the
    # empty token is dropped; the whole text -> all three.
    assert out.start.tolist() == [1, 0, 1, 2, 0]
    assert out.end.tolist() == [2, 2, 2, 3, 3]


def test_a_span_that_covers_no_token() -> None:
    spans = Spans([0, 0], [2, 1], [3, 7])
    with pytest.raises(ValueError, match=r"spans: row 0 \(doc 0, chars \[2, 3\)\) covers no token"):
        char_spans_to_token_spans(spans, BERT)
    out = char_spans_to_token_spans(spans, BERT, on_empty="drop")
    assert (out.start.tolist(), out.end.tolist()) == ([0], [3])


def test_bad_token_tables() -> None:
    spans = Spans([1], [0], [2])
    with pytest.raises(ValueError, match="names doc 1, which has no token offsets"):
        char_spans_to_token_spans(spans, GPT)
    with pytest.raises(ValueError, match=r"token_offsets\[0\]: expected an \(n_tokens, 2\) array"):
        char_spans_to_token_spans(Spans([0], [0], [1]), [np.array([0, 2, 5])])
    with pytest.raises(ValueError, match=r"token_offsets\[0\]: token 1 \(start\) goes backwards"):
        char_spans_to_token_spans(Spans([0], [0], [1]), [np.array([[3, 5], [0, 2]])])


def test_metrics_in_tokens_are_the_same_formula_over_token_positions() -> None:
    # Tokens of 4 chars over a 40-char doc; chunks of 2 tokens; reference chars [6, 13) touches
    # tokens 1..3 -> token span [1, 4); retrieved chunk chars [8, 16) -> tokens [2, 4).
    tokens = [np.stack([np.arange(0, 40, 4), np.arange(4, 44, 4)], axis=1)]
    refs = char_spans_to_token_spans(Spans([0], [6], [13]), tokens)
    rets = char_spans_to_token_spans(Spans([0], [8], [16]), tokens)
    chunks = char_spans_to_token_spans(Spans([0] * 5, range(0, 40, 8), range(8, 48, 8)), tokens)
    assert (refs.start.tolist(), refs.end.tolist()) == ([1], [4])
    r = span_metrics(RaggedSpans([0, 1], refs.doc, refs.start, refs.end),
                     RaggedSpans([0, 1], rets.doc, rets.start, rets.end), chunks)
    # E = {1,2,3}, R = {2,3}: recall 2/3, precision 1, iou 2/3; C* = tokens [0,4): omega 3/4.
    assert (r.recall[0], r.precision[0], r.iou[0], r.precision_omega[0]) == (2 / 3, 1.0, 2 / 3, 3 / 4)
