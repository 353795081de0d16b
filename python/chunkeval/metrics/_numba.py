# mypy: disable-error-code="no-untyped-def, no-untyped-call"
# (The @njit kernels take numpy arrays and scalars; Numba ignores annotations, so they are left
# unannotated. The two public entry points, build_chunk_index and span_metrics_numba, are typed.)
"""Numba backend of the span-metrics engine (``docs/engine.md``).

Layered as in ranx: ``_score_question`` is the ``@njit(cache=True)`` kernel for one question;
``_score_range`` loops it over a range of questions and ``_score_block`` gives that range its own
scratch buffers (allocated once per block, grown only when a question's evidence needs more);
``_score_parallel`` is the ``@njit(parallel=True)`` wrapper that runs contiguous blocks under
``prange``. Every ratio is ``float64(a) / float64(b)`` of exact int64 counts, so the numbers are
bit-identical to the C++ core and the pure-Python reference. With ``ranked`` the per-question kernel
ends with ``_rank_question`` (hit, mrr, map, ndcg, ndcg_graded; ``docs/engine.md`` §4), whose float
sums follow the reference's order term for term.

Nothing is compiled at import time: the kernels compile on first call and are cached on disk
(``cache=True``). Importing this module without numba raises ``ImportError``; the caller falls
back to another backend.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["build_chunk_index", "span_metrics_numba"]

# Below this many questions the thread pool costs more than it saves (same rule as the C++ core).
_MIN_PARALLEL_QUESTIONS = 2048
# Blocks per thread: a few, so that one slow block (a question with thousands of evidence chunks)
# does not leave the other threads idle, but few enough that scratch allocation stays negligible.
_BLOCKS_PER_THREAD = 4
_MIN_BLOCK_QUESTIONS = 512
# Insertion sort below this length; the per-question arrays are almost always this small.
_SMALL_SORT = 24
# Subtrees at or below this level are scanned linearly (at most 2**(level+1) - 1 contiguous rows).
_SCAN_LEVEL = 2
# Questions ahead whose chunk rows are prefetched, and at most this many references of each.
_PREFETCH_DISTANCE = 4
_PREFETCH_REFERENCES = 8
_OUTPUT_PREFETCH = 16  # questions ahead whose output lines are asked for writing
# Packed ranked-list sort keys: doc << 44 | start << 6 | rank, used when docs < 2**20, starts
# < 2**38 and at most 64 rows are scored (else the rows are merged in rank order directly).
_KEY_RANK_BITS = 6
_KEY_START_BITS = 38
_KEY_DOC_BITS = 64 - _KEY_RANK_BITS - _KEY_START_BITS - 1
_KEY_RANK_LIMIT = 1 << _KEY_RANK_BITS
# The first-cover sweep over longer lists sorts (doc, start << 20 | rank) pairs: ranks < 2**20
# (the per-question bound) and starts < 2**43 (positions are <= 2**32) fit in a positive int64.
_SWEEP_RANK_BITS = 20
# Explicit DFS stack for the interval tree: (node, level) pairs, at most two pending per level.
_STACK_SIZE = 512
# Rank metrics: a retrieved list is deduplicated by comparing each row with the rows kept before it
# while at most this many rows are read; a longer read sorts the rows instead (O(n log n)).
_DEDUP_QUADRATIC = 32
# Row 0: the discount W(i) = 1.0 / log2(i + 1) for ranks i below this, computed with math.log2
# exactly as the reference does (deeper ranks call the same libm log2); row 1: the binary ideal DCG
# of depth d, W(1) + ... + W(d) added from 0.0 in that order, as the reference adds them. The table
# travels to the kernels as an argument: read as a frozen global, each lookup cost ~10 ns.
_DISCOUNT_TABLE_SIZE = 1024


def _discount_table() -> np.ndarray:
    table = np.zeros((2, _DISCOUNT_TABLE_SIZE), dtype=np.float64)
    total = 0.0
    for i in range(1, _DISCOUNT_TABLE_SIZE):
        w = 1.0 / math.log2(i + 1)
        total += w
        table[0, i] = w
        table[1, i] = total
    table.flags.writeable = False
    return table


_DISCOUNTS = _discount_table()
# The rank metrics' rows in the output array: hit, mrr, map, ndcg, ndcg_graded.
_N_RANK_METRICS = 5

# The hot kernels never allocate, so they are compiled without the NRT: otherwise every call
# increfs and decrefs each array argument with an atomic, which costs more than the arithmetic of
# a typical question and, under prange, bounces the inputs' refcount cache lines between cores.
_kernel = njit(cache=True, error_model="numpy", _nrt=False)  # type: ignore[call-overload]

#: What build_chunk_index returns: nine int64/float64 arrays and the dense flag.
ChunkIndexTuple = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                        np.ndarray, int]

_KMODE_LIST = 0
_KMODE_ALL = 1
_KMODE_AUTO = 2
_SEM_CHROMA = 1


# --------------------------------------------------------------------------------------------
# Chunk index: rows sorted by (doc, start, end), distinct docs with row ranges, and per doc block
# an implicit augmented interval tree (cgranges layout).
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _build_trees(sorted_end, doc_offsets, max_end, root_level, ends_sorted):
    """Fill ``max_end`` (the subtree max of ``end``) and each block's root level, in place.

    Within a block of ``n`` rows, node ``i`` sits at level ``k`` = number of trailing one bits of
    ``i``; its children are ``i -/+ 2**(k-1)`` and its subtree is the contiguous rows
    ``[i - 2**k + 1, i + 2**k - 1]``. A right child may lie past the block's end; the in-range part
    of its subtree is then the subtree of its first in-range descendant along left links, whose
    value is already known because it sits at a lower level.
    """
    n_docs = doc_offsets.shape[0] - 1
    for b in range(n_docs):
        o = doc_offsets[b]
        n = doc_offsets[b + 1] - o
        monotone = 1
        for i in range(n):
            max_end[o + i] = sorted_end[o + i]
            if i > 0 and sorted_end[o + i] < sorted_end[o + i - 1]:
                monotone = 0
        ends_sorted[b] = monotone
        k = 1
        while (1 << k) <= n:
            half = 1 << (k - 1)
            step = 1 << (k + 1)
            i = (1 << k) - 1
            while i < n:
                v = sorted_end[o + i]
                left = max_end[o + i - half]
                if left > v:
                    v = left
                r = i + half
                kk = k - 1
                while r >= n and kk > 0:
                    r -= 1 << (kk - 1)
                    kk -= 1
                if r < n:
                    right = max_end[o + r]
                    if right > v:
                        v = right
                max_end[o + i] = v
                i += step
            k += 1
        root_level[b] = k - 1


def _sort_order(doc: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Row ids sorted by ``(doc, start, end)``, stably (full ties keep row order).

    Sorting by end too makes every block of non-nested chunks (even with duplicates) monotone in
    end. One argsort of a packed key is several times faster than lexsort on three columns; the
    key is used only when it provably fits in int64.
    """
    n = doc.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lows = min(int(doc.min()), int(start.min()), int(end.min()))
    start_span = int(start.max()) + 1
    end_span = int(end.max()) + 1
    if lows >= 0 and (int(doc.max()) + 1) * start_span * end_span < 2**63:
        key = (doc * start_span + start) * end_span + end
        return np.argsort(key, kind="stable").astype(np.int64, copy=False)
    return np.lexsort((end, start, doc)).astype(np.int64, copy=False)


