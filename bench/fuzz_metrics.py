"""Differential fuzzer for ``chunkeval.span_metrics``: C++ vs Numba (vs the Python reference on a sample).

Every batch is random and built to be nasty: long documents, coordinates next to the 2**32 bound,
sparse and huge doc ids, tilings with gaps, nested and duplicate chunks, 1-40 references and
0-150 retrieved rows per question, rows of other documents, every k mode and both semantics.
Besides comparing numbers bit for bit, a share of the batches also checks that

- no column a ``Spans``/``RaggedSpans`` hands out can be made writeable or written, and that a
  second call after such attempts returns the same numbers (no stale chunk index);
- editing the caller's original arrays after construction changes nothing;
- out-of-bound positions (end > 2**32) and too many rows per question raise the same
  ``ValueError`` whatever the backend;
- the compiled entry points, called directly with corrupted offsets, raise instead of crashing.

    nice -n 19 python bench/fuzz_metrics.py --batches 1000000 --python-every 50
    python bench/fuzz_metrics.py --batches 2000 --seed 3          # a quick look

The exit status is 1 if any batch disagreed or misbehaved; each such batch is written to
``--failures`` (JSON lines with the seed to replay it: ``--seed S --start B --batches 1``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Literal

import numpy as np

from chunkeval import RaggedSpans, Spans, span_metrics
from chunkeval.metrics import _numba as numba_backend
from chunkeval.metrics import api
from chunkeval.metrics.api import MAX_ROWS_PER_QUESTION, BackendName

_core: Any
try:
    from chunkeval import _core
except ImportError:  # pragma: no cover - the fuzzer needs the compiled core
    _core = None

BOUND = 2**32
NAMES = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks")
RANK_NAMES = ("hit", "mrr", "map", "ndcg", "ndcg_graded")
K_CHOICES: list[Any] = [None, 1, 2, 3, 10, 64, 65, 200, (1, 2, 5, 9), (1, 3, 64, 70, 100), "auto"]


def _doc_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        return np.arange(n, dtype=np.int64)
    if kind == 1:
        return np.sort(rng.choice(50, n, replace=False)).astype(np.int64)
    if kind == 2:
        sparse: np.ndarray = np.unique(rng.integers(0, 2**62, n)).astype(np.int64) + rng.integers(0, 2**62)
        return sparse
    top: np.ndarray = np.int64(2**63 - 1) - np.arange(n, dtype=np.int64)[::-1] * int(rng.integers(1, 1000))
    return top


def _spans_in(rng: np.random.Generator, n: int, lo: int, hi: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random spans inside ``[lo, hi)``, each at most ``max_len`` long."""
    start = rng.integers(lo, hi, n)
    end = np.minimum(start + rng.integers(1, max_len + 1, n), hi)
    start = np.minimum(start, end - 1)
    return start, end


