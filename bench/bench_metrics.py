"""Throughput of ``chunkeval.span_metrics`` per backend on a seeded synthetic workload.

The workload has the shape of the C++ benchmark (bench/bench_metrics.cpp): documents tiled by
fixed-size chunks, questions with 1-5 reference spans each, k retrieved chunks per question
(mostly near the evidence, some random). Every figure is measured in this process:

- questions/s and chunk-reference pairs/s (pairs = sum over questions of refs x k) per backend,
  all metrics at k = 1, 3, 5, 10 in one pass, set and chroma semantics;
- the speed-up over the pure-Python reference, which runs on a subsample;
- the scaling from 1 to N threads;
- the ratio to a memory-streaming floor: one numpy pass that reads every input array once.

    python bench/bench_metrics.py                      # 1,000 docs, 1M chunks, 1M questions
    python bench/bench_metrics.py --questions 200000   # quicker
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Literal

import numpy as np

from chunkeval import RaggedSpans, Spans, available_backends, span_metrics
from chunkeval.metrics.api import BackendName


def make_workload(n_docs: int, n_chunks: int, n_questions: int, k: int, refs_max: int,
                  seed: int) -> tuple[RaggedSpans, RaggedSpans, Spans]:
    rng = np.random.default_rng(seed)
    per_doc = n_chunks // n_docs
    chunk_len = 800
    doc_len = per_doc * chunk_len
    starts = np.arange(per_doc, dtype=np.int64) * chunk_len
    chunks = Spans(np.repeat(np.arange(n_docs, dtype=np.int64), per_doc), np.tile(starts, n_docs),
                   np.tile(starts + chunk_len, n_docs))
    n_refs = rng.integers(1, refs_max + 1, n_questions)
    total_refs = int(n_refs.sum())
    q_doc = rng.integers(0, n_docs, n_questions)
    ref_doc = np.repeat(q_doc, n_refs)
    ref_len = rng.integers(50, 600, total_refs)
    ref_start = rng.integers(0, doc_len - 600, total_refs)
    ref_offsets = np.zeros(n_questions + 1, dtype=np.int64)
    np.cumsum(n_refs, out=ref_offsets[1:])
    refs = RaggedSpans(ref_offsets, ref_doc, ref_start, ref_start + ref_len)
    # Retrieved: chunks near the first reference of the question (same doc), a fifth random.
    first = ref_start[ref_offsets[:-1]] // chunk_len
    near = np.clip(first[:, None] + rng.integers(-3, 4, (n_questions, k)), 0, per_doc - 1)
    doc = np.repeat(q_doc[:, None], k, axis=1)
    random_pick = rng.random((n_questions, k)) < 0.2
    doc = np.where(random_pick, rng.integers(0, n_docs, (n_questions, k)), doc)
    near = np.where(random_pick, rng.integers(0, per_doc, (n_questions, k)), near)
    row = (doc * per_doc + near).reshape(-1)
    rets = RaggedSpans(np.arange(0, n_questions * k + 1, k, dtype=np.int64), chunks.doc[row], chunks.start[row],
                       chunks.end[row])
    return refs, rets, chunks


def streaming_floor(refs: RaggedSpans, rets: RaggedSpans, chunks: Spans, repeats: int = 3) -> float:
    arrays = [refs.offsets, refs.doc, refs.start, refs.end, rets.offsets, rets.doc, rets.start, rets.end,
              chunks.doc, chunks.start, chunks.end]
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        total = 0
        for a in arrays:
            total += int(a.sum())
        best = min(best, time.perf_counter() - t)
    return best


def ownership_costs(refs: RaggedSpans, rets: RaggedSpans, chunks: Spans, ks: tuple[int, ...], repeats: int) -> None:
    """What owning the data and re-checking it cost, as a share of one span_metrics call."""
    from chunkeval.metrics import _numba as nb
    from chunkeval.metrics import api

    call = cpu_timed(lambda: span_metrics(refs, rets, chunks, k=ks, num_threads=1), repeats)
    names = ("offsets", "doc", "start", "end")
    writeable = [np.array(getattr(t, c)) for t in (refs, rets) for c in names]
    writeable += [np.array(getattr(chunks, c)) for c in names[1:]]
    shared = [getattr(t, c) for t in (refs, rets) for c in names] + [getattr(chunks, c) for c in names[1:]]

    def build(cols: list[np.ndarray]) -> None:
        RaggedSpans(*cols[0:4])
        RaggedSpans(*cols[4:8])
        Spans(*cols[8:11])

    copy = cpu_timed(lambda: build(writeable), repeats) - cpu_timed(lambda: build(shared), repeats)
    # Per call: the row bounds span_metrics checks, and what the Numba entry point re-checks
    # (both CSR offset arrays, the chunk index); the C++ core re-checks inside its kernel.
    def row_bounds() -> None:
        api._check_rows_per_question(refs.counts(), "references", "has", "")
        api._check_rows_per_question(api._scored_rows(rets, api.K_LIST, np.array(ks)), "retrieved", "scores", "")

    rows = cpu_timed(row_bounds, repeats)
    index = api._chunk_index(chunks, "numba", nb)

    def numba_recheck() -> None:
        nb._check_inputs("ref", refs.offsets, refs.doc, refs.start, refs.end)
        nb._check_inputs("ret", rets.offsets, rets.doc, rets.start, rets.end)
        nb._index_problem(index[0].shape[0], *index[1:])

    numba_recheck()
    recheck = cpu_timed(numba_recheck, repeats)
    print(f"\nownership and re-validation, in CPU time (steadier than wall time on a shared machine), vs one "
          f"1-thread span_metrics call ({call * 1e3:.1f} ms CPU, backend {available_backends()[0]}):")
    for label, sec in (("copy of writeable int64 input into owned read-only columns (once per table)", copy),
                       ("row bounds per question (per call)", rows),
                       ("Numba entry point re-check of offsets and chunk index (per call)", recheck)):
        print(f"  {label:<80} {sec * 1e3:8.2f} ms  {100 * sec / call:5.2f} %")


def long_lists(backends: list[BackendName], n: int) -> None:
    """One question with ``n`` retrieved rows: random rows, and one cluster ranked right to left
    (every insert at the front: quadratic for a rank-order merge that shifts)."""
    rng = np.random.default_rng(1)
    s = rng.integers(0, 2**32 - 1000, n)
    random_rows = RaggedSpans([0, n], np.zeros(n, np.int64), s, s + rng.integers(1, 1000, n))
    starts = np.arange(n, 0, -1, dtype=np.int64) * 2
    cluster = RaggedSpans([0, n], np.zeros(n, np.int64), starts, starts + 3)
    refs = RaggedSpans([0, 1], [0], [5], [2**31])
    ks = tuple(sorted({1, 10, 1000, n}))  # distinct and increasing, whatever n is
    print(f"\none question, {n:,} retrieved rows, k={list(ks)}, 1 thread (after warm-up):")
    print(f"{'backend':<8} {'list':<24} {'wall s':>8} {'cpu s':>8}")
    for backend in backends:
        warm = RaggedSpans([0, 100], np.zeros(100, np.int64), starts[:100], starts[:100] + 3)
        span_metrics(refs, warm, k=ks, backend=backend, num_threads=1)
        for label, rets in (("random rows", random_rows), ("one cluster, right to left", cluster)):
            # A quadratic merge would take minutes at 1M rows: probe a tenth first.
            tenth = max(1, n // 10)
            probe = RaggedSpans([0, tenth], rets.doc[:tenth], rets.start[:tenth], rets.end[:tenth])
            c = time.process_time()
            span_metrics(refs, probe, k=ks, backend=backend, num_threads=1)
            if time.process_time() - c > 1.0:
                print(f"{backend:<8} {label:<24} skipped: {time.process_time() - c:.1f} s CPU at {tenth:,} rows")
                continue
            w, c = time.perf_counter(), time.process_time()
            span_metrics(refs, rets, k=ks, backend=backend, num_threads=1)
            print(f"{backend:<8} {label:<24} {time.perf_counter() - w:>8.3f} {time.process_time() - c:>8.3f}")


def timed(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Fastest of ``repeats`` calls on ``clock`` (wall time by default)."""
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def cpu_timed(fn: Callable[[], object], repeats: int) -> float:
    """Fastest CPU time (this process, all threads) of ``repeats`` calls."""
    return timed(fn, repeats, time.process_time)


