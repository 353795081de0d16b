"""Bad input: every malformed batch is a ValueError/TypeError that names the argument and the row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from chunkeval import RaggedSpans, Spans, span_metrics
from conftest import BACKENDS

CHUNKS = Spans([0, 0, 1], [0, 10, 0], [10, 20, 10])
REFS = RaggedSpans([0, 1], [0], [2], [8])
RETS = RaggedSpans([0, 1], [0], [0], [10])


@pytest.mark.parametrize(
    ("offsets", "doc", "start", "end", "message"),
    [
        ([1, 1], [0], [0], [5], r"refs\.offsets: row 0 is 1; CSR offsets start at 0"),
        ([0, 2, 1], [0, 0], [0, 1], [5, 6], r"refs\.offsets: row 2 \(1\) is smaller than row 1"),
        ([0, 1], [0, 0], [0, 1], [5, 6], r"refs\.offsets ends at 1, but there are 2 span rows"),
        ([], [], [], [], r"refs\.offsets is empty"),
        ([0, 2], [0, 0], [0, 5], [5], r"refs: columns disagree in length"),
        ([0, 2], [0, 0], [0, 5], [5, 5], r"refs: row 1 is a zero-length span \[5, 5\)"),
        ([0, 2], [0, 0], [0, 7], [5, 6], r"refs: row 1 is a reversed span \[7, 6\)"),
        ([0, 1], [0], [-3], [5], r"refs: row 0 has a negative start -3"),
        ([0, 1], [-1], [0], [5], r"refs: row 0 has a negative doc id"),
        ([0, 2], [0, 0], [0.0, np.nan], [5, 6], r"refs\.start: row 1 is nan"),
        ([0, 2], [0, 0], [0.0, 1.5], [5, 6], r"refs\.start: row 1 is 1\.5, not an integer"),
        ([[0, 1]], [0], [0], [5], r"refs\.offsets must be 1-dimensional"),
    ],
)
def test_malformed_ragged_spans(offsets, doc, start, end, message):
    with pytest.raises(ValueError, match=message):
        RaggedSpans(offsets, doc, start, end, name="refs")


def test_integral_floats_and_other_int_dtypes_are_accepted_without_changing_values():
    r = RaggedSpans(np.array([0, 1], dtype=np.int32), np.array([0], dtype=np.uint8), [2.0], np.array([8],
        dtype=np.int16))
    assert r.start.dtype == np.int64 and r.start.tolist() == [2] and r.end.tolist() == [8]


def test_writeable_int64_columns_are_copied_and_read_only_ones_shared():
    start = np.array([2, 4], dtype=np.int64)
    s = Spans(np.zeros(2, dtype=np.int64), start, start + 1)
    assert not np.shares_memory(s.start, start)
    frozen = start.copy()
    frozen.flags.writeable = False
    assert np.shares_memory(Spans([0, 0], frozen, frozen + 1).start, frozen)


def test_wrong_types():
    with pytest.raises(TypeError, match=r"refs\.start must hold integers, got dtype <U1"):
        RaggedSpans([0, 1], [0], ["a"], [5], name="refs")
    with pytest.raises(TypeError, match="got booleans"):
        Spans([0], [True], [5])
    with pytest.raises(TypeError, match="references must be a chunkeval.RaggedSpans"):
        span_metrics({"a": 1}, RETS)
    with pytest.raises(TypeError, match="k: a boolean is not a cut-off"):
        span_metrics(REFS, RETS, k=True)
    with pytest.raises(TypeError, match=r"k: entry 1 is 2\.5"):
        span_metrics(REFS, RETS, k=[1, 2.5])
    with pytest.raises(TypeError, match="num_threads must be an int"):
        span_metrics(REFS, RETS, num_threads=1.5)


def test_question_level_errors():
    with pytest.raises(ValueError, match="retrieved has 2 questions but references has 1"):
        span_metrics(REFS, RaggedSpans([0, 1, 1], [0], [0], [10]))
    with pytest.raises(ValueError, match="references: question 1 has no reference span"):
        span_metrics(RaggedSpans([0, 1, 1], [0], [0], [5]), RaggedSpans([0, 0, 0], [], [], []))
    with pytest.raises(ValueError, match=r"k: 0 < 1"):
        span_metrics(REFS, RETS, k=0)
    with pytest.raises(ValueError, match=r"k: entry 1 \(2\) is not larger than entry 0 \(3\)"):
        span_metrics(REFS, RETS, k=[3, 2])
    with pytest.raises(ValueError, match="k: an empty sequence"):
        span_metrics(REFS, RETS, k=[])
    with pytest.raises(ValueError, match="k='auto' .* needs `chunks`"):
        span_metrics(REFS, RETS, k="auto")
    with pytest.raises(ValueError, match="semantics: 'sets' is not one of"):
        span_metrics(REFS, RETS, semantics="sets")
    with pytest.raises(ValueError, match="backend: 'gpu' is not one of"):
        span_metrics(REFS, RETS, backend="gpu")
    with pytest.raises(ValueError, match="num_threads: 0 < 1"):
        span_metrics(REFS, RETS, num_threads=0)


def test_docs_missing_from_the_chunk_table():
    refs = RaggedSpans([0, 1, 2], [0, 5], [0, 0], [5, 5])
    rets = RaggedSpans([0, 0, 0], [], [], [])
    with pytest.raises(ValueError, match=r"references: row 1 names doc 5, which has no chunk in `chunks`"):
        span_metrics(refs, rets, CHUNKS)
    with pytest.raises(ValueError, match=r"retrieved: row 0 names doc 3"):
        span_metrics(REFS, RaggedSpans([0, 1], [3], [0], [5]), CHUNKS)
    # Sparse ids far apart take another lookup path; same answer.
    sparse = Spans([0, 10**12], [0, 0], [10, 10])
    with pytest.raises(ValueError, match=r"retrieved: row 1 names doc 5, which has no chunk"):
        span_metrics(REFS, RaggedSpans([0, 2], [10**12, 5], [0, 0], [5, 5]), sparse)
    assert span_metrics(REFS, RaggedSpans([0, 1], [10**12], [0], [5]), sparse).recall.tolist() == [0.0]


def test_spans_past_the_document_end_with_doc_lengths():
    with pytest.raises(ValueError, match=r"retrieved: row 0 ends at 30, past the end of doc 0 \(length 20\)"):
        span_metrics(REFS, RaggedSpans([0, 1], [0], [10], [30]), CHUNKS, doc_lengths=[20, 10])
    with pytest.raises(ValueError, match=r"references: row 0 names doc 0, but only 0 documents are known"):
        span_metrics(REFS, RETS, doc_lengths=[])
    # In bounds: fine.
    assert span_metrics(REFS, RETS, CHUNKS, doc_lengths=[20, 10]).recall.tolist() == [1.0]


def test_core_rejects_bad_buffers_without_crashing():
    """The compiled entry point checks its own inputs too: callers that bypass span_metrics get errors, not crashes."""
    if "cpp" not in BACKENDS:
        pytest.skip("the compiled core is not built (CHUNKEVAL_ALLOW_MISSING_BACKENDS=1)")
    from chunkeval import _core as core

    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    with pytest.raises(ValueError):  # offsets end past the rows
        core.span_metrics(i64(0, 5), i64(0), i64(0), i64(5), i64(0, 1), i64(0), i64(0), i64(5), None, i64(1), 0, 0, 1)
    with pytest.raises(ValueError):  # columns disagree
        core.span_metrics(i64(0, 1), i64(0, 0), i64(0), i64(5), i64(0, 1), i64(0), i64(0), i64(5), None, i64(1), 0,
                          0, 1)
    with pytest.raises(ValueError):  # reversed span
        core.span_metrics(i64(0, 1), i64(0), i64(6), i64(5), i64(0, 1), i64(0), i64(0), i64(5), None, i64(1), 0, 0, 1)
    with pytest.raises(ValueError):  # auto needs chunks
        core.span_metrics(i64(0, 1), i64(0), i64(0), i64(5), i64(0, 1), i64(0), i64(0), i64(5), None, i64(), 2, 0, 1)
    with pytest.raises((TypeError, ValueError)):  # wrong dtype
        core.span_metrics(np.array([0, 1], dtype=np.int32), i64(0), i64(0), i64(5), i64(0, 1), i64(0), i64(0), i64(5),
                          None, i64(1), 0, 0, 1)
    with pytest.raises((TypeError, ValueError)):
        core.ChunkIndex(i64(0, 1), i64(0), i64(5))


def test_arrow_round_trip_and_arrow_input():
    refs = RaggedSpans.from_lists([[(0, 2, 8)], [(0, 0, 5), (1, 1, 3)]])
    arr = refs.to_arrow()
    assert RaggedSpans.from_arrow(arr) == refs
    # A sliced list array (offsets not starting at 0) maps back correctly.
    assert RaggedSpans.from_arrow(arr.slice(1, 1)) == refs.take([1])
    chunks_table = CHUNKS.to_arrow()
    assert Spans.from_arrow(chunks_table) == CHUNKS
    r = span_metrics(arr, RaggedSpans.from_lists([[(0, 0, 10)], []]).to_arrow(), chunks_table)
    assert r.recall.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="spans: question 1 is null"):
        RaggedSpans.from_arrow(pa.array([[{"doc": 0, "start": 0, "end": 1}], None]))
    with pytest.raises(ValueError, match=r"spans\.start: row 0 is null"):
        Spans.from_arrow(pa.table({"doc": [0], "start": pa.array([None], pa.int64()), "end": [3]}))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['end'\]"):
        Spans.from_arrow(pa.table({"doc": [0], "start": [0]}))
