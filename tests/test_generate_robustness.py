"""Replies no well-behaved server sends, against the real loopback replay server: each one is a
counted, rejected attempt with its reason, the run goes on, and an API key a server reflects back
reaches no file and no log. Ends with the fuzzing run of issue 11: 1,000 random JSON shapes."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chunkeval.datasets import read_questions
from chunkeval.generate import (
    Budget,
    ChatResult,
    FilterSettings,
    GenerationSettings,
    OpenAICompatibleBackend,
    generate_questions,
)
from chunkeval.generate.backends import MalformedReply
from chunkeval.generate.runner import rejected_path
from test_generate_cli import cli
from test_generate_http import CORPORA, REFLECT, REPLIES, SECRET, ReplayServer, Reply, scripted

NO_FILTERS = FilterSettings(use_embeddings=False)
GOOD = REPLIES["good_plain"]
HUGE = "7" * 4301  # one digit past Python's default int conversion limit (sys.get_int_max_str_digits)
DEEP = "[" * 100_000 + "]" * 100_000


def body(choices: Any = None, usage: Any = None, model: Any = "replay-model", **message: Any) -> str:
    """A chat-completions body with the given parts (a raw string for what JSON cannot say)."""
    data: dict[str, Any] = {"id": "x", "object": "chat.completion", "model": model}
    if choices is None:
        data["choices"] = [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}]
    else:
        data["choices"] = choices
    if usage is not None:
        data["usage"] = usage
    return json.dumps(data)


# (body, the rejection detail, which the backend raises as MalformedReply)
MALFORMED = [
    (body(choices=["x"]), "choices[0] must be an object, got string 'x'"),
    (body(choices=[{"message": "hello"}]), "choices[0].message must be an object, got string 'hello'"),
    (
        body(content={"question": "q"}),
        "message.content must be a string or a list of text parts, got object {'question': 'q'}",
    ),
    (body(content=7), "message.content must be a string or a list of text parts, got number 7"),
    (body(content=GOOD["content"], usage="lots"), "'usage' must be an object of token counts, got string 'lots'"),
    (
        body(content=[{"type": "text", "text": 3}]),
        "message.content[0] must be a text part {'text': str}, got object {'type': 'text', 'text': 3}",
    ),
    (body(choices=[]), "'choices' must be a non-empty array, got array []"),
    ("[1, 2]", "the reply must be a JSON object, got array [1, 2]"),
    (DEEP, "the reply body nests deeper than Python's recursion limit"),
    (
        '{"choices": ' + HUGE + "}",
        "the reply body cannot be decoded (Exceeds the limit (4300 digits) for integer string conversion",
    ),
    ("<html>bad gateway</html>", "the reply body is not JSON (Expecting value at character 0)"),
]


def backend(server: ReplayServer, **kwargs: Any) -> OpenAICompatibleBackend:
    options: dict[str, Any] = dict(
        model="replay-model", timeout=5.0, max_retries=2, backoff_base=0.01, backoff_max=0.02
    )
    options.update(kwargs)
    return OpenAICompatibleBackend(server.url, **options)


def run(server: ReplayServer, out: Path, corpora: dict[str, str] | None = None, budget: Budget | None = None,
        api_key: str | None = None, **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    return generate_questions(corpora or {"lighthouse": CORPORA["lighthouse"]}, out,
                              backend(server, budget=budget, api_key=api_key), GenerationSettings(**settings),
                              show_progress=False)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("raw, detail", MALFORMED, ids=range(len(MALFORMED)))
def test_the_backend_reads_a_malformed_reply_as_one_malformed_reply(raw: str, detail: str) -> None:
    with ReplayServer(scripted(Reply(body=raw), "good_plain")) as server:
        client = backend(server)

        async def once() -> None:
            try:
                await client.complete([{"role": "user", "content": "q"}], temperature=0.0)
            finally:
                await client.aclose()

        with pytest.raises(MalformedReply) as info:
            asyncio.run(once())
    assert info.value.detail.startswith(detail)
    assert info.value.raw == raw[:2000]
    assert len(server.requests) == 1  # a 200 reply is the server's answer: not retried


def test_each_malformed_reply_is_a_counted_rejection_and_the_run_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    script = [Reply(body=raw) for raw, _ in MALFORMED] + ["good_plain"]
    with ReplayServer(scripted(*script)) as server:
        report = run(server, out, per_corpus=1)
    assert report.stop_reason == "done" and report.accepted == {"lighthouse": 1}
    assert report.rejected == {"malformed_reply": len(MALFORMED)} and report.failed_requests == 0
    rejected = lines(rejected_path(out))
    assert [r["attempt"] for r in rejected] == list(range(len(MALFORMED)))
    assert all(r["reason"] == "malformed_reply" for r in rejected)
    for record, (raw, detail) in zip(rejected, MALFORMED, strict=True):
        assert record["detail"].startswith(detail)
        assert record["reply"] == raw[:2000] and record["usage"] == {} and record["latency_s"] is None
    (question,) = read_questions(out)
    assert question["provenance"]["attempt"] == len(MALFORMED)
    # A rerun makes none of them again: each rejection is a recorded attempt.
    with ReplayServer(scripted("think_block")) as server:
        rerun = run(server, out, per_corpus=2)
    assert rerun.stop_reason == "done" and not rerun.rejected and len(server.requests) == 1
    assert read_questions(out)[1]["provenance"]["attempt"] == len(MALFORMED) + 1


def content_reply(text: str) -> Reply:
    return Reply(fixture={"content": text, "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})


def test_content_that_defeats_the_json_decoder_is_rejected(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    answer = json.loads(GOOD["content"])
    deep = '{"question": "q", "references": ' + "[" * 50_000 + "]" * 50_000 + "}"
    huge = '{"question": "How many?", "references": ["x"], "count": ' + HUGE + "}"
    script = [content_reply(deep), content_reply(huge), content_reply(json.dumps(answer))]
    with ReplayServer(scripted(*script)) as server:
        report = run(server, out, per_corpus=1)
    assert report.stop_reason == "done" and report.rejected == {"malformed_json": 2}
    details = [r["detail"] for r in lines(rejected_path(out))]
    assert details == [
        "the reply's JSON nests deeper than Python's recursion limit",
        "the reply's JSON cannot be decoded (Exceeds the limit (4300 digits) for integer string conversion)",
    ]


def test_piece_ids_int_cannot_convert_are_schema_rejections(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    good = REPLIES["approximate"]["content"]
    script = [content_reply('{"question": "q?", "references": [{"start_piece": "²", "end_piece": "2"}]}'),
              content_reply('{"question": "q?", "references": [["1' + "0" * 30 + '", 2]]}'),
              content_reply('{"question": "q?", "references": [[' + "1" + "0" * 30 + ", 2]]}"),
              content_reply(good)]
    with ReplayServer(scripted(*script)) as server:
        report = run(server, out, corpora={"bakery": CORPORA["bakery"]}, per_corpus=1, approximate=True)
    assert report.stop_reason == "done" and report.rejected == {"schema": 3}
    assert [r["detail"] for r in lines(rejected_path(out))] == [
        "reference 0 start_piece must be an integer piece id, got '²'",
        "reference 0 start_piece must be an integer piece id, got '1000000000000000000000000000000'",
        "reference 0 start_piece must be an integer piece id, got a 100-bit number",
    ]


def test_a_4300_digit_number_no_longer_ends_the_command_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.jsonl"
    huge = '{"question": "How many?", "references": [' + HUGE + "]}"
    with ReplayServer(scripted(content_reply(huge), Reply(body='{"x": ' + HUGE + "}"), "good_plain")) as server:
        assert cli(server, out, "--corpora", "lighthouse", "--per-corpus", "1") == 0
    captured = capsys.readouterr()
    assert "1 new questions" in captured.out and "2 rejected (malformed_json 1, malformed_reply 1)" in captured.out
    assert "error" not in captured.err


def test_lone_surrogates_in_a_reply_are_written_as_valid_utf8(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    answer = json.loads(GOOD["content"])
    # On the wire both are ASCII escapes; decoded, each is a lone surrogate UTF-8 cannot encode.
    in_body = Reply(body=body(content="Why \ud800?"))
    in_answer = content_reply(
        json.dumps({"question": "Odd \udfff " + answer["question"], "references": answer["references"]})
    )
    with ReplayServer(scripted(in_body, in_answer)) as server:
        report = run(server, out, per_corpus=1)
    assert report.stop_reason == "done" and report.rejected == {"no_json": 1}
    (record,) = lines(rejected_path(out))
    assert record["reply"] == "Why \ufffd?"
    assert read_questions(out)[0]["question"] == "Odd \ufffd " + answer["question"]


# -- a server that reflects the Authorization header ----------------------------------------------

def reflecting_script() -> list[Reply]:
    answer = json.loads(GOOD["content"])
    padded = "x" * 1990 + REFLECT  # the key straddles the 2,000-character cut of the kept reply
    return [
        content_reply(json.dumps({"question": f"What is {REFLECT}?", "references": answer["references"]})),
        content_reply(f"I cannot help; your header was {REFLECT}"),
        content_reply(padded),
        Reply(body=body(content=GOOD["content"], usage=REFLECT)),
        Reply(body=body(choices=[REFLECT])),
        Reply(body=body(content={"auth": REFLECT})),
        Reply(body=REFLECT + " <html>"),
        Reply(body='{"choices": ' + HUGE + ', "echo": "' + REFLECT + '"}'),
        Reply(body=body(content="", reasoning_content=f"<think>the key is {REFLECT}")),
        Reply(body=body(content=json.dumps({"question": "Which?", "references": [REFLECT]}))),
        Reply(body=body(content=GOOD["content"], model=REFLECT)),  # accepted: the reported model is scrubbed
    ]


def test_a_reflected_key_reaches_no_file_and_no_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chunkeval.generate")
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted(*reflecting_script())) as server:
        report = run(server, out, per_corpus=1, api_key=SECRET, max_attempts_per_corpus=20)
    assert all(r["headers"]["Authorization"] == f"Bearer {SECRET}" for r in server.requests)
    assert report.stop_reason == "done" and report.accepted == {"lighthouse": 1}
    assert report.rejected == {"reflected_secret": 1, "no_json": 2, "malformed_reply": 5, "unfinished_reasoning": 1,
                               "excerpt_not_found": 1}
    rejected = lines(rejected_path(out))
    assert rejected[0]["detail"] == "the question holds the API key (the server reflected it)"
    assert rejected[1]["reply"] == "I cannot help; your header was Bearer ***"
    assert rejected[2]["reply"] == "x" * 1990 + "Bearer ***"
    assert rejected[4]["detail"] == "choices[0] must be an object, got string 'Bearer ***'"
    (question,) = read_questions(out)
    assert question["provenance"]["reported_model"] == "Bearer ***"
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert SECRET.encode() not in written and SECRET not in caplog.text
    assert b"Bearer ***" in written


# -- the fuzzing server of issue 11 ----------------------------------------------------------------

KEYS = ["question", "references", "choices", "message", "content", "usage", "model", "text", "start_piece", "x"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 4 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice([0, -1, 7, 2**63, 10**40, 1.5, -0.0, 1e308])
    if pick in (3, 4, 5):
        return rng.choice(["", "x", REFLECT, "The tower is 27 metres tall", "\ud800", "{", "<think>", "é" * 5])
    if pick in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_part(rng: random.Random, good: list[dict[str, Any]]) -> Reply:
    part = rng.choice(["choices", "message", "usage", "model"])
    if part == "choices":
        return Reply(body=body(choices=random_value(rng)))
    if part == "message":
        return Reply(body=body(choices=[{"message": random_value(rng)}]))
    if part == "usage":
        return Reply(body=body(content=good[0]["content"], usage=random_value(rng)))
    return Reply(body=body(content=good[-1]["content"], model=random_value(rng)))


def reflected(rng: random.Random, good: list[dict[str, Any]]) -> Reply:
    where = rng.choice(["content", "reasoning", "finish"])
    if where == "content":
        return content_reply(f"header: {REFLECT} " + "y" * rng.randrange(2500))
    if where == "reasoning":
        return Reply(body=body(content=None, reasoning_content=f"<think>{REFLECT}"))
    return Reply(body=json.dumps({"model": "m", "choices": [{"message": {"content": good[0]["content"]},
                                                              "finish_reason": REFLECT}]}))


def fuzz_reply(index: int, prompt: str) -> Reply:
    """Request ``index``'s reply: a deterministic draw of one of the shapes a broken server sends."""
    rng = random.Random(index)
    corpus = "lighthouse" if "Harwick" in prompt else "bakery"
    good = REPLIES[f"sequence_{corpus}"]
    shape = rng.randrange(12)
    if shape == 0:  # a good answer (repeats become duplicate rejections)
        return Reply(fixture=good[rng.randrange(len(good))])
    if shape == 1:  # a good answer whose question carries the reflected key
        answer = json.loads(good[0]["content"])
        answer["question"] += f" ({REFLECT})"
        return content_reply(json.dumps(answer))
    if shape == 2:  # content: random JSON text, sometimes with the answer's keys
        return content_reply(json.dumps(random_value(rng)))
    if shape == 3:  # content of a random type
        return Reply(body=body(content=random_value(rng)))
    if shape == 4:  # a random top-level body
        return Reply(body=json.dumps(random_value(rng)))
    if shape == 5:  # random choices / message / usage / model
        return random_part(rng, good)
    if shape == 6:  # nested past the recursion limit, in the body or in the content
        depth = rng.randrange(2_000, 20_000)
        nest = "[" * depth + "]" * depth
        return Reply(body=nest) if rng.random() < 0.5 else content_reply('{"question": ' + nest + "}")
    if shape == 7:  # a number too long to convert, in the body or in the content
        digits = "9" * rng.randrange(4301, 6000)
        return Reply(body='{"choices": ' + digits + "}") if rng.random() < 0.5 else content_reply(
            '{"question": "q", "references": [' + digits + "]}")
    if shape == 8:  # the key reflected into free text, reasoning or finish_reason
        return reflected(rng, good)
    if shape == 9:  # content parts, some of them broken
        return Reply(body=body(content=[random_value(rng), {"type": "text", "text": good[0]["content"]}]))
    if shape == 10:  # not JSON at all
        return Reply(body=rng.choice(["", "<html>", "{", "null", REFLECT, '{"choices": [{"message": {"content": "x"}']))
    answer = {"question": random_value(rng), "references": random_value(rng)}  # answer-shaped, random types
    return content_reply(json.dumps(answer))