def build_chunk_index(chunk_doc: np.ndarray, chunk_start: np.ndarray, chunk_end: np.ndarray) -> ChunkIndexTuple:
    """Index a chunking once so that many calls can reuse it (``docs/engine.md`` §2).

    Returns the tuple ``(order, rows, max_end, doc_ids, doc_offsets, root_level, ends_sorted,
    first_end, rows_per_unit, dense)``: ``order`` holds the original row ids sorted by ``(doc,
    start, end)``; ``rows`` the sorted spans interleaved (``rows[2 * i]`` is the start of sorted row
    ``i``, ``rows[2 * i + 1]`` its end: a query reads both, so one cache line instead of two);
    ``doc_ids`` the distinct docs, ascending, whose rows are ``doc_offsets[i]:doc_offsets[i + 1]``;
    ``max_end`` the implicit interval tree of each doc block; ``root_level[i]`` the level of block
    ``i``'s root (node ``2**level - 1``); ``ends_sorted[i]`` is 1 when block ``i``'s ends never
    decrease (no chunk nests in another), so a query there is one search instead of a tree walk,
    started at an interpolated guess (``first_end[i]``, the block's first end, and
    ``rows_per_unit[i]``, rows per unit of end); ``dense`` is 1 when the doc ids are consecutive,
    so a doc's block is found by subtraction. Inputs are validated int64 columns.
    """
    chunk_doc = np.ascontiguousarray(chunk_doc, dtype=np.int64)
    chunk_start = np.ascontiguousarray(chunk_start, dtype=np.int64)
    chunk_end = np.ascontiguousarray(chunk_end, dtype=np.int64)
    order = _sort_order(chunk_doc, chunk_start, chunk_end)
    sorted_doc = chunk_doc[order]
    sorted_start = np.ascontiguousarray(chunk_start[order])
    sorted_end = np.ascontiguousarray(chunk_end[order])
    if sorted_doc.shape[0]:
        first = np.flatnonzero(np.concatenate(([True], sorted_doc[1:] != sorted_doc[:-1])))
    else:
        first = np.zeros(0, dtype=np.int64)
    doc_ids = np.ascontiguousarray(sorted_doc[first], dtype=np.int64)
    n_docs = doc_ids.shape[0]
    doc_offsets = np.empty(n_docs + 1, dtype=np.int64)
    doc_offsets[:-1] = first
    doc_offsets[-1] = sorted_doc.shape[0]
    max_end = np.empty_like(sorted_end)
    root_level = np.zeros(n_docs, dtype=np.int64)
    ends_sorted = np.zeros(n_docs, dtype=np.int64)
    _build_trees(sorted_end, doc_offsets, max_end, root_level, ends_sorted)
    rows = np.empty(2 * sorted_start.shape[0], dtype=np.int64)
    rows[0::2] = sorted_start
    rows[1::2] = sorted_end
    first_end = np.zeros(n_docs, dtype=np.int64)
    rows_per_unit = np.zeros(n_docs, dtype=np.float64)
    if n_docs:
        first_end[:] = sorted_end[doc_offsets[:-1]]
        last_end = sorted_end[doc_offsets[1:] - 1]
        count = doc_offsets[1:] - doc_offsets[:-1]
        span = last_end - first_end
        ok = (ends_sorted != 0) & (span > 0)
        rows_per_unit[ok] = (count[ok] - 1).astype(np.float64) / span[ok].astype(np.float64)
    dense = 1 if n_docs and int(doc_ids[-1]) - int(doc_ids[0]) + 1 == n_docs else 0
    for arr in (order, rows, max_end, doc_ids, doc_offsets, root_level, ends_sorted, first_end, rows_per_unit):
        arr.flags.writeable = False
    return (order, rows, max_end, doc_ids, doc_offsets, root_level, ends_sorted, first_end, rows_per_unit, dense)


@_kernel
def _tree_query(rows, max_end, o, n, root_level, x, touch, y, out, n_out, stack):
    """Append to ``out`` every row ``o + i`` of one doc block with ``start - touch < x`` and
    ``end > y`` (``start < x + touch`` written so that nothing can overflow).

    Returns the new count; rows past ``out``'s capacity are counted but not written (the caller
    grows the buffer and asks again). Rows come out in no particular order.
    """
    cap = out.shape[0]
    stack[0] = (1 << root_level) - 1
    stack[1] = root_level
    sp = 2
    while sp > 0:
        sp -= 2
        i = stack[sp]
        k = stack[sp + 1]
        if i < n and max_end[o + i] <= y:
            continue  # nothing in this subtree ends after y
        if k <= _SCAN_LEVEL:
            lo = i - (1 << k) + 1
            hi = i + (1 << k)
            if hi > n:
                hi = n
            for t in range(lo, hi):
                if rows[2 * (o + t)] - touch >= x:
                    break
                if rows[2 * (o + t) + 1] > y:
                    if n_out < cap:
                        out[n_out] = o + t
                    n_out += 1
            continue
        half = 1 << (k - 1)
        if i >= n:
            # Past the block: only the left part of this subtree holds rows.
            stack[sp] = i - half
            stack[sp + 1] = k - 1
            sp += 2
            continue
        if rows[2 * (o + i)] - touch < x:
            if rows[2 * (o + i) + 1] > y:
                if n_out < cap:
                    out[n_out] = o + i
                n_out += 1
            # The right subtree starts at or after this row; it may still hold matches.
            stack[sp] = i + half
            stack[sp + 1] = k - 1
            sp += 2
        stack[sp] = i - half
        stack[sp + 1] = k - 1
        sp += 2
    return n_out


@_kernel
def _guess_row(first_end, rpu, n, y):
    """Local row where the first end past ``y`` is expected, in ``[0, n)`` (a hint only)."""
    if y <= first_end:
        return 0
    guess = np.float64(y - first_end) * rpu
    if not guess > 0.0:
        return 0  # also NaN: a hint must stay inside the block whatever the index holds
    if guess >= np.float64(n - 1):
        return n - 1
    return np.int64(guess)


@_kernel
def _first_end_after(rows, o, n, guess, y):
    """First local row of a block with ends never decreasing whose end is ``> y`` (``n`` if none):
    gallop out of ``guess``, then bisect the bracket."""
    if rows[2 * (o + guess) + 1] > y:
        hi = guess
        step = 1
        probe = guess - 1
        while probe >= 0 and rows[2 * (o + probe) + 1] > y:
            hi = probe
            step *= 2
            probe = hi - step
        lo = 0 if probe < 0 else probe + 1
    else:
        lo = guess + 1
        step = 1
        probe = lo
        while probe < n and rows[2 * (o + probe) + 1] <= y:
            lo = probe + 1
            step *= 2
            probe = lo + step - 1
        hi = probe if probe < n else n
    while lo < hi:
        mid = (lo + hi) >> 1
        if rows[2 * (o + mid) + 1] > y:
            hi = mid
        else:
            lo = mid + 1
    return lo


@_kernel
def _find_block(doc_ids, dense, d):
    """Index of doc ``d``'s block, or -1."""
    n_blocks = doc_ids.shape[0]
    if n_blocks == 0:
        return -1
    if dense:
        if d >= doc_ids[0] and d <= doc_ids[n_blocks - 1]:
            return d - doc_ids[0]
        return -1
    lo = 0
    hi = n_blocks
    while lo < hi:
        mid = (lo + hi) >> 1
        if doc_ids[mid] < d:
            lo = mid + 1
        else:
            hi = mid
    if lo < n_blocks and doc_ids[lo] == d:
        return lo
    return -1


def _prefetch_python(arr, idx):
    """With NUMBA_DISABLE_JIT=1 (a coverage run) the kernels are plain Python: no cache hint."""


def _prefetch_intrinsic(name: str, write: int, doc: str):
    """An intrinsic ``name(arr, idx)``: a cache hint for element ``idx`` of C-contiguous ``arr``
    in flat order (never faults); ``write=1`` asks for the line in a writable state (PREFETCHW)."""

    def typer(typingctx, arr, idx):
        if not isinstance(arr, types.Array):
            return None
        sig = types.void(arr, types.intp)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(write), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = doc
    return intrinsic(typer)


_prefetch = _prefetch_intrinsic("_prefetch", 0, "Start loading ``arr[idx]``.")
_prefetch_write = _prefetch_intrinsic(
    "_prefetch_write", 1, "Ask for the line of ``arr[idx]`` to write: a store to a line not yet owned waits for it.")


if getattr(numba.config, "DISABLE_JIT", 0):
    _prefetch = _prefetch_write = _prefetch_python  # an intrinsic cannot run as Python


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


@_kernel
def _sort_key(by_index, va, vb, key1, key2):
    """The sort key of entry ``(va, vb)``: ``(key1[va], key2[va])`` for an index sort, else itself."""
    if by_index:
        return key1[va], key2[va]
    return va, vb


