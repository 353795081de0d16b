"""``chunkeval generate``: synthetic questions with exact reference spans, from an LLM.

    chunkeval generate CORPUS_DIR --out questions.jsonl --base-url http://localhost:8000/v1 \\
        --model deepseek-ai/DeepSeek-R1-Distill-Qwen-14B --per-corpus 50
    chunkeval generate CORPUS_DIR --out questions.jsonl --local-model ./phi-4 --per-corpus 20
    chunkeval generate CORPUS_DIR --out questions.jsonl ... --mix single=0.5,multi=0.3,cross=0.2 --verify
    chunkeval generate CORPUS_DIR --out questions.jsonl ... --dry-run --price-in 0.27 --price-out 1.10
    chunkeval generate --stats questions.jsonl [CORPUS_DIR] [--price-in X --price-out Y]
    chunkeval generate --convert questions.jsonl questions.csv      # or .parquet

Rerunning the same command resumes: questions already in --out count towards --per-corpus and
attempts already made (accepted or rejected) are not made again. A malformed reply is a counted
rejection, never the end of a run. The API key comes from --api-key or CHUNKEVAL_LLM_API_KEY /
OPENAI_API_KEY and is never written or logged, even when a server echoes it back. Unanswerable
questions go to <stem>.unanswerable.jsonl, rejected attempts to <stem>.rejected.jsonl.

Exit codes: 0 target reached or budget spent as asked, 1 stopped early (backend failures, attempt
limit), 2 bad usage or input, 130 interrupted (everything written so far is kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_subparser", "main", "run_command"]

EXIT_OK, EXIT_STOPPED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``generate`` on an argparse subparsers object; the handler returns an exit code."""
    from .filters import DEFAULT_DUPLICATE_THRESHOLD, DEFAULT_EXCERPT_THRESHOLD, DEFAULT_MAX_REFERENCES

    p = subparsers.add_parser(
        "generate",
        help="generate questions with exact reference spans from your corpora with an LLM",
        description="Generate questions whose answers are exact reference spans of your corpora, with any "
        "OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp, DeepSeek, OpenAI) or a local "
        "transformers model; reasoning models welcome.",
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("corpus_dir", nargs="?", help="folder of .txt/.md corpora (or a corpora .parquet/.jsonl table)")
    p.add_argument("--out", help="questions file to append to (.jsonl); rejected attempts go to <stem>.rejected.jsonl")
    backend = p.add_argument_group("model")
    backend.add_argument("--base-url", help="OpenAI-compatible API root, e.g. http://localhost:8000/v1 "
                                            "(default: $CHUNKEVAL_LLM_BASE_URL)")
    backend.add_argument("--model", help="model name as the server knows it (default: $CHUNKEVAL_LLM_MODEL)")
    backend.add_argument("--api-key", help="API key (default: $CHUNKEVAL_LLM_API_KEY, then $OPENAI_API_KEY); "
                                           "prefer the environment, a flag is visible to other users in ps")
    backend.add_argument(
        "--local-model", metavar="PATH", help="run a local transformers model folder instead of a server"
    )
    backend.add_argument(
        "--device", default=None, help="device for --local-model (default: cuda when present, else cpu)"
    )
    backend.add_argument("--temperature", type=_float, default=0.6, help="sampling temperature (default: 0.6)")
    backend.add_argument("--no-structured-output", action="store_true",
                         help="never send the answer's JSON schema as response_format (by default it is sent, and a "
                              "server that refuses it gets free text from then on)")
    backend.add_argument("--max-output-tokens", type=_positive_int, default=4096,
                         help="completion tokens per request; reasoning models need room to think (default: 4096)")
    run = p.add_argument_group("run")
    run.add_argument("--per-corpus", "--per-document", dest="per_corpus", type=_positive_int, default=None,
                     help="questions wanted per corpus document (default: 50)")
    run.add_argument("--proportional", type=_positive_int, default=None, metavar="TOTAL",
                     help="TOTAL questions over all documents, each document's quota proportional to its length "
                          "(instead of --per-document)")
    run.add_argument("--corpora", default=None, help="comma-separated corpus ids to use (default: all)")
    run.add_argument("--mix", default=None, metavar="KIND=SHARE,...",
                     help="question kinds and their shares of --per-corpus: single (one passage), multi (evidence in "
                          "two distant parts of a document), cross (evidence in two documents of the corpus set), "
                          "unanswerable (no evidence; written to <stem>.unanswerable.jsonl), e.g. "
                          "single=0.5,multi=0.3,cross=0.2 (default: single=1)")
    run.add_argument("--verify", action="store_true",
                     help="grounding check: a second request per question asks the model whether its references "
                          "answer it (unanswerable ones: whether the window does not); the rest are rejected")
    run.add_argument("--from-chunks", metavar="CHUNKS", default=None,
                     help="windows are your own chunks: a .parquet/.csv/.jsonl file with doc, start, end (or doc, "
                          "text) per chunk; only the documents it names are used")
    run.add_argument("--approximate", action="store_true",
                     help="show the window as ~100-character tagged pieces and let the model cite piece ids")
    run.add_argument(
        "--window", type=_positive_int, default=4000, help="characters of corpus shown per request (default: 4000)"
    )
    run.add_argument("--align-paragraphs", action="store_true", help="start and end windows at paragraph breaks")
    run.add_argument("--seed", type=int, default=0, help="window sampling seed (default: 0)")
    run.add_argument("--concurrency", type=_positive_int, default=8, help="requests in flight (default: 8)")
    run.add_argument("--timeout", type=_float, default=120.0, help="seconds per request (default: 120)")
    run.add_argument("--max-retries", type=int, default=5, help="retries per request on 429/5xx/timeouts (default: 5)")
    run.add_argument("--backoff-base", type=_float, default=1.0, help="first backoff ceiling in seconds (default: 1)")
    run.add_argument("--max-requests", type=_positive_int, default=None, help="stop after sending this many requests")
    run.add_argument("--max-tokens", type=_positive_int, default=None, help="stop once this many tokens were used")
    run.add_argument("--max-attempts", type=_positive_int, default=None,
                     help="attempts per corpus before giving up on it (default: 10 x per-corpus + 10)")
    run.add_argument("--prompt-file", default=None, help="custom prompt template (see chunkeval.generate.prompts)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    filters = p.add_argument_group("filters")
    filters.add_argument(
        "--no-filters", action="store_true", help="skip the embedding filters (duplicates, poor excerpts)"
    )
    filters.add_argument(
        "--dup-threshold",
        type=_float,
        default=DEFAULT_DUPLICATE_THRESHOLD,
        help=f"drop a question whose cosine to an accepted one is >= this (default: {DEFAULT_DUPLICATE_THRESHOLD})",
    )
    filters.add_argument(
        "--excerpt-threshold",
        type=_float,
        default=DEFAULT_EXCERPT_THRESHOLD,
        help=f"drop a question with an excerpt whose cosine to it is < this (default: {DEFAULT_EXCERPT_THRESHOLD})",
    )
    filters.add_argument(
        "--fuzzy-threshold",
        type=_float,
        default=90.0,
        help="rapidfuzz score (0-100) a fuzzy excerpt match needs; 100 turns fuzzy matching off (default: 90)",
    )
    filters.add_argument("--max-references", type=_positive_int, default=DEFAULT_MAX_REFERENCES,
                         help=f"reject answers citing more passages (default: {DEFAULT_MAX_REFERENCES})")
    cost = p.add_argument_group("cost")
    cost.add_argument("--price-in", type=_float, default=None, metavar="USD",
                      help="price per million prompt tokens: a run and --stats then report the cost")
    cost.add_argument("--price-out", type=_float, default=None, metavar="USD",
                      help="price per million completion tokens (reasoning tokens included)")
    cost.add_argument("--dry-run", action="store_true",
                      help="print the planned requests, their prompt tokens and the cost estimate; send nothing")
    tools = p.add_argument_group("other modes")
    tools.add_argument("--stats", metavar="FILE", help="summarise a generated file and its rejections, then exit")
    tools.add_argument("--json", action="store_true", help="with --stats: print JSON")
    tools.add_argument("--convert", nargs=2, metavar=("IN", "OUT"),
                       help="convert a questions file to the toolkit's CSV or to Parquet (by OUT's extension)")
    p.set_defaults(handler=run_command)
    parser: argparse.ArgumentParser = p
    return parser


def _format_counts(counts: dict[Any, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _print_stats(stats: dict[str, Any]) -> None:
    print(f"{stats['path']}: {stats['questions']} questions")
    print(f"  per corpus: {_format_counts(stats['per_corpus'])}")
    print(f"  kinds: {_format_counts(stats['kinds'])}"
          + (f" (unanswerable ones in {stats['path'].removesuffix('.jsonl')}.unanswerable.jsonl)"
             if stats["unanswerable"] else ""))
    if stats["output_paths"]:
        print(f"  output: {_format_counts(stats['output_paths'])}")
    mean = stats["mean_references"]
    print(f"  references per question: {_format_counts(stats['references_per_question'])}"
          + (f" (mean {mean:.2f})" if mean is not None else ""))
    print(f"  match kinds: {_format_counts(stats['match_kinds'])}")
    if stats["mean_latency_s"] is not None:
        print(f"  mean latency: {stats['mean_latency_s']:.2f} s")
    if stats["tokens"]:
        print("  tokens: " + ", ".join(f"{k.replace('_tokens', '')} {v:,}" for k, v in stats["tokens"].items()))
    if stats["models"]:
        print(f"  models: {_format_counts(stats['models'])}")
    if stats["tokens_rejected"]:
        print("  tokens of rejected attempts: "
              + ", ".join(f"{k.replace('_tokens', '')} {v:,}" for k, v in stats["tokens_rejected"].items()))
    print(f"  rejected: {stats['rejected']} ({_format_counts(stats['rejection_reasons'])})")
    if "cost" in stats:
        cost = stats["cost"]
        per = f", {_money(cost['per_question'])} per question kept" if cost["per_question"] is not None else ""
        print(f"  cost: {_money(cost['total'])} ({_money(cost['accepted'])} accepted, {_money(cost['rejected'])} "
              f"rejected{per}) at {cost['price_in']:g} in / {cost['price_out']:g} out per million tokens")
    if "coverage" in stats:
        print("  ", end="")
        _print_coverage(stats["coverage"])


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _count_tokens(texts: list[str]) -> tuple[int, str]:
    """Prompt tokens of ``texts`` with cl100k (4 more per chat message), or characters / 4 without tiktoken."""
    try:
        from ..tokenizers import get_tokenizer

        tokenizer = get_tokenizer("cl100k_base")
    except (ImportError, ValueError, OSError):
        return sum(len(t) for t in texts) // 4 + 4 * len(texts), "characters / 4"
    return sum(tokenizer.count(t) for t in texts) + 4 * len(texts), "cl100k"


def _dry_run(args: argparse.Namespace, corpora: dict[str, str], settings: Any) -> int:
    from collections import Counter

    from .runner import plan_requests

    planned = plan_requests(corpora, args.out, settings)
    per_corpus = Counter(p.corpus_id for p in planned)
    per_kind = Counter(p.kind for p in planned)
    prompt_tokens, how = _count_tokens([m["content"] for p in planned for m in p.messages])
    print(f"dry run: {len(planned)} requests planned ({_format_counts(dict(per_corpus))}; "
          f"{_format_counts(dict(per_kind))}), {prompt_tokens:,} prompt tokens ({how}); nothing sent")
    for p in planned[:_DRY_RUN_SHOWN]:
        names = p.documents or ("",) * len(p.windows)  # cross-document: each window's corpus
        windows = " + ".join(f"{c}[{a}, {b})" for c, (a, b) in zip(names, p.windows, strict=True))
        print(f"  {p.corpus_id} {p.kind} attempt {p.attempt}: window {windows}, {p.prompt_chars:,} prompt characters")
    if len(planned) > _DRY_RUN_SHOWN:
        print(f"  … and {len(planned) - _DRY_RUN_SHOWN} more")
    limit = sum(settings.attempt_limit_for(t) for cid in corpora for t in settings.kind_targets_for(cid).values() if t)
    print(f"requests: {len(planned)} if every attempt is accepted, at most {limit} (the attempt limits)"
          + ("; --verify adds one check per answer" if settings.verify else ""))
    completion = len(planned) * args.max_output_tokens
    if args.price_in is not None or args.price_out is not None:
        from .runner import estimate_cost

        price_in, price_out = args.price_in or 0.0, args.price_out or 0.0
        low = estimate_cost(prompt_tokens, 0, price_in, price_out)
        high = estimate_cost(prompt_tokens, completion, price_in, price_out)
        print(f"cost estimate: {_money(low)} for the prompts, up to {_money(high)} with {args.max_output_tokens:,} "
              f"completion tokens per request, if every attempt is accepted")
    return EXIT_OK


_DRY_RUN_SHOWN = 10


def _print_coverage(coverage: dict[str, Any]) -> None:
    if not coverage:
        return
    per = ", ".join(f"{cid} {c['covered']}/{c['segments']}" for cid, c in coverage["per_corpus"].items())
    print(f"coverage: {coverage['share']:.0%} of {coverage['segment_chars']:,}-character segments hold a reference "
          f"({per}); {coverage['chars_share']:.1%} of the characters are referenced")


def run_command(args: argparse.Namespace) -> int:
    """Handle ``chunkeval generate``; returns the exit code, printing one line for user errors."""
    try:
        return _run(args)
    except (ValueError, TypeError, OSError) as exc:
        if os.environ.get("CHUNKEVAL_DEBUG") == "1":
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"chunkeval generate: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    from ..datasets import load_corpora, read_questions, write_questions

    if args.stats:
        from .runner import summarize_file

        stats = summarize_file(args.stats, load_corpora(args.corpus_dir) if args.corpus_dir else None,
                               price_in=args.price_in, price_out=args.price_out)
        if args.json:
            print(json.dumps(stats, indent=2, ensure_ascii=False))
        else:
            _print_stats(stats)
        return EXIT_OK
    if args.convert:
        source, target = args.convert
        if Path(source).resolve() == Path(target).resolve():
            raise ValueError(f"--convert: IN and OUT are the same file {source!r}; pick another OUT")
        records = read_questions(source)
        write_questions(records, target)
        print(f"wrote {len(records)} questions to {target}")
        return EXIT_OK
    if not args.corpus_dir:
        raise ValueError("CORPUS_DIR is missing; pass a folder of .txt/.md corpora (or use --stats / --convert)")
    if not args.out:
        raise ValueError("--out is missing; pass the .jsonl file to write questions to")
    corpora = load_corpora(args.corpus_dir)
    if args.corpora:
        wanted = [c.strip() for c in args.corpora.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in corpora]
        if unknown:
            raise ValueError(f"--corpora: unknown corpus id(s) {unknown}; known: {list(corpora)}")
        corpora = {c: corpora[c] for c in wanted}
    return _generate(args, corpora)


def _settings(args: argparse.Namespace, corpora: dict[str, str]) -> tuple[Any, dict[str, str], dict[str, int] | None]:
    """The run's GenerationSettings from the flags, the corpora it uses and the quotas by length."""
    from .chunks import read_chunk_windows
    from .coverage import proportional_quotas
    from .filters import FilterSettings
    from .kinds import DEFAULT_MIX, parse_mix
    from .prompts import load_template
    from .runner import GenerationSettings, estimate_cost

    chunk_windows = read_chunk_windows(args.from_chunks, corpora) if args.from_chunks else None
    if chunk_windows is not None:
        corpora = {cid: text for cid, text in corpora.items() if cid in chunk_windows}
    if args.max_retries < 0:
        raise ValueError(f"--max-retries must be 0 or more, got {args.max_retries}")
    if args.proportional is not None and args.per_corpus is not None:
        raise ValueError("pass either --per-document N or --proportional TOTAL, not both")
    if args.price_in is not None or args.price_out is not None:
        estimate_cost(0, 0, args.price_in or 0.0, args.price_out or 0.0)  # a bad price fails before any request
    quotas = (proportional_quotas({cid: len(text) for cid, text in corpora.items()}, args.proportional)
              if args.proportional is not None else None)
    filters = FilterSettings(
        use_embeddings=not args.no_filters,
        duplicate_threshold=args.dup_threshold,
        excerpt_threshold=args.excerpt_threshold,
        max_references=args.max_references,
    )
    settings = GenerationSettings(
        per_corpus=args.per_corpus or 50,
        quotas=quotas,
        window_chars=args.window,
        align_paragraphs=args.align_paragraphs,
        seed=args.seed,
        approximate=args.approximate,
        concurrency=args.concurrency,
        temperature=args.temperature,
        fuzzy_threshold=args.fuzzy_threshold,
        filters=filters,
        template=load_template(args.prompt_file) if args.prompt_file else None,
        max_attempts_per_corpus=args.max_attempts,
        structured_output=not args.no_structured_output,
        mix=parse_mix(args.mix) if args.mix else dict(DEFAULT_MIX),
        verify=args.verify,
        chunk_windows=chunk_windows,
    )
    return settings, corpora, quotas


def _backend(args: argparse.Namespace) -> Any:
    from .backends import Budget, OpenAICompatibleBackend, TransformersBackend

    budget = Budget(max_requests=args.max_requests, max_tokens=args.max_tokens)
    if args.local_model:
        if args.base_url:
            raise ValueError("pass either --local-model or --base-url, not both")
        return TransformersBackend(args.local_model, device=args.device, max_output_tokens=args.max_output_tokens,
                                   budget=budget)
    return OpenAICompatibleBackend(
        args.base_url, args.model, args.api_key, timeout=args.timeout, max_retries=args.max_retries,
        backoff_base=args.backoff_base, max_output_tokens=args.max_output_tokens, budget=budget,
    )


def _print_run(args: argparse.Namespace, report: Any, quotas: dict[str, int] | None) -> None:
    from .runner import estimate_cost, rejected_path

    new = sum(report.accepted.values())
    kinds = dict(report.accepted_kinds)
    rejected = sum(report.rejected.values())
    print(
        f"{new} new questions in {args.out} ({sum(report.total.values())} in all: "
        f"{_format_counts(report.total)}); {rejected} rejected ({_format_counts(dict(report.rejected.most_common()))}) "
        f"-> {rejected_path(args.out)}; {report.requests_sent} requests, {report.tokens_used:,} tokens, "
        f"{report.elapsed_s:.1f} s"
    )
    if set(kinds) - {"single"}:
        print(f"new by kind: {_format_counts(kinds)}")
    if quotas is not None:
        print(f"quotas by length: {_format_counts(quotas)}")
    _print_coverage(report.coverage)
    if args.price_in is not None or args.price_out is not None:
        spent = estimate_cost(report.usage["prompt_tokens"], report.usage["completion_tokens"], args.price_in or 0.0,
                              args.price_out or 0.0)
        print(f"cost this run: {_money(spent)} ({report.usage['prompt_tokens']:,} prompt, "
              f"{report.usage['completion_tokens']:,} completion tokens)"
              + (f", {_money(spent / new)} per new question" if new else ""))
    if report.repaired_bytes:
        print(f"note: dropped an incomplete last line ({report.repaired_bytes} bytes) left by an interrupted run")


def _generate(args: argparse.Namespace, corpora: dict[str, str]) -> int:
    from .runner import generate_questions

    settings, corpora, quotas = _settings(args, corpora)
    if args.dry_run:
        return _dry_run(args, corpora, settings)
    backend = _backend(args)
    # Warnings (failed requests, a repaired file) go to stderr for this run only; the handler is
    # removed afterwards so embedding the CLI (tests, notebooks) leaves logging as it was.
    logger = logging.getLogger("chunkeval.generate")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("chunkeval generate: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        report = generate_questions(corpora, args.out, backend, settings, show_progress=False if args.quiet else None)
    finally:
        logger.removeHandler(handler)
    _print_run(args, report, quotas)
    if report.stop_reason == "done":
        return EXIT_OK
    print(f"stopped early ({report.stop_reason}): {report.message}", file=sys.stderr)
    if report.stop_reason == "budget":
        return EXIT_OK
    return EXIT_STOPPED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``generate`` on its own: ``python -m chunkeval.generate.cli CORPUS_DIR --out ...``."""
    parser = argparse.ArgumentParser(prog="chunkeval")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print(
            "chunkeval generate: interrupted; every question written so far is kept, rerun to resume", file=sys.stderr
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
