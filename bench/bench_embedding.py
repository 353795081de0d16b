"""Embedding throughput: chunkeval's Embedder against sentence-transformers, in one process.

Embeds the same texts three ways and prints, for each, texts per second, the ratio to the
sentence-transformers baseline measured in this run, the CPU time per text (all threads of this
process; steadier than wall time when other processes share the machine) and its ratio, and the
smallest cosine similarity of any row to the baseline's row:

  (a) sentence-transformers, fp32 (``SentenceTransformer.encode``) -- the baseline
  (b) chunkeval ``Embedder``, fp32
  (c) chunkeval ``Embedder``, ``--precision`` (default ``auto``: bf16 autocast on a CPU with
      native bf16, fp16 on CUDA, kept only if its calibration batch stays within cosine 0.9999 of
      fp32; the time includes that calibration, as a first run pays it)

All three use the same batch size and device, no cache, and run a short untimed warm-up first.
The texts default to the bundled benchmark's corpora cut into 200-token cl100k windows
(``chunkeval.chunkers.FixedTokenChunker(200)``: 1,644 chunks), or into 800-character windows if
that module is unavailable; the script says which. Wall times on a shared machine are noisy:
``--repeats`` runs the three measurements in turn several times and reports the best of each.

    PYTHONPATH=python python bench/bench_embedding.py [--n 1644] [--batch-size 32] [--device cpu]
        [--precision auto] [--repeats 1] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))


def load_texts(n: int | None) -> tuple[list[str], str]:
    from chunkeval.datasets import load

    corpora = load().texts
    try:
        from chunkeval.chunkers import FixedTokenChunker, chunk_texts

        chunks = FixedTokenChunker(200).chunk(corpora)
        texts, how = chunk_texts(chunks, corpora), "FixedTokenChunker(200) windows (cl100k tokens)"
    except ImportError:
        texts = [c[i:i + 800] for c in corpora for i in range(0, len(c), 800)]
        how = "800-character windows (chunkeval.chunkers not available)"
    if n is not None:
        if n > len(texts):
            raise SystemExit(f"--n {n}: only {len(texts)} chunks exist")
        # an evenly spread sample, so every corpus is represented
        texts = [texts[i] for i in np.linspace(0, len(texts) - 1, n).round().astype(int)]
    return texts, how


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="number of chunks (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="precision of run (c)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds; the best time of each is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from chunkeval.embedding import Embedder, bundled_model_dir, cpu_supports_bf16, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    texts, how = load_texts(args.n)
    print(f"texts: {len(texts)} chunks, {how}; mean {np.mean([len(t) for t in texts]):.0f} chars")
    print(f"device: {device}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_supports_bf16()}; "
          f"batch size {args.batch_size}")

    st = SentenceTransformer(str(bundled_model_dir()), device=device)
    fp32 = Embedder(device=device, precision="fp32", batch_size=args.batch_size, show_progress=False)
    warm = texts[: args.batch_size]
    st.encode(warm, batch_size=args.batch_size, show_progress_bar=False)
    fp32.embed(warm)

    def run_st() -> np.ndarray:
        return st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)

    def run_fp32() -> np.ndarray:
        return fp32.embed(texts)  # no cache: every call embeds every text

    reduced_stats: dict[str, float] = {}

    def run_reduced() -> np.ndarray:
        # a fresh instance, so the timed embed includes the calibration a first run pays
        embedder = Embedder(device=device, precision=args.precision, batch_size=args.batch_size,
                            show_progress=False)
        embedder._load_model()  # model loading is not embedding throughput; (b) excludes it too
        start, start_cpu = time.perf_counter(), time.process_time()
        out = embedder.embed(texts)
        reduced_stats.update(embedder.stats, seconds=time.perf_counter() - start,
                             cpu_seconds=time.process_time() - start_cpu)
        return out

    runs = {"(a) sentence-transformers fp32": run_st, "(b) chunkeval fp32": run_fp32,
            f"(c) chunkeval {args.precision}": run_reduced}
    best: dict[str, float] = {name: float("inf") for name in runs}
    best_cpu: dict[str, float] = {name: float("inf") for name in runs}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            if name.startswith("(c)"):
                vectors[name] = fn()
                seconds, cpu_seconds = reduced_stats["seconds"], reduced_stats["cpu_seconds"]
            else:
                start, start_cpu = time.perf_counter(), time.process_time()
                vectors[name] = fn()
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
            best[name] = min(best[name], seconds)
            best_cpu[name] = min(best_cpu[name], cpu_seconds)

    # chunks/s is wall time; CPU ms/chunk (all threads of this process) moves less when other
    # processes share the machine, so it is the steadier comparison on a busy host.
    baseline_name = next(iter(runs))
    baseline = len(texts) / best[baseline_name]
    print(f"\n{'run':<34}{'chunks/s':>10}{'vs (a)':>9}{'CPU ms/chunk':>14}{'vs (a)':>9}{'min cos to (a)':>16}")
    for name in runs:
        rate = len(texts) / best[name]
        cpu_ms = 1000 * best_cpu[name] / len(texts)
        cpu_ratio = best_cpu[baseline_name] / best_cpu[name]
        cosine = min_cosine(vectors[name], vectors[baseline_name])
        print(f"{name:<34}{rate:>10.1f}{rate / baseline:>8.2f}x{cpu_ms:>14.1f}{cpu_ratio:>8.2f}x{cosine:>16.7f}")
    print(f"\n(c) used precision {reduced_stats.get('precision')}, calibration min cosine "
          f"{reduced_stats.get('calibration_min_cosine')}, {reduced_stats.get('truncated')} texts truncated")


if __name__ == "__main__":
    main()