def make_world(rng: np.random.Generator) -> dict[str, Any]:
    """Documents and a chunking of them: tilings with gaps, random extras, nesting, duplicates."""
    n_docs = int(rng.integers(1, 5))
    docs = _doc_ids(rng, n_docs)
    length = int(rng.choice([60, 400, 3000, 20000]))
    # Coordinates at the origin, or pushed against the bound (a document ending at 2**32).
    base = int(rng.choice([0, 0, BOUND - length, int(rng.integers(0, BOUND - length))]))
    cd, cs, ce = [], [], []
    for d in docs:
        size = int(rng.choice([1, 3, 10, 50, 400]))
        sizes = rng.integers(1, 2 * size + 1, length // max(size, 1) + 2)
        gaps = rng.choice([0, 0, 0, 1, 4], len(sizes))
        starts = np.concatenate(([0], np.cumsum(sizes + gaps)[:-1]))
        keep = starts < length
        s = starts[keep]
        e = np.minimum(s + sizes[keep], length)
        n_extra = int(rng.choice([0, 2, 8, 40]))
        xs, xe = _spans_in(rng, n_extra, 0, length, int(rng.choice([3, 30, length])))
        # Heavy nesting: chunks inside chunks inside chunks.
        if rng.random() < 0.3:
            depth = int(rng.integers(2, 12))
            mid = int(rng.integers(0, length))
            half = np.maximum(1, (length // 2) >> np.arange(depth))
            xs = np.concatenate((xs, np.maximum(0, mid - half)))
            xe = np.concatenate((xe, np.minimum(length, mid + half)))
        s = np.concatenate((s, xs)) + base
        e = np.concatenate((e, xe)) + base
        cd.append(np.full(len(s), d))
        cs.append(s)
        ce.append(e)
    chunk_doc, chunk_start, chunk_end = np.concatenate(cd), np.concatenate(cs), np.concatenate(ce)
    if rng.random() < 0.5 and len(chunk_doc):
        dup = rng.integers(0, len(chunk_doc), int(rng.integers(1, 4)))
        chunk_doc, chunk_start, chunk_end = (np.concatenate((a, a[dup])) for a in (chunk_doc, chunk_start, chunk_end))
    perm = rng.permutation(len(chunk_doc))
    raw = {"chunk_doc": chunk_doc[perm].astype(np.int64), "chunk_start": chunk_start[perm].astype(np.int64),
           "chunk_end": chunk_end[perm].astype(np.int64)}
    chunks = Spans(raw["chunk_doc"], raw["chunk_start"], raw["chunk_end"], name="chunks")
    return {"docs": docs, "length": length, "base": base, "chunks": chunks, "raw": raw}


def _rows(rng: np.random.Generator, counts: np.ndarray, world: dict[str, Any], lens: list[int]) -> tuple[np.ndarray,
    ...]:
    """Random spans, ``counts[q]`` for question ``q``, with a per-question length scale."""
    n = int(counts.sum())
    q_of = np.repeat(np.arange(len(counts)), counts)
    max_len = np.asarray(lens)[rng.integers(0, len(lens), len(counts))][q_of]
    length, base, docs = world["length"], world["base"], world["docs"]
    start = rng.integers(0, length, n)
    end = np.minimum(start + rng.integers(1, max_len + 1), length)
    start = np.minimum(start, end - 1)
    home = docs[rng.integers(0, len(docs), len(counts))][q_of]
    doc = np.where((rng.random(len(counts)) < 0.5)[q_of], docs[rng.integers(0, len(docs), n)], home)
    return doc.astype(np.int64), (start + base).astype(np.int64), (end + base).astype(np.int64)


def make_batch(rng: np.random.Generator, world: dict[str, Any]) -> tuple[RaggedSpans, RaggedSpans, dict[str,
    np.ndarray]]:
    """Questions on ``world``: 1-4 references (25-40 in a fifth of the batches), 0-10 retrieved
    rows (60-150 in a quarter, sometimes 300), from the chunking or anywhere, other docs too."""
    n_q = int(rng.integers(1, 9))
    n_refs = rng.integers(1, 5, n_q) if rng.random() < 0.8 else rng.integers(25, 41, n_q)
    n_ret = rng.integers(60, 151, n_q) if rng.random() < 0.25 else rng.integers(0, 11, n_q)
    if rng.random() < 0.02:
        n_ret[0] = 300
    length = world["length"]
    rd, rs, re_ = _rows(rng, n_refs, world, [5, 60, 600, length])
    td, ts, te = _rows(rng, n_ret, world, [5, 60, 600])
    chunks = world["raw"]
    n = len(td)
    if len(chunks["chunk_doc"]):
        from_chunks = rng.random(n) < 0.7
        pick = rng.integers(0, len(chunks["chunk_doc"]), n)
        td = np.where(from_chunks, chunks["chunk_doc"][pick], td)
        ts = np.where(from_chunks, chunks["chunk_start"][pick], ts)
        te = np.where(from_chunks, chunks["chunk_end"][pick], te)
    raw = {
        "ref_offsets": np.concatenate(([0], np.cumsum(n_refs))).astype(np.int64),
        "ref_doc": rd, "ref_start": rs, "ref_end": re_,
        "ret_offsets": np.concatenate(([0], np.cumsum(n_ret))).astype(np.int64),
        "ret_doc": td, "ret_start": ts, "ret_end": te,
    }
    refs = RaggedSpans(raw["ref_offsets"], raw["ref_doc"], raw["ref_start"], raw["ref_end"], name="references")
    rets = RaggedSpans(raw["ret_offsets"], raw["ret_doc"], raw["ret_start"], raw["ret_end"], name="retrieved")
    return refs, rets, raw


def _same(a: Any, b: Any) -> str | None:
    for name in NAMES + (RANK_NAMES if a.ranked or b.ranked else ()):
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            return name
        if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
            return name
    return None


def _raises(fn: Any, exc: type[BaseException] = ValueError) -> str | None:
    try:
        fn()
    except exc as e:
        return str(e)
    return None


def _mutation_attempts(refs: RaggedSpans, rets: RaggedSpans, chunks: Spans, raw: dict[str, np.ndarray],
                       rng: np.random.Generator) -> str | None:
    """Try to change the tables behind their back; every attempt must fail or change nothing."""
    for arr in (refs.offsets, refs.doc, refs.start, refs.end, rets.offsets, rets.end, chunks.doc, chunks.start,
                chunks.end):
        if arr.flags.writeable:
            return "a column is writeable"
        try:
            arr.flags.writeable = True
            return "a column could be made writeable"
        except ValueError:
            pass
        try:
            arr[:1] = 0
            return "a column could be written"
        except ValueError:
            pass
    # The caller's own arrays may change freely: the tables hold copies.
    for key in ("ref_offsets", "ret_offsets", "chunk_end", "chunk_start", "ref_end"):
        a = raw[key]
        if len(a):
            a[rng.integers(0, len(a))] = int(rng.choice([-5, 2**62, 0, 1]))
    return None


def _direct_calls_reject_corrupt_offsets(refs: RaggedSpans, rets: RaggedSpans, rng: np.random.Generator) -> str | None:
    off = np.array(rets.offsets)
    if len(off) < 2:
        return None
    i = int(rng.integers(0, len(off)))
    off[i] = int(rng.choice([-1, len(rets.doc) + 1, 2**40, -(2**62)]))
    if np.array_equal(off, rets.offsets):
        return None
    ks = np.array([1, 5], dtype=np.int64)
    args = (refs.offsets, refs.doc, refs.start, refs.end, off, rets.doc, rets.start, rets.end, None, ks, 0, 0, 1)
    if _raises(lambda: numba_backend.span_metrics_numba(*args)) is None:
        return "numba accepted corrupt offsets"
    if _core is not None and _raises(lambda: _core.span_metrics(*args)) is None:
        return "cpp accepted corrupt offsets"
    return None


def _compare_entry_points(refs: RaggedSpans, rets: RaggedSpans, chunks: Spans | None, k: Any, semantics: str,
                          threads: int, ranked: bool) -> str | None:
    k_mode, ks, _ = api._parse_k(k)
    sem = api._SEMANTICS[semantics]
    cols = (refs.offsets, refs.doc, refs.start, refs.end, rets.offsets, rets.doc, rets.start, rets.end)
    ci_cpp = None if chunks is None else api._chunk_index(chunks, "cpp", _core)
    ci_numba = None if chunks is None else api._chunk_index(chunks, "numba", numba_backend)
    a = _core.span_metrics(*cols, ci_cpp, ks, k_mode, sem, threads, ranked)
    b = numba_backend.span_metrics_numba(*cols, ci_numba, ks, k_mode, sem, threads, ranked)
    for name, x, y in zip((*NAMES, "rank"), a, b, strict=True):
        if (x is None) != (y is None) or (x is not None and (x.shape != y.shape
                                                            or not np.array_equal(x, y, equal_nan=True))):
            return f"cpp != numba in {name} (direct)"
    return None


def run(args: argparse.Namespace) -> int:  # noqa: C901 - one loop over every kind of check
    failures = open(args.failures, "a") if args.failures else None
    counts = {"batches": 0, "calls": 0, "direct_calls": 0, "python": 0, "mutation": 0, "out_of_bound": 0,
              "row_bound": 0,
              "direct": 0, "bad": 0}
    backends: list[BackendName] = ["cpp", "numba"] if _core is not None else ["numba"]
    t0 = time.monotonic()
    last = t0
    world: dict[str, Any] | None = None
    world_key = -1
    questions: tuple[RaggedSpans, RaggedSpans, dict[str, np.ndarray]] | None = None
    questions_key = -1
    for b in range(args.start, args.start + args.batches):
        rng = np.random.default_rng([args.seed, b])
        problem = None
        try:
            # Batches share a chunking in groups (its index is built once, as in real use), and
            # consecutive groups of --variants batches share their questions too: each scores
            # them with its own k, semantics and threads.
            key = b - b % args.per_chunking
            if world is None or world_key != key:
                world, world_key = make_world(np.random.default_rng([args.seed, key, 1])), key
            chunks = world["chunks"]
            qkey = b - b % args.variants
            if questions is None or questions_key != qkey:
                questions, questions_key = make_batch(np.random.default_rng([args.seed, qkey, 2]), world), qkey
            refs, rets, raw = questions
            k = K_CHOICES[int(rng.integers(len(K_CHOICES)))]
            semantics: Literal["set", "chroma"] = "chroma" if rng.random() < 0.5 else "set"
            use_chunks = k == "auto" or rng.random() < 0.9
            c = chunks if use_chunks else None
            ranked = use_chunks and rng.random() < 0.5  # the rank metrics need the chunking
            threads = 2 if rng.random() < 0.05 else 1
            sample = bool(args.python_every) and b % args.python_every == 0
            direct = len(backends) > 1 and not sample and rng.random() >= args.api_share
            if direct:
                # Most batches go to the two compiled entry points directly (span_metrics's Python
                # validation already ran when the tables were built): the same kernels, a third of
                # the per-batch cost.
                counts["direct_calls"] += 2
                problem = _compare_entry_points(refs, rets, c, k, semantics, threads, ranked)
            else:
                results = [span_metrics(refs, rets, c, k=k, semantics=semantics, backend=be, num_threads=threads,
                                        ranked=ranked)
                           for be in backends]
                counts["calls"] += len(results)
                if len(results) > 1 and (name := _same(results[0], results[1])):
                    problem = f"cpp != numba in {name}"
            if problem is None and sample:
                py = span_metrics(refs, rets, c, k=k, semantics=semantics, backend="python", ranked=ranked)
                counts["python"] += 1
                if name := _same(results[0], py):
                    problem = f"{backends[0]} != python in {name}"
            if problem is None and not direct and rng.random() < args.mutation_share:
                counts["mutation"] += 1
                raw = {**{k: v.copy() for k, v in raw.items()}, **{k: v.copy() for k, v in world["raw"].items()}}
                problem = _mutation_attempts(refs, rets, chunks, raw, rng)
                if problem is None:
                    again = span_metrics(refs, rets, c, k=k, semantics=semantics, backend=backends[0], ranked=ranked)
                    if name := _same(results[0], again):
                        problem = f"numbers changed after mutation attempts ({name})"
            if problem is None and rng.random() < args.bound_share:
                counts["out_of_bound"] += 1
                end = np.array(rets.end)
                if len(end):
                    row = int(rng.integers(len(end)))
                    end[row] = BOUND + int(rng.choice([1, 2, 2**40, 2**62]))
                    msg = _raises(lambda r=rets, e=end: RaggedSpans(r.offsets, r.doc, r.start, e, name="retrieved"))
                    if msg is None or f"retrieved row {row}: end {int(end[row])} is past the bound 2**32" not in msg:
                        problem = f"out-of-bound end not rejected as expected: {msg!r}"
            if problem is None and rng.random() < args.direct_share:
                counts["direct"] += 1
                problem = _direct_calls_reject_corrupt_offsets(refs, rets, rng)
            if problem is None and b % args.row_bound_every == 0:
                counts["row_bound"] += 1
                n = MAX_ROWS_PER_QUESTION + 1
                big = RaggedSpans([0, n], np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n, np.int64))
                one = RaggedSpans([0, 1], [0], [0], [1])
                msgs = {be: _raises(lambda be=be, one=one, big=big: span_metrics(one, big, backend=be))
                        for be in backends + ["python"]}
                if len(set(msgs.values())) != 1 or "more than 2**20" not in str(next(iter(msgs.values()))):
                    problem = f"row bound messages differ: {msgs}"
        except Exception as exc:  # noqa: BLE001 - any exception is a finding
            problem = f"{type(exc).__name__}: {exc}"
        counts["batches"] += 1
        if problem is not None:
            counts["bad"] += 1
            print(f"batch {b}: {problem}", file=sys.stderr, flush=True)
            if failures:
                failures.write(json.dumps({"seed": args.seed, "batch": b, "problem": problem}) + "\n")
                failures.flush()
        now = time.monotonic()
        if now - last >= args.report_seconds:
            last = now
            print(f"{counts['batches']:,} batches in {now - t0:,.0f} s: {counts}", flush=True)
        if args.time_limit and now - t0 > args.time_limit:
            break
    print(f"done: {counts['batches']:,} batches ({counts['calls']:,} span_metrics calls, {counts['direct_calls']:,} "
          f"direct entry-point calls, {counts['python']:,} also by the Python reference) in "
          f"{time.monotonic() - t0:,.0f} s; {counts}", flush=True)
    return 1 if counts["bad"] else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=10_000)
    p.add_argument("--start", type=int, default=0, help="index of the first batch (batch b uses seed [seed, b])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--python-every", type=int, default=50, help="also run the Python reference on every Nth batch "
                                                                "(0: never)")
    p.add_argument("--per-chunking", type=int, default=64, help="batches that share one random chunking")
    p.add_argument("--api-share", type=float, default=0.1,
                   help="share of the batches scored through span_metrics (the rest call the entry points directly)")
    p.add_argument("--variants", type=int, default=16,
                   help="batches that share one random question set (each with its own k, semantics, threads)")
    p.add_argument("--mutation-share", type=float, default=0.05)
    p.add_argument("--bound-share", type=float, default=0.05)
    p.add_argument("--direct-share", type=float, default=0.02)
    p.add_argument("--row-bound-every", type=int, default=100_000)
    p.add_argument("--report-seconds", type=float, default=60.0)
    p.add_argument("--time-limit", type=float, default=0.0, help="stop after this many seconds (0: no limit)")
    p.add_argument("--failures", default="", help="append failing batches here as JSON lines")
    sys.exit(run(p.parse_args()))


if __name__ == "__main__":
    main()