@_kernel
def _merge_sort(a, b, n, ta, tb, by_index, key1, key2):  # noqa: C901 - a hot kernel, kept in one piece
    """Stable sort of the entries ``(a[i], b[i])``, ``i < n``, in place: insertion-sorted runs, then
    bottom-up merges into ``ta``, ``tb`` (room for ``n``) and back.

    ``by_index`` False sorts the pairs by value, reading them sequentially. ``by_index`` True sorts
    an index array (pass it as both ``a`` and ``b``, and its scratch as both ``ta`` and ``tb``) by
    ``(key1[i], key2[i])``. The one skeleton serves both; the flag is a constant at every call site.
    """
    run = _SMALL_SORT
    for s in range(0, n, run):
        e = min(s + run, n)
        for i in range(s + 1, e):
            va = a[i]
            vb = b[i]
            ka, kb = _sort_key(by_index, va, vb, key1, key2)
            j = i - 1
            while j >= s:
                wa = a[j]
                wb = b[j]
                ja, jb = _sort_key(by_index, wa, wb, key1, key2)
                if ja > ka or (ja == ka and jb > kb):
                    a[j + 1] = wa
                    b[j + 1] = wb
                    j -= 1
                else:
                    break
            a[j + 1] = va
            b[j + 1] = vb
    sa = a
    sb = b
    da = ta
    db = tb
    swapped = False
    width = run
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            t = lo
            while i < mid and j < hi:
                ia, ib = _sort_key(by_index, sa[i], sb[i], key1, key2)
                ja, jb = _sort_key(by_index, sa[j], sb[j], key1, key2)
                if ja < ia or (ja == ia and jb < ib):
                    da[t] = sa[j]
                    db[t] = sb[j]
                    j += 1
                else:
                    da[t] = sa[i]
                    db[t] = sb[i]
                    i += 1
                t += 1
            while i < mid:
                da[t] = sa[i]
                db[t] = sb[i]
                i += 1
                t += 1
            while j < hi:
                da[t] = sa[j]
                db[t] = sb[j]
                j += 1
                t += 1
        sa, da = da, sa
        sb, db = db, sb
        swapped = not swapped
        width *= 2
    if swapped:
        for i in range(n):
            a[i] = sa[i]
            b[i] = sb[i]


@_kernel
def _sort_rows(idx, n, key1, key2, tmp):
    """Stable sort of ``idx[:n]`` by ``(key1[idx], key2[idx])``; ``tmp`` has room for ``n``."""
    _merge_sort(idx, idx, n, tmp, tmp, True, key1, key2)


@_kernel
def _sift_down(a, root, n):
    while True:
        child = 2 * root + 1
        if child >= n:
            return
        if child + 1 < n and a[child + 1] > a[child]:
            child += 1
        if a[root] >= a[child]:
            return
        v = a[root]
        a[root] = a[child]
        a[child] = v
        root = child


@_kernel
def _sort_values(a, n):
    """Sort ``a[:n]`` in place."""
    if n <= _SMALL_SORT:
        for i in range(1, n):
            v = a[i]
            j = i - 1
            while j >= 0 and a[j] > v:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = v
    else:
        # Heapsort: in place, no allocation (this kernel runs without the NRT).
        for start in range((n - 2) // 2, -1, -1):
            _sift_down(a, start, n)
        for end in range(n - 1, 0, -1):
            v = a[0]
            a[0] = a[end]
            a[end] = v
            _sift_down(a, 0, end)


@_kernel
def _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, d, a, b):
    """``(ov, wov, cursor)`` of span ``(d, a, b)`` against the segments.

    ``sc`` is a cursor no later than the first segment that can overlap; pieces of one insertion are
    ascending, so the cursor only moves forward.
    """
    while sc < nseg and (seg_doc[sc] < d or (seg_doc[sc] == d and seg_e[sc] <= a)):
        sc += 1
    ov = 0
    wov = 0
    j = sc
    while j < nseg and seg_doc[j] == d and seg_s[j] < b:
        lo = seg_s[j] if seg_s[j] > a else a
        hi = seg_e[j] if seg_e[j] < b else b
        ov += hi - lo
        wov += (hi - lo) * seg_m[j]
        j += 1
    return ov, wov, sc


@_kernel
def _cstar_add(seg_doc, seg_s, seg_e, seg_m, nseg, sc, have, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w, d, cs, ce):
    """Add evidence chunk ``(d, cs, ce)`` (arriving in (doc, start) order) to the running piece of C*.

    A chunk that overlaps or touches the piece extends it; otherwise the piece is flushed (its length
    and its plain and weighted overlap with the segments are added) and the chunk starts a new one.
    Returns ``(sc, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w)``.
    """
    if have and cur_d == d and cs <= cur_e:
        if ce > cur_e:
            cur_e = ce
        return sc, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w
    if have:
        cs_len += cur_e - cur_s
        ov, wov, sc = _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, cur_d, cur_s, cur_e)
        cs_in += ov
        cs_in_w += wov
    return sc, d, cs, ce, cs_len, cs_in, cs_in_w


@_kernel
def _write_metrics(recall, precision, iou, q, col, chroma, inter, inter_w, r_len, ret_sum, e_len, ref_sum):
    fi = np.float64(inter)
    if chroma:
        recall[q, col] = fi / np.float64(ref_sum)
        precision[q, col] = fi / np.float64(ret_sum) if ret_sum > 0 else 0.0
        iou[q, col] = fi / np.float64(ret_sum + (ref_sum - inter_w))
    else:
        recall[q, col] = fi / np.float64(e_len)
        precision[q, col] = fi / np.float64(r_len) if r_len > 0 else 0.0
        iou[q, col] = fi / np.float64(e_len + r_len - inter)


@_kernel
def _rank_clustered(t0, n, ret_doc, ret_start, ret_end, seg_doc, seg_s, seg_e, seg_m, nseg,  # noqa: C901 - a hot kernel, kept in one piece
                    u_s, u_e, keys, add_i, add_w, add_r):  # fmt: skip
    """The ranked-list pass of ``docs/engine.md`` §3, arranged as in the C++ core: sort the first
    ``n`` rows by (doc, start) on packed keys and split them into clusters of rows that overlap each
    other with positive length. Clusters are disjoint, so a row alone in its cluster adds all of
    itself at its rank; only the rows of a shared cluster are merged in rank order. ``add_*[r]``
    receive what rank ``r`` added (I, I_w, R_len): the same pieces as the rank-order merge.
    """
    for r in range(n):
        row = t0 + r
        keys[r] = (ret_doc[row] << (_KEY_START_BITS + _KEY_RANK_BITS)) | (ret_start[row] << _KEY_RANK_BITS) | r
        add_i[r] = 0
        add_w[r] = 0
        add_r[r] = 0
    if n <= 16:
        # The keys are distinct (the rank is in them), so a key's place is the number of smaller
        # keys: quadratic, but free of the data-dependent branches that make insertion sort
        # mispredict about once per row.
        for i in range(n):
            v = keys[i]
            place = 0
            for j in range(n):
                place += np.int64(keys[j] < v)
            keys[_KEY_RANK_LIMIT + place] = v
        for i in range(n):
            keys[i] = keys[_KEY_RANK_LIMIT + i]
    else:
        for i in range(1, n):
            v = keys[i]
            j = i - 1
            while j >= 0 and keys[j] > v:
                keys[j + 1] = keys[j]
                j -= 1
            keys[j + 1] = v
    mask = (1 << _KEY_RANK_BITS) - 1
    sc = 0
    i = 0
    while i < n:
        r0 = keys[i] & mask
        d = ret_doc[t0 + r0]
        reach = ret_end[t0 + r0]
        j = i + 1
        while j < n:
            rj = keys[j] & mask
            if ret_doc[t0 + rj] != d or ret_start[t0 + rj] >= reach:
                break
            if ret_end[t0 + rj] > reach:
                reach = ret_end[t0 + rj]
            j += 1
        a = ret_start[t0 + r0]
        # Segment cursor at the cluster's first start; rows arrive in (doc, start) order.
        while sc < nseg and (seg_doc[sc] < d or (seg_doc[sc] == d and seg_e[sc] <= a)):
            sc += 1
        if j == i + 1:
            b = ret_end[t0 + r0]
            add_r[r0] = b - a
            ov, wov, _c = _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, d, a, b)
            add_i[r0] = ov
            add_w[r0] = wov
        else:
            # Ranks of the cluster, ascending (the low bits of its keys).
            for t in range(i + 1, j):
                v = keys[t]
                u = t - 1
                while u >= i and (keys[u] & mask) > (v & mask):
                    keys[u + 1] = keys[u]
                    u -= 1
                keys[u + 1] = v
            nr = 0
            for t in range(i, j):
                rk = keys[t] & mask
                a = ret_start[t0 + rk]
                b = ret_end[t0 + rk]
                # First interval of the cluster's union that touches or follows [a, b).
                pos = 0
                while pos < nr and u_e[pos] < a:
                    pos += 1
                jj = pos
                cur = a
                new_s = a
                ri = 0
                rw = 0
                rl = 0
                while jj < nr and u_s[jj] <= b:
                    if u_s[jj] > cur:
                        ov, wov, _c = _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, d, cur, u_s[jj])
                        rl += u_s[jj] - cur
                        ri += ov
                        rw += wov
                    if u_s[jj] < new_s:
                        new_s = u_s[jj]
                    if u_e[jj] > cur:
                        cur = u_e[jj]
                    jj += 1
                if cur < b:
                    ov, wov, _c = _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, d, cur, b)
                    rl += b - cur
                    ri += ov
                    rw += wov
                    cur = b
                add_i[rk] = ri
                add_w[rk] = rw
                add_r[rk] = rl
                removed = jj - pos
                if removed == 0:
                    for u in range(nr, pos, -1):
                        u_s[u] = u_s[u - 1]
                        u_e[u] = u_e[u - 1]
                    nr += 1
                elif removed > 1:
                    shift = removed - 1
                    for u in range(pos + 1, nr - shift):
                        u_s[u] = u_s[u + shift]
                        u_e[u] = u_e[u + shift]
                    nr -= shift
                u_s[pos] = new_s
                u_e[pos] = cur
        i = j


