"""BM25 and hybrid retrieval time on the bundled benchmark, next to exact and HNSW dense search.

The bundled Chroma benchmark (``chroma-general``: 5 corpora, 472 questions) chunked with
``fixed:200:0`` (1,644 chunks). Each method builds its index over all chunks and searches the
top ``--k`` for every question; the fastest of ``--repeat`` runs of each is kept. Printed: index
and search seconds, questions per second, and the ratio of each method's index + search time to
exact and to HNSW search, measured in the same process.

The dense half (exact, HNSW and the hybrid's dense list) uses random unit vectors of the bundled
model's width (384) by default: search time depends on the shape, not on the values. ``--model``
embeds chunks and questions with the bundled all-MiniLM-L6-v2 instead, through the evaluation's
embedding cache (one to two minutes on 2 cores, model load included), and then also prints how
many of BM25's and hybrid's top-k are the exact dense search's.

    python bench/bench_retrieval.py
    python bench/bench_retrieval.py --k 20 --repeat 5
    python bench/bench_retrieval.py --model
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np


def best_of(repeat: int, run: Callable[[], tuple[float, float, np.ndarray]]) -> tuple[float, float, np.ndarray]:
    """The run with the lowest index + search time, of ``repeat``."""
    runs = [run() for _ in range(repeat)]
    return min(runs, key=lambda r: r[0] + r[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=10, help="results per question (default 10)")
    p.add_argument("--repeat", type=int, default=3, help="keep the fastest of N runs (default 3)")
    p.add_argument("--model", action="store_true", help="embed with the bundled model instead of random vectors")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from chunkeval.chunkers import chunk_texts, get_chunker
    from chunkeval.datasets import load
    from chunkeval.retrieval import ExactIndex, HNSWIndex
    from chunkeval.retrievers import search_texts

    data = load("chroma-general")
    texts = list(data.texts)
    chunks = chunk_texts(get_chunker("fixed:200:0").chunk(texts), texts)
    questions = [q["question"] for q in data.questions]
    if args.model:
        from chunkeval.evaluate import make_embedder

        t = time.perf_counter()
        embedder = make_embedder("all-MiniLM-L6-v2", show_progress=False)  # the evaluation's embedding cache
        cv, qv = embedder.embed(chunks), embedder.embed(questions)
        source = f"all-MiniLM-L6-v2 vectors ({time.perf_counter() - t:.1f} s to embed or read from the cache)"
    else:
        rng = np.random.default_rng(args.seed)
        cv = rng.normal(size=(len(chunks), 384)).astype(np.float32)
        qv = rng.normal(size=(len(questions), 384)).astype(np.float32)
        cv /= np.linalg.norm(cv, axis=1, keepdims=True)
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
        source = "random unit vectors (384-d)"
    print(f"{len(chunks)} chunks (fixed:200:0), {len(questions)} questions, k={args.k}, dense: {source}, "
          f"best of {args.repeat}")

    def dense(make: Callable[[], ExactIndex | HNSWIndex]) -> Callable[[], tuple[float, float, np.ndarray]]:
        def run() -> tuple[float, float, np.ndarray]:
            t = time.perf_counter()
            index = make()
            t_index = time.perf_counter() - t
            t = time.perf_counter()
            ids, _ = index.search(qv, args.k)
            return t_index, time.perf_counter() - t, ids
        return run

    def sparse(method: str) -> Callable[[], tuple[float, float, np.ndarray]]:
        def run() -> tuple[float, float, np.ndarray]:
            ids, _, info = search_texts(method, chunk_texts=chunks, question_texts=questions, k=args.k,  # type: ignore[arg-type]
                                        chunk_vectors=cv if method == "hybrid" else None,
                                        question_vectors=qv if method == "hybrid" else None)
            return info["timings"]["index"], info["timings"]["search"], ids
        return run

    search_texts("bm25", chunk_texts=chunks[:10], question_texts=questions[:2], k=2)  # imports out of the timing
    results = {
        "exact": best_of(args.repeat, dense(lambda: ExactIndex(cv))),
        "hnsw": best_of(args.repeat, dense(lambda: HNSWIndex(cv))),
        "bm25": best_of(args.repeat, sparse("bm25")),
        "hybrid": best_of(args.repeat, sparse("hybrid")),
    }
    base_exact = sum(results["exact"][:2])
    base_hnsw = sum(results["hnsw"][:2])
    print(f"\n{'method':<8}{'index s':>10}{'search s':>10}{'total s':>10}{'questions/s':>14}"
          f"{'x exact':>10}{'x hnsw':>10}")
    for name, (t_index, t_search, _) in results.items():
        total = t_index + t_search
        print(f"{name:<8}{t_index:>10.4f}{t_search:>10.4f}{total:>10.4f}{len(questions) / t_search:>14.0f}"
              f"{total / base_exact:>10.2f}{total / base_hnsw:>10.2f}")
    if args.model:
        exact_ids = results["exact"][2]
        for name in ("bm25", "hybrid"):
            ids = results[name][2]
            shared = np.mean([len(set(a[a >= 0]) & set(b)) / args.k for a, b in zip(ids, exact_ids, strict=True)])
            print(f"{name}: {shared:.3f} of the exact dense top-{args.k} on average")


if __name__ == "__main__":
    main()
