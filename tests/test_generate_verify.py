"""The ``--verify`` grounding pass against the loopback server: a second request per question whose
verdict and reason land on the question, and whose refusals are recorded rejections."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chunkeval.datasets import read_questions
from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.parsing import AnswerError, parse_verdict
from chunkeval.generate.runner import rejected_path, summarize_file, unanswerable_path
from test_generate_cli import cli
from test_generate_http import CORPORA, REPLIES, ReplayServer, Reply

NO_FILTERS = FilterSettings(use_embeddings=False)
SEQUENCE = REPLIES["sequence_lighthouse"]
CHECK_USAGE = {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}


def verdicts(*replies: str | Reply) -> Any:
    """Generation requests get the lighthouse sequence; check ``i`` (its body kept in ``.checks``)
    gets ``replies[i]`` (a verdict object as JSON text, or a raw Reply); unanswerable prompts get a
    fixed question."""
    state = {"generated": 0, "checked": 0}
    checks: list[dict[str, Any]] = []

    def responder(request: dict[str, Any], index: int) -> Reply:
        system = request["messages"][0]["content"]
        if system.startswith("You check evaluation questions"):
            checks.append(request)
            state["checked"] += 1
            reply = replies[state["checked"] - 1]
            return reply if isinstance(reply, Reply) else Reply(fixture={"content": reply, "usage": CHECK_USAGE})
        if "does NOT answer" in system:
            return Reply(fixture={"content": '{"question": "Who designed the lens?"}', "usage": {"total_tokens": 5}})
        state["generated"] += 1
        return Reply(fixture=SEQUENCE[state["generated"] - 1])

    responder.checks = checks  # type: ignore[attr-defined]
    return responder


def verdict(word: str, reason: str = "ok") -> str:
    return json.dumps({"verdict": word, "reason": reason})


def run(server: ReplayServer, out: Path, **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    settings.setdefault("verify", True)
    backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1, backoff_base=0.01)
    return generate_questions({"lighthouse": CORPORA["lighthouse"]}, out, backend, GenerationSettings(**settings),
                              show_progress=False)


def test_verdicts_are_recorded_and_only_yes_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    responder = verdicts(verdict("yes", "The passage gives the year."), verdict("partial", "Only the height."),
                         "I think so", verdict("YES", "  States   it. "))
    with ReplayServer(responder) as server:
        report = run(server, out, per_corpus=2)
    assert report.stop_reason == "done" and report.requests_sent == 8
    assert report.rejected == {"not_grounded": 1, "verify_unreadable": 1}
    first, second = read_questions(out)
    assert first["question"] == json.loads(SEQUENCE[0]["content"])["question"]
    check = first["provenance"]["verification"]
    assert check["verdict"] == "yes" and check["reason"] == "The passage gives the year."
    assert check["usage"] == CHECK_USAGE and check["output_path"] == "structured" and check["prompt_version"] == "v1"
    assert second["provenance"]["attempt"] == 3 and second["provenance"]["verification"]["reason"] == "States it."
    rejected = [json.loads(line) for line in rejected_path(out).read_text(encoding="utf-8").splitlines()]
    assert [(r["attempt"], r["reason"]) for r in rejected] == [(1, "not_grounded"), (2, "verify_unreadable")]
    assert (
        rejected[0]["detail"]
        == "the grounding check answered 'partial' (a question is kept on 'yes'): Only the height."
    )
    assert rejected[0]["verification"]["verdict"] == "partial"
    assert (
        rejected[1]["detail"] == "the reply holds no JSON object: 'I think so'" and rejected[1]["reply"] == "I think so"
    )
    # The check shows the question and exactly its references, and asks for the verdict schema.
    check_request = responder.checks[0]
    user = check_request["messages"][1]["content"]
    reference = json.loads(SEQUENCE[0]["content"])["references"][0]
    assert user == (f"Question: {first['question']}\n\nPassages:\n<passage n=\"1\">\n{reference}\n</passage>\n\n"
                    "Reply with the JSON object only.")
    assert check_request["response_format"]["json_schema"]["schema"]["properties"]["verdict"] == {
        "type": "string", "enum": ["yes", "partial", "no"]}
    stats = summarize_file(out)
    assert stats["tokens"]["prompt_tokens"] == sum(SEQUENCE[i]["usage"]["prompt_tokens"] for i in (0, 3)) + 2 * 50
    assert (
        stats["tokens_rejected"]["completion_tokens"]
        == sum(SEQUENCE[i]["usage"]["completion_tokens"] for i in (1, 2)) + 2 * 7
    )


def test_an_unanswerable_question_is_kept_on_no(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    responder = verdicts(verdict("yes", "The text names the designer."), verdict("no", "The lens maker is not named."))
    with ReplayServer(responder) as server:
        report = run(server, out, per_corpus=1, mix={"unanswerable": 1.0}, window_chars=4000)
    assert report.rejected == {"not_grounded": 1} and report.accepted_kinds == {"unanswerable": 1}
    (record,) = [json.loads(line) for line in unanswerable_path(out).read_text(encoding="utf-8").splitlines()]
    assert record["provenance"]["verification"]["verdict"] == "no"
    # The check of an unanswerable question shows the whole window it was written from.
    assert f'<passage n="1">\n{CORPORA["lighthouse"]}\n</passage>' in responder.checks[0]["messages"][1]["content"]


def test_a_malformed_check_reply_and_a_duplicate_cost_no_extra_request(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    responder = verdicts(Reply(body='{"choices": ["x"]}'), verdict("yes"))
    with ReplayServer(responder) as server:
        report = run(server, out, per_corpus=1)
    assert report.rejected == {"verify_malformed_reply": 1} and len(responder.checks) == 2
    assert report.stop_reason == "done"


@pytest.mark.parametrize("text, message", [
    ('{"verdict": "maybe"}', r"'verdict' must be one of yes, partial, no, got '\"maybe\"'"),
    ('{"verdict": "yes", "reason": 3}', r"'reason' must be a string, got '3'"),
    ("", r"the reply is empty"),
])
def test_parse_verdict_errors(text: str, message: str) -> None:
    with pytest.raises(AnswerError, match=message) as info:
        parse_verdict(text)
    assert info.value.reason == "verify_unreadable"


def test_parse_verdict_reads_reasoning_replies() -> None:
    assert parse_verdict('<think>hmm</think>{"verdict": "No", "reason": "x"}') == ("no", "x")
    assert parse_verdict('{"verdict": "partial"}') == ("partial", "")


def test_the_cli_flag(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    responder = verdicts(verdict("yes"))
    with ReplayServer(responder) as server:
        assert cli(server, out, "--corpora", "lighthouse", "--per-corpus", "1", "--verify") == 0
    assert len(server.requests) == 2 and re.match("You check", server.requests[1]["body"]["messages"][0]["content"])