@_kernel
def _heap_push(heap, hn, v):
    """Push ``v`` onto the binary min-heap ``heap[:hn]``; returns the new size."""
    i = hn
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= v:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = v
    return hn + 1


@_kernel
def _heap_pop(heap, hn):
    """Remove the smallest entry of ``heap[:hn]``; returns the new size."""
    hn -= 1
    v = heap[hn]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= hn:
            break
        if child + 1 < hn and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= v:
            break
        heap[i] = heap[child]
        i = child
    if hn > 0:
        heap[i] = v
    return hn


@_kernel
def _sort_pairs(a, b, n, ta, tb):
    """Sort the pairs ``(a[i], b[i])`` of ``i < n`` in place; ``ta``, ``tb`` have room for ``n``. By
    value, so the merges read the pairs sequentially (an index sort would fetch each key from a
    random place)."""
    _merge_sort(a, b, n, ta, tb, False, a, b)


@_kernel
def _rank_sweep(t0, n, ret_doc, ret_start, ret_end, seg_doc, seg_s, seg_e, seg_m, nseg,  # noqa: C901 - a hot kernel, kept in one piece
                sd, sb, ss, sr, heap, add_i, add_w, add_r):  # fmt: skip
    """What each of the first ``n`` ranks adds, for a list of any length in O(n log n).

    A position joins the union of the first ``k`` rows at the smallest rank that covers it. Sweep
    the rows in (doc, start) order with a min-heap of the ranks of the rows covering the sweep
    position (a row whose end has passed leaves the heap when it reaches the top): between two
    consecutive events (a start, or the end of the top row) the heap's top is that smallest rank,
    and the piece is measured against the reference segments with a cursor that only moves forward.
    ``sd``, ``sb``, ``ss``, ``sr`` and ``heap`` are scratch with room for ``n``; the sorted rows end
    up as (doc ``sd``, start ``ss``, rank ``sr``). ``add_*[r]`` receive rank ``r``'s new
    (I, I_w, R_len), as the rank-order merge would compute them.
    """
    packable = n <= (1 << _SWEEP_RANK_BITS)
    for r in range(n):
        add_i[r] = 0
        add_w[r] = 0
        add_r[r] = 0
        if ret_start[t0 + r] >> (63 - _SWEEP_RANK_BITS) != 0:
            packable = False  # negative or >= 2**43: only a caller that skipped validation
    if packable:
        # Sort (doc, start << 20 | rank) pairs by value; then unpack start and rank.
        for r in range(n):
            sd[r] = ret_doc[t0 + r]
            sb[r] = (ret_start[t0 + r] << _SWEEP_RANK_BITS) | r
        _sort_pairs(sd, sb, n, ss, sr)
        mask = (1 << _SWEEP_RANK_BITS) - 1
        for i in range(n):
            ss[i] = sb[i] >> _SWEEP_RANK_BITS
            sr[i] = sb[i] & mask
    else:
        for r in range(n):
            sr[r] = t0 + r
        _sort_rows(sr, n, ret_doc, ret_start, ss)
        for i in range(n):
            sd[i] = ret_doc[sr[i]]
            ss[i] = ret_start[sr[i]]
            sr[i] -= t0
    sc = 0
    i = 0
    while i < n:
        d = sd[i]
        p = ss[i]
        hn = 0
        while True:
            while i < n and sd[i] == d and ss[i] <= p:
                hn = _heap_push(heap, hn, sr[i])
                i += 1
            while hn > 0 and ret_end[t0 + heap[0]] <= p:
                hn = _heap_pop(heap, hn)
            more = i < n and sd[i] == d
            if hn == 0:
                if not more:
                    break
                p = ss[i]
                continue
            r = heap[0]
            nxt = ret_end[t0 + r]
            if more and ss[i] < nxt:
                nxt = ss[i]
            ov, wov, sc = _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, d, p, nxt)
            add_r[r] += nxt - p
            add_i[r] += ov
            add_w[r] += wov
            p = nxt


# --------------------------------------------------------------------------------------------
# Rank metrics (docs/engine.md §4)
# --------------------------------------------------------------------------------------------


@_kernel
def _discount(discounts, i):
    """``W(i) = 1.0 / log2(i + 1)``, bit for bit the reference's (the same libm ``log2``)."""
    if i < discounts.shape[1]:
        return discounts[0, i]
    return 1.0 / math.log2(np.float64(i + 1))


@_kernel
def _binary_idcg(discounts, depth):
    """``W(1) + ... + W(depth)`` added from 0.0 in that order (the table holds the first sums)."""
    n = discounts.shape[1]
    if depth < n:
        return discounts[1, depth]
    total = discounts[1, n - 1]
    for j in range(n, depth + 1):
        total += 1.0 / math.log2(np.float64(j + 1))
    return total


@_kernel
def _segment_prefix(seg_s, seg_e, nseg, seg_pre):
    """``seg_pre[j]`` = total length of the segments before ``j`` (multiplicity ignored)."""
    total = 0
    seg_pre[0] = 0
    for j in range(nseg):
        total += seg_e[j] - seg_s[j]
        seg_pre[j + 1] = total


@_kernel
def _gain(seg_doc, seg_s, seg_e, seg_pre, nseg, d, a, b):
    """``|(d, a, b) ∩ E|``: two binary searches over the disjoint sorted segments and a difference
    of their prefix lengths, clipped at both ends (O(log nseg) whatever the span covers)."""
    if nseg == 1:
        # One reference: a plain intersection, without the searches' unpredictable branches.
        lo = a if a > seg_s[0] else seg_s[0]
        hi = b if b < seg_e[0] else seg_e[0]
        return hi - lo if seg_doc[0] == d and hi > lo else 0
    lo = 0
    hi = nseg
    while lo < hi:  # first segment with (doc, end) > (d, a)
        mid = (lo + hi) >> 1
        if seg_doc[mid] < d or (seg_doc[mid] == d and seg_e[mid] <= a):
            lo = mid + 1
        else:
            hi = mid
    first = lo
    hi = nseg
    while lo < hi:  # first segment from there with (doc, start) >= (d, b)
        mid = (lo + hi) >> 1
        if seg_doc[mid] < d or (seg_doc[mid] == d and seg_s[mid] < b):
            lo = mid + 1
        else:
            hi = mid
    if lo == first:
        return 0
    # Segments first..lo-1 all lie in doc d and overlap [a, b); only the two outer ones stick out.
    g = seg_pre[lo] - seg_pre[first]
    if seg_s[first] < a:
        g -= a - seg_s[first]
    if seg_e[lo - 1] > b:
        g -= seg_e[lo - 1] - b
    return g


@_kernel
def _same_row(ret_doc, ret_start, ret_end, x, y):
    return ret_start[x] == ret_start[y] and ret_end[x] == ret_end[y] and ret_doc[x] == ret_doc[y]


@_kernel
def _first_occurrences(t0, read, ret_doc, ret_start, ret_end, rk_idx, rk_tmp):
    """``rk_tmp[p]`` = 1 when row ``p`` of ``t0 .. t0 + read`` equals no earlier row, else 0:
    O(n log n) on the rows sorted by (doc, start, end, position); ``rk_idx`` is scratch."""
    for i in range(read):
        rk_idx[i] = t0 + i
    # Two stable passes: by end, then by (doc, start); equal rows end up together, earliest first.
    _sort_rows(rk_idx, read, ret_end, ret_end, rk_tmp)
    _sort_rows(rk_idx, read, ret_doc, ret_start, rk_tmp)
    for i in range(read):
        r = rk_idx[i]
        rk_tmp[r - t0] = 0 if i > 0 and _same_row(ret_doc, ret_start, ret_end, rk_idx[i - 1], r) else 1


@_kernel
def _distinct_prefix(t0, quadratic, depth, ret_doc, ret_start, ret_end, rk_idx, rk_tmp):
    """Read rows ``0 .. quadratic`` of the list until ``depth`` are kept, comparing each with the
    rows kept so far (positions to ``rk_idx``, starts to ``rk_tmp``); returns ``(kept, read)``."""
    n = 0
    p = 0
    while p < quadratic and n < depth:
        # The kept rows' starts sit contiguously in rk_tmp: a branch-free count over them (which
        # vectorises) rules out almost every row before any full comparison.
        s = ret_start[t0 + p]
        same_start = 0
        for t in range(n):
            same_start += np.int64(rk_tmp[t] == s)
        seen = False
        if same_start > 0:
            for t in range(n):
                if rk_tmp[t] == s and _same_row(ret_doc, ret_start, ret_end, t0 + rk_idx[t], t0 + p):
                    seen = True
                    break
        if not seen:
            rk_idx[n] = p
            rk_tmp[n] = s
            n += 1
        p += 1
    return n, p


