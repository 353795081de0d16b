"""Question kinds: the mix and its quotas, the two distant parts of a multi-span attempt, and runs
that mix single, multi-span and unanswerable questions against the loopback server."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chunkeval.datasets import read_questions
from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.kinds import check_mix, multi_windows, parse_mix, quotas
from chunkeval.generate.runner import rejected_path, summarize_file, unanswerable_path
from test_generate_cli import cli, one_error_line
from test_generate_http import CORPORA, ReplayServer, Reply

NO_FILTERS = FilterSettings(use_embeddings=False)
LIGHTHOUSE = CORPORA["lighthouse"]


def test_parse_mix_normalises_in_kind_order() -> None:
    assert parse_mix("multi=3, single=1") == {"single": 0.25, "multi": 0.75}
    assert parse_mix("single=0.5,multi=0.3,unanswerable=0.2") == {"single": 0.5, "multi": 0.3, "unanswerable": 0.2}
    assert parse_mix("single=1,multi=0") == {"single": 1.0}
    assert parse_mix("cross-document=1,single=3") == {"single": 0.75, "cross": 0.25}


@pytest.mark.parametrize("text, message", [
    ("single=1,wide=1", r"--mix: unknown question kind 'wide'; known: single, multi, cross, unanswerable"),
    ("cross=1,cross-document=1", r"--mix: cross is given twice"),
    ("single", r"--mix: 'single' is not KIND=WEIGHT"),
    ("single=lots", r"--mix: the weight of single is 'lots', not a number"),
    ("single=-1", r"--mix: the weight of single must be a number >= 0, got -1.0"),
    ("single=0,multi=0", r"--mix: the weights sum to 0"),
    ("single=1,single=2", r"--mix: single is given twice"),
])
def test_bad_mixes_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_check_mix_rejects_a_non_mapping() -> None:
    with pytest.raises(ValueError, match="mix must map question kinds to weights"):
        check_mix({})


def test_quotas_by_largest_remainder() -> None:
    assert quotas(10, {"single": 0.5, "multi": 0.3, "unanswerable": 0.2}) == {
        "single": 5,
        "multi": 3,
        "unanswerable": 2,
    }
    third = 1 / 3
    assert quotas(7, {"single": third, "multi": third, "unanswerable": third}) == {
        "single": 3,
        "multi": 2,
        "unanswerable": 2,
    }
    assert quotas(1, {"single": 0.5, "multi": 0.5}) == {"single": 1, "multi": 0}
    assert quotas(4, {"multi": 0.55, "unanswerable": 0.45}) == {"multi": 2, "unanswerable": 2}  # 2.2 / 1.8


def test_multi_windows_are_two_distant_parts() -> None:
    length, window = 10_000, 4000
    (a0, a1), (b0, b1) = multi_windows(length, window, 3, "doc", 7)
    offset = int.from_bytes(hashlib.sha256(b"chunkeval-multi\x003\x00doc").digest()[:8], "little")
    first = (((offset + 7 * 0x9E3779B97F4A7C15) % 2**64) * (10_000 - 6000 + 1)) // 2**64
    digest = hashlib.sha256(b"chunkeval-multi\x003\x00doc\x007").digest()
    second = first + 4000 + int.from_bytes(digest[8:16], "little") % (10_000 - 2000 - (first + 4000) + 1)
    assert (a0, a1, b0, b1) == (first, first + 2000, second, second + 2000)
    for attempt in range(200):
        (a0, a1), (b0, b1) = multi_windows(length, window, 0, "doc", attempt)
        assert a1 - a0 == b1 - b0 == 2000 and b0 - a1 >= 2000 and 0 <= a0 and b1 <= length
    # A short document: thirds.
    assert multi_windows(900, 4000, 0, "doc", 0) == ((0, 300), (600, 900))
    with pytest.raises(ValueError, match=r"corpus 'tiny' has 299 characters, too few for two distant parts"):
        multi_windows(299, 4000, 0, "tiny", 0)


def parts_of(prompt: str) -> list[str]:
    return re.findall(r'<part n="\d">\n(.*?)\n</part>', prompt, re.DOTALL)


def whole_sentences(text: str) -> list[str]:
    """The sentences of the corpus that lie wholly inside ``text``."""
    return [s for s in re.split(r"(?<=\.)\s+", LIGHTHOUSE.split("\n", 1)[1].strip()) if s in text]


def kind_server(request: dict[str, Any], index: int, one_part: bool = False) -> Reply:
    prompt = "\n".join(m["content"] for m in request["messages"])
    if "<part n=" in prompt:
        first, second = parts_of(prompt)
        evidence = whole_sentences(first)[:2] if one_part else [whole_sentences(first)[0], whole_sentences(second)[-1]]
        answer: dict[str, Any] = {"question": f"What links {index}?", "references": evidence}
    elif "does NOT answer" in prompt:
        answer = {"question": f"Who painted the lighthouse in {1900 + index}?"}
    else:
        document = re.search(r"<document>\n(.*)\n</document>", prompt, re.DOTALL)
        assert document is not None
        answer = {"question": f"What happened {index}?", "references": [whole_sentences(document.group(1))[0]]}
    return Reply(fixture={"content": json.dumps(answer), "usage": {"prompt_tokens": 100, "completion_tokens": 20}})


def run(server: ReplayServer, out: Path, **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    settings.setdefault("window_chars", 600)
    backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1, backoff_base=0.01)
    return generate_questions(
        {"lighthouse": LIGHTHOUSE}, out, backend, GenerationSettings(**settings), show_progress=False
    )


def test_a_mixed_run_writes_each_kind_where_it_belongs(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    mix = {"single": 0.4, "multi": 0.4, "unanswerable": 0.2}
    with ReplayServer(kind_server) as server:
        report = run(server, out, per_corpus=5, mix=mix)
    assert report.stop_reason == "done" and not report.rejected and len(server.requests) == 5
    assert report.accepted_kinds == {"single": 2, "multi": 2, "unanswerable": 1}
    records = read_questions(out)
    by_kind = {kind: [r for r in records if r["provenance"]["kind"] == kind] for kind in ("single", "multi")}
    assert [len(v) for v in by_kind.values()] == [2, 2]
    assert sorted(r["question_id"] for r in by_kind["multi"]) == ["lighthouse:s0:multi:a0", "lighthouse:s0:multi:a1"]
    assert sorted(r["question_id"] for r in by_kind["single"]) == ["lighthouse:s0:a0", "lighthouse:s0:a1"]
    for record in by_kind["multi"]:
        windows = record["provenance"]["windows"]
        attempt = record["provenance"]["attempt"]
        assert [(w["start"], w["end"]) for w in windows] == list(
            multi_windows(len(LIGHTHOUSE), 600, 0, "lighthouse", attempt)
        )
        assert len(record["references"]) == 2
        for ref, window in zip(record["references"], windows, strict=True):
            assert window["start"] <= ref["start_index"] < ref["end_index"] <= window["end"]
            assert LIGHTHOUSE[ref["start_index"]:ref["end_index"]] == ref["content"]
    (negative,) = [json.loads(line) for line in unanswerable_path(out).read_text(encoding="utf-8").splitlines()]
    assert negative["references"] == [] and negative["provenance"]["kind"] == "unanswerable"
    assert negative["question_id"] == "lighthouse:s0:unanswerable:a0"
    # One at a time, the kind furthest from its quota goes next: single, multi, single, multi, unanswerable.
    assert negative["question"] == "Who painted the lighthouse in 1904?"
    unanswerable_requests = [r for r in server.requests if "does NOT answer" in r["body"]["messages"][0]["content"]]
    assert [r["body"]["response_format"]["json_schema"]["schema"] for r in unanswerable_requests] == [
        {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"],
         "additionalProperties": False}]
    stats = summarize_file(out)
    assert stats["questions"] == 4 and stats["kinds"] == {"single": 2, "multi": 2, "unanswerable": 1}
    assert stats["unanswerable"] == 1 and stats["references_per_question"] == {1: 2, 2: 2}
    assert stats["tokens"] == {"prompt_tokens": 500, "completion_tokens": 100}


def test_a_multi_answer_from_one_part_is_rejected(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(lambda request, index: kind_server(request, index, one_part=True)) as server:
        report = run(server, out, per_corpus=2, mix={"single": 0.5, "multi": 0.5}, max_attempts_per_corpus=2)
    assert report.stop_reason == "attempt_limit" and report.rejected == {"not_multi_span": 2}
    assert report.accepted_kinds == {"single": 1}
    assert "short: {'lighthouse': ['multi']}" in report.message
    rejected = [json.loads(line) for line in rejected_path(out).read_text(encoding="utf-8").splitlines()]
    assert [(r["kind"], r["attempt"]) for r in rejected] == [("multi", 0), ("multi", 1)]
    second = multi_windows(len(LIGHTHOUSE), 600, 0, "lighthouse", 0)[1]
    assert rejected[0]["detail"] == (f"no reference lies in part 2 [{second[0]}, {second[1]}); a multi-span question "
                                     "needs evidence from both parts")
    assert len(rejected[0]["windows"]) == 2


def test_a_mixed_run_resumes_each_kind_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    mix = {"single": 0.5, "multi": 0.5}
    with ReplayServer(kind_server) as server:
        run(server, out, per_corpus=2, mix=mix)
        report = run(server, out, per_corpus=4, mix=mix)
    assert report.stop_reason == "done" and report.accepted_kinds == {"single": 1, "multi": 1}
    records = read_questions(out)
    assert sorted((r["provenance"]["kind"], r["provenance"]["attempt"]) for r in records) == [
        ("multi", 0), ("multi", 1), ("single", 0), ("single", 1)]
    assert len(server.requests) == 4


def test_kinds_that_cannot_run_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mix: multi-span questions quote two parts and need exact mode"):
        GenerationSettings(approximate=True, mix={"single": 0.5, "multi": 0.5})
    with pytest.raises(ValueError, match=r"mix: cross-document questions quote two documents and need exact mode"):
        GenerationSettings(approximate=True, mix={"single": 0.5, "cross": 0.5})
    backend = OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m")
    with pytest.raises(ValueError, match=r"corpus 'tiny' has 200 characters, too few for two distant parts"):
        generate_questions({"tiny": "x" * 200}, tmp_path / "q.jsonl", backend,
                           GenerationSettings(mix={"multi": 1.0}, filters=NO_FILTERS), show_progress=False)


def test_the_cli_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(kind_server) as server:
        assert cli(server, out, "--corpora", "lighthouse", "--per-corpus", "2", "--window", "600",
                   "--mix", "single=1,unanswerable=1") == 0
        assert "new by kind: single 1, unanswerable 1" in capsys.readouterr().out
        assert cli(server, out, "--corpora", "lighthouse", "--mix", "single=1,cross=1") == 2
    assert ("mix: cross-document questions pair two documents of the corpus set, and only 'lighthouse' is given"
            in one_error_line(capsys.readouterr().err))


def test_a_torn_unanswerable_line_is_dropped_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    mix = {"single": 0.5, "unanswerable": 0.5}
    with ReplayServer(kind_server) as server:
        run(server, out, per_corpus=2, mix=mix)
        with open(unanswerable_path(out), "ab") as handle:
            handle.write(b'{"question_id": "lighthouse:s0:unanswerable:a1", "question": "Who')  # as kill -9 leaves it
        report = run(server, out, per_corpus=4, mix=mix)
    assert report.repaired_bytes == len(b'{"question_id": "lighthouse:s0:unanswerable:a1", "question": "Who')
    assert report.stop_reason == "done" and report.accepted_kinds == {"single": 1, "unanswerable": 1}
    negatives = [json.loads(line) for line in unanswerable_path(out).read_text(encoding="utf-8").splitlines()]
    assert [r["provenance"]["attempt"] for r in negatives] == [0, 1]
    assert len({r["question"] for r in negatives}) == 2
