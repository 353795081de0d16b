"""The Ray executor against the local engine, in one process.

1. ``group``: :func:`chunkeval.pipeline.run_group` and :func:`chunkeval.distributed.run_group_ray`
   on the bundled benchmark (every corpus, every question), exact search, fixed 200-token chunks,
   k = 1, 3, 5, 10. Each path gets its own empty embedding cache, so both embed every text (the
   cold run); then each runs again on its warm cache. Prints the seconds per stage, the ratio
   Ray / local, the embedding throughput of the actor pool against the local embedder, and
   whether every results row is identical.
2. ``score``: a synthetic Parquet scoring job (``--questions`` questions in ``--parts`` input parts,
   3 references and 10 ranked results each on a 400-character fixed chunking) scored by
   :func:`score_parquet_local` and by :func:`score_parquet_ray` on 1 and 2 workers: questions/s,
   the ratio to local, and the peak resident memory of a scoring worker.

Ray starts once (a local cluster sized to the machine, or ``--ray-address``); its start-up time is
printed and left out of every ratio.

    python bench/bench_distributed.py                          # both parts, MiniLM, 200k questions
    python bench/bench_distributed.py --embedder hashing       # the plumbing only (no model)
    python bench/bench_distributed.py --only score --questions 10000000 --parts 20 --engines ray2,local
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class HashingEmbedder:
    """Bag of hashed words (as in the tests): the pipeline's cost without a model."""

    dim = 256

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1e-3
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % self.dim] += 1.0
        return np.asarray(out / np.linalg.norm(out, axis=1, keepdims=True), dtype=np.float32)


def bench_group(args: argparse.Namespace) -> None:
    from chunkeval import datasets, distributed
    from chunkeval import pipeline as pl
    from chunkeval.chunkers import get_chunker
    from chunkeval.embedding import Embedder
    from chunkeval.evaluate import configuration, plan_scorer

    data = datasets.load()
    chunker = get_chunker("fixed:200:0")
    options = {"device": "auto", "precision": args.precision, "batch_size": 64}
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as local_cache, tempfile.TemporaryDirectory() as ray_cache:
        def embedder(cache: str) -> object:
            if args.embedder == "hashing":
                return HashingEmbedder()
            return Embedder("all-MiniLM-L6-v2", cache_dir=cache, show_progress=False, **options)

        probe = embedder(local_cache)
        scorer = plan_scorer(data, chunker, probe, units="chars", unit_tokenizer=None, semantics="set",
                             k=[1, 3, 5, 10], retrieval="exact", scope="global", hnsw={}, embed=options).scorer
        attrs = configuration(chunker, probe, "exact", "global")
        outputs = {}
        remote_embedder = HashingEmbedder() if args.embedder == "hashing" else "all-MiniLM-L6-v2"
        for run in ("cold", "warm", "shared"):
            if run != "shared":
                t = time.perf_counter()
                local = pl.run_group(data, chunker, embedder(local_cache), [scorer], attrs, retrieval="exact",
                                     show_progress=False)
                rows[f"local {run}"] = {**local.timings, "wall": time.perf_counter() - t}
            t = time.perf_counter()
            remote = distributed.run_group_ray(data, chunker, remote_embedder, [scorer], attrs, retrieval="exact",
                                               embed_options=options, show_progress=False,
                                               cache_dir=local_cache if run == "shared" else ray_cache,
                                               ray_address=args.ray_address)
            rows[f"ray {run}"] = {**remote.timings, "wall": time.perf_counter() - t}
            outputs[run] = (local, remote)
    n_texts = len(outputs["cold"][0].chunks) + len(data.questions)
    print(f"\ngroup: bundled benchmark, {len(data.questions)} questions, {len(outputs['cold'][0].chunks)} chunks, "
          f"embedder {args.embedder}, exact search, k=1,3,5,10")
    stages = ["chunk", "embed", "search", "score", "wall"]
    print(f"{'run':<11}" + "".join(f"{s:>9}" for s in stages))
    for name, timings in rows.items():
        print(f"{name:<11}" + "".join(f"{timings.get(s, 0.0):>9.2f}" for s in stages))
    print("(shared: Ray reading the cache the local runs filled)")
    for run in ("cold", "warm"):
        ratio = rows[f"ray {run}"]["wall"] / rows[f"local {run}"]["wall"]
        print(f"{run}: ray / local wall = {ratio:.2f}x")
    embed_local, embed_ray = rows["local cold"]["embed"], rows["ray cold"]["embed"]
    print(f"embedding throughput (cold): local {n_texts / embed_local:.0f} texts/s, actor pool "
          f"{n_texts / embed_ray:.0f} texts/s ({embed_local / embed_ray:.2f}x)")
    for run, (local, remote) in outputs.items():
        same = all(remote.tables[c].equals(t) for c, t in local.tables.items())
        ids_same = float(np.mean(np.all(local.search.ids == remote.search.ids, axis=1)))
        worst = max(float(np.max(np.abs(np.asarray(remote.tables[c].column(m)) - np.asarray(t.column(m)))))
                    for c, t in local.tables.items() for m in ("recall", "precision", "iou"))
        cosine = float(np.min(np.sum(local.question_vectors * remote.question_vectors, axis=1)))
        print(f"{run}: every results row identical: {same}; questions with identical ranked ids: {ids_same:.4f}; "
              f"largest metric difference {worst:.2e}; lowest question-vector cosine {cosine:.6f}")