@_kernel
def _rank_rows(t0, n_ret, depth, ret_doc, ret_start, ret_end, rk_idx, rk_tmp):
    """The first ``depth`` distinct rows of the list ``t0 .. t0 + n_ret`` (``depth <= n_ret``): their
    positions in the list go to ``rk_idx`` in rank order; returns how many there are.

    Up to ``_DEDUP_QUADRATIC`` rows are read comparing each with the rows kept so far. A list that
    needs more is deduplicated on a prefix (:func:`_first_occurrences`), doubled until it holds
    ``depth`` distinct rows or is the whole list. ``rk_idx`` and ``rk_tmp`` have room for ``n_ret``.
    """
    quadratic = n_ret if n_ret < _DEDUP_QUADRATIC else _DEDUP_QUADRATIC
    n, p = _distinct_prefix(t0, quadratic, depth, ret_doc, ret_start, ret_end, rk_idx, rk_tmp)
    if n == depth or p == n_ret:
        return n
    read = max(2 * depth, 2 * _DEDUP_QUADRATIC)
    while True:
        if read > n_ret:
            read = n_ret
        _first_occurrences(t0, read, ret_doc, ret_start, ret_end, rk_idx, rk_tmp)
        n = 0
        for p in range(read):
            if rk_tmp[p]:
                rk_idx[n] = p
                n += 1
                if n == depth:
                    return n
        if read == n_ret:
            return n
        read *= 2


