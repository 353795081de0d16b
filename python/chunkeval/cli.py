"""The ``chunkeval`` command line.

    chunkeval evaluate            # the bundled benchmark with the reference toolkit's default setup
    chunkeval metrics --references R --retrieved T [--chunks C]   # bring your own retriever
    chunkeval generate CORPUS_DIR --out questions.jsonl ...       # synthetic questions with an LLM
    chunkeval sweep CONFIG.yaml --out DIR                         # many configurations, resumable
    chunkeval report RESULTS --out DIR                            # tables, plots, recommendation

Exit codes: 0 success, 2 bad usage or bad input (one line on stderr saying why), 130 interrupted.

The parser is built for the command being run: the modules of the other subcommands (generate,
sweep, report) are not imported, only their one-line help is listed (:data:`SUBCOMMAND_HELP`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._help import HelpFormatter

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


class UserError(Exception):
    """An error in what the user asked for: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse under this CLI's contract: a usage error is one line on stderr and exit code 2
    (argparse's default prints the whole usage block first, burying the reason).

    ``epilog_factory`` makes the epilog when help is shown: the text is gathered from the modules
    that own it, which a run that shows no help need not import."""

    def __init__(self, *args: Any, epilog_factory: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epilog_factory = epilog_factory

    def format_help(self) -> str:
        if self.epilog_factory is not None:
            self.epilog, self.epilog_factory = self.epilog_factory(), None
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _k_arg(text: str) -> Any:
    """``--k``: 5, an increasing list 1,3,5,10, or auto; checked here so the message names the flag."""
    if text == "auto":
        return "auto"
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use an integer, a comma-separated list (1,3,5) or 'auto'") from None
    bad = [v for v in values if v < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r}: cut-offs are integers >= 1 (a cut-off keeps the first k results), "
                                         "e.g. 5 or 1,3,5,10, or auto")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: list the cut-offs in increasing order without repeats, e.g. 1,3,5,10")
    return values[0] if len(values) == 1 else values


def _chunker_help() -> str:
    from . import chunkers

    return str(getattr(chunkers, "CHUNKER_SPEC_HELP", "") or "").strip()


def _dataset_help() -> str:
    from . import datasets

    return str(getattr(datasets, "DATASET_LAYOUT_HELP", "") or "").strip()


EVALUATE_EXAMPLES = """examples:
  chunkeval evaluate                                   # the bundled benchmark, the reference setup
  chunkeval evaluate ./my-data --chunker recursive:400:50 --k 1,3,5,10 --out results/
  chunkeval evaluate ./my-data --on-invalid skip --max-questions 50 --retrieval exact"""


def _evaluate_epilog() -> str:
    return "\n\n".join(t for t in (_dataset_help(), _chunker_help(), EVALUATE_EXAMPLES) if t)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="chunk, embed, retrieve and score a dataset (default: the bundled Chroma benchmark)",
        description="Evaluate one chunking + embedding + retrieval configuration. With no arguments: the bundled "
                    "Chroma general benchmark (5 corpora, 472 questions), fixed 200-token cl100k chunks without "
                    "overlap, all-MiniLM-L6-v2, HNSW, k=5, set semantics, character units.",
        epilog_factory=_evaluate_epilog, formatter_class=HelpFormatter,
    )
    p.add_argument("dataset", nargs="?", default="chroma-general",
                   help="bundled dataset name or a folder with corpora/ and a questions file (layout below)")
    p.add_argument("--chunker", default="fixed:200:0", help="chunker spec (forms below)")
    p.add_argument("--embedder", default="all-MiniLM-L6-v2", help="bundled model name or a local model directory")
    p.add_argument("--k", type=_k_arg, default=5, help="cut-off: 5, a list 1,3,5,10, or auto (Chroma's retrieve=-1)")
    p.add_argument("--semantics", choices=["set", "chroma"], default="set",
                   help="exact set semantics, or Chroma-compatible arithmetic")
    p.add_argument("--units", choices=["chars", "tokens"], default="chars", help="measure in characters or tokens")
    p.add_argument("--unit-tokenizer", default="cl100k_base", help="tokenizer for --units tokens")
    p.add_argument("--retrieval", choices=["hnsw", "exact", "bm25", "hybrid"], default="hnsw",
                   help="approximate HNSW search (hnswlib, like the reference toolkit), exact search, BM25 over the "
                        "chunk texts (bm25s), or hybrid: reciprocal-rank fusion of exact dense search and BM25")
    p.add_argument("--rrf-k", type=int, default=60, help="hybrid: the constant k of reciprocal-rank fusion")
    p.add_argument("--scope", choices=["global", "corpus"], default="global",
                   help="search all chunks (like the reference toolkit) or only the question's corpus")
    p.add_argument("--hnsw-m", type=int, default=16, help="HNSW graph degree M")
    p.add_argument("--hnsw-ef-construction", type=int, default=200, help="HNSW construction beam width")
    p.add_argument("--hnsw-ef-search", type=int, default=100,
                   help="HNSW search beam width, raised to the number of results when smaller")
    p.add_argument("--seed", type=int, default=0, help="HNSW construction seed")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="auto: fp16 on GPU, bf16 on CPUs that support it when vectors stay within cosine 0.9999")
    p.add_argument("--batch-size", type=int, default=64, help="texts per forward pass of the embedder")
    p.add_argument("--embed-backend", default="auto", choices=["auto", "torch", "openvino", "onnx"],
                   help="auto: OpenVINO, then ONNX Runtime, if installed and within cosine 0.9999 of torch fp32 "
                        "(on a CPU), else torch")
    p.add_argument("--cache-dir", default="default",
                   help="embedding cache folder; 'none' disables it; 'default' is ~/.cache/chunkeval")
    p.add_argument("--corpora", default=None, help="comma-separated corpus ids to keep")
    p.add_argument("--max-questions", type=int, default=None,
                   help="score only this many questions (seeded sample); only their corpora are embedded")
    p.add_argument("--on-invalid", choices=["error", "skip"], default="error",
                   help="a bad question row stops the run (error) or is dropped and listed in OUT/skipped.jsonl (skip)")
    p.add_argument("--out", default=None, help="write results.parquet and summary.json to this folder")
    p.add_argument("--threads", type=int, default=None, help="threads for the metrics engine (default: all cores)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="run the stages in this process, or on a Ray cluster (pip install 'chunkeval[distributed]')")
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_run_evaluate)


class _RefusePandas:
    """A meta-path finder under which ``import pandas`` fails, as if pandas were not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (chunkeval evaluate needs no pandas)", name=name)


def _pyarrow_without_pandas() -> None:
    """Answer pyarrow's pandas probe with "not installed".

    pyarrow imports pandas, when it is installed, the first time any array is built: its shim
    checks whether the input is a pandas object (0.25 s, a quarter of a warm ``evaluate``).
    ``evaluate`` never hands pyarrow a pandas object, so the probe is run once with pandas
    refused; pyarrow remembers the answer for its probes. An explicit conversion later
    (``Table.to_pandas``) still works: pyarrow retries the import for it, and pandas loads then.
    """
    if "pandas" in sys.modules:
        return
    refuse = _RefusePandas()
    sys.meta_path.insert(0, refuse)
    try:
        import pyarrow as pa

        pa.array([0])
    finally:
        sys.meta_path.remove(refuse)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import check_out_dir, evaluate

    if args.engine == "local":  # Ray's driver converts pandas objects with pyarrow: keep its probe
        _pyarrow_without_pandas()
    if args.max_questions is not None and args.max_questions < 1:
        raise UserError(f"--max-questions {args.max_questions}: no questions to evaluate; pass a count >= 1")
    check_out_dir(args.out, "--out")
    result = evaluate(
        args.dataset, chunker=args.chunker, embedder=args.embedder, k=args.k, semantics=args.semantics,
        units=args.units, unit_tokenizer=args.unit_tokenizer, retrieval=args.retrieval, scope=args.scope,
        hnsw={"M": args.hnsw_m, "ef_construction": args.hnsw_ef_construction, "ef_search": args.hnsw_ef_search,
              "seed": args.seed} if args.retrieval == "hnsw" else None,
        retrieval_params={"rrf_k": args.rrf_k} if args.retrieval == "hybrid" else None,
        device=args.device, precision=args.precision, batch_size=args.batch_size, embed_backend=args.embed_backend,
        cache_dir=None if args.cache_dir == "none" else args.cache_dir, out_dir=args.out,
        corpora=args.corpora.split(",") if args.corpora else None, max_questions=args.max_questions,
        on_invalid=args.on_invalid, num_threads=args.threads, show_progress=False if args.quiet else None,
        engine=args.engine, ray_address=args.ray_address,
    )
    if args.json:
        from .results import jsonable

        print(json.dumps(jsonable({"config": result.config, "summary": result.summary}), indent=2))
    else:
        _print_summary(result.summary, result.config, result.paths)
    if result.skipped:
        where = f" (listed in {result.paths['skipped']})" if "skipped" in result.paths else ""
        print(f"chunkeval evaluate: skipped {len(result.skipped)} invalid question row(s){where}", file=sys.stderr)
    return EXIT_OK


# What the printed table shows (summary.json and the results table hold every metric).
SUMMARY_METRICS = ("iou", "recall", "precision", "precision_omega", "mrr", "ndcg")


def _print_summary(summary: dict[str, Any], config: dict[str, Any] | None, paths: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        # A pipe or a log file has no width to fit: rich's default of 80 columns would wrap the numbers.
        console = Console(width=max(console.width, 160))
    views = summary["at_k"].items() if "at_k" in summary else [(summary.get("k"), summary)]
    for k, s in views:
        title = f"k={k}, {s.get('semantics', '')} semantics" if k is not None else "all retrieved"
        table = Table(title=title)
        table.add_column("corpus")
        # The span metrics, then the rank metrics where the scoring had a chunking to rank against.
        shown = [m for m in SUMMARY_METRICS if f"{m}_mean" in s]
        for name in shown:
            table.add_column(name, justify="right")
        table.add_column("questions", justify="right")
        rows = list((s.get("corpora_scores") or {}).items()) + [("all", s)]
        for name, row in rows:
            table.add_row(name, *[_fmt(row, m) for m in shown], str(row["n_questions"]))
        console.print(table)
    if config is not None:
        extra = []
        if summary.get("hnsw_recall_vs_exact") is not None:
            extra.append(f"HNSW recall vs exact search: {summary['hnsw_recall_vs_exact']:.4f}")
        if "timings_s" in summary:
            extra.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in summary["timings_s"].items()))
        if config.get("embedder"):
            e = config["embedder"]
            name = e.get("model", e.get("name"))
            extra.append(f"embedder: {name} on {e.get('device', '?')} ({e.get('backend', '?')}, "
                         f"{e.get('precision', '?')})")
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


