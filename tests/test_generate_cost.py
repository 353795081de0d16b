"""Cost: token usage per question and in total, priced with --price-in/--price-out, in a run's
summary and in --stats; --dry-run plans the requests and prices them before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.cli import main
from chunkeval.generate.runner import estimate_cost, plan_requests, summarize_file
from test_generate_cli import CORPUS_DIR, cli, one_error_line
from test_generate_http import CORPORA, ReplayServer, scripted

NO_FILTERS = FilterSettings(use_embeddings=False)


def test_estimate_cost() -> None:
    assert estimate_cost(1_000_000, 500_000, 2.0, 8.0) == 6.0
    assert estimate_cost(1234, 0, 0.5, 100.0) == 1234 * 0.5 / 1_000_000
    with pytest.raises(ValueError, match=r"price_out must be a price >= 0 per million tokens, got -1"):
        estimate_cost(1, 1, 1.0, -1)
    with pytest.raises(ValueError, match=r"price_in must be a price >= 0 per million tokens, got nan"):
        estimate_cost(1, 1, float("nan"), 1.0)


def generated(tmp_path: Path) -> Path:
    out = tmp_path / "q.jsonl"
    # good_plain 400/60, malformed 400/40 (rejected), think_block 410/180 (120 of them reasoning)
    with ReplayServer(scripted("good_plain", "malformed", "think_block")) as server:
        backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1)
        report = generate_questions(
            {"lighthouse": CORPORA["lighthouse"]},
            out,
            backend,
            GenerationSettings(per_corpus=2, concurrency=1, filters=NO_FILTERS),
            show_progress=False,
        )
    assert report.usage == {"prompt_tokens": 1210, "completion_tokens": 280, "reasoning_tokens": 120}
    return out


def test_stats_price_accepted_and_rejected_tokens(tmp_path: Path) -> None:
    stats = summarize_file(generated(tmp_path), price_in=2.0, price_out=10.0)
    assert stats["tokens"] == {"prompt_tokens": 810, "completion_tokens": 240, "reasoning_tokens": 120}
    assert stats["tokens_rejected"] == {"prompt_tokens": 400, "completion_tokens": 40}
    accepted = (810 * 2.0 + 240 * 10.0) / 1e6
    rejected = (400 * 2.0 + 40 * 10.0) / 1e6
    assert stats["cost"] == {"price_in": 2.0, "price_out": 10.0, "accepted": accepted, "rejected": rejected,
                             "total": accepted + rejected, "per_question": (accepted + rejected) / 2}
    assert "cost" not in summarize_file(tmp_path / "q.jsonl")


def test_the_cli_prints_the_cost_of_a_run_and_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted("good_plain", "malformed", "think_block")) as server:
        assert (
            cli(server, out, "--corpora", "lighthouse", "--per-corpus", "2", "--price-in", "2", "--price-out", "10")
            == 0
        )
    total = (1210 * 2 + 280 * 10) / 1e6
    assert (f"cost this run: ${total:.4f} (1,210 prompt, 280 completion tokens), ${total / 2:.4f} per new question"
            in capsys.readouterr().out)
    assert main(["--stats", str(out), "--price-in", "2", "--price-out", "10"]) == 0
    printed = capsys.readouterr().out
    assert f"  cost: ${total:.4f} ($0.0040 accepted, $0.0012 rejected, ${total / 2:.4f} per question kept)" in printed
    assert "  tokens of rejected attempts: prompt 400, completion 40" in printed
    with ReplayServer(scripted()) as server:
        assert cli(server, out, "--price-in", "-3") == 2
        assert len(server.requests) == 0
    assert "price_in must be a price >= 0" in one_error_line(capsys.readouterr().err)


def test_the_plan_is_what_the_run_sends(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    settings = GenerationSettings(per_corpus=3, concurrency=1, filters=NO_FILTERS, recent_questions=0)
    corpora = {"lighthouse": CORPORA["lighthouse"]}
    planned = plan_requests(corpora, out, settings)
    assert [(p.corpus_id, p.kind, p.attempt) for p in planned] == [("lighthouse", "single", a) for a in range(3)]
    assert not out.exists()
    with ReplayServer(scripted("good_plain", "think_block", "orphan_close")) as server:
        backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1)
        generate_questions(corpora, out, backend, settings, show_progress=False)
    assert [r["body"]["messages"] for r in server.requests] == [p.messages for p in planned]
    assert plan_requests(corpora, out, settings) == []  # all made: a rerun would send nothing
    more = plan_requests(corpora, out, GenerationSettings(per_corpus=5, filters=NO_FILTERS, recent_questions=0))
    assert [p.attempt for p in more] == [3, 4]


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.jsonl"
    args: list[Any] = [
        str(CORPUS_DIR),
        "--out",
        str(out),
        "--per-corpus",
        "2",
        "--dry-run",
        "--no-filters",
        "--price-in",
        "1",
        "--price-out",
        "4",
        "--max-output-tokens",
        "1000",
        "--mix",
        "single=1,multi=1",
        "--window",
        "600",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("dry run: 4 requests planned (bakery 2, lighthouse 2; single 2, multi 2), ")
    assert printed[0].endswith(" prompt tokens (cl100k); nothing sent")
    prompt_tokens = int(printed[0].split("), ")[1].split(" prompt")[0].replace(",", ""))
    assert 4 * 200 < prompt_tokens < 4 * 1000  # four prompts of a 600-character window and the instructions
    assert printed[1].startswith("  bakery single attempt 0: window [")
    assert "requests: 4 if every attempt is accepted, at most 80 (the attempt limits)" in printed
    low, high = prompt_tokens / 1e6, (prompt_tokens + 4 * 1000 * 4) / 1e6
    assert printed[-1] == (f"cost estimate: ${low:.4f} for the prompts, up to ${high:.4f} with 1,000 completion tokens "
                           "per request, if every attempt is accepted")
    assert not out.exists()
