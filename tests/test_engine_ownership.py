"""Issue 8 regressions: span tables own their data, every backend re-checks what it indexes, and
the minor input defects (bool doc ids in triples, masked arrays, bad Arrow offsets, threads)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from chunkeval import RaggedSpans, Spans, span_metrics
from chunkeval.metrics import _numba, _reference, api
from conftest import BACKENDS


def _columns(*tables: Spans | RaggedSpans) -> list[np.ndarray]:
    out = []
    for t in tables:
        out += [t.doc, t.start, t.end] + ([t.offsets] if isinstance(t, RaggedSpans) else [])
    return out


def test_columns_cannot_be_made_writeable_or_written():
    refs = RaggedSpans.from_lists([[(0, 15, 25)]])
    chunks = Spans(np.zeros(3, np.int64), np.array([0, 10, 20]), np.array([10, 20, 30]))
    arrow = Spans.from_arrow(chunks.to_arrow())
    for col in _columns(refs, chunks, arrow, refs.take([0])):
        assert not col.flags.writeable
        with pytest.raises(ValueError, match="cannot set WRITEABLE flag to True"):
            col.flags.writeable = True
        with pytest.raises(ValueError, match="read-only"):
            col[0] = 1


def test_editing_the_callers_arrays_after_construction_changes_nothing(backend):
    # Was: chunks.end edited after a first call made C++ return 0.6 from a stale cached index,
    # where the reference (reading the edited arrays) returned 0.2.
    doc = np.zeros(10, dtype=np.int64)
    start = np.arange(0, 100, 10, dtype=np.int64)
    end = start + 10
    chunks = Spans(doc, start, end)
    refs = RaggedSpans(np.array([0, 1]), np.array([0]), np.array([15]), np.array([25]))
    rets = RaggedSpans.from_lists([[(0, 20, 30), (0, 50, 60)]])
    first = span_metrics(refs, rets, chunks, backend=backend)
    end[:] = 100
    start[1] = 0
    assert chunks.end.tolist() == list(range(10, 110, 10))
    second = span_metrics(refs, rets, chunks, backend=backend)
    assert second.precision_omega.tolist() == first.precision_omega.tolist() == [0.5]
    assert second.n_evidence_chunks.tolist() == [2]


def test_read_only_input_is_shared_not_copied():
    base = np.arange(0, 40, 10, dtype=np.int64)
    base.flags.writeable = False
    s = Spans(np.zeros(4, np.int64), base, base + 10)
    assert np.shares_memory(s.start, base)
    table = pa.table({"doc": [0, 0], "start": [0, 10], "end": [10, 20]})
    from_arrow = Spans.from_arrow(table)
    assert np.shares_memory(from_arrow.start, table.column("start").chunk(0).to_numpy())
    # A column of another table is read-only: a new table shares it.
    again = Spans(s.doc, s.start, s.end)
    assert np.shares_memory(again.start, s.start)


def test_numba_kernel_rechecks_offsets_instead_of_reading_out_of_bounds():
    # Was: offsets edited after construction made Numba segfault or hang.
    def col(*v: int) -> np.ndarray:
        return np.array(v, dtype=np.int64)

    good = (col(0, 1), col(0), col(0), col(5))
    ks = col(1)
    for bad, entry in ((col(0, 7), 1), (col(1, 1), 0), (col(0, -3), 1), (col(0, 2**62), 1)):
        with pytest.raises(ValueError, match=rf"ret_offsets: entry {entry} breaks the CSR layout over 1 rows"):
            _numba.span_metrics_numba(*good, bad, col(0), col(0), col(5), None, ks, 0, 0, 1)
    with pytest.raises(ValueError, match=r"ref_doc, ref_start and ref_end must have the same length"):
        _numba.span_metrics_numba(col(0, 1), col(0, 0), col(0), col(5), *good, None, ks, 0, 0, 1)
    with pytest.raises(TypeError, match=r"ret_start must be a 1-D int64 numpy array"):
        _numba.span_metrics_numba(*good, col(0, 1), col(0), np.zeros(1, np.int32), col(5), None, ks, 0, 0, 1)
    with pytest.raises(ValueError, match=r"ks must be increasing cut-offs >= 1"):
        _numba.span_metrics_numba(*good, *good, None, col(3, 2), 0, 0, 1)
    index = _numba.build_chunk_index(col(0, 0), col(0, 5), col(5, 9))
    for i, arr in enumerate(index[:-1]):
        assert not arr.flags.writeable, i
    broken = list(index)
    broken[4] = col(0, 3)  # doc_offsets past the rows
    with pytest.raises(ValueError, match=r"chunk_index is inconsistent \(check 3\)"):
        _numba.span_metrics_numba(*good, *good, tuple(broken), ks, 0, 0, 1)
    broken = list(index)
    broken[-1] = 1
    broken[3] = col(0, 0)  # dense with ids that are not consecutive
    broken[4] = col(0, 1, 2)
    with pytest.raises(ValueError, match=r"chunk_index is inconsistent"):
        _numba.span_metrics_numba(*good, *good, tuple(broken), ks, 0, 0, 1)
    with pytest.raises(TypeError, match=r"chunk_index must be the tuple returned by build_chunk_index"):
        _numba.span_metrics_numba(*good, *good, index[:3], ks, 0, 0, 1)


def test_numba_guess_stays_inside_the_block_whatever_the_index_holds():
    guess = getattr(_numba._guess_row, "py_func", _numba._guess_row)  # plain Python under NUMBA_DISABLE_JIT
    assert guess(0, float("nan"), 10, 5) == 0
    assert guess(0, -1.0, 10, 5) == 0
    assert guess(0, 1e30, 10, 5) == 9


def test_compiled_core_rechecks_offsets():
    if "cpp" not in BACKENDS:
        pytest.skip("the compiled core is not built (CHUNKEVAL_ALLOW_MISSING_BACKENDS=1)")
    from chunkeval import _core

    def col(*v: int) -> np.ndarray:
        return np.array(v, dtype=np.int64)

    for bad in (col(0, 7), col(1, 1), col(0, -3)):
        with pytest.raises(ValueError):
            _core.span_metrics(col(0, 1), col(0), col(0), col(5), bad, col(0), col(0), col(5), None, col(1), 0, 0, 1)


def test_python_backend_never_divides_by_zero():
    def col(*v: int) -> np.ndarray:
        return np.array(v, dtype=np.int64)

    # Zero-length references (what a mutated array would hold) are a ValueError, not ZeroDivisionError.
    with pytest.raises(ValueError, match=r"ref: row 0 is not a span"):
        _reference.span_metrics_reference(col(0, 1), col(0), col(3), col(3), col(0, 1), col(0), col(0), col(5),
                                          None, col(1), 0, 1)
    chunks = (col(0), col(4), col(2))
    with pytest.raises(ValueError, match=r"chunks: row 0 is not a span"):
        _reference.span_metrics_reference(col(0, 1), col(0), col(0), col(3), col(0, 0), col(), col(), col(),
                                          chunks, col(1), 0, 0)


def test_bool_doc_id_in_triples_is_rejected_like_a_bool_column():
    with pytest.raises(TypeError, match=r"got booleans"):
        Spans([True], [0], [5])
    with pytest.raises(TypeError, match=r"references\.doc must hold integer offsets, got booleans \(row 1 is True\)"):
        RaggedSpans.from_lists([[(0, 0, 5)], [(True, 0, 5)]], name="references")
    with pytest.raises(TypeError, match=r"chunks\.doc must hold integer offsets, got booleans \(row 0 is True\)"):
        span_metrics([[(1, 0, 5)]], [[(1, 0, 5)]], [(True, 0, 5)])
    with pytest.raises(TypeError, match=r"retrieved\.end must hold integer offsets, got booleans \(row 0 is "
                                        r"(np\.)?False_?\)"):
        span_metrics([[(1, 0, 5)]], [[(1, 0, np.False_)]])


def test_masked_values_are_rejected_and_unmasked_arrays_used():
    masked = np.ma.array([0, 10, 20], mask=[False, True, False])
    with pytest.raises(ValueError, match=r"spans\.start: row 1 is masked; every span needs integer offsets"):
        Spans([0, 0, 0], masked, [5, 15, 25])
    clear = np.ma.array([0, 10, 20], mask=False)
    s = Spans([0, 0, 0], clear, [5, 15, 25])
    assert s.start.tolist() == [0, 10, 20] and type(s.start) is np.ndarray
    with pytest.raises(ValueError, match=r"refs\.offsets: row 1 is masked"):
        RaggedSpans(np.ma.array([0, 1], mask=[0, 1]), [0], [0], [5], name="refs")


def test_arrow_list_array_with_offsets_outside_its_values():
    # Was: IndexError from a zero-length LargeListArray whose offsets are [-1].
    values = pa.array([], pa.struct([("doc", pa.int64()), ("start", pa.int64()), ("end", pa.int64())]))
    arr = pa.LargeListArray.from_arrays(pa.array([-1], pa.int64()), values)
    assert len(arr) == 0
    with pytest.raises(ValueError, match=r"spans: the list array's offsets \[-1\] do not index its 0 values"):
        RaggedSpans.from_arrow(arr)
    empty = pa.LargeListArray.from_arrays(pa.array([0], pa.int64()), values)
    assert RaggedSpans.from_arrow(empty).n_questions == 0


def test_default_threads_follow_the_cpu_affinity(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert api.cpu_affinity_count() == 1
    assert api._resolve_threads(None, 10**6) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert api._resolve_threads(None, 10**6) == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert api.cpu_affinity_count() == 64
