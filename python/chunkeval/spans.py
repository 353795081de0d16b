"""Span tables: the one data structure every stage of chunkeval passes around.

A span is ``(doc, start, end)``: a half-open range ``[start, end)`` of positions (``str`` indices,
or token indices after :func:`chunkeval.units.char_spans_to_token_spans`) in document ``doc``, an
integer id. :class:`Spans` is a flat table of spans (a chunking, say); :class:`RaggedSpans` is one
list of spans per question (references, or ranked retrieved chunks) in CSR form.

Columns are C-contiguous, read-only ``int64`` numpy arrays that the table owns. Constructors accept
numpy arrays, Python sequences and pyarrow arrays. Input that is already read-only contiguous
``int64`` (an Arrow buffer, a column of another ``Spans``, a read-only numpy array) is used without a
copy; anything else is copied once, so editing the caller's array later changes nothing here and
a cached chunk index can never be stale. Floats are accepted only when every value is integral and
finite; anything else is a ``TypeError``/``ValueError`` that names the argument, the first bad row
and the fix.

Every position is bounded: ``0 <= start < end <= 2**32`` (``POSITION_BOUND``). Under that bound
and the per-question row bounds of :func:`chunkeval.span_metrics`, every count a metric divides is
at most ``2**53``, so every ratio is exact (docs/metrics.md, *Bounds*).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["Spans", "RaggedSpans", "as_int64_column", "POSITION_BOUND"]

#: Every span satisfies ``0 <= start < end <= POSITION_BOUND`` (no text is 4 G characters long).
POSITION_BOUND = 2**32


def _is_arrow(x: Any) -> bool:
    return type(x).__module__.startswith("pyarrow")


def as_int64_column(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D C-contiguous int64 array, copying only when needed.

    Integral floats (``3.0``) are converted; NaN, infinities and fractions are rejected, because
    silently truncating an offset would change what a metric measures. Booleans are rejected, and
    so are masked values of a ``numpy.ma`` array (like pyarrow nulls).
    """
    return _column(values, name)[0]


def _owned_column(values: Any, name: str) -> np.ndarray:
    """``values`` as a read-only int64 column that no caller can change: a read-only view of a
    private copy, or of the input itself when that is already read-only."""
    arr, fresh = _column(values, name)
    if not fresh and arr.flags.writeable:
        arr = arr.copy()
        fresh = True
    if fresh:
        arr.flags.writeable = False
    # A view of a read-only array cannot be made writeable again (numpy refuses), so the array a
    # caller reads back from a Spans can never be switched to writeable and edited.
    view: np.ndarray = arr.view()
    view.flags.writeable = False
    return view


