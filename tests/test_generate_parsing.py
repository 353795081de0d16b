"""Reply parsing (reasoning, fences, chatter, schema) and prompt templates."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from chunkeval.generate.parsing import AnswerError, ParsedAnswer, extract_json_object, parse_answer, strip_reasoning
from chunkeval.generate.prompts import PROMPT_VERSION, default_template, load_template
from test_generate_http import REPLIES

EXPECTED = {
    "good_plain": ("In what year was the Harwick Point Light automated?", 1),
    "think_block": ("How tall is the Harwick Point Light tower?", 1),
    "orphan_close": ("What changes were made to the Harwick Point Light's power source in the twentieth century?", 2),
    "fenced_chatter": ("What can visitors see in the Harwick Point museum?", 1),
    "reasoning_field": ("Who was the first keeper of the Harwick Point Light, and how long did he keep a log?", 1),
    "hallucinated": ("When did the Harwick Point Light get a radar station?", 1),
    "too_many": ("What is known about the history of the Harwick Point Light?", 6),
    "normalized": ("What is the Ostrava Street Bakery's sourdough starter called, and since when has it been fed?", 1),
    "fuzzy": ("How long and at what temperature is each loaf proofed?", 1),
    "overlapping": ("Why did the bakery change flour suppliers, and where does its flour come from?", 2),
}
FAILING = {"unclosed_think": "unfinished_reasoning", "malformed": "malformed_json", "missing_field": "schema"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_replies_parse(name: str) -> None:
    answer = parse_answer(REPLIES[name]["content"])
    assert (answer.question, len(answer.excerpts)) == EXPECTED[name]
    assert answer.piece_ranges == ()


@pytest.mark.parametrize("name", sorted(FAILING))
def test_fixture_replies_that_fail(name: str) -> None:
    with pytest.raises(AnswerError) as info:
        parse_answer(REPLIES[name]["content"])
    assert info.value.reason == FAILING[name]


def test_json_inside_reasoning_is_ignored() -> None:
    answer = parse_answer(REPLIES["think_block"]["content"])
    assert answer.excerpts[0].startswith("The tower is 27 metres tall")  # not the draft inside <think>


def test_strip_reasoning_forms() -> None:
    assert strip_reasoning("<think>a</think>\n{x}") == ("{x}", "a")
    assert strip_reasoning("<think>a</think>b<think>c</think>d") == ("bd", "a\nc")
    assert strip_reasoning("thinking without an opening tag</think> answer") == (
        "answer",
        "thinking without an opening tag",
    )
    assert strip_reasoning("  <think>cut off mid-thought") == ("", "cut off mid-thought")
    assert strip_reasoning("plain answer") == ("plain answer", "")
    assert strip_reasoning("<THINK>upper</THINK>{}") == ("{}", "upper")


def test_an_answer_written_inside_an_unclosed_think_is_found() -> None:
    reply = (
        '<think>\nI will ask about the lamp.\n{"question": "When was the lamp replaced?", "references": ["in 1931"]}'
    )
    assert parse_answer(reply) == ParsedAnswer("When was the lamp replaced?", ("in 1931",))


def test_the_last_object_with_a_question_wins_and_fences_first() -> None:
    text = ('Example: {"a": 1}. Answer: {"question": "Q1?", "references": ["x"]} or '
            '{"question": "Q2?", "references": ["y"]} {"b": 2}')
    assert extract_json_object(text) == {"question": "Q2?", "references": ["y"]}
    fenced = 'Draft {"question": "no", "references": ["n"]}\n```\n{"question": "yes", "references": ["y"]}\n```'
    assert extract_json_object(fenced)["question"] == "yes"
    nested = '{"question": "outer", "references": [{"content": "c"}]}'
    assert parse_answer(nested).excerpts == ("c",)


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("", "empty_reply"),
        ("   ", "empty_reply"),
        ("I cannot help with that.", "no_json"),
        ('["just", "a", "list"]', "no_json"),
        ("{not json at all}", "malformed_json"),
        ('{"question": "", "references": ["x"]}', "schema"),
        ('{"question": 5, "references": ["x"]}', "schema"),
        ('{"question": "Q?", "references": []}', "schema"),
        ('{"question": "Q?", "references": "x"}', "schema"),
        ('{"question": "Q?", "references": [3]}', "schema"),
        ('{"question": "Q?", "references": ["  "]}', "schema"),
        ('{"references": ["x"]}', "schema"),
        ('{"question": "' + "why " * 300 + '", "references": ["x"]}', "schema"),
    ],
)
def test_bad_replies(reply: str, reason: str) -> None:
    with pytest.raises(AnswerError) as info:
        parse_answer(reply)
    assert info.value.reason == reason


def test_question_whitespace_is_collapsed_and_excerpts_kept_verbatim() -> None:
    answer = parse_answer('{"question": "  What\\n is  it? ", "excerpts": ["  keep   this\\n"]}')
    assert answer == ParsedAnswer("What is it?", ("  keep   this\n",))


def test_approximate_forms() -> None:
    reply = json.dumps(
        {
            "question": "Q?",
            "references": [{"start_piece": 1, "end_piece": 3}, [5, 6], 9, {"start_piece": "10", "end_piece": "11"}],
        }
    )
    assert parse_answer(reply, approximate=True).piece_ranges == ((1, 3), (5, 6), (9, 9), (10, 11))
    for bad in ([{"start_piece": 1}], [{"start_piece": True, "end_piece": 2}], [{"start_piece": 1.5, "end_piece": 2}],
                [["a", "b"]], [[1, 2, 3]]):
        with pytest.raises(AnswerError) as info:
            parse_answer(json.dumps({"question": "Q?", "references": bad}), approximate=True)
        assert info.value.reason == "schema"


def test_default_templates_render() -> None:
    template = default_template()
    assert PROMPT_VERSION == "v1" and template.version == "v1" and not template.is_custom
    messages = template.render("WINDOW TEXT {previous_questions} {max_references}", ["Q one?", "Q two?"], 5)
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert (
        "1 to 5 passages" in system
        and '{"question": "...", "references": ["first passage", "second passage"]}' in system
    )
    # Placeholder-like text inside the corpus window is left alone.
    assert "WINDOW TEXT {previous_questions} {max_references}" in user
    assert "- Q one?\n- Q two?" in user
    assert "(none yet)" in template.render("w", [], 5)[1]["content"]
    approximate = default_template(approximate=True)
    assert '"start_piece"' in approximate.system and approximate.sha256 != template.sha256
    rendered = "".join(m["content"] for m in approximate.render("w", [], 3))
    assert not any(p in rendered for p in ("{window}", "{previous_questions}", "{max_references}"))
    assert "1 to 3 passages" in rendered


def test_custom_template_files(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Only the user part: {window}", encoding="utf-8")
    template = load_template(path)
    assert template.render("W", [], 5) == [{"role": "user", "content": "Only the user part: W"}]
    assert template.version == "custom" and template.is_custom
    assert template.sha256 == hashlib.sha256(b"\n=== user ===\nOnly the user part: {window}").hexdigest()
    path.write_text("no placeholder here", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no \{window\} placeholder"):
        load_template(path)
    path.write_text("a\n=== user ===\nb {window}\n=== user ===\nc", encoding="utf-8")
    with pytest.raises(ValueError, match="appears 2 times"):
        load_template(path)
    path.write_bytes(b"\xff\xfe{window}")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_template(path)
