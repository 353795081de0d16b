"""``chunkeval generate`` on the command line: exit codes, --stats, --convert, the API key never
leaving memory, and resuming after ``kill -9`` (a real subprocess against the replay server)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import chunkeval
from chunkeval.datasets import read_questions
from chunkeval.generate import rejected_path, summarize_file
from chunkeval.generate.cli import add_subparser, main
from test_generate_http import CORPORA, DATA, REPLIES, SECRET, ReplayServer, Reply, scripted

CORPUS_DIR = DATA / "corpora"


def cli(server: ReplayServer, out: Path, *extra: str) -> int:
    return main([str(CORPUS_DIR), "--out", str(out), "--base-url", server.url, "--model", "replay-model",
                 "--no-filters", "--quiet", "--timeout", "2", "--max-retries", "1", "--backoff-base", "0.01",
                 "--concurrency", "1", *extra])


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("chunkeval generate: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "CORPUS_DIR is missing"),
        (["{corpus}"], "--out is missing"),
        (
            ["{tmp}/nowhere", "--out", "{tmp}/q.jsonl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
            "does not exist",
        ),
        (
            ["{corpus}", "--out", "{tmp}/q.csv", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--no-filters"],
            "must be a .jsonl file",
        ),
        (["{corpus}", "--out", "{tmp}/q.jsonl", "--model", "m"], "base_url is not set"),
        (
            [
                "{corpus}",
                "--out",
                "{tmp}/q.jsonl",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--prompt-file",
                "{tmp}/missing.txt",
            ],
            "prompt_file",
        ),
        (
            [
                "{corpus}",
                "--out",
                "{tmp}/q.jsonl",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--corpora",
                "nope",
            ],
            "unknown corpus id",
        ),
        (
            [
                "{corpus}",
                "--out",
                "{tmp}/q.jsonl",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--dup-threshold",
                "2",
            ],
            "duplicate_threshold is a cosine",
        ),
        (["{corpus}", "--out", "{tmp}/q.jsonl", "--local-model", "{tmp}"], "has no config.json"),
        (["--stats", "{tmp}/none.jsonl"], "does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHUNKEVAL_LLM_BASE_URL", raising=False)
    argv = [a.replace("{corpus}", str(CORPUS_DIR)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert expected in one_error_line(capsys.readouterr().err)


def test_registers_on_the_main_parser() -> None:
    parser = argparse.ArgumentParser(prog="chunkeval")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", "corpora", "--out", "q.jsonl", "--per-corpus", "3", "--approximate"])
    assert args.command == "generate" and args.per_corpus == 3 and args.approximate and callable(args.handler)
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "corpora", "--per-corpus", "0"])


def test_run_stats_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted("good_plain", "hallucinated", "think_block")) as server:
        assert cli(server, out, "--corpora", "lighthouse", "--per-corpus", "2") == 0
    printed = capsys.readouterr().out
    assert "2 new questions" in printed and "excerpt_not_found 1" in printed

    assert main(["--stats", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(summarize_file(out)))
    assert main(["--stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "2 questions" in text and "match kinds: exact_window 2" in text and "rejected: 1 (excerpt_not_found 1)" in text
    )

    records = read_questions(out)
    for suffix in (".csv", ".parquet"):
        target = tmp_path / f"q{suffix}"
        assert main(["--convert", str(out), str(target)]) == 0
        assert read_questions(target) == records
    # The CSV is the reference toolkit's: question, references (JSON), corpus_id.
    import csv

    with open(tmp_path / "q.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [json.loads(r["references"]) for r in rows] == [r["references"] for r in records]
    assert [r["corpus_id"] for r in rows] == ["lighthouse", "lighthouse"]


def test_stopping_early_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ReplayServer(lambda body, i: Reply(status=404)) as server:
        assert cli(server, tmp_path / "q.jsonl") == 1
    assert "stopped early (backend_error)" in capsys.readouterr().err


def test_budget_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ReplayServer(scripted("good_plain")) as server:
        assert cli(server, tmp_path / "q.jsonl", "--max-requests", "1") == 0
    assert "stopped early (budget)" in capsys.readouterr().err


def test_the_api_key_is_never_written_or_logged(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHUNKEVAL_LLM_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "q.jsonl"
    script: list[str | Reply] = ["good_plain", "malformed", Reply(status=500, echo_authorization=True), "think_block"]
    with ReplayServer(scripted(*script)) as server:
        assert cli(server, out, "--corpora", "lighthouse", "--per-corpus", "2") == 0
    assert all(r["headers"]["Authorization"] == f"Bearer {SECRET}" for r in server.requests)  # it was used
    with ReplayServer(lambda body, i: Reply(status=401, echo_authorization=True)) as server:
        assert cli(server, tmp_path / "q2.jsonl") == 1
    with ReplayServer(lambda body, i: Reply(status=503, echo_authorization=True)) as server:
        assert cli(server, tmp_path / "q3.jsonl") == 1
    captured = capsys.readouterr()
    assert "Bearer ***" in captured.err  # the echoed header reached the message, scrubbed
    written = "".join(p.read_text(encoding="utf-8") for p in tmp_path.iterdir() if p.is_file())
    assert "SECRET" in SECRET and len(read_questions(out)) == 2
    for where in (written, captured.out, captured.err, caplog.text):
        assert SECRET not in where


def _python_path() -> str:
    source = str(Path(chunkeval.__file__).resolve().parent.parent)
    return os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


def test_resume_after_kill_9(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    items = {"lighthouse": REPLIES["sequence_lighthouse"], "bakery": REPLIES["sequence_bakery"]}
    served: Counter[str] = Counter()

    def responder(body: dict[str, Any], index: int) -> Reply:
        corpus = "lighthouse" if "Harwick" in body["messages"][-1]["content"] else "bakery"
        entry = items[corpus][served[corpus] % len(items[corpus])]
        served[corpus] += 1
        return Reply(fixture=entry, delay=0.15)

    env = dict(os.environ, PYTHONPATH=_python_path(), CHUNKEVAL_LLM_API_KEY=SECRET, CHUNKEVAL_PROGRESS="0")
    with ReplayServer(responder) as server:
        command = [sys.executable, "-m", "chunkeval.generate.cli", str(CORPUS_DIR), "--out", str(out),
                   "--base-url", server.url, "--model", "replay-model", "--per-corpus", "6", "--concurrency", "2",
                   "--no-filters", "--quiet", "--timeout", "5"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.01)
        process.kill()  # SIGKILL: no cleanup, no flush
        _, first_err = process.communicate(timeout=10)
        written_before = out.read_bytes().count(b"\n")
        assert 3 <= written_before < 12, first_err.decode()
        # A write torn by the kill, as it would look on disk.
        with open(out, "ab") as handle:
            handle.write(b'{"question_id": "bakery:s0:a9", "question": "How many')
        second = subprocess.run(command, env=env, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]  # every line valid JSON
    assert Counter(r["corpus_id"] for r in records) == {"lighthouse": 6, "bakery": 6}
    assert len({(r["corpus_id"], r["question"]) for r in records}) == 12
    assert len({r["question_id"] for r in records}) == 12
    attempts = [(r["corpus_id"], r["provenance"]["attempt"]) for r in records]
    attempts += (
        [
            (r["corpus_id"], r["attempt"])
            for r in (json.loads(x) for x in rejected_path(out).read_text().splitlines() if x)
        ]
        if rejected_path(out).exists()
        else []
    )
    assert len(attempts) == len(set(attempts))  # no attempt made twice
    for r in records:
        corpus = CORPORA[r["corpus_id"]]
        assert all(corpus[x["start_index"]:x["end_index"]] == x["content"] for x in r["references"])
    for text in (out.read_text(encoding="utf-8"), first_err.decode(), second.stdout.decode(), second.stderr.decode()):
        assert SECRET not in text
    assert "dropped an incomplete last line" in second.stdout.decode()
