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
They take turns slice by slice (``--slice`` texts each, rotating who goes first), so on a shared
machine all three see the same background load; each sorts its slice by length as it would sort
a whole input.
The texts default to the bundled benchmark's corpora cut into 200-token cl100k windows
(``chunkeval.chunkers.FixedTokenChunker(200)``: 1,644 chunks), or into 800-character windows if
that module is unavailable; the script says which. ``--repeats`` passes over the texts again
(calibration is paid once, in the first pass, as in a real run).

    PYTHONPATH=python python bench/bench_embedding.py [--n 1644] [--batch-size 32] [--device cpu]
        [--precision auto] [--repeats 1] [--slice 256] [--threads N]
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
    parser.add_argument("--repeats", type=int, default=1, help="passes over the texts; times are summed")
    parser.add_argument("--slice", type=int, default=256, help="texts per turn of the round-robin")
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

    reduced = Embedder(device=device, precision=args.precision, batch_size=args.batch_size, show_progress=False)
    reduced._load_model()  # loading is not throughput; its first embed call (timed) pays the calibration

    runs = {
        "(a) sentence-transformers fp32": lambda part: st.encode(part, batch_size=args.batch_size,
                                                                 convert_to_numpy=True, show_progress_bar=False),
        "(b) chunkeval fp32": fp32.embed,  # no cache: every call embeds every text
        f"(c) chunkeval {args.precision}": reduced.embed,
    }
    names = list(runs)
    wall = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in names}
    # Round-robin over slices, rotating who goes first: on a shared host every run sees the same
    # background load, which best-of-N over whole runs does not guarantee.
    for repeat in range(args.repeats):
        for i in range(0, len(texts), args.slice):
            part = texts[i:i + args.slice]
            turn = i // args.slice + repeat
            for name in names[turn % 3:] + names[: turn % 3]:
                start, start_cpu = time.perf_counter(), time.process_time()
                out = runs[name](part)
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
                if repeat == 0:
                    pieces[name].append(out)
    vectors = {name: np.concatenate(parts) for name, parts in pieces.items()}
    total = len(texts) * args.repeats

    # CPU ms/chunk counts all threads of this process; it moves less than wall time when other
    # processes share the machine.
    base = names[0]
    print(f"\n{'run':<34}{'chunks/s':>10}{'vs (a)':>9}{'CPU ms/chunk':>14}{'vs (a)':>9}{'min cos to (a)':>16}")
    for name in names:
        cosine = min_cosine(vectors[name], vectors[base])
        print(f"{name:<34}{total / wall[name]:>10.1f}{wall[base] / wall[name]:>8.2f}x"
              f"{1000 * cpu[name] / total:>14.1f}{cpu[base] / cpu[name]:>8.2f}x{cosine:>16.7f}")
    reduced_stats = reduced.stats
    print(f"\n(c) used precision {reduced_stats.get('precision')}, calibration min cosine "
          f"{reduced_stats.get('calibration_min_cosine')}, {reduced_stats.get('truncated')} texts truncated")


if __name__ == "__main__":
    main()
