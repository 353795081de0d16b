"""Structured output: the JSON schema goes out as ``response_format``; a server that refuses it gets
free text from then on; each question records which path it took. Against the loopback server."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from chunkeval.datasets import read_questions
from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.runner import rejected_path
from test_generate_cli import cli
from test_generate_http import CORPORA, REPLIES, ReplayServer, Reply

NO_FILTERS = FilterSettings(use_embeddings=False)

EXACT_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "chunkeval_question",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "question": {"type": "string"},
                "references": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
            },
            "required": ["question", "references"],
            "additionalProperties": False,
        },
    },
}


def schema_following(request: dict[str, Any], index: int) -> Reply:
    """Answer as a constrained decoder would: exactly the schema's keys, quoting sentence ``index``
    of the document in the prompt (approximate mode: citing piece ``index``)."""
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["question", "references"] and not schema["additionalProperties"]
    document = re.search(r"<document>\n(.*)\n</document>", request["messages"][-1]["content"], re.DOTALL)
    assert document is not None
    if schema["properties"]["references"]["items"]["type"] == "object":
        answer: dict[str, Any] = {"question": f"What does piece {index} say?",
                                  "references": [{"start_piece": index, "end_piece": index}]}
    else:
        sentences = re.split(r"(?<=\.)\s+", document.group(1).split("\n", 1)[1].strip())
        answer = {"question": f"What does sentence {index} say?", "references": [sentences[index]]}
    return Reply(fixture={"content": json.dumps(answer), "usage": {"prompt_tokens": 9, "total_tokens": 12}})


def refusing(status: int) -> Any:
    """A server without structured output: ``response_format`` gets ``status``, free text is served."""
    sequence = REPLIES["sequence_lighthouse"]
    served = [0]

    def responder(request: dict[str, Any], index: int) -> Reply:
        if "response_format" in request:
            return Reply(status=status, body=json.dumps({"error": {"message": "response_format is not supported"}}))
        served[0] += 1
        return Reply(fixture=sequence[served[0] - 1])

    return responder


def run(server: ReplayServer, out: Path, corpus: str = "lighthouse", **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1, backoff_base=0.01)
    return generate_questions(
        {corpus: CORPORA[corpus]}, out, backend, GenerationSettings(**settings), show_progress=False
    )


def test_the_schema_is_sent_and_each_question_records_the_structured_path(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(schema_following) as server:
        report = run(server, out, per_corpus=3)
    assert report.stop_reason == "done" and not report.rejected
    assert [r["body"]["response_format"] for r in server.requests] == [EXACT_FORMAT] * 3
    text = CORPORA["lighthouse"]
    records = read_questions(out)
    assert [r["question"] for r in records] == [f"What does sentence {i} say?" for i in range(3)]
    assert [r["provenance"]["output_path"] for r in records] == ["structured"] * 3
    first = records[0]["references"][0]
    assert text[first["start_index"]:first["end_index"]] == first["content"]
    assert first["content"] == ("The Harwick Point Light was built in 1872 on a granite ledge at the mouth of the "
                                "Tamsin estuary.")


def test_approximate_mode_sends_the_piece_schema(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(schema_following) as server:
        report = run(server, out, corpus="bakery", per_corpus=1, approximate=True, filters=FilterSettings(
            use_embeddings=False, max_references=2))
    assert report.stop_reason == "done"
    piece = {"type": "integer", "minimum": 0}
    assert server.requests[0]["body"]["response_format"]["json_schema"]["schema"]["properties"]["references"] == {
        "type": "array", "minItems": 1, "maxItems": 2,
        "items": {"type": "object", "properties": {"start_piece": piece, "end_piece": piece},
                  "required": ["start_piece", "end_piece"], "additionalProperties": False}}
    (record,) = read_questions(out)
    assert record["provenance"]["output_path"] == "structured" and record["provenance"]["mode"] == "approximate"


@pytest.mark.parametrize("status", [400, 422])
def test_a_server_that_refuses_the_schema_gets_free_text_from_then_on(
        status: int, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chunkeval.generate")
    out = tmp_path / "q.jsonl"
    with ReplayServer(refusing(status)) as server:
        report = run(server, out, per_corpus=3)
    assert report.stop_reason == "done" and not report.rejected and report.requests_sent == 4
    assert ["response_format" in r["body"] for r in server.requests] == [True, False, False, False]
    records = read_questions(out)
    # The refused request's attempt was not lost: attempt 0 is the first question.
    assert [r["provenance"]["attempt"] for r in records] == [0, 1, 2]
    assert [r["provenance"]["output_path"] for r in records] == ["free_text"] * 3
    warnings = [r.getMessage() for r in caplog.records if "structured output" in r.getMessage()]
    assert warnings == [f"the server refused structured output; asking for free text from now on ({server.url}"
                        f"/chat/completions refused response_format (HTTP {status}): "
                        '{"error": {"message": "response_format is not supported"}})']


def test_structured_output_can_be_turned_off(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(refusing(400)) as server:
        report = run(server, out, per_corpus=2, structured_output=False)
    assert report.stop_reason == "done" and len(server.requests) == 2
    assert not any("response_format" in r["body"] for r in server.requests)
    assert [r["provenance"]["output_path"] for r in read_questions(out)] == ["free_text"] * 2


def test_rejections_record_the_path_too(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    replies = [Reply(fixture="hallucinated"), Reply(fixture="good_plain")]
    with ReplayServer(lambda request, index: replies[index]) as server:
        report = run(server, out, per_corpus=1)
    assert report.rejected == {"excerpt_not_found": 1}
    (rejected,) = [json.loads(line) for line in rejected_path(out).read_text(encoding="utf-8").splitlines()]
    assert rejected["output_path"] == "structured"


def test_a_400_without_a_schema_still_stops_the_run(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(lambda request, index: Reply(status=400)) as server:
        report = run(server, out, per_corpus=2)
    assert report.stop_reason == "backend_error" and len(server.requests) == 2  # schema refused, then free text
    assert (
        report.message == f"{server.url}/chat/completions answered HTTP 400: " + '{"error": {"message": "status 400"}}'
    )


def test_the_cli_flag(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(refusing(400)) as server:
        assert cli(server, out, "--corpora", "lighthouse", "--per-corpus", "1", "--no-structured-output") == 0
    assert len(server.requests) == 1 and "response_format" not in server.requests[0]["body"]