def write_job(folder: Path, n_questions: int, parts: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """A synthetic job: documents of 200 windows of 400 characters; each question has 3 references
    inside one document and 10 ranked windows, 7 of them near a reference."""
    rng = np.random.default_rng(seed)
    n_docs, windows, width = 1000, 200, 400
    refs_dir, rets_dir, chunks_dir = folder / "references", folder / "retrieved", folder / "chunks"
    for d in (refs_dir, rets_dir, chunks_dir):
        d.mkdir(parents=True)
    docs = np.repeat(np.arange(n_docs), windows)
    starts = np.tile(np.arange(windows) * width, n_docs)
    pq.write_table(pa.table({"doc": pa.array([f"d{d}" for d in docs.tolist()]), "start": starts,
                             "end": starts + width}), chunks_dir / "chunks.parquet")
    per = -(-n_questions // parts)
    for p in range(parts):
        lo, hi = p * per, min(n_questions, (p + 1) * per)
        n = hi - lo
        if n <= 0:
            break
        qids = np.array([f"q{i:09d}" for i in range(lo, hi)])
        doc = rng.integers(0, n_docs, n)
        ref_start = rng.integers(0, windows * width - 600, (n, 3))
        ref_len = rng.integers(50, 600, (n, 3))
        names = np.array([f"d{d}" for d in range(n_docs)])
        pq.write_table(pa.table({"question_id": np.repeat(qids, 3), "doc": np.repeat(names[doc], 3),
                                 "start": ref_start.reshape(-1), "end": (ref_start + ref_len).reshape(-1)}),
                       refs_dir / f"part-{p:04d}.parquet")
        near = np.clip(ref_start[:, :1] // width + rng.integers(-2, 3, (n, 7)), 0, windows - 1)
        far = rng.integers(0, windows, (n, 3))
        win = np.concatenate([near, far], axis=1)
        pq.write_table(pa.table({"question_id": np.repeat(qids, 10), "doc": np.repeat(names[doc], 10),
                                 "start": (win * width).reshape(-1), "end": (win * width + width).reshape(-1),
                                 "rank": np.tile(np.arange(1, 11), n)}),
                       rets_dir / f"part-{p:04d}.parquet")
    return refs_dir, rets_dir, chunks_dir


def bench_score(args: argparse.Namespace) -> None:
    from chunkeval import distributed

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        refs, rets, chunks = write_job(root / "in", args.questions, args.parts)
        print(f"\nscore: {args.questions} questions in {args.parts} input parts, 200k chunks, k=1,5,10 "
              f"(inputs written in {time.perf_counter() - t:.1f} s)")
        def local(out: Path) -> distributed.ScoreJob:
            return distributed.score_parquet_local(refs, rets, chunks, out, k=[1, 5, 10], show_progress=False)

        def on_ray(workers: int) -> Callable[[Path], distributed.ScoreJob]:
            def run(out: Path) -> distributed.ScoreJob:
                return distributed.score_parquet_ray(refs, rets, chunks, out, k=[1, 5, 10], max_workers=workers,
                                                     ray_address=args.ray_address, show_progress=False)
            return run

        runs: dict[str, Callable[[Path], distributed.ScoreJob]] = {}
        for engine in args.engines.split(","):
            if engine == "local":
                runs["local"] = local
            elif engine.startswith("ray") and engine[3:].isdigit():
                runs[f"ray, {engine[3:]} worker(s)"] = on_ray(int(engine[3:]))
            else:
                raise SystemExit(f"--engines: {engine!r} is not local or rayN (ray1, ray2, ...)")
        base = None
        print(f"{'engine':<18}{'seconds':>9}{'questions/s':>13}{'vs first':>10}{'peak worker MiB':>17}")
        for i, (name, run) in enumerate(runs.items()):
            job = run(root / f"out{i}")
            rate = job.questions / job.seconds
            base = base or rate
            print(f"{name:<18}{job.seconds:>9.2f}{rate:>13.0f}{rate / base:>9.2f}x{job.peak_worker_rss / 2**20:>17.0f}",
                  flush=True)
            shutil.rmtree(root / f"out{i}", ignore_errors=True)  # a 10M-question job writes GBs of results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["group", "score"], default=None)
    p.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--questions", type=int, default=200_000)
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--ray-address", default=None)
    p.add_argument("--engines", default="local,ray1,ray2",
                   help="scoring runs, in order: local and/or rayN (N workers); 'vs local' is to the first")
    args = p.parse_args()

    from chunkeval import distributed

    t = time.perf_counter()
    ray = distributed.ensure_ray(args.ray_address)
    print(f"ray {ray.__version__}: cluster of {ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
          f"{ray.cluster_resources().get('GPU', 0):.0f} GPUs, started in {time.perf_counter() - t:.1f} s")
    if args.only in (None, "group"):
        bench_group(args)
    if args.only in (None, "score"):
        bench_score(args)


if __name__ == "__main__":
    main()