METRICS_EXAMPLES = """examples:
  chunkeval metrics --references refs.csv --retrieved ranked.parquet --k 1,3,5
  chunkeval metrics --references refs.csv --retrieved ranked.parquet --chunks chunks.parquet --k auto --out m.parquet
  chunkeval report m.parquet --out report/"""


def _add_metrics(sub: Any) -> None:
    p = sub.add_parser(
        "metrics",
        help="score your own retrieved lists against references (Parquet, CSV or JSONL)",
        description="Score user-supplied spans. Each file has one row per span with columns question_id, doc, "
                    "start, end (doc may be a name or an integer; spans are half-open [start, end) character "
                    "offsets); the retrieved file may add a rank column (1 = best; else file order is rank "
                    "order); the chunks file has doc, start, end. Questions are those of the references file, in "
                    "first-appearance order. Rows in error messages are numbered as an editor shows them "
                    "(from 1; a CSV header is row 1). --out writes the results table that chunkeval report reads.",
        epilog=METRICS_EXAMPLES, formatter_class=HelpFormatter,
    )
    p.add_argument("--references", required=True, help="reference spans file (.parquet, .csv, .jsonl)")
    p.add_argument("--retrieved", required=True, help="retrieved chunk spans file, ranked")
    p.add_argument("--chunks", default=None, help="the chunking (needed for precision_omega and --k auto)")
    p.add_argument("--k", type=_k_arg, default=None, help="cut-off(s) or auto (default: all retrieved)")
    p.add_argument("--semantics", choices=["set", "chroma"], default="set",
                   help="exact set semantics, or Chroma-compatible arithmetic")
    p.add_argument("--group-column", default=None,
                   help="a column of the references file to break results down by (the report's domain)")
    p.add_argument("--on-missing", choices=["error", "zero"], default="error",
                   help="a question with no retrieved row stops the run (error) or scores as retrieving nothing (zero)")
    p.add_argument("--backend", choices=["auto", "cpp", "numba", "python"], default="auto",
                   help="metrics engine; all compute the same numbers (auto: the fastest available)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="with Parquet folders (or --engine ray): stream them part by part in this process, or "
                        "one Ray task per part (pip install 'chunkeval[distributed]'); --out is then a folder")
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    p.add_argument("--threads", type=int, default=None, help="threads for the metrics engine (default: all cores)")
    p.add_argument("--out", default=None, help="write the results table (.parquet, or .csv without the list columns)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_run_metrics)


def _run_metrics_job(args: argparse.Namespace) -> int:
    """``metrics`` on Parquet datasets (folders of parts): streamed in bounded memory, locally or on Ray."""
    from . import distributed
    from .results import read_results

    if not args.out:
        raise UserError("scoring Parquet folders writes one results part per input part: pass --out FOLDER")
    out = Path(args.out)
    if out.suffix.lower() in (".parquet", ".csv"):
        raise UserError(f"--out {args.out}: scoring Parquet folders writes a folder of parts; pass a folder name")
    if args.group_column or args.on_missing != "error":
        raise UserError("--group-column and --on-missing apply to single files; drop them for Parquet folders")
    if args.engine == "ray":
        job = distributed.score_parquet_ray(args.references, args.retrieved, args.chunks, out, k=args.k,
                                            semantics=args.semantics, ray_address=args.ray_address)
    else:
        job = distributed.score_parquet_local(args.references, args.retrieved, args.chunks, out, k=args.k,
                                              semantics=args.semantics)
    table = read_results(job.parts)
    # Means per cut-off in Arrow (a job may hold millions of rows); rank metrics where computed.
    names = [m for m in ("recall", "precision", "iou", "hit", "mrr", "map", "ndcg", "ndcg_graded")
             if table.column(m).null_count < table.num_rows]
    grouped = table.group_by("k").aggregate([("recall", "count")] + [(m, "mean") for m in names]).to_pylist()
    summary = {str(row["k"]): {"n_questions": int(row["recall_count"]),
                               **{f"{m}_mean": row[f"{m}_mean"] for m in names}}
               for row in sorted(grouped, key=lambda r: r["k"])}
    if args.json:
        print(json.dumps({"questions": job.questions, "parts": len(job.parts), "seconds": job.seconds,
                          "at_k": summary}, indent=2))
    else:
        for k, row in summary.items():
            means = ", ".join(f"{m} {row[f'{m}_mean']:.4f}" for m in names)
            print(f"k={k}: {means} over {row['n_questions']} questions")
        print(f"{job.questions} questions in {len(job.parts)} part(s), {job.seconds:.1f} s: {out}")
    return EXIT_OK


def _run_metrics(args: argparse.Namespace) -> int:
    import hashlib

    from . import pipeline as pl
    from . import results as rs
    from .span_files import read_span_files

    if args.engine == "ray" or Path(args.references).is_dir() or Path(args.retrieved).is_dir():
        return _run_metrics_job(args)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise UserError(f"--out {args.out}: use a .parquet or .csv file name")
    if out is not None and out.is_dir():
        raise UserError(f"--out {args.out}: is a folder; pass a file name ending in .parquet or .csv")
    if args.k == "auto" and not args.chunks:
        raise UserError("--k auto scores each question on its first n_evidence_chunks results, which needs the "
                        "chunking: pass --chunks")
    inputs = read_span_files(args.references, args.retrieved, args.chunks, group_column=args.group_column,
                             on_missing=args.on_missing)
    scoring = pl.score_retrieved(inputs.references, inputs.retrieved, inputs.chunks, k=args.k,
                                 semantics=args.semantics, backend=args.backend, num_threads=args.threads,
                                 groups=inputs.groups)
    summary = scoring.metrics.summary()
    if inputs.missing:
        summary["questions_without_retrieved_rows"] = len(inputs.missing)
    if out is not None:
        digest = hashlib.sha256()
        for path in (args.references, args.retrieved, args.chunks):
            digest.update(Path(path).read_bytes() if path else b"-")
        corpus = inputs.groups.tolist() if inputs.groups is not None else inputs.first_doc
        offsets, doc, start, end = (inputs.retrieved.offsets, inputs.retrieved.doc, inputs.retrieved.start,
                                    inputs.retrieved.end)
        tables, provenance = [], {}
        for column, cutoff in enumerate(scoring.cutoffs):
            attributes = rs.Configuration(retrieval="given", k=cutoff, semantics=args.semantics, units="chars",
                                          chunker_spec=Path(args.retrieved).name)
            cid = rs.config_id({"files": digest.hexdigest(), "k": cutoff, "semantics": args.semantics})
            spans = [[(inputs.doc_names[d], s, e) for d, s, e in
                      zip(doc[lo:lo + n].tolist(), start[lo:lo + n].tolist(), end[lo:lo + n].tolist(), strict=False)]
                     for lo, n in zip(offsets[:-1].tolist(), scoring.scored[:, column].tolist(), strict=False)]
            tables.append(rs.results_table(attributes, cid, question_ids=inputs.question_ids, corpus_ids=corpus,
                                           metrics=scoring.at(column), retrieved_ids=None,
                                           retrieved_spans=spans))
            provenance[cid] = {"references": args.references, "retrieved": args.retrieved, "chunks": args.chunks,
                               "k": cutoff, "semantics": args.semantics}
        import pyarrow as pa

        rs.write_results(pa.concat_tables(tables), out, provenance)
    if args.json:
        print(json.dumps(rs.jsonable(summary), indent=2))
    else:
        _print_summary(summary, None, {"results": args.out} if args.out else {})
    if inputs.missing:
        print(f"chunkeval metrics: {len(inputs.missing)} question(s) had no retrieved row and scored as retrieving "
              f"nothing (first: {inputs.missing[0]!r})", file=sys.stderr)
    return EXIT_OK


#: Subcommands that live with their pipeline stage: (module with ``add_subparser``, the one-line
#: help that ``add_subparser`` registers, repeated here so listing them imports none of them).
SUBCOMMAND_HELP: dict[str, tuple[str, str]] = {
    "generate": ("chunkeval.generate.cli",
                 "generate questions with exact reference spans from your corpora with an LLM"),
    "sweep": ("chunkeval.sweep", "evaluate many configurations (chunkers x sizes x embedders x k x units), resumable"),
    "report": ("chunkeval.report", "write report.html, report.md, explorer.html and plots from results tables"),
    "export": ("chunkeval.export_cli",
               "write your spans as TREC qrels and run files (trec_eval, pytrec_eval, ranx)"),
}


def _add_optional(sub: Any, name: str, load: bool) -> None:
    """Register subcommand ``name``: in full from its module when ``load``, else only its name and
    help (a run of another command never parses its options)."""
    module, help_text = SUBCOMMAND_HELP[name]
    if not load:
        sub.add_parser(name, help=help_text)
        return
    try:
        mod = __import__(module, fromlist=["add_subparser"])
    except ImportError as exc:  # a stage whose own module is missing is a packaging bug
        raise RuntimeError(f"cannot load the {module} subcommand: {exc}") from exc
    mod.add_subparser(sub)


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs (its first token that is not an option), or ``None``: the
    top-level options (``--help``, ``--version``) take no value, so nothing else can come first."""
    for token in argv:
        if not token.startswith("-"):
            return token
        if token in ("-h", "--help", "--version"):
            return None
    return None


def build_parser(command: str | None = "all") -> argparse.ArgumentParser:
    """The ``chunkeval`` parser. ``command="all"`` registers every subcommand in full; a name, or
    ``None`` for none, registers only that one in full and lists the others by name and help."""
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
    for name in SUBCOMMAND_HELP:
        _add_optional(sub, name, load=command in ("all", name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(argv))
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
