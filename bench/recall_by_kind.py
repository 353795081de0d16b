"""Recall by question kind on the bundled benchmark: single-span against multi-span questions.

The generator's kinds (docs/generate.md) are a question's reference structure: one excerpt
(``single``), several excerpts of one document (``multi``), excerpts of two documents (``cross``).
The bundled Chroma set has the first two (284 single-span and 188 multi-span questions) and no
cross-document or unanswerable ones, so this measures how the first two fare under the same
chunkers: mean recall, IoU and nDCG at k = 5 with exact dense search and the bundled
all-MiniLM-L6-v2 (embeddings cached, so a rerun takes seconds).

    python bench/recall_by_kind.py
    python bench/recall_by_kind.py --chunkers fixed:100:0,fixed:400:0 --k 10
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunkers", default="fixed:100:0,fixed:200:0,fixed:400:0,recursive:400:0")
    p.add_argument("--k", type=int, default=5)
    args = p.parse_args()

    from chunkeval import datasets
    from chunkeval.evaluate import evaluate

    data = datasets.load("chroma-general")
    kind = {str(q["question_id"]): "multi" if len(q["references"]) > 1 else "single" for q in data.questions}
    counts = {name: sum(v == name for v in kind.values()) for name in ("single", "multi")}
    print(f"{len(kind)} questions: {counts['single']} single-span, {counts['multi']} multi-span; k={args.k}, "
          "exact search, all-MiniLM-L6-v2")
    print(f"{'chunker':<18}{'kind':<8}{'recall':>8}{'iou':>8}{'ndcg':>8}")
    for spec in args.chunkers.split(","):
        rows = evaluate(data, chunker=spec, k=args.k, retrieval="exact", show_progress=False).table.to_pylist()
        for name in ("single", "multi"):
            mine = [r for r in rows if kind[r["question_id"]] == name]
            means = [float(np.mean([r[m] for r in mine])) for m in ("recall", "iou", "ndcg")]
            print(f"{spec:<18}{name:<8}" + "".join(f"{v:>8.3f}" for v in means), flush=True)


if __name__ == "__main__":
    main()
