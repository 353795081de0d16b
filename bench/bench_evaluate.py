"""End-to-end benchmark of `chunkeval evaluate` with its defaults, split by stage.

Runs, in one process:

1. the default evaluation (bundled Chroma benchmark, fixed 200-token cl100k chunks, all-MiniLM-L6-v2,
   HNSW, k=5) with an empty embedding cache: the cold run;
2. the same again with the cache it just filled: the warm run (a rerun, or a sweep point that
   shares chunks and questions);
3. the warm run again in a fresh Python process, timed from the interpreter's start (what a
   warm ``chunkeval evaluate`` pays), with whether it imported torch or transformers;
4. the baseline: sentence-transformers (fp32, batch size 32, as the reference toolkit's default
   embedding function uses it) embedding the same chunk and question texts. Embedding is almost all
   of the reference toolkit's run time, so this is the lower bound of what it spends.

``--backend`` picks the embedding backend (``auto``: the fastest installed compiled CPU backend
within cosine 0.9999 of torch fp32, else torch). The embedder is built here and handed to
``evaluate``, so the model load, a first export of a compiled backend and the calibration all fall
inside the cold run's embed stage, as on a first run; ``--export-cache`` keeps the export between
invocations (then a cold run pays only loading it).

It prints each stage's seconds, the share of the cold wall time that is not embedding, the
embedding throughput of both, and the cosine between the two sets of vectors.

``--warm`` measures only what a user pays for a rerun: the README's main command,
``chunkeval evaluate``, run once to fill the caches (embeddings, chunk spans, HNSW graph) and then
``--runs`` times, each in a fresh interpreter timed from its start to its exit; it prints the best
and median wall time, the ``python -X importtime`` total of one warm run with its largest top-level
imports, and whether torch, transformers or pandas were imported. It uses the default cache dir
(``$CHUNKEVAL_CACHE_DIR`` or ``~/.cache/chunkeval``) like the command itself; ``--source DIR``
imports chunkeval from another source tree (an older checkout, for a before/after comparison)
with the same interpreter and compiled core.

    python bench/bench_evaluate.py
    python bench/bench_evaluate.py --precision fp32     # the fp32 path, for the equal-vectors comparison
    python bench/bench_evaluate.py --backend torch      # today's torch path, for comparison
    python bench/bench_evaluate.py --warm --runs 5      # a warm `chunkeval evaluate`, best of 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

# `chunkeval evaluate` as its console script runs it (`from chunkeval.cli import main`), optionally
# from another source tree: the editable install's import hook is taken out so that tree wins.
_LAUNCH = """
import json, os, sys
source = os.environ.get("BENCH_SOURCE")
if source:
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, source)
    import chunkeval, chunkeval._core
from chunkeval.cli import main
code = main(sys.argv[1:])
if os.environ.get("BENCH_MODULES_OUT"):
    with open(os.environ["BENCH_MODULES_OUT"], "w") as f:
        json.dump({"heavy": sorted(m for m in ("torch", "transformers", "pandas") if m in sys.modules),
                   "chunkeval": chunkeval.__file__ if source else sys.modules["chunkeval"].__file__}, f)