def test_a_fuzzing_server_never_aborts_the_run_and_never_gets_the_key_on_disk(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chunkeval.generate")
    out = tmp_path / "q.jsonl"
    with ReplayServer(lambda request, index: fuzz_reply(index, request["messages"][-1]["content"])) as server:
        report = run(server, out, corpora={"lighthouse": CORPORA["lighthouse"], "bakery": CORPORA["bakery"]},
                     budget=Budget(max_requests=1000), api_key=SECRET, per_corpus=1000, concurrency=32)
    assert len(server.requests) == 1000 and report.requests_sent == 1000
    assert report.stop_reason == "budget" and report.failed_requests == 0
    accepted, rejected = sum(report.accepted.values()), sum(report.rejected.values())
    assert accepted + rejected == 1000  # every request: an accepted question or a counted rejection
    assert "unprocessable_reply" not in report.rejected  # no path the checks did not foresee
    assert {"malformed_reply", "malformed_json", "schema", "no_json", "reflected_secret", "duplicate_question",
            "unfinished_reasoning"} <= set(report.rejected)
    questions = lines(out)
    assert len(questions) == accepted and Counter(q["corpus_id"] for q in questions) == report.accepted
    assert Counter(r["reason"] for r in lines(rejected_path(out))) == report.rejected
    for record in questions:
        corpus = CORPORA[record["corpus_id"]]
        assert all(corpus[r["start_index"]:r["end_index"]] == r["content"] for r in record["references"])
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert SECRET.encode() not in written and SECRET not in caplog.text


class OddBackend:
    """A third-party backend (the ChatBackend protocol, no HTTP) whose replies have the wrong types."""

    name = "odd"

    def __init__(self, results: list[Any]) -> None:
        self.results = results

    async def complete(self, messages: Any, *, temperature: float, seed: int | None = None) -> Any:
        return self.results.pop(0)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": "odd"}

    async def aclose(self) -> None:
        return None


def test_a_backend_returning_the_wrong_types_is_rejected_not_fatal(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    results: list[Any] = [{"text": "x"}, ChatResult(text=7), ChatResult(text="", reasoning=3),  # type: ignore[arg-type]
                          ChatResult(text="x", usage={"prompt_tokens": "many"}),  # type: ignore[dict-item]
                          ChatResult(text=GOOD["content"])]
    settings = GenerationSettings(per_corpus=1, concurrency=1, filters=NO_FILTERS)
    report = generate_questions({"lighthouse": CORPORA["lighthouse"]}, out, OddBackend(results), settings,
                                show_progress=False)
    assert report.stop_reason == "done" and report.rejected == {"malformed_reply": 4}
    assert [r["detail"] for r in lines(rejected_path(out))] == [
        "the backend returned dict, not a ChatResult",
        "the backend's reply text is int, not a string",
        "the backend's reasoning is int, not a string or None",
        "the backend's usage is not a mapping of token counts",
    ]
    # The grounding check's reply is checked the same way.
    verify_out = tmp_path / "v.jsonl"
    results = [ChatResult(text=GOOD["content"]), ChatResult(text=None),  # type: ignore[arg-type]
               ChatResult(text=GOOD["content"]), ChatResult(text='{"verdict": "yes", "reason": "ok"}')]
    settings = GenerationSettings(per_corpus=1, concurrency=1, filters=NO_FILTERS, verify=True)
    report = generate_questions({"lighthouse": CORPORA["lighthouse"]}, verify_out, OddBackend(results), settings,
                                show_progress=False)
    assert report.stop_reason == "done" and report.rejected == {"verify_malformed_reply": 1}
