"""End-to-end benchmark of `chunkeval evaluate` with its defaults, split by stage.

Runs, in one process:

1. the default evaluation (bundled Chroma benchmark, fixed 200-token cl100k chunks, all-MiniLM-L6-v2,
   HNSW, k=5) with an empty embedding cache: the cold run;
2. the same again with the cache it just filled: the warm run (a rerun, or a sweep point that
   shares chunks and questions);
3. the baseline: sentence-transformers (fp32, batch size 32, as the reference toolkit's default
   embedding function uses it) embedding the same chunk and question texts. Embedding is almost all
   of the reference toolkit's run time, so this is the lower bound of what it spends.

It prints each stage's seconds, the share of the cold wall time that is not embedding, the
embedding throughput of both, and the cosine between the two sets of vectors.

    python bench/bench_evaluate.py
    python bench/bench_evaluate.py --precision fp32     # the fp32 path, for the equal-vectors comparison
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--baseline-batch-size", type=int, default=32)
    p.add_argument("--no-baseline", action="store_true")
    args = p.parse_args()

    from chunkeval.chunkers import chunk_texts, get_chunker
    from chunkeval.datasets import load
    from chunkeval.evaluate import evaluate

    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        cold = evaluate(cache_dir=cache, precision=args.precision, batch_size=args.batch_size, show_progress=False)
        cold_wall = time.perf_counter() - t
        t = time.perf_counter()
        warm = evaluate(cache_dir=cache, precision=args.precision, batch_size=args.batch_size, show_progress=False)
        warm_wall = time.perf_counter() - t

    stages = ["load", "chunk", "embed", "index", "search", "score"]
    print(f"{'stage':<8} {'cold s':>8} {'warm s':>8}")
    for s in stages:
        print(f"{s:<8} {cold.timings.get(s, 0):>8.2f} {warm.timings.get(s, 0):>8.2f}")
    print(f"{'wall':<8} {cold_wall:>8.2f} {warm_wall:>8.2f}")
    not_embed = cold_wall - cold.timings["embed"]
    print(f"\ncold run: {not_embed:.2f} s outside embedding = {100 * not_embed / cold_wall:.1f}% of the wall time")
    emb = cold.config["embedder"]
    n_texts = cold.config["n_chunks"] + cold.config["dataset"]["n_questions"]
    print(f"embedder: {emb.get('device')} {emb.get('precision')} (calibration min cosine "
          f"{emb.get('calibration_min_cosine')}); {n_texts} texts in {cold.timings['embed']:.2f} s = "
          f"{n_texts / cold.timings['embed']:.1f} texts/s including the model load")
    print(f"iou_mean {cold.summary['iou_mean']:.4f}, recall_mean {cold.summary['recall_mean']:.4f}, "
          f"HNSW recall vs exact {cold.summary['hnsw_recall_vs_exact']}")
    if args.no_baseline:
        return

    from sentence_transformers import SentenceTransformer

    from chunkeval.embedding import Embedder, bundled_model_dir

    data = load("chroma-general")
    texts = list(data.texts)
    chunks = get_chunker("fixed:200:0").chunk(texts)
    pieces = chunk_texts(chunks, texts) + [q["question"] for q in data.questions]
    t = time.perf_counter()
    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    base = model.encode(pieces, batch_size=args.baseline_batch_size, normalize_embeddings=True, convert_to_numpy=True)
    base_s = time.perf_counter() - t
    ours = np.concatenate([Embedder(device="cpu", precision=args.precision, cache_dir=None).embed(pieces)])
    cos = np.einsum("ij,ij->i", base, ours)
    print(f"\nbaseline sentence-transformers fp32, batch {args.baseline_batch_size}: load {load_s:.2f} s, "
          f"{len(pieces)} texts in {base_s:.2f} s = {len(pieces) / base_s:.1f} texts/s")
    print(f"chunkeval embedding stage (cold, incl. model load) vs baseline encode: "
          f"{base_s / cold.timings['embed']:.2f}x faster; min cosine to baseline {cos.min():.6f}")
    print(f"cold chunkeval evaluate wall / baseline embedding alone: {cold_wall / (base_s + load_s):.2f}")


if __name__ == "__main__":
    main()
