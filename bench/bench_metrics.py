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

import numpy as np

from chunkeval import RaggedSpans, Spans, available_backends, span_metrics


def make_workload(n_docs: int, n_chunks: int, n_questions: int, k: int, refs_max: int, seed: int):
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


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


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

    backends = [b for b in available_backends() if b != "python"]
    sample = np.linspace(0, nq - 1, min(args.python_sample, nq)).astype(np.int64)
    sub_refs, sub_rets = refs.take(sample), rets.take(sample)
    header = f"{'backend':<8} {'semantics':<9} {'threads':>7} {'seconds':>8} {'questions/s':>13} {'pairs/s':>13} " \
             f"{'vs floor':>9} {'vs python':>10}"
    print(header)
    print("-" * len(header))
    for semantics in ("set", "chroma"):
        py_time = timed(lambda: span_metrics(sub_refs, sub_rets, chunks, k=ks, semantics=semantics,
                                             backend="python"), 1)
        py_rate = len(sample) / py_time
        print(f"{'python':<8} {semantics:<9} {1:>7} {py_time:>8.3f} {py_rate:>13,.0f} "
              f"{py_rate * pairs / nq:>13,.0f} {'':>9} {1.0:>9.1f}x   (subsample of {len(sample)})")
        for backend in backends:
            # Warm-up: builds the chunk index (cached on `chunks`) and, for Numba, compiles.
            span_metrics(sub_refs, sub_rets, chunks, k=ks, semantics=semantics, backend=backend, num_threads=1)
            rates = {}
            for threads in sorted({1, args.threads}):
                sec = timed(lambda: span_metrics(refs, rets, chunks, k=ks, semantics=semantics, backend=backend,
                                                 num_threads=threads), args.repeats)
                rates[threads] = nq / sec
                print(f"{backend:<8} {semantics:<9} {threads:>7} {sec:>8.3f} {nq / sec:>13,.0f} {pairs / sec:>13,.0f} "
                      f"{sec / floor:>8.1f}x {rates[threads] / py_rate:>9.0f}x")
            if args.threads > 1:
                print(f"{'':<8} {'':<9} scaling 1 -> {args.threads} threads: {rates[args.threads] / rates[1]:.2f}x")
    print("\nAll metrics (recall, precision, iou @ k in {ks}, precision_omega, coverage, n_evidence_chunks) per call."
          .replace("{ks}", str(list(ks))))


if __name__ == "__main__":
    main()
