"""Embedding throughput: every installed backend of chunkeval's Embedder against sentence-transformers
fp32, in one process, single-threaded and on all cores.

For each thread count (``--threads``, default ``1`` and every core) it embeds the same texts with

  * sentence-transformers fp32 (``SentenceTransformer.encode``) -- the baseline of that row group;
  * chunkeval ``Embedder(backend="torch")`` in fp32 and with ``precision="auto"`` (bf16 autocast
    on a CPU with native bf16, kept only if its calibration batch stays within cosine 0.9999);
  * each installed compiled backend: ONNX Runtime fp32, OpenVINO fp32 and OpenVINO ``auto``
    (bf16 inference precision on a CPU with native bf16, same calibration rule);

and prints texts per second, the ratio to the baseline measured in the same process, the CPU
time per text and its ratio (steadier than wall time on a shared machine), and the min and mean
cosine of each row to the baseline's row. An ``auto`` run's first call pays its calibration, as
a first real run does; model loading and the one-off export are not timed (the export is written
once per process into a temporary folder, or into ``--export-cache`` to keep it).

On a machine shared with other work absolute times are noisy; the ratios are the figures to
read. The runs take turns slice by slice (``--slice`` texts each, rotating who goes first), so
they all see the same background load, and ``--repeats`` passes over the texts again (times
summed). Each slice is one ``embed()`` call, and a call ends when its slowest OpenVINO stream is
done, so small slices add a wait per call that a real run (one call per 2,048 texts) does not
pay: on 2 cores, 64-text slices measured 2.4-2.6x against 3.3x with the default 256. The texts
default to the bundled benchmark's corpora cut into 200-token cl100k windows.

    PYTHONPATH=python python bench/bench_embedding.py [--n 400] [--threads 1,all] [--batch-size 32]
        [--repeats 1] [--slice 256] [--export-cache DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


def measure(runs: dict[str, Callable[[list[str]], np.ndarray]], texts: list[str], slice_size: int,
            repeats: int) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
    """Round-robin over slices, rotating who goes first; returns wall and CPU seconds and vectors."""
    names = list(runs)
    wall = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for repeat in range(repeats):
        for i in range(0, len(texts), slice_size):
            part = texts[i:i + slice_size]
            turn = (i // slice_size + repeat) % len(names)
            for name in names[turn:] + names[:turn]:
                start, start_cpu = time.perf_counter(), time.process_time()
                out = runs[name](part)
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
                if repeat == 0:
                    pieces[name].append(out)
    return wall, cpu, {name: np.concatenate(parts) for name, parts in pieces.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="number of chunks (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", default="1,all", help="comma-separated thread counts; 'all' = every core")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the texts; times are summed")
    parser.add_argument("--slice", type=int, default=256, help="texts per turn of the round-robin (one embed() call)")
    parser.add_argument("--export-cache", default=None, help="cache dir that keeps the compiled exports")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from chunkeval.embed_backends import AUTO_ORDER, installed_backends
    from chunkeval.embedding import Embedder, bundled_model_dir, cpu_supports_bf16

    cores = os.cpu_count() or 1
    thread_counts = [cores if t == "all" else int(t) for t in args.threads.split(",")]
    texts, how = load_texts(args.n)
    compiled = installed_backends()
    print(f"texts: {len(texts)} chunks, {how}; mean {np.mean([len(t) for t in texts]):.0f} chars; "
          f"batch size {args.batch_size}")
    print(f"CPU: {cores} cores, torch {torch.__version__} (capability {torch.backends.cpu.get_cpu_capability()}), "
          f"native bf16: {cpu_supports_bf16()}; compiled backends installed: {compiled or 'none'} "
          f"(auto tries {list(AUTO_ORDER)} then torch)")
    st = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    export_cache = Path(args.export_cache) if args.export_cache else None

    def embedder(backend: str, precision: str, threads: int) -> Callable[[list[str]], np.ndarray]:
        e = Embedder(device="cpu", backend=backend, precision=precision,  # type: ignore[arg-type]
                     batch_size=args.batch_size, num_threads=threads, cache_dir=export_cache, show_progress=False)
        e._load_model()  # loading (and a first export) is not throughput; an auto run's calibration is timed
        e.cache_dir = None  # no vector cache: every call embeds every text
        embedders.append(e)
        return e.embed

    for threads in thread_counts:
        torch.set_num_threads(threads)
        embedders: list[Embedder] = []
        runs: dict[str, Callable[[list[str]], np.ndarray]] = {
            "sentence-transformers fp32": lambda part: np.asarray(st.encode(
                part, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)),
            "torch fp32": embedder("torch", "fp32", threads),
            "torch auto": embedder("torch", "auto", threads),
        }
        if "onnx" in compiled:
            runs["onnx fp32"] = embedder("onnx", "fp32", threads)
        if "openvino" in compiled:
            runs["openvino fp32"] = embedder("openvino", "fp32", threads)
            runs["openvino auto"] = embedder("openvino", "auto", threads)
        warm = texts[: args.batch_size]
        for name, run in runs.items():
            if not name.endswith("auto"):  # an auto run's first call is its calibration: keep it timed
                run(warm)
        wall, cpu, vectors = measure(runs, texts, args.slice, args.repeats)
        total = len(texts) * args.repeats
        base = next(iter(runs))
        print(f"\n{threads} thread(s):")
        print(f"{'run':<28}{'texts/s':>9}{'vs ST':>8}{'CPU ms/text':>13}{'vs ST':>8}{'min cos':>11}{'mean cos':>11}"
              "  precision")
        auto_embedders = iter(embedders)
        for name in runs:
            cos = cosines(vectors[name], vectors[base])
            precision = "fp32" if name == base else next(auto_embedders).stats["precision"]
            print(f"{name:<28}{total / wall[name]:>9.1f}{wall[base] / wall[name]:>7.2f}x"
                  f"{1000 * cpu[name] / total:>13.1f}{cpu[base] / cpu[name]:>7.2f}x"
                  f"{cos.min():>11.7f}{cos.mean():>11.8f}  {precision}")


if __name__ == "__main__":
    main()
