"""The ``chunkeval`` command line.

    chunkeval evaluate            # the bundled benchmark with the reference toolkit's default setup
    chunkeval metrics --references R --retrieved T [--chunks C]   # bring your own retriever
    chunkeval generate CORPUS_DIR --out questions.jsonl ...       # synthetic questions with an LLM
    chunkeval sweep CONFIG.yaml --out DIR                         # many configurations, resumable
    chunkeval report RESULTS --out DIR                            # tables, plots, recommendation

Exit codes: 0 success, 2 bad usage or bad input (one line on stderr saying why), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import numpy as np

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class UserError(Exception):
    """An error in what the user asked for: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse under this CLI's contract: a usage error is one line on stderr and exit code 2
    (argparse's default prints the whole usage block first, burying the reason)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _k_arg(text: str) -> Any:
    if text == "auto":
        return "auto"
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use an integer, a comma-separated list (1,3,5) or 'auto'") from None
    return values[0] if len(values) == 1 else values


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="chunk, embed, retrieve and score a dataset (default: the bundled Chroma benchmark)",
        description="Evaluate one chunking + embedding + retrieval configuration. With no arguments: the bundled "
                    "Chroma general benchmark (5 corpora, 472 questions), fixed 200-token cl100k chunks without "
                    "overlap, all-MiniLM-L6-v2, HNSW, k=5, set semantics, character units.",
    )
    p.add_argument("dataset", nargs="?", default="chroma-general",
                   help="bundled dataset name or a folder with corpora/ and a questions file (default: chroma-general)")
    p.add_argument("--chunker", default="fixed:200:0",
                   help="chunker spec, e.g. fixed:200:0 (tokens:size:overlap), recursive:400:0, sentence:5 "
                        "(default: fixed:200:0)")
    p.add_argument("--embedder", default="all-MiniLM-L6-v2", help="bundled model name or a local model directory")
    p.add_argument("--k", type=_k_arg, default=5, help="cut-off: 5, a list 1,3,5,10, or auto (Chroma's retrieve=-1)")
    p.add_argument("--semantics", choices=["set", "chroma"], default="set",
                   help="exact set semantics, or Chroma-compatible arithmetic (default: set)")
    p.add_argument("--units", choices=["chars", "tokens"], default="chars", help="measure in characters or tokens")
    p.add_argument("--unit-tokenizer", default="cl100k_base", help="tokenizer for --units tokens (default: cl100k_base)")
    p.add_argument("--retrieval", choices=["hnsw", "exact"], default="hnsw",
                   help="approximate HNSW search (hnswlib, like the reference toolkit) or exact search (default: hnsw)")
    p.add_argument("--scope", choices=["global", "corpus"], default="global",
                   help="search all chunks (like the reference toolkit) or only the question's corpus")
    p.add_argument("--hnsw-m", type=int, default=16, help="HNSW graph degree M (default: 16)")
    p.add_argument("--hnsw-ef-construction", type=int, default=200,
                   help="HNSW construction beam width (default: 200)")
    p.add_argument("--hnsw-ef-search", type=int, default=100,
                   help="HNSW search beam width, raised to the number of results when smaller (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="HNSW construction seed")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="auto: fp16 on GPU, bf16 on CPUs that support it when vectors stay within cosine 0.9999")
    p.add_argument("--batch-size", type=int, default=64, help="texts per forward pass of the embedder (default: 64)")
    p.add_argument("--cache-dir", default="default",
                   help="embedding cache folder; 'none' disables it (default: ~/.cache/chunkeval)")
    p.add_argument("--corpora", default=None, help="comma-separated corpus ids to keep")
    p.add_argument("--max-questions", type=int, default=None, help="score only this many questions (seeded sample)")
    p.add_argument("--out", default=None, help="write results.parquet and summary.json to this folder")
    p.add_argument("--threads", type=int, default=None, help="threads for the metrics engine (default: all cores)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    result = evaluate(
        args.dataset, chunker=args.chunker, embedder=args.embedder, k=args.k, semantics=args.semantics,
        units=args.units, unit_tokenizer=args.unit_tokenizer, retrieval=args.retrieval, scope=args.scope,
        hnsw={"M": args.hnsw_m, "ef_construction": args.hnsw_ef_construction, "ef_search": args.hnsw_ef_search,
              "seed": args.seed} if args.retrieval == "hnsw" else None,
        device=args.device, precision=args.precision, batch_size=args.batch_size,
        cache_dir=None if args.cache_dir == "none" else args.cache_dir, out_dir=args.out,
        corpora=args.corpora.split(",") if args.corpora else None, max_questions=args.max_questions,
        num_threads=args.threads, show_progress=False if args.quiet else None,
    )
    if args.json:
        from .evaluate import _jsonable

        print(json.dumps(_jsonable({"config": result.config, "summary": result.summary}), indent=2))
    else:
        _print_summary(result.summary, result.config, result.paths)
    return EXIT_OK


def _print_summary(summary: dict[str, Any], config: dict[str, Any] | None, paths: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        # A pipe or a log file has no width to fit: rich's default of 80 columns would wrap the numbers.
        console = Console(width=max(console.width, 140))
    views = summary["at_k"].items() if "at_k" in summary else [(summary.get("k"), summary)]
    for k, s in views:
        title = f"k={k}, {s.get('semantics', '')} semantics" if k is not None else "all retrieved"
        table = Table(title=title)
        table.add_column("corpus")
        for name in ("iou", "recall", "precision", "precision_omega"):
            table.add_column(name, justify="right")
        table.add_column("questions", justify="right")
        rows = list((s.get("corpora_scores") or {}).items()) + [("all", s)]
        for name, row in rows:
            table.add_row(name, *[_fmt(row, m) for m in ("iou", "recall", "precision", "precision_omega")],
                          str(row["n_questions"]))
        console.print(table)
    if config is not None:
        extra = []
        if summary.get("hnsw_recall_vs_exact") is not None:
            extra.append(f"HNSW recall vs exact search: {summary['hnsw_recall_vs_exact']:.4f}")
        if "timings_s" in summary:
            extra.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in summary["timings_s"].items()))
        if config.get("embedder"):
            e = config["embedder"]
            extra.append(f"embedder: {e.get('model', e.get('name'))} on {e.get('device', '?')} ({e.get('precision', '?')})")
        extra.append(f"chunks: {config.get('n_chunks')}, backend: {config.get('backend')}")
        for line in extra:
            console.print(line)
    for name, path in paths.items():
        console.print(f"{name}: {path}")


