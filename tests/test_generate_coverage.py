"""Corpus coverage: windows that spread over each document, per-document quotas (fixed or by
length) and the share of the corpus holding a reference, worked out by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.coverage import corpus_coverage, proportional_quotas, spread_index
from chunkeval.generate.runner import sample_window, summarize_file
from test_generate_cli import CORPUS_DIR, cli, one_error_line
from test_generate_http import CORPORA, REPLIES, ReplayServer, Reply

NO_FILTERS = FilterSettings(use_embeddings=False)
STEP = 0x9E3779B97F4A7C15  # 2**64 / golden ratio


def test_spread_index_is_the_golden_rotation_of_a_sha256_offset() -> None:
    offset = int.from_bytes(hashlib.sha256(b"key").digest()[:8], "little")
    for attempt in (0, 1, 2, 1000):
        expected = ((offset + attempt * STEP) % 2**64) * 12_345 // 2**64
        assert spread_index("key", attempt, 12_345) == expected
    assert spread_index("key", 5, 1) == 0
    with pytest.raises(ValueError, match="n_positions must be at least 1, got 0"):
        spread_index("key", 0, 0)


@pytest.mark.parametrize("k", [5, 10, 50, 200])
def test_any_run_of_attempts_is_spread_evenly(k: int) -> None:
    n = 1_000_000
    for first in (0, 17, 400):
        points = sorted(spread_index("doc", a, n) for a in range(first, first + k))
        gaps = [b - a for a, b in zip(points, points[1:], strict=False)] + [points[0] + n - points[-1]]
        assert max(gaps) < 2.7 * n / k


def test_windows_spread_over_the_document() -> None:
    text = "x" * 20_000
    windows = [sample_window(text, 1000, 7, "doc", a) for a in range(40)]
    covered: set[int] = set()
    for start, end in windows:
        covered.update(range(start, end))
    assert len(covered) == 20_000  # 40 windows of 1,000 (twice the text) leave no character unseen
    assert windows == [sample_window(text, 1000, 7, "doc", a) for a in range(40)]  # reproducible from the seed
    assert windows != [sample_window(text, 1000, 8, "doc", a) for a in range(40)]
    assert windows != [sample_window(text, 1000, 7, "doc", a, kind="unanswerable") for a in range(40)]


def test_proportional_quotas_by_largest_remainder() -> None:
    assert proportional_quotas({"a": 100, "b": 300, "c": 600}, 7) == {"a": 1, "b": 2, "c": 4}  # .7, 2.1, 4.2
    assert proportional_quotas({"a": 1, "b": 1}, 3) == {"a": 2, "b": 1}  # a tie goes to the first
    with pytest.raises(ValueError, match="total must be a positive integer"):
        proportional_quotas({"a": 1}, 0)
    with pytest.raises(ValueError, match="the documents are all empty"):
        proportional_quotas({"a": 0}, 3)


def test_coverage_by_hand() -> None:
    records = [
        {"corpus_id": "x", "references": [{"start_index": 0, "end_index": 10}, {"start_index": 5, "end_index": 20}]},
        {"corpus_id": "x", "references": [{"start_index": 830, "end_index": 840}]},  # segments 0 and 1 (width 833.3)
        {"corpus_id": "other", "references": [{"start_index": 0, "end_index": 5}]},  # not a corpus asked about
    ]
    result = corpus_coverage(records, {"x": 2500, "y": 500})
    assert result["per_corpus"] == {"x": {"segments": 3, "covered": 2, "share": 2 / 3, "chars_share": 30 / 2500},
                                    "y": {"segments": 1, "covered": 0, "share": 0.0, "chars_share": 0.0}}
    assert result["share"] == 2 / 4 and result["chars_share"] == pytest.approx(30 / 3000)
    assert result["segment_chars"] == 1000
    with pytest.raises(ValueError, match="segment_chars must be at least 1"):
        corpus_coverage([], {"x": 1}, segment_chars=0)


def by_corpus(request: dict[str, Any], index: int) -> Reply:
    corpus = "lighthouse" if "Harwick" in request["messages"][-1]["content"] else "bakery"
    served = [r for r in SERVED if r == corpus]
    SERVED.append(corpus)
    sequence = REPLIES[f"sequence_{corpus}"]
    return Reply(fixture=sequence[len(served) % len(sequence)])


SERVED: list[str] = []


def test_quotas_per_corpus_and_the_coverage_report(tmp_path: Path) -> None:
    SERVED.clear()
    out = tmp_path / "q.jsonl"
    backend = None
    with ReplayServer(by_corpus) as server:
        backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1)
        report = generate_questions(dict(CORPORA), out, backend, GenerationSettings(
            quotas={"lighthouse": 2, "bakery": 0}, concurrency=1, filters=NO_FILTERS), show_progress=False)
    assert report.accepted == {"lighthouse": 2} and SERVED == ["lighthouse", "lighthouse"]
    n = len(CORPORA["lighthouse"])
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    referenced = sum(r["end_index"] - r["start_index"] for q in records for r in q["references"])
    assert report.coverage["per_corpus"] == {
        "bakery": {"segments": 1, "covered": 0, "share": 0.0, "chars_share": 0.0},
        "lighthouse": {"segments": 1, "covered": 1, "share": 1.0, "chars_share": referenced / n}}
    assert report.coverage["share"] == 0.5
    assert summarize_file(out, CORPORA)["coverage"] == report.coverage
    with pytest.raises(ValueError, match=r"quotas: corpora \['nope'\] are not among the corpora given"):
        generate_questions(dict(CORPORA), out, backend, GenerationSettings(quotas={"nope": 1}), show_progress=False)
    with pytest.raises(ValueError, match=r"quotas: corpus 'bakery' wants -1 questions"):
        GenerationSettings(quotas={"bakery": -1})


def test_the_cli_proportional_quotas_and_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SERVED.clear()
    out = tmp_path / "q.jsonl"
    with ReplayServer(by_corpus) as server:
        assert cli(server, out, "--proportional", "3") == 0  # 920 and 814 characters: 1.59 and 1.41
        printed = capsys.readouterr().out
        assert "quotas by length: bakery 1, lighthouse 2" in printed
        assert "coverage: 100% of 1,000-character segments hold a reference (bakery 1/1, lighthouse 1/1)" in printed
        assert cli(server, out, "--proportional", "3", "--per-document", "2") == 2
    assert "pass either --per-document N or --proportional TOTAL" in one_error_line(capsys.readouterr().err)
    from chunkeval.generate.cli import main

    assert main(["--stats", str(out), str(CORPUS_DIR)]) == 0
    assert "coverage: 100% of 1,000-character segments" in capsys.readouterr().out