def _column(values: Any, name: str) -> tuple[np.ndarray, bool]:  # noqa: C901 - one branch per accepted input kind
    """``(column, fresh)``: ``fresh`` is True when the column is a new array no one else holds."""
    if isinstance(values, (list, tuple)):
        for i, v in enumerate(values):
            if isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name} must hold integer offsets, got booleans (row {i} is {v!r}); pass integer "
                                f"positions")
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(values)
        if mask.any():
            bad = int(np.flatnonzero(mask.reshape(-1))[0])
            raise ValueError(f"{name}: row {bad} is masked; every span needs integer offsets (drop the row or use "
                             f".filled())")
        values = np.ma.getdata(values)
    if _is_arrow(values):
        import pyarrow as pa

        if isinstance(values, pa.ChunkedArray):
            # One chunk (the usual case) is read in place; several are concatenated once.
            values = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
        if values.null_count:
            bad = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{name}: row {bad} is null; every span needs integer offsets (drop or fill the row)")
        values = values.to_numpy(zero_copy_only=False)
    arr = np.asarray(values)
    if arr.ndim != 1:
        if arr.size == 0:
            arr = arr.reshape(0)
        else:
            raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}; pass one column (try np.ravel)")
    if arr.dtype == np.int64:
        out = np.ascontiguousarray(arr)
        return out, not np.may_share_memory(out, arr)
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            bad = int(np.argmax(arr > np.iinfo(np.int64).max))
            raise ValueError(f"{name}: row {bad} value {int(arr[bad])} does not fit in int64")
        return np.ascontiguousarray(arr, dtype=np.int64), True
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold integer offsets, got booleans; pass integer positions")
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise ValueError(f"{name}: row {bad} is {float(arr[bad])!r}; offsets must be finite integers (drop or "
                             f"fill the row)")
        integral = arr == np.floor(arr)
        if not integral.all():
            bad = int(np.argmin(integral))
            raise ValueError(
                f"{name}: row {bad} is {float(arr[bad])!r}, not an integer; offsets are positions, "
                "round them yourself if that is what you mean"
            )
        if arr.size and np.abs(arr).max() > 2**53:
            bad = int(np.argmax(np.abs(arr) > 2**53))
            raise ValueError(f"{name}: row {bad} is too large to be an exact offset")
        return np.ascontiguousarray(arr, dtype=np.int64), True
    if arr.dtype == object and arr.size:
        try:
            ints = np.array([_to_int(v, name, i) for i, v in enumerate(arr)], dtype=np.int64)
        except OverflowError as exc:
            raise ValueError(f"{name}: a value does not fit in int64 ({exc})") from None
        return ints, True
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64), True
    raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}; pass an integer array (e.g. np.asarray(x, "
                    f"dtype=np.int64))")


def _to_int(v: Any, name: str, row: int) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: row {row} is a boolean; pass integer positions")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v) or v != int(v):
            raise ValueError(f"{name}: row {row} is {v!r}; offsets must be finite integers")
        return int(v)
    raise TypeError(f"{name}: row {row} is {type(v).__name__} {v!r}; pass integer positions")


def _check_spans(doc: np.ndarray, start: np.ndarray, end: np.ndarray, name: str) -> None:
    if not (len(doc) == len(start) == len(end)):
        raise ValueError(
            f"{name}: columns disagree in length (doc {len(doc)}, start {len(start)}, end {len(end)}); "
            "every span needs a doc, a start and an end"
        )
    if len(start) == 0:
        return
    bad = start < 0
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{name}: row {row} has a negative start {int(start[row])}; offsets count from 0")
    bad = end <= start
    if bad.any():
        row = int(np.argmax(bad))
        kind = "zero-length" if end[row] == start[row] else "reversed"
        raise ValueError(
            f"{name}: row {row} is a {kind} span [{int(start[row])}, {int(end[row])}); "
            "spans are half-open [start, end) with start < end (drop empty spans)"
        )
    bad = end > POSITION_BOUND
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{name} row {row}: end {int(end[row])} is past the bound 2**32 ({POSITION_BOUND}); positions are "
            "character or token indices and must satisfy 0 <= start < end <= 2**32 (split longer texts)"
        )
    bad = doc < 0
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{name}: row {row} has a negative doc id {int(doc[row])}; doc ids are non-negative integers")