@_kernel
def _top_descending(a, n, top):
    """Leave the ``top`` largest of ``a[:n]`` at ``a[n - 1], a[n - 2], ..., a[n - top]`` in decreasing
    order: a partial heapsort (no allocation), so a deep ideal list costs O(n + top log n)."""
    if n <= _SMALL_SORT:
        _sort_values(a, n)
        return
    for start in range((n - 2) // 2, -1, -1):
        _sift_down(a, start, n)
    for t in range(top):
        end = n - 1 - t
        if end <= 0:
            break
        v = a[0]
        a[0] = a[end]
        a[end] = v
        _sift_down(a, 0, end)


@_kernel
def _ideal_add(seg_doc, seg_s, seg_e, seg_pre, nseg, ideal, n_rel, d, cs, ce):
    """Count evidence chunk ``(d, cs, ce)`` into the ideal list when it overlaps E (under chroma
    semantics a merely touching one does not); gains past ``ideal``'s capacity are counted only."""
    g = _gain(seg_doc, seg_s, seg_e, seg_pre, nseg, d, cs, ce)
    if g <= 0:
        return n_rel
    if n_rel < ideal.shape[0]:
        ideal[n_rel] = g
    return n_rel + 1


@_kernel
def _rank_question(  # noqa: C901 - one pass over the ranks for every cut-off
    q, t0, n_ret, ret_doc, ret_start, ret_end, seg_doc, seg_s, seg_e, seg_pre, nseg,
    ks, k_mode, n_ev, ideal, n_rel, rank_out, rk_idx, rk_tmp, discounts,
):  # fmt: skip
    """Write hit, mrr, map, ndcg and ndcg_graded of question ``q`` at every cut-off into
    ``rank_out[:, q, :]`` (docs/engine.md §4). ``ideal[:n_rel]`` holds the gains of the chunks that
    overlap E (reordered here); every sum runs from 0.0 in increasing rank, as in the reference."""
    n_ks = ks.shape[0]
    if k_mode == _KMODE_LIST:
        depth = ks[n_ks - 1]
        ideal_depth = depth
    elif k_mode == _KMODE_ALL:
        depth = n_ret
        ideal_depth = n_rel
    else:
        depth = n_ev
        ideal_depth = n_ev
    if depth > n_ret:
        depth = n_ret
    if ideal_depth > n_rel:
        ideal_depth = n_rel
    n_ranks = _rank_rows(t0, n_ret, depth, ret_doc, ret_start, ret_end, rk_idx, rk_tmp)
    _top_descending(ideal, n_rel, ideal_depth)
    first = 0
    n_hits = 0
    ap = 0.0
    dcg = 0.0
    dcg_graded = 0.0
    idcg = 0.0
    idcg_graded = 0.0
    i = 0
    j = 0
    # The values of the last cut-off: recomputed only when a relevant rank or an ideal step came in
    # since (a cut-off that adds neither has the same sums, so the same quotients).
    hit = 0.0
    mrr = 0.0
    mean_ap = 0.0
    ndcg = 0.0
    ndcg_graded = 0.0
    n_cols = n_ks if k_mode == _KMODE_LIST else 1
    for col in range(n_cols):
        upto = n_ranks
        cut = ideal_depth
        if k_mode == _KMODE_LIST:
            if ks[col] < upto:
                upto = ks[col]
            if ks[col] < cut:
                cut = ks[col]
        moved = False
        while i < upto:
            row = t0 + rk_idx[i]
            i += 1
            g = _gain(seg_doc, seg_s, seg_e, seg_pre, nseg, ret_doc[row], ret_start[row], ret_end[row])
            if g > 0:
                n_hits += 1
                if first == 0:
                    first = i
                    hit = 1.0
                    mrr = 1.0 / np.float64(first)
                ap += np.float64(n_hits) / np.float64(i)
                w = _discount(discounts, i)
                dcg += w  # 1.0 * W(i)
                dcg_graded += np.float64(g) * w
                moved = True
        if j < cut:
            while j < cut:
                j += 1
                idcg_graded += np.float64(ideal[n_rel - j]) * _discount(discounts, j)
            idcg = _binary_idcg(discounts, j)
            moved = True
        if moved:
            mean_ap = ap / np.float64(n_rel) if n_rel > 0 else 0.0
            ndcg = dcg / idcg if idcg != 0.0 else 0.0
            ndcg_graded = dcg_graded / idcg_graded if idcg_graded != 0.0 else 0.0
        rank_out[0, q, col] = hit
        rank_out[1, q, col] = mrr
        rank_out[2, q, col] = mean_ap
        rank_out[3, q, col] = ndcg
        rank_out[4, q, col] = ndcg_graded


# --------------------------------------------------------------------------------------------
# Per-question kernel
# --------------------------------------------------------------------------------------------


@_kernel
def _score_question(  # noqa: C901 - the per-question kernel, kept in one piece for speed
    q,
    ref_offsets, ref_doc, ref_start, ref_end,
    ret_offsets, ret_doc, ret_start, ret_end,
    has_chunks, ci_rows, ci_max_end, ci_doc_ids,
    ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
    ks, k_mode, semantics,
    recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
    idx_s, idx_e, idx_tmp, seg_doc, seg_s, seg_e, seg_m, ev_doc, ev_s, ev_e,
    r_doc, r_s, r_e, r_t1, r_t2, ebuf, stack, keys, add_i, add_w, add_r,
    seg_pre, ideal, rk_idx, rk_tmp,
):  # fmt: skip
    """Score question ``q`` into the output rows. Returns 0, or the buffer size needed when ``ebuf``
    (or, ranked, ``ideal``) was too small (nothing is written then; the caller grows it and calls
    again). With ``ranked`` the rank metrics go to ``rank_out[:, q, :]``."""
    chroma = semantics == _SEM_CHROMA

    # ---- 1. reference segments ------------------------------------------------------------
    r0 = ref_offsets[q]
    m = ref_offsets[q + 1] - r0
    nseg = 0
    e_len = 0
    ref_sum = 0
    g0 = 0
    if m == 1:
        # The common case, without the sweep: one segment of multiplicity 1.
        seg_doc[0] = ref_doc[r0]
        seg_s[0] = ref_start[r0]
        seg_e[0] = ref_end[r0]
        seg_m[0] = 1
        nseg = 1
        e_len = ref_end[r0] - ref_start[r0]
        ref_sum = e_len
        g0 = m
    else:
        for i in range(m):
            idx_s[i] = r0 + i
            idx_e[i] = r0 + i
        _sort_rows(idx_s, m, ref_doc, ref_start, idx_tmp)
        _sort_rows(idx_e, m, ref_doc, ref_end, idx_tmp)
    while g0 < m:
        d = ref_doc[idx_s[g0]]
        g1 = g0 + 1
        while g1 < m and ref_doc[idx_s[g1]] == d:
            g1 += 1
        # idx_e holds the same doc group at the same positions (both sorted by doc first).
        i = g0
        j = g0
        cnt = 0
        prev = 0
        while j < g1:
            pos = ref_end[idx_e[j]]
            if i < g1 and ref_start[idx_s[i]] <= pos:
                pos = ref_start[idx_s[i]]
            if cnt > 0 and pos > prev:
                e_len += pos - prev
                ref_sum += (pos - prev) * cnt
                if nseg > 0 and seg_doc[nseg - 1] == d and seg_e[nseg - 1] == prev and seg_m[nseg - 1] == cnt:
                    seg_e[nseg - 1] = pos
                else:
                    seg_doc[nseg] = d
                    seg_s[nseg] = prev
                    seg_e[nseg] = pos
                    seg_m[nseg] = cnt
                    nseg += 1
            while i < g1 and ref_start[idx_s[i]] == pos:
                cnt += 1
                i += 1
            while j < g1 and ref_end[idx_e[j]] == pos:
                cnt -= 1
                j += 1
            prev = pos
        g0 = g1
    if ranked:
        _segment_prefix(seg_s, seg_e, nseg, seg_pre)

    # ---- 2. evidence chunks ---------------------------------------------------------------
    n_ev = 0
    n_rel = 0  # ranked: evidence chunks with a positive overlap, their gains in ideal
    if has_chunks:
        # Evidence intervals: consecutive same-doc segments that touch or overlap are joined.
        nev_int = 0
        for t in range(nseg):
            if nev_int > 0 and ev_doc[nev_int - 1] == seg_doc[t] and seg_s[t] <= ev_e[nev_int - 1]:
                # Segments are disjoint and sorted, so this one ends past the interval.
                ev_e[nev_int - 1] = seg_e[t]
            else:
                ev_doc[nev_int] = seg_doc[t]
                ev_s[nev_int] = seg_s[t]
                ev_e[nev_int] = seg_e[t]
                nev_int += 1
        # Set: start < m.e and end > m.s. Chroma (touching counts): start <= m.e and end >= m.s.
        # C* is built while the chunk rows stream in, in increasing row order (so by (doc, start)):
        # a running piece, flushed against the segments with a cursor that only moves forward.
        touch = 1 if chroma else 0
        cs_len = 0
        cs_in = 0
        cs_in_w = 0
        need = 0
        sc = 0
        have = False
        cur_d = 0
        cur_s = 0
        cur_e = 0
        g = 0
        while g < nev_int:
            d = ev_doc[g]
            h = g + 1
            while h < nev_int and ev_doc[h] == d:
                h += 1
            blk = _find_block(ci_doc_ids, ci_dense, d)
            if blk >= 0:
                o = ci_doc_offsets[blk]
                n = ci_doc_offsets[blk + 1] - o
                if ci_ends_sorted[blk]:
                    first = 0
                    for t in range(g, h):
                        x = ev_e[t]
                        y = ev_s[t] - touch
                        i = _first_end_after(ci_rows, o, n, _guess_row(ci_first_end[blk], ci_rpu[blk], n, y), y)
                        if i < first:
                            i = first
                        while i < n:
                            cs = ci_rows[2 * (o + i)]
                            if cs - touch >= x:  # cs >= x + touch, without the overflow at 2**63
                                break
                            ce = ci_rows[2 * (o + i) + 1]
                            n_ev += 1
                            if ranked:
                                n_rel = _ideal_add(seg_doc, seg_s, seg_e, seg_pre, nseg, ideal, n_rel, d, cs, ce)
                            sc, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w = _cstar_add(
                                seg_doc, seg_s, seg_e, seg_m, nseg, sc,
                                have, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w, d, cs, ce)
                            have = True
                            i += 1
                        if i > first:
                            first = i
                else:
                    lvl = ci_root_level[blk]
                    cnt = 0
                    for t in range(g, h):
                        cnt = _tree_query(ci_rows, ci_max_end, o, n, lvl,
                                          ev_e[t], touch, ev_s[t] - touch, ebuf, cnt, stack)  # fmt: skip
                    if cnt > ebuf.shape[0]:
                        if cnt > need:
                            need = cnt
                    elif need == 0 and cnt > 0:
                        # A chunk spanning a gap between two evidence intervals is found twice.
                        _sort_values(ebuf, cnt)
                        for t in range(cnt):
                            p = ebuf[t]
                            if t > 0 and p == ebuf[t - 1]:
                                continue
                            cs = ci_rows[2 * p]
                            ce = ci_rows[2 * p + 1]
                            n_ev += 1
                            if ranked:
                                n_rel = _ideal_add(seg_doc, seg_s, seg_e, seg_pre, nseg, ideal, n_rel, d, cs, ce)
                            sc, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w = _cstar_add(
                                seg_doc, seg_s, seg_e, seg_m, nseg, sc,
                                have, cur_d, cur_s, cur_e, cs_len, cs_in, cs_in_w, d, cs, ce)
                            have = True
            g = h
        if have:
            cs_len += cur_e - cur_s
            ov, wov, sc = _overlap(seg_doc, seg_s, seg_e, seg_m, nseg, sc, cur_d, cur_s, cur_e)
            cs_in += ov
            cs_in_w += wov
        if ranked and n_rel > ideal.shape[0] and n_rel > need:
            need = n_rel
        if need > 0:
            return need
        precision_omega[q] = np.float64(cs_in) / np.float64(e_len + cs_len - cs_in)
        if chroma:
            coverage[q] = np.float64(cs_in_w) / np.float64(ref_sum)
        else:
            coverage[q] = np.float64(cs_in) / np.float64(e_len)
        n_evidence_chunks[q] = n_ev
    else:
        precision_omega[q] = np.nan
        coverage[q] = np.nan
        n_evidence_chunks[q] = -1

    # ---- 3. the ranked list, one pass for every cut-off -------------------------------------
    t0 = ret_offsets[q]
    n_ret = ret_offsets[q + 1] - t0
    n_ks = ks.shape[0]
    if k_mode == _KMODE_LIST:
        steps = ks[n_ks - 1]
        if steps > n_ret:
            steps = n_ret
    elif k_mode == _KMODE_ALL:
        steps = n_ret
    else:
        steps = n_ev if n_ev < n_ret else n_ret

    # What each rank adds (I, I_w, R_len) comes from one of two passes: packed keys and clusters
    # for short lists whose docs and starts fit the key, the first-cover sweep for every other list.
    too_wide = 0
    if steps <= _KEY_RANK_LIMIT:
        for step in range(steps):
            row = t0 + step
            too_wide |= (ret_doc[row] >> _KEY_DOC_BITS) | (ret_start[row] >> _KEY_START_BITS)
    if steps <= _KEY_RANK_LIMIT and too_wide == 0:
        _rank_clustered(t0, steps, ret_doc, ret_start, ret_end, seg_doc, seg_s, seg_e, seg_m, nseg,
                        r_s, r_e, keys, add_i, add_w, add_r)  # fmt: skip
    else:
        _rank_sweep(t0, steps, ret_doc, ret_start, ret_end, seg_doc, seg_s, seg_e, seg_m, nseg,
                    r_doc, r_s, r_t1, r_t2, r_e, add_i, add_w, add_r)  # fmt: skip
    inter = 0
    inter_w = 0
    r_len = 0
    ret_sum = 0
    rank = 0
    n_cols = n_ks if k_mode == _KMODE_LIST else 1
    for col in range(n_cols):
        upto = steps
        if k_mode == _KMODE_LIST and ks[col] < steps:
            upto = ks[col]
        while rank < upto:
            inter += add_i[rank]
            inter_w += add_w[rank]
            r_len += add_r[rank]
            ret_sum += ret_end[t0 + rank] - ret_start[t0 + rank]
            rank += 1
        _write_metrics(recall, precision, iou, q, col, chroma, inter, inter_w, r_len, ret_sum, e_len, ref_sum)
    if ranked:
        _rank_question(q, t0, n_ret, ret_doc, ret_start, ret_end, seg_doc, seg_s, seg_e, seg_pre, nseg,
                       ks, k_mode, n_ev, ideal, n_rel, rank_out, rk_idx, rk_tmp, discounts)  # fmt: skip
    return 0


# --------------------------------------------------------------------------------------------
# Blocks of questions, serial and parallel
# --------------------------------------------------------------------------------------------


@_kernel
def _score_range(
    q0, q1,
    ref_offsets, ref_doc, ref_start, ref_end,
    ret_offsets, ret_doc, ret_start, ret_end,
    has_chunks, ci_rows, ci_max_end, ci_doc_ids,
    ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
    ks, k_mode, semantics,
    recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
    idx_s, idx_e, idx_tmp, seg_doc, seg_s, seg_e, seg_m, ev_doc, ev_s, ev_e,
    r_doc, r_s, r_e, r_t1, r_t2, ebuf, stack, keys, add_i, add_w, add_r,
    seg_pre, ideal, rk_idx, rk_tmp,
):  # fmt: skip
    """Score questions from ``q0`` on; stop at the first one whose evidence does not fit ``ebuf``.

    Returns ``(q, need)``: ``(q1, 0)`` when done, else the question to resume at and the buffer
    size it needs (allocation is left to the caller, which runs with the NRT).
    """
    for q in range(q0, q1):
        if has_chunks and q + _PREFETCH_DISTANCE < q1:
            # Start loading the chunk rows the evidence queries of a question a few ahead will read
            # first: on a large chunking those loads miss every cache.
            pq = q + _PREFETCH_DISTANCE
            lo = ref_offsets[pq]
            hi = ref_offsets[pq + 1]
            if hi > lo + _PREFETCH_REFERENCES:
                hi = lo + _PREFETCH_REFERENCES
            for r in range(lo, hi):
                blk = _find_block(ci_doc_ids, ci_dense, ref_doc[r])
                if blk >= 0:
                    o = ci_doc_offsets[blk]
                    n = ci_doc_offsets[blk + 1] - o
                    _prefetch(ci_rows, 2 * (o + _guess_row(ci_first_end[blk], ci_rpu[blk], n, ref_start[r])))
        if q + _OUTPUT_PREFETCH < q1:
            # The output lines of a question further ahead, asked for writing (as the C++ core does).
            pq = q + _OUTPUT_PREFETCH
            at = pq * recall.shape[1]
            _prefetch_write(recall, at)
            _prefetch_write(precision, at)
            _prefetch_write(iou, at)
            _prefetch_write(precision_omega, pq)
            _prefetch_write(coverage, pq)
            _prefetch_write(n_evidence_chunks, pq)
            if ranked:
                for m in range(rank_out.shape[0]):
                    _prefetch_write(rank_out, m * recall.size + at)
        need = _score_question(
            q,
            ref_offsets, ref_doc, ref_start, ref_end,
            ret_offsets, ret_doc, ret_start, ret_end,
            has_chunks, ci_rows, ci_max_end, ci_doc_ids,
            ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
            ks, k_mode, semantics,
            recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
            idx_s, idx_e, idx_tmp, seg_doc, seg_s, seg_e, seg_m, ev_doc, ev_s, ev_e,
            r_doc, r_s, r_e, r_t1, r_t2, ebuf, stack, keys, add_i, add_w, add_r,
            seg_pre, ideal, rk_idx, rk_tmp,
        )  # fmt: skip
        if need > 0:
            return q, need
    return q1, 0


@njit(cache=True, error_model="numpy")
def _score_block(
    q0, q1,
    ref_offsets, ref_doc, ref_start, ref_end,
    ret_offsets, ret_doc, ret_start, ret_end,
    has_chunks, ci_rows, ci_max_end, ci_doc_ids,
    ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
    ks, k_mode, semantics,
    recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
):  # fmt: skip
    """Score questions ``[q0, q1)`` with one set of scratch buffers sized for the block."""
    max_refs = 1
    max_ret = 1
    for q in range(q0, q1):
        m = ref_offsets[q + 1] - ref_offsets[q]
        if m > max_refs:
            max_refs = m
        L = ret_offsets[q + 1] - ret_offsets[q]
        if L > max_ret:
            max_ret = L
    # Ranks may read a whole list (repeated rows take no rank), past the rows the span metrics score.
    max_list = max_ret
    if k_mode == _KMODE_LIST and ks[ks.shape[0] - 1] < max_ret:
        max_ret = ks[ks.shape[0] - 1]
    idx_s = np.empty(max_refs, np.int64)
    idx_e = np.empty(max_refs, np.int64)
    idx_tmp = np.empty(max_refs, np.int64)
    seg_cap = 2 * max_refs
    seg_doc = np.empty(seg_cap, np.int64)
    seg_s = np.empty(seg_cap, np.int64)
    seg_e = np.empty(seg_cap, np.int64)
    seg_m = np.empty(seg_cap, np.int64)
    ev_doc = np.empty(seg_cap, np.int64)
    ev_s = np.empty(seg_cap, np.int64)
    ev_e = np.empty(seg_cap, np.int64)
    # Ranked-list scratch: the sweep's sorted rows, merge buffers and heap (the packed pass uses
    # r_s and r_e as its cluster union), and what each rank adds.
    r_doc = np.empty(max_ret + 1, np.int64)
    r_s = np.empty(max_ret + 1, np.int64)
    r_e = np.empty(max_ret + 1, np.int64)
    r_t1 = np.empty(max_ret + 1, np.int64)
    r_t2 = np.empty(max_ret + 1, np.int64)
    ebuf = np.empty(64, np.int64)
    keys = np.empty(2 * _KEY_RANK_LIMIT, np.int64)
    n_add = max(max_ret, _KEY_RANK_LIMIT)
    add_i = np.empty(n_add, np.int64)
    add_w = np.empty(n_add, np.int64)
    add_r = np.empty(n_add, np.int64)
    stack = np.empty(_STACK_SIZE, np.int64)
    # Rank-metric scratch (a single element when not ranked): segment prefix lengths, the ideal
    # gains (grown like ebuf) and the deduplication's positions and flags.
    seg_pre = np.empty(seg_cap + 1 if ranked else 1, np.int64)
    ideal = np.empty(64 if ranked else 1, np.int64)
    rk_idx = np.empty(max_list if ranked else 1, np.int64)
    rk_tmp = np.empty(max_list if ranked else 1, np.int64)
    q = q0
    while q < q1:
        q, need = _score_range(
            q, q1,
            ref_offsets, ref_doc, ref_start, ref_end,
            ret_offsets, ret_doc, ret_start, ret_end,
            has_chunks, ci_rows, ci_max_end, ci_doc_ids,
            ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
            ks, k_mode, semantics,
            recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
            idx_s, idx_e, idx_tmp, seg_doc, seg_s, seg_e, seg_m, ev_doc, ev_s, ev_e,
            r_doc, r_s, r_e, r_t1, r_t2, ebuf, stack, keys, add_i, add_w, add_r,
            seg_pre, ideal, rk_idx, rk_tmp,
        )  # fmt: skip
        # need is the larger of what ebuf and ideal lack: growing each one short of it fits both.
        if need > ebuf.shape[0]:
            ebuf = np.empty(max(need, 2 * ebuf.shape[0]), np.int64)
        if ranked and need > ideal.shape[0]:
            ideal = np.empty(max(need, 2 * ideal.shape[0]), np.int64)


@njit(cache=True, parallel=True)
def _score_parallel(
    n_blocks,
    ref_offsets, ref_doc, ref_start, ref_end,
    ret_offsets, ret_doc, ret_start, ret_end,
    has_chunks, ci_rows, ci_max_end, ci_doc_ids,
    ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
    ks, k_mode, semantics,
    recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
):  # fmt: skip
    n_questions = ref_offsets.shape[0] - 1
    for blk in prange(n_blocks):
        q0 = blk * n_questions // n_blocks
        q1 = (blk + 1) * n_questions // n_blocks
        _score_block(
            q0, q1,
            ref_offsets, ref_doc, ref_start, ref_end,
            ret_offsets, ret_doc, ret_start, ret_end,
            has_chunks, ci_rows, ci_max_end, ci_doc_ids,
            ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
            ks, k_mode, semantics,
            recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, discounts,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

# Stand-ins for a missing chunk index, read-only like a real one (one compiled signature for both).
_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)
_ONE_ZERO = np.zeros(1, dtype=np.int64)
for _a in (_EMPTY, _EMPTY_F, _ONE_ZERO):
    _a.flags.writeable = False


@njit(cache=True)
def _first_bad_offset(offsets, n_rows):
    """-1 when ``offsets`` is valid CSR over ``n_rows`` rows (first 0, never decreasing, last
    ``n_rows``), else the first entry that breaks it."""
    n = offsets.shape[0]
    if n == 0 or offsets[0] != 0:
        return 0
    for i in range(1, n):
        if offsets[i] < offsets[i - 1] or offsets[i] > n_rows:
            return i
    if offsets[n - 1] != n_rows:
        return n - 1
    return -1


@njit(cache=True)
def _index_problem(n_rows, rows, max_end, doc_ids, doc_offsets, root_level, ends_sorted, first_end, rpu, dense):
    """0 when a chunk index is consistent enough that no query can read outside it, else a code."""
    n_docs = doc_ids.shape[0]
    if rows.shape[0] != 2 * n_rows or max_end.shape[0] != n_rows:
        return 1
    if (doc_offsets.shape[0] != n_docs + 1 or root_level.shape[0] != n_docs or ends_sorted.shape[0] != n_docs
            or first_end.shape[0] != n_docs or rpu.shape[0] != n_docs):
        return 2
    if doc_offsets[0] != 0 or doc_offsets[n_docs] != n_rows:
        return 3
    for b in range(n_docs):
        if doc_offsets[b + 1] <= doc_offsets[b]:
            return 3
        if root_level[b] < 0 or root_level[b] > 62:
            return 4
        if b > 0 and doc_ids[b] <= doc_ids[b - 1]:
            return 5
    if dense != 0 and (n_docs == 0 or doc_ids[n_docs - 1] - doc_ids[0] != n_docs - 1):
        return 5
    return 0


def _read_only(a: np.ndarray) -> np.ndarray:
    if not a.flags.writeable and a.flags.c_contiguous:
        return a
    v: np.ndarray = np.ascontiguousarray(a).view()
    v.flags.writeable = False
    return v


def _check_inputs(name: str, offsets: np.ndarray, doc: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
    for col, arr in (("offsets", offsets), ("doc", doc), ("start", start), ("end", end)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.int64 or arr.ndim != 1:
            raise TypeError(f"{name}_{col} must be a 1-D int64 numpy array; try np.ascontiguousarray(x, "
                            f"dtype=np.int64)")
    if not (doc.shape[0] == start.shape[0] == end.shape[0]):
        raise ValueError(f"{name}_doc, {name}_start and {name}_end must have the same length, not "
                         f"{doc.shape[0]}, {start.shape[0]} and {end.shape[0]}")
    bad = int(_first_bad_offset(offsets, doc.shape[0]))
    if bad >= 0:
        raise ValueError(f"{name}_offsets: entry {bad} breaks the CSR layout over {doc.shape[0]} rows "
                         "(offsets start at 0, never decrease and end at the number of rows)")


def _resolve_threads(num_threads: int | None) -> int:
    limit = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
    if num_threads is None or num_threads <= 0:
        return limit
    return max(1, min(int(num_threads), limit))


def span_metrics_numba(  # noqa: C901 - one check per argument
    ref_offsets: np.ndarray,
    ref_doc: np.ndarray,
    ref_start: np.ndarray,
    ref_end: np.ndarray,
    ret_offsets: np.ndarray,
    ret_doc: np.ndarray,
    ret_start: np.ndarray,
    ret_end: np.ndarray,
    chunk_index: ChunkIndexTuple | None,
    ks: np.ndarray,
    k_mode: int,
    semantics: int,
    num_threads: int | None,
    ranked: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Score every question (``docs/engine.md``); inputs are already validated int64 columns.

    Returns ``(recall, precision, iou, precision_omega, coverage, n_evidence_chunks, rank)``: the
    first three ``(n_questions, n_cols)`` float64 with ``n_cols = len(ks)`` in list mode
    (``k_mode=0``) and 1 otherwise; then per question float64, float64 (NaN without chunks) and
    int64 (-1 without chunks); then ``None``, or with ``ranked`` the rank metrics hit, mrr, map,
    ndcg and ndcg_graded as one float64 array of shape ``(5, n_questions, n_cols)`` (``docs/engine.md``
    §4: with ``g_i = |rank i ∩ E|``, ``mrr = 1 / first i with g_i > 0``,
    ``map = Σ_{g_i > 0} hits_i / i / n_rel``, ``ndcg = Σ_{g_i > 0} W(i)`` over its ideal with
    ``W(i) = 1 / log2(i + 1)``, graded with ``g_i · W(i)``). ``chunk_index`` is ``None`` or the tuple from
    :func:`build_chunk_index`. ``num_threads`` of ``None`` or ``<= 0`` means every numba thread.
    """
    k_mode = int(k_mode)
    semantics = int(semantics)
    if k_mode not in (_KMODE_LIST, _KMODE_ALL, _KMODE_AUTO):
        raise ValueError(f"k_mode must be 0 (list), 1 (all) or 2 (auto), got {k_mode}")
    if semantics not in (0, _SEM_CHROMA):
        raise ValueError(f"semantics must be 0 (set) or 1 (chroma), got {semantics}")
    if k_mode == _KMODE_AUTO and chunk_index is None:
        raise ValueError("k='auto' needs the chunking (pass chunks) to count evidence chunks")
    ranked = bool(ranked)
    if ranked and chunk_index is None:
        raise ValueError("ranked=True needs the chunking: rank metrics count the evidence chunks")
    # The arrays may have been built by anyone: re-check every offset the kernels index with, so
    # that no input can make them read out of bounds or loop forever.
    _check_inputs("ref", ref_offsets, ref_doc, ref_start, ref_end)
    _check_inputs("ret", ret_offsets, ret_doc, ret_start, ret_end)
    # Read-only views (zero-copy) of whatever came in: one compiled signature for every caller.
    ref_offsets, ref_doc, ref_start, ref_end, ret_offsets, ret_doc, ret_start, ret_end = (
        _read_only(a) for a in (ref_offsets, ref_doc, ref_start, ref_end, ret_offsets, ret_doc, ret_start, ret_end)
    )
    if ref_offsets.shape[0] != ret_offsets.shape[0]:
        raise ValueError("ref_offsets and ret_offsets must have the same length (n_questions + 1), not "
                         f"{ref_offsets.shape[0]} and {ret_offsets.shape[0]}")
    ks = np.array(ks, dtype=np.int64)  # a private copy, writeable like every caller's
    if k_mode == _KMODE_LIST:
        if ks.shape[0] == 0:
            raise ValueError("ks must hold at least one cut-off in list mode")
        if ks[0] < 1 or (ks.shape[0] > 1 and (np.diff(ks) <= 0).any()):
            raise ValueError("ks must be increasing cut-offs >= 1")
        n_cols = ks.shape[0]
    else:
        n_cols = 1
        if ks.shape[0] == 0:
            ks = np.ones(1, dtype=np.int64)  # unused outside list mode; keeps one compiled signature
    n_questions = ref_offsets.shape[0] - 1
    recall = np.empty((n_questions, n_cols), dtype=np.float64)
    precision = np.empty((n_questions, n_cols), dtype=np.float64)
    iou = np.empty((n_questions, n_cols), dtype=np.float64)
    precision_omega = np.empty(n_questions, dtype=np.float64)
    coverage = np.empty(n_questions, dtype=np.float64)
    n_evidence_chunks = np.empty(n_questions, dtype=np.int64)
    # Not ranked: an empty array of the same type, so that one compiled signature serves both.
    rank_out = np.empty((_N_RANK_METRICS, n_questions if ranked else 0, n_cols), dtype=np.float64)
    rank = rank_out if ranked else None
    if n_questions == 0:
        return recall, precision, iou, precision_omega, coverage, n_evidence_chunks, rank
    if chunk_index is None:
        has_chunks = False
        ci = (_EMPTY, _EMPTY, _EMPTY, _EMPTY, _ONE_ZERO, _EMPTY, _EMPTY, _EMPTY, _EMPTY_F, 0)
    else:
        has_chunks = True
        ci = chunk_index
        if not isinstance(ci, tuple) or len(ci) != 10:
            raise TypeError("chunk_index must be the tuple returned by build_chunk_index")
        problem = int(_index_problem(ci[0].shape[0], *ci[1:]))
        if problem:
            raise ValueError(f"chunk_index is inconsistent (check {problem}); rebuild it with build_chunk_index")
    (
        _order, ci_rows, ci_max_end, ci_doc_ids,
        ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
    ) = ci
    args = (
        ref_offsets, ref_doc, ref_start, ref_end,
        ret_offsets, ret_doc, ret_start, ret_end,
        has_chunks, ci_rows, ci_max_end, ci_doc_ids,
        ci_doc_offsets, ci_root_level, ci_ends_sorted, ci_first_end, ci_rpu, ci_dense,
        ks, k_mode, semantics,
        recall, precision, iou, precision_omega, coverage, n_evidence_chunks, ranked, rank_out, _DISCOUNTS,
    )  # fmt: skip
    threads = _resolve_threads(num_threads)
    if threads == 1 or n_questions < _MIN_PARALLEL_QUESTIONS:
        _score_block(0, n_questions, *args)
    else:
        n_blocks = min(threads * _BLOCKS_PER_THREAD, max(threads, n_questions // _MIN_BLOCK_QUESTIONS))
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            _score_parallel(n_blocks, *args)
        finally:
            numba.set_num_threads(previous)
    return recall, precision, iou, precision_omega, coverage, n_evidence_chunks, rank