def _fmt(row: dict[str, Any], metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or mean != mean:
        return "-"
    return f"{mean:.4f} ± {std:.4f}"


def _add_metrics(sub: Any) -> None:
    p = sub.add_parser(
        "metrics",
        help="score your own retrieved lists against references (Parquet, CSV or JSONL)",
        description="Score user-supplied spans. Each file has one row per span with columns question_id, doc, "
                    "start, end (doc may be a name or an integer; spans are half-open [start, end) character "
                    "offsets); the retrieved file may add a rank column (else file order is rank order); the "
                    "chunks file has doc, start, end. Questions are those of the references file, in "
                    "first-appearance order. Row numbers in error messages count data rows from 0.",
    )
    p.add_argument("--references", required=True, help="reference spans file (.parquet, .csv, .jsonl)")
    p.add_argument("--retrieved", required=True, help="retrieved chunk spans file, ranked")
    p.add_argument("--chunks", default=None, help="the chunking (needed for precision_omega and --k auto)")
    p.add_argument("--k", type=_k_arg, default=None, help="cut-off(s) or auto (default: all retrieved)")
    p.add_argument("--semantics", choices=["set", "chroma"], default="set",
                   help="exact set semantics, or Chroma-compatible arithmetic (default: set)")
    p.add_argument("--group-column", default=None, help="a column of the references file to break results down by")
    p.add_argument("--backend", choices=["auto", "cpp", "numba", "python"], default="auto",
                   help="metrics engine; all compute the same numbers (default: auto, the fastest available)")
    p.add_argument("--threads", type=int, default=None, help="threads for the metrics engine (default: all cores)")
    p.add_argument("--out", default=None, help="write per-question results (.parquet or .csv)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_run_metrics)


def _read_rows(path: str) -> Any:
    file = Path(path)
    if not file.exists():
        raise UserError(f"{path}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(file)
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(file)
    if suffix in (".jsonl", ".ndjson", ".json"):
        import pyarrow.json as pjson

        return pjson.read_json(file)
    raise UserError(f"{path}: unknown format {suffix!r}; use .parquet, .csv or .jsonl")


def _require(table: Any, columns: Sequence[str], path: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; found {table.column_names}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _span_columns(table: Any, path: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """doc values, start and end of a span file, every row checked, so that an error names the
    file and its own row (the engine sees the rows regrouped by question)."""
    from .spans import as_int64_column

    for name in ("doc", "start", "end"):
        if table.column(name).null_count:
            row = _first(table.column(name).is_null().to_numpy(zero_copy_only=False))
            raise UserError(f"{path}: row {row} has no {name}; every span needs doc, start and end")
    start = as_int64_column(table.column("start"), f"{path}: start")
    end = as_int64_column(table.column("end"), f"{path}: end")
    bad = (start < 0) | (end <= start)
    if bad.any():
        row = _first(bad)
        s, e = int(start[row]), int(end[row])
        why = "has a negative start" if s < 0 else "is empty" if e == s else "is reversed"
        raise UserError(f"{path}: row {row} span [{s}, {e}) {why}; spans are half-open [start, end) with "
                        "0 <= start < end (fix or drop the row)")
    return table.column("doc").to_pylist(), start, end


def _run_metrics(args: argparse.Namespace) -> int:
    from . import RaggedSpans, Spans, span_metrics
    from .evaluate import _jsonable

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise UserError(f"--out {args.out}: use a .parquet or .csv file name")
    if args.k == "auto" and not args.chunks:
        raise UserError("--k auto scores each question on its first n_evidence_chunks results, which needs the "
                        "chunking: pass --chunks")
    refs_t = _read_rows(args.references)
    rets_t = _read_rows(args.retrieved)
    _require(refs_t, ["question_id", "doc", "start", "end"], args.references)
    _require(rets_t, ["question_id", "doc", "start", "end"], args.retrieved)
    if args.group_column:
        _require(refs_t, [args.group_column], args.references)
    if refs_t.num_rows == 0:
        raise UserError(f"{args.references}: no rows; every question needs at least one reference span")
    chunks_t = None
    if args.chunks:
        chunks_t = _read_rows(args.chunks)
        _require(chunks_t, ["doc", "start", "end"], args.chunks)
    ref_docs, ref_start, ref_end = _span_columns(refs_t, args.references)
    ret_docs, ret_start, ret_end = _span_columns(rets_t, args.retrieved)

    # One id space for documents named in any of the files.
    doc_ids: dict[Any, int] = {}

    def docs(values: list[Any]) -> np.ndarray:
        # By text: CSV infers 1 where JSONL says "1"; both name the same document.
        return np.array([doc_ids.setdefault(str(d), len(doc_ids)) for d in values], dtype=np.int64)

    chunks = None
    if chunks_t is not None:
        chunk_docs, chunk_start, chunk_end = _span_columns(chunks_t, args.chunks)
        chunks = Spans(docs(chunk_docs), chunk_start, chunk_end, name="chunks")
        chunked = {str(d) for d in chunk_docs}
        for values, path in ((ref_docs, args.references), (ret_docs, args.retrieved)):
            missing = [row for row, d in enumerate(values) if str(d) not in chunked]
            if missing:
                raise UserError(f"{path}: row {missing[0]} names doc {values[missing[0]]!r}, which has no chunk in "
                                f"{args.chunks}; pass the chunking of every document the spans name")

    if refs_t.column("question_id").null_count or rets_t.column("question_id").null_count:
        path, table = (args.references, refs_t) if refs_t.column("question_id").null_count else (args.retrieved, rets_t)
        raise UserError(f"{path}: row {_first(table.column('question_id').is_null().to_numpy(zero_copy_only=False))} "
                        "has no question_id")
    questions: dict[Any, int] = {}
    ref_q = np.array([questions.setdefault(q, len(questions)) for q in refs_t.column("question_id").to_pylist()],
                     dtype=np.int64)
    ret_ids = rets_t.column("question_id").to_pylist()
    unknown = [row for row, q in enumerate(ret_ids) if q not in questions]
    if unknown:
        raise UserError(f"{args.retrieved}: row {unknown[0]}: question_id {ret_ids[unknown[0]]!r} has no reference "
                        f"in {args.references}")
    ret_q = np.array([questions[q] for q in ret_ids], dtype=np.int64)
    if "rank" in rets_t.column_names:
        rank_column = rets_t.column("rank")
        if rank_column.null_count:
            raise UserError(f"{args.retrieved}: row {_first(rank_column.is_null().to_numpy(zero_copy_only=False))} "
                            "has no rank; give every row a rank or drop the column (file order is then rank order)")
        try:
            rank = np.asarray(rank_column.to_pylist(), dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{args.retrieved}: the rank column must hold numbers (1 = best)") from None
        if not np.isfinite(rank).all():
            raise UserError(f"{args.retrieved}: row {_first(~np.isfinite(rank))} has rank {rank[~np.isfinite(rank)][0]}; "
                            "ranks are finite numbers (1 = best)")
    else:
        rank = np.arange(len(ret_q), dtype=np.float64)

    def ragged(q: np.ndarray, doc_values: list[Any], start: np.ndarray, end: np.ndarray, order_key: np.ndarray,
               name: str) -> RaggedSpans:
        # Stable: equal ranks keep file order.
        order = np.lexsort((np.arange(len(q)), order_key, q))
        counts = np.bincount(q, minlength=len(questions)) if len(q) else np.zeros(len(questions), dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts)))
        return RaggedSpans(offsets, docs(doc_values)[order], start[order], end[order], name=name)

    refs = ragged(ref_q, ref_docs, ref_start, ref_end, np.arange(len(ref_q)), "references")
    rets = ragged(ret_q, ret_docs, ret_start, ret_end, rank, "retrieved")
    groups = None
    if args.group_column:
        first_row: dict[int, int] = {}
        for i, q in enumerate(ref_q.tolist()):
            first_row.setdefault(q, i)
        col = refs_t.column(args.group_column).to_pylist()
        groups = np.array([str(col[first_row[q]]) for q in range(len(questions))], dtype=object)
    result = span_metrics(refs, rets, chunks, k=args.k, semantics=args.semantics, backend=args.backend,
                          num_threads=args.threads, groups=groups)
    summary = result.summary()
    if out is not None:
        import pyarrow as pa

        table = result.to_arrow()
        ids = list(questions)
        table = table.set_column(0, "question_id", pa.array([str(ids[i]) for i in table.column("question").to_pylist()]))
        if out.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            from ._io import write_bytes_atomic

            buffer = pa.BufferOutputStream()
            pcsv.write_csv(table, buffer)
            write_bytes_atomic(out, buffer.getvalue().to_pybytes())
        else:
            from ._io import write_parquet_atomic

            write_parquet_atomic(out, table)
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
    else:
        _print_summary(summary, None, {"results": args.out} if args.out else {})
    return EXIT_OK


def _optional_subcommands() -> list[Callable[[Any], None]]:
    """Subcommands that live with their pipeline stage (generate, sweep, report)."""
    adders = []
    for module in ("chunkeval.generate.cli", "chunkeval.sweep", "chunkeval.report"):
        try:
            mod = __import__(module, fromlist=["add_subparser"])
        except ImportError as exc:  # a stage whose own module is missing is a packaging bug
            raise RuntimeError(f"cannot load the {module} subcommand: {exc}") from exc
        adders.append(mod.add_subparser)
    return adders


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="chunkeval",
        description="Exact, fast span-level evaluation of RAG chunking and retrieval.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--version", action="version", version=f"chunkeval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_evaluate(sub)
    _add_metrics(sub)
    for add in _optional_subcommands():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("chunkeval: interrupted; everything written so far is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, ValueError, TypeError, OSError) as exc:
        if os.environ.get("CHUNKEVAL_DEBUG") == "1":
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"chunkeval {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
