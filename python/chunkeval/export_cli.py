"""``chunkeval export --trec``: the span files of ``chunkeval metrics`` as TREC qrels and a TREC run.

    chunkeval export --trec --references R --retrieved RET --chunks C --qrels q.txt --run r.txt [--graded]

The files are those :mod:`chunkeval.span_files` reads; the export is :mod:`chunkeval.interop`'s
(docs/interop.md, *Exporting to trec_eval and ranx*).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._help import HelpFormatter

__all__ = ["EXPORT_HELP", "add_export_parser", "add_subparser", "run_export"]

#: The one-line help of ``chunkeval export`` (``cli.SUBCOMMAND_HELP`` repeats it).
EXPORT_HELP = "write your spans as TREC qrels and run files (trec_eval, pytrec_eval, ranx)"

EXPORT_EXAMPLES = """examples:
  chunkeval export --trec --references refs.csv --retrieved ranked.parquet --chunks chunks.parquet \\
      --qrels qrels.txt --run run.txt
  trec_eval -m map_cut.1,5,10 -m ndcg_cut.1,5,10 qrels.txt run.txt"""


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export`` on the CLI's subparsers; its handler is :func:`run_export`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help=EXPORT_HELP,
        description="Export user-supplied spans (the files of chunkeval metrics: question_id, doc, start, end per "
                    "row; the retrieved file may add rank) as TREC files. The qrels are each question's evidence "
                    "chunks: the chunks that overlap its references (relevance 1, or with --graded the overlap "
                    "length); a question whose references overlap no chunk has no qrels line, and trec_eval skips "
                    "it. The run lists each question's distinct retrieved spans in rank order with decreasing "
                    "scores. Document numbers are doc:start-end. trec_eval and ranx on these files give "
                    "chunkeval's hit, mrr, map and ndcg.",
        epilog=EXPORT_EXAMPLES, formatter_class=HelpFormatter,
    )
    p.add_argument("--trec", action="store_true", help="write TREC qrels and run files (the one format so far)")
    p.add_argument("--references", required=True, help="reference spans file (.parquet, .csv, .jsonl)")
    p.add_argument("--retrieved", required=True, help="retrieved chunk spans file, ranked")
    p.add_argument("--chunks", required=True, help="the chunking: the qrels judge its chunks")
    p.add_argument("--qrels", required=True, help="qrels file to write (qid 0 docno relevance)")
    p.add_argument("--run", required=True, help="run file to write (qid Q0 docno rank score run_name)")
    p.add_argument("--graded", action="store_true", help="relevance = overlap with the references (for graded nDCG)")
    p.add_argument("--run-name", default="chunkeval", help="the run file's last column")
    p.add_argument("--on-missing", choices=["error", "zero"], default="error",
                   help="a question with no retrieved row stops the export (error) or gets an empty run (zero)")
    p.set_defaults(handler=run_export)
    return p


def add_subparser(subparsers: Any) -> None:
    """The hook ``cli.SUBCOMMAND_HELP`` calls for a subcommand in its own module."""
    add_export_parser(subparsers)


def run_export(args: argparse.Namespace) -> int:
    """Read the span files, write the qrels and the run; 0 on success (bad input is a ValueError)."""
    from .interop import trec_data, write_trec
    from .span_files import read_span_files

    if not args.trec:
        raise ValueError("choose the format to write: --trec (TREC qrels and run files)")
    inputs = read_span_files(args.references, args.retrieved, args.chunks, on_missing=args.on_missing)
    if inputs.chunks is None:
        raise ValueError("--chunks: the qrels judge the chunks of a chunking; pass its spans file")
    qrels, run = trec_data(inputs.references, inputs.retrieved, inputs.chunks, question_ids=inputs.question_ids,
                           graded=args.graded, doc_names=inputs.doc_names)
    write_trec(args.qrels, args.run, qrels, run, run_name=args.run_name)
    n_questions = len(inputs.question_ids)
    unjudged = n_questions - len(qrels)
    print(f"chunkeval export: {sum(map(len, qrels.values()))} qrels lines for {len(qrels)} of {n_questions} "
          f"questions -> {args.qrels}; {sum(map(len, run.values()))} run lines -> {args.run}")
    if unjudged:
        print(f"chunkeval export: {unjudged} question(s) have no chunk overlapping their references and no qrels "
              "line; trec_eval and pytrec_eval skip them (chunkeval scores them 0)")
    return 0