sys.exit(code)
"""


def _launch(args: list[str], env: dict[str, str], python_flags: tuple[str, ...] = ()) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stderr of one run in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, *python_flags, "-c", _LAUNCH, *args], capture_output=True, text=True,
                          env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"chunkeval {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def _import_totals(stderr: str) -> tuple[float, list[tuple[float, str]]]:
    """Seconds of every top-level import in ``-X importtime`` output, and the largest ones."""
    tops = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)  # one space: top level
        if m:
            tops.append((int(m.group(1)) / 1e6, m.group(2)))
    return sum(t for t, _ in tops), sorted(tops, reverse=True)[:8]


def warm_cli(runs: int, source: str | None, command: list[str]) -> None:
    """The warm wall time of ``chunkeval <command>`` (every vector, span and graph cached)."""
    env = dict(os.environ)
    if source:
        env["BENCH_SOURCE"] = str(Path(source).resolve())
    _launch(command, env)  # fills whatever cache is empty: this run is not timed
    timed = [_launch(command, env)[:2] for _ in range(runs)]
    walls, cpus = [w for w, _ in timed], [c for _, c in timed]
    with tempfile.TemporaryDirectory() as tmp:
        env["BENCH_MODULES_OUT"] = str(Path(tmp) / "modules.json")
        _, _, importtime = _launch(command, env, ("-X", "importtime"))
        modules = json.loads(Path(env["BENCH_MODULES_OUT"]).read_text())
    total, largest = _import_totals(importtime)
    print(f"warm `chunkeval {' '.join(command)}` from {modules['chunkeval']}")
    print(f"wall over {runs} runs: best {min(walls):.3f} s, median {statistics.median(walls):.3f} s "
          f"({', '.join(f'{w:.3f}' for w in walls)})")
    print(f"CPU time (user + system; less sensitive to other load than the wall time): best {min(cpus):.3f} s, "
          f"median {statistics.median(cpus):.3f} s")
    print(f"python -X importtime: {total:.3f} s of top-level imports (one more run, with the timer's overhead); "
          "largest: " + ", ".join(f"{name} {t:.3f}" for t, name in largest))
    print(f"torch / transformers / pandas imported: {modules['heavy'] or 'none'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--baseline-batch-size", type=int, default=32)
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino", "onnx"])
    p.add_argument("--export-cache", default=None, help="keep compiled exports here between invocations")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--warm", action="store_true", help="only the warm CLI run, in fresh processes")
    p.add_argument("--runs", type=int, default=5, help="--warm: timed runs after the one that fills the caches")
    p.add_argument("--source", default=None, help="--warm: import chunkeval from this source tree")
    p.add_argument("--command", default="evaluate", help="--warm: the chunkeval arguments to time")
    args = p.parse_args()
    if args.warm:
        warm_cli(args.runs, args.source, args.command.split())
        return

    from chunkeval.chunkers import chunk_texts, get_chunker
    from chunkeval.datasets import load
    from chunkeval.embedding import Embedder
    from chunkeval.evaluate import evaluate

    def embedder(cache: str) -> Embedder:
        return Embedder(device="auto", precision=args.precision, backend=args.backend, batch_size=args.batch_size,
                        cache_dir=cache, show_progress=False)

    cache_folder = tempfile.TemporaryDirectory()  # kept to the end: the baseline's comparison reads it
    cache = cache_folder.name
    if args.export_cache:  # only the exports carry over, never vectors or calibrations
        exports = Path(args.export_cache) / "exports"
        exports.mkdir(parents=True, exist_ok=True)
        os.symlink(exports, Path(cache) / "exports")
    t = time.perf_counter()
    cold = evaluate(embedder=embedder(cache), cache_dir=cache, show_progress=False)
    cold_wall = time.perf_counter() - t
    t = time.perf_counter()
    warm = evaluate(embedder=embedder(cache), cache_dir=cache, show_progress=False)
    warm_wall = time.perf_counter() - t
    script = (
        "import sys, time; t = time.perf_counter()\n"
        "from chunkeval.embedding import Embedder\n"
        "from chunkeval.evaluate import evaluate\n"
        f"e = Embedder(device='auto', precision={args.precision!r}, backend={args.backend!r}, "
        f"batch_size={args.batch_size}, cache_dir={cache!r}, show_progress=False)\n"
        f"evaluate(embedder=e, cache_dir={cache!r}, show_progress=False)\n"
        "print(time.perf_counter() - t, sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    fresh_wall = time.perf_counter() - t
    fresh_inside, fresh_imports = out.stdout.strip().splitlines()[-1].split(" ", 1)

    stages = ["load", "chunk", "embed", "index", "search", "score"]
    print(f"{'stage':<8} {'cold s':>8} {'warm s':>8}")
    for s in stages:
        print(f"{s:<8} {cold.timings.get(s, 0):>8.2f} {warm.timings.get(s, 0):>8.2f}")
    print(f"{'wall':<8} {cold_wall:>8.2f} {warm_wall:>8.2f}")
    print(f"\nwarm run in a fresh process: {fresh_wall:.2f} s from exec ({float(fresh_inside):.2f} s after "
          f"the interpreter started); torch/transformers imported: {fresh_imports}")
    not_embed = cold_wall - cold.timings["embed"]
    print(f"\ncold run: {not_embed:.2f} s outside embedding = {100 * not_embed / cold_wall:.1f}% of the wall time")
    emb = cold.config["embedder"]
    n_texts = cold.config["n_chunks"] + cold.config["dataset"]["n_questions"]
    print(f"embedder: {emb.get('device')} backend {emb.get('backend')} {emb.get('precision')} (calibration min cosine "
          f"{emb.get('calibration_min_cosine')}); {n_texts} texts in {cold.timings['embed']:.2f} s = "
          f"{n_texts / cold.timings['embed']:.1f} texts/s including the model load")
    print(f"iou_mean {cold.summary['iou_mean']:.4f}, recall_mean {cold.summary['recall_mean']:.4f}, "
          f"HNSW recall vs exact {cold.summary['hnsw_recall_vs_exact']}")
    if args.no_baseline:
        return

    from sentence_transformers import SentenceTransformer

    from chunkeval.embedding import bundled_model_dir

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
    ours = embedder(cache).embed(pieces)  # the cold run's vectors, from its cache
    cache_folder.cleanup()
    cos = np.einsum("ij,ij->i", base, ours)
    print(f"\nbaseline sentence-transformers fp32, batch {args.baseline_batch_size}: load {load_s:.2f} s, "
          f"{len(pieces)} texts in {base_s:.2f} s = {len(pieces) / base_s:.1f} texts/s")
    print(f"chunkeval embedding stage (cold, incl. model load) vs baseline encode: "
          f"{base_s / cold.timings['embed']:.2f}x faster; min cosine to baseline {cos.min():.6f}")
    print(f"cold chunkeval evaluate wall / baseline embedding alone: {cold_wall / (base_s + load_s):.2f}")


if __name__ == "__main__":
    main()