class Spans:
    """A flat table of spans: ``doc``, ``start``, ``end`` int64 columns of equal length.

    The columns are read-only arrays the table owns (see the module docstring), so the interval
    index built for scoring, cached on the object, always describes them. To change spans, build a
    new ``Spans``.

    >>> s = Spans([0, 0], [0, 10], [10, 20])
    >>> len(s), s.lengths().tolist()
    (2, [10, 10])
    """

    __slots__ = ("doc", "start", "end", "_index_cache")

    def __init__(self, doc: Any, start: Any, end: Any, *, name: str = "spans") -> None:
        self.doc = _owned_column(doc, f"{name}.doc")
        self.start = _owned_column(start, f"{name}.start")
        self.end = _owned_column(end, f"{name}.end")
        _check_spans(self.doc, self.start, self.end, name)
        self._index_cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.start)

    def __repr__(self) -> str:
        return f"Spans(n={len(self)}, docs={len(np.unique(self.doc)) if len(self) else 0})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spans):
            return NotImplemented
        return (
            np.array_equal(self.doc, other.doc)
            and np.array_equal(self.start, other.start)
            and np.array_equal(self.end, other.end)
        )

    __hash__ = None  # type: ignore[assignment]

    def lengths(self) -> np.ndarray:
        out: np.ndarray = self.end - self.start
        return out

    def take(self, rows: Any) -> Spans:
        rows = _index_array(rows, "rows")
        return Spans(self.doc[rows], self.start[rows], self.end[rows])

    def check_within(self, doc_lengths: Any, name: str = "spans") -> None:
        """Raise ``ValueError`` if a span's doc id is unknown or it ends past its document."""
        lengths = as_int64_column(doc_lengths, "doc_lengths")
        if len(self) == 0:
            return
        bad = self.doc >= len(lengths)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"{name}: row {row} names doc {int(self.doc[row])}, but only {len(lengths)} documents are known"
            )
        bad = self.end > lengths[self.doc]
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"{name}: row {row} ends at {int(self.end[row])}, past the end of doc {int(self.doc[row])} "
                f"(length {int(lengths[self.doc[row]])}); nothing is clipped, fix the offsets"
            )

    @classmethod
    def concat(cls, parts: Iterable[Spans]) -> Spans:
        parts = list(parts)
        if not parts:
            return cls([], [], [])
        return cls(
            np.concatenate([p.doc for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
        )

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` with int64 columns ``doc``, ``start``, ``end`` (zero-copy)."""
        import pyarrow as pa

        return pa.table({"doc": self.doc, "start": self.start, "end": self.end})

    @classmethod
    def from_arrow(cls, table: Any, *, name: str = "spans") -> Spans:
        """Build from a ``pyarrow.Table``/``RecordBatch`` with columns ``doc``, ``start``, ``end``."""
        if not hasattr(table, "column_names"):
            raise TypeError(f"{name}: expected a pyarrow Table or RecordBatch with columns doc, start, end, "
                            f"got {type(table).__name__} (for a StructArray use pa.Table.from_struct_array)")
        missing = [c for c in ("doc", "start", "end") if c not in table.column_names]
        if missing:
            raise ValueError(f"{name}: the table lacks column(s) {missing}; it needs doc, start, end")
        return cls(table.column("doc"), table.column("start"), table.column("end"), name=name)


class RaggedSpans:
    """One list of spans per question, in CSR form.

    ``offsets`` has ``n_questions + 1`` entries, starts at 0, never decreases and ends at the number
    of rows; question ``q`` owns rows ``offsets[q]:offsets[q+1]`` of ``doc``, ``start``, ``end``.
    For retrieved chunks the rows of a question are in rank order.

    >>> r = RaggedSpans.from_lists([[(0, 0, 5)], [(0, 5, 9), (1, 0, 3)]])
    >>> r.n_questions, r.offsets.tolist()
    (2, [0, 1, 3])
    """

    __slots__ = ("offsets", "spans")

    def __init__(self, offsets: Any, doc: Any, start: Any, end: Any, *, name: str = "spans") -> None:
        self.offsets = _owned_column(offsets, f"{name}.offsets")
        self.spans = Spans(doc, start, end, name=name)
        _check_offsets(self.offsets, len(self.spans), name)

    @property
    def doc(self) -> np.ndarray:
        return self.spans.doc

    @property
    def start(self) -> np.ndarray:
        return self.spans.start

    @property
    def end(self) -> np.ndarray:
        return self.spans.end

    @property
    def n_questions(self) -> int:
        return len(self.offsets) - 1

    def __len__(self) -> int:
        return self.n_questions

    def counts(self) -> np.ndarray:
        """Rows per question."""
        return np.diff(self.offsets)

    def row_question(self) -> np.ndarray:
        """The question index of every row."""
        return np.repeat(np.arange(self.n_questions, dtype=np.int64), self.counts())

    def __getitem__(self, q: int) -> list[tuple[int, int, int]]:
        n = self.n_questions
        if not -n <= q < n:
            raise IndexError(f"question {q} is out of range for {n} questions")
        q = q % n
        lo, hi = int(self.offsets[q]), int(self.offsets[q + 1])
        return list(zip(self.doc[lo:hi].tolist(), self.start[lo:hi].tolist(), self.end[lo:hi].tolist(), strict=True))

    def __repr__(self) -> str:
        return f"RaggedSpans(n_questions={self.n_questions}, rows={len(self.spans)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RaggedSpans):
            return NotImplemented
        return np.array_equal(self.offsets, other.offsets) and self.spans == other.spans

    __hash__ = None  # type: ignore[assignment]

    def take(self, questions: Any) -> RaggedSpans:
        """The sub-batch of the given question indices, in that order."""
        questions = _index_array(questions, "questions")
        counts = self.counts()[questions]
        offsets = np.zeros(len(questions) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = _ranges(self.offsets[questions], counts)
        return RaggedSpans(offsets, self.doc[rows], self.start[rows], self.end[rows])

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[tuple[int, int, int]]], *, name: str = "spans") -> RaggedSpans:
        """Build from ``[[(doc, start, end), ...], ...]``, one inner list per question."""
        counts = [len(x) for x in lists]
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = [tuple(span) for inner in lists for span in inner]
        for i, r in enumerate(rows):
            if len(r) != 3:
                raise ValueError(f"{name}: row {i} is {r!r}; each span is a (doc, start, end) triple")
        if rows:
            doc, start, end = zip(*rows, strict=True)
        else:
            doc = start = end = ()
        return cls(offsets, list(doc), list(start), list(end), name=name)

    def to_arrow(self) -> Any:
        """A ``pyarrow.LargeListArray`` of ``struct<doc, start, end>``, one list per question (zero-copy)."""
        import pyarrow as pa

        values = pa.StructArray.from_arrays([self.doc, self.start, self.end], names=["doc", "start", "end"])
        return pa.LargeListArray.from_arrays(pa.array(self.offsets), values)

    @classmethod
    def from_arrow(cls, array: Any, *, name: str = "spans") -> RaggedSpans:
        """Build from a ``pyarrow`` (Large)ListArray (or ChunkedArray) of ``struct<doc, start, end>``."""
        import pyarrow as pa

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if not isinstance(array, (pa.ListArray, pa.LargeListArray)):
            raise TypeError(f"{name}: expected a pyarrow ListArray of struct<doc, start, end>, got "
                            f"{type(array).__name__}")
        if array.null_count:
            bad = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{name}: question {bad} is null; use an empty list for a question without spans")
        values = array.values
        base = array.offsets.to_numpy()
        if base[0] < 0 or base[-1] > len(values) or (len(base) > 1 and (np.diff(base) < 0).any()):
            raise ValueError(
                f"{name}: the list array's offsets {_preview(base)} do not index its {len(values)} values "
                "(they must never decrease and stay within 0..len(values)); rebuild the array"
            )
        # A sliced ListArray's offsets need not start at 0; values outside the slice are ignored.
        lo, hi = int(base[0]), int(base[-1])
        values = values.slice(lo, hi - lo)
        if values.null_count:
            bad = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{name}: span row {bad} is null; every span needs doc, start and end (drop the row)")
        is_struct = pa.types.is_struct(values.type)
        fields = [values.type.field(i).name for i in range(values.type.num_fields)] if is_struct else []
        missing = [f for f in ("doc", "start", "end") if f not in fields]
        if missing:
            raise ValueError(f"{name}: list values must be struct<doc, start, end>; missing {missing}")
        return cls(base - lo, values.field("doc"), values.field("start"), values.field("end"), name=name)


def _preview(values: np.ndarray, n: int = 6) -> str:
    items = values[:n].tolist()
    return "[" + ", ".join(map(str, items)) + (", ...]" if len(values) > n else "]")


def _index_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return arr.astype(np.int64)
        raise TypeError(f"{name} must be integer indices, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_offsets(offsets: np.ndarray, n_rows: int, name: str) -> None:
    if len(offsets) == 0:
        raise ValueError(f"{name}.offsets is empty; it needs n_questions + 1 entries starting at 0 (use [0] for no "
                         f"questions)")
    if offsets[0] != 0:
        raise ValueError(f"{name}.offsets: row 0 is {int(offsets[0])}; CSR offsets start at 0")
    steps = np.diff(offsets)
    bad = steps < 0
    if bad.any():
        row = int(np.argmax(bad)) + 1
        raise ValueError(
            f"{name}.offsets: row {row} ({int(offsets[row])}) is smaller than row {row - 1} ({int(offsets[row - 1])}); "
            "offsets never decrease (question q owns rows offsets[q]:offsets[q+1])"
        )
    if offsets[-1] != n_rows:
        raise ValueError(
            f"{name}.offsets ends at {int(offsets[-1])}, but there are {n_rows} span rows; "
            "the last offset must equal the number of rows"
        )


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + c)`` for every pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    out = np.ones(total, dtype=np.int64)
    nonzero = counts > 0
    first = np.concatenate(([0], ends[:-1]))[nonzero]
    s = starts[nonzero]
    out[first[0]] = s[0]
    prev_end = s[:-1] + counts[nonzero][:-1]
    out[first[1:]] = s[1:] - prev_end + 1
    return np.cumsum(out)