def throughput_table(args: argparse.Namespace, refs: RaggedSpans, rets: RaggedSpans, chunks: Spans,
                     ks: tuple[int, ...], backends: list[BackendName], floor: float, pairs: int) -> None:
    nq = refs.n_questions
    sample = np.linspace(0, nq - 1, min(args.python_sample, nq)).astype(np.int64)
    sub_refs, sub_rets = refs.take(sample), rets.take(sample)
    header = f"{'backend':<8} {'semantics':<9} {'threads':>7} {'seconds':>8} {'questions/s':>13} {'pairs/s':>13} " \
             f"{'vs floor':>9} {'vs python':>10}"
    print(header)
    print("-" * len(header))
    for semantics in ("set", "chroma"):
        def python_run(s: Literal["set", "chroma"] = semantics) -> object:
            return span_metrics(sub_refs, sub_rets, chunks, k=ks, semantics=s, backend="python")

        py_time = timed(python_run, 1)
        py_rate = len(sample) / py_time
        print(f"{'python':<8} {semantics:<9} {1:>7} {py_time:>8.3f} {py_rate:>13,.0f} "
              f"{py_rate * pairs / nq:>13,.0f} {'':>9} {1.0:>9.1f}x   (subsample of {len(sample)})")
        for backend in backends:
            # Warm-up: builds the chunk index (cached on `chunks`) and, for Numba, compiles.
            span_metrics(sub_refs, sub_rets, chunks, k=ks, semantics=semantics, backend=backend, num_threads=1)
            rates = {}
            for threads in sorted({1, args.threads}):
                def run(s: Literal["set", "chroma"] = semantics, b: BackendName = backend, t: int = threads) -> object:
                    return span_metrics(refs, rets, chunks, k=ks, semantics=s, backend=b, num_threads=t)

                sec = timed(run, args.repeats)
                rates[threads] = nq / sec
                print(f"{backend:<8} {semantics:<9} {threads:>7} {sec:>8.3f} {nq / sec:>13,.0f} {pairs / sec:>13,.0f} "
                      f"{sec / floor:>8.1f}x {rates[threads] / py_rate:>9.0f}x")
            if args.threads > 1:
                print(f"{'':<8} {'':<9} scaling 1 -> {args.threads} threads: {rates[args.threads] / rates[1]:.2f}x")
    print("\nAll metrics (recall, precision, iou @ k in {ks}, precision_omega, coverage, n_evidence_chunks) per call."
          .replace("{ks}", str(list(ks))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=1000)
    p.add_argument("--chunks", type=int, default=1_000_000)
    p.add_argument("--questions", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--refs-max", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--python-sample", type=int, default=300, help="questions scored by the pure-Python reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--long-rows", type=int, default=1_000_000,
                   help="retrieved rows of the one-question long-list runs (0: skip them)")
    p.add_argument("--only-extras", action="store_true",
                   help="skip the throughput table; print only the ownership costs and the long lists")
    args = p.parse_args()

    t0 = time.perf_counter()
    refs, rets, chunks = make_workload(args.docs, args.chunks, args.questions, args.k, args.refs_max, args.seed)
    nq = refs.n_questions
    pairs = int((refs.counts() * rets.counts()).sum())
    ks = tuple(sorted({1, 3, 5, args.k}))
    print(f"workload: {args.docs:,} docs, {len(chunks):,} chunks, {nq:,} questions, {len(refs.spans):,} references, "
          f"k={args.k} -> {pairs:,} chunk-reference pairs (built in {time.perf_counter() - t0:.1f} s)")
    floor = streaming_floor(refs, rets, chunks)
    print(f"streaming floor (numpy reads every input array once): {floor * 1e3:.1f} ms\n")

    backends: list[BackendName] = [b for b in available_backends() if b != "python"]
    if not args.only_extras:
        throughput_table(args, refs, rets, chunks, ks, backends, floor, pairs)
    ownership_costs(refs, rets, chunks, ks, args.repeats)
    if args.long_rows:
        long_lists(backends, args.long_rows)


if __name__ == "__main__":
    main()
