"""Turn a model's reply into a validated answer: strip reasoning, find the JSON object, check it.

Reasoning models wrap their answer in ``<think>…</think>`` (DeepSeek-R1 and its distills; some
servers drop the opening tag, others stop mid-thought and never close it), chat models add code
fences and chatter. The reply is only ever parsed as JSON, never evaluated. Failures raise
:class:`AnswerError` with a stable ``reason`` that the run counts and the sidecar records.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, only a lone surrogate is one

__all__ = [
    "AnswerError",
    "ParsedAnswer",
    "parse_answer",
    "parse_verdict",
    "VERDICTS",
    "strip_reasoning",
    "extract_json_object",
    "validate_answer",
]

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)

_MAX_PIECE_ID_DIGITS = 18

#: Longest question accepted; a longer one is the model rambling, not a question.
MAX_QUESTION_CHARS = 1000


class AnswerError(ValueError):
    """A reply that cannot become a question. ``reason`` is a short stable code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ParsedAnswer:
    """A schema-valid answer. Exact mode fills ``excerpts``; approximate mode fills ``piece_ranges``."""

    question: str
    excerpts: tuple[str, ...] = ()
    piece_ranges: tuple[tuple[int, int], ...] = ()

    @property
    def n_references(self) -> int:
        return len(self.excerpts) or len(self.piece_ranges)


def strip_reasoning(text: str) -> tuple[str, str]:
    """Split a reply into ``(answer, reasoning)``.

    Closed ``<think>`` blocks are removed wherever they are; an orphan ``</think>`` (the server put
    the opening tag in the prompt) ends the reasoning; an unclosed ``<think>`` at the start (the
    model ran out of tokens mid-thought) makes the whole rest reasoning, but the answer is then
    searched for inside it too, since some models write their final JSON before closing the tag.
    """
    reasoning_parts = [m.group(0)[7:-8] for m in _THINK_BLOCK.finditer(text)]
    answer = _THINK_BLOCK.sub("", text)
    lower = answer.lower()
    close = lower.rfind("</think>")
    if close != -1:
        reasoning_parts.append(answer[:close].replace("<think>", "").replace("<THINK>", ""))
        answer = answer[close + len("</think>"):]
    else:
        stripped = answer.lstrip()
        if stripped.lower().startswith("<think>"):
            reasoning_parts.append(stripped[len("<think>"):])
            answer = ""
    return answer.strip(), "\n".join(p.strip() for p in reasoning_parts if p.strip())


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in ``text``, in order (objects nested in others are skipped)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        except RecursionError:
            # Every later "{" is inside the same nest: trying each would only repeat the failure.
            raise AnswerError("malformed_json", "the reply's JSON nests deeper than Python's recursion limit") from None
        except ValueError as exc:  # a number past sys.get_int_max_str_digits(): not a model's answer
            raise AnswerError("malformed_json", f"the reply's JSON cannot be decoded ({_first_clause(exc)})") from None
        if isinstance(value, dict):
            found.append(value)
        position = text.find("{", end)
    return found


def extract_json_object(text: str) -> dict[str, Any]:
    """The answer object in a reply: a fenced block first, else the last object with a ``question`` key.

    Raises ``AnswerError("empty_reply")`` for an empty reply, ``AnswerError("no_json")`` when the
    reply holds no ``{`` at all and
    ``AnswerError("malformed_json")`` when it holds braces but no decodable object.
    """
    if not text.strip():
        raise AnswerError("empty_reply", "the reply is empty")
    candidates: list[dict[str, Any]] = []
    for fenced in _FENCE.findall(text):
        candidates.extend(_json_objects(fenced))
    if not candidates:
        candidates = _json_objects(text)
    if not candidates:
        if "{" not in text:
            raise AnswerError("no_json", f"the reply holds no JSON object: {_preview(text)}")
        raise AnswerError("malformed_json", f"the reply's JSON does not parse: {_preview(text)}")
    with_question = [c for c in candidates if "question" in c]
    return (with_question or candidates)[-1]


def _as_piece_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise AnswerError("schema", f"{where} must be an integer piece id, got {_value_preview(value)}")
    if isinstance(value, str):
        digits = value.strip()
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        if not digits.isdecimal() or len(digits) > _MAX_PIECE_ID_DIGITS:
            raise AnswerError("schema", f"{where} must be an integer piece id, got {_preview(value, 40)}")
        return int(digits)
    if value.bit_length() > 63:
        raise AnswerError("schema", f"{where} must be an integer piece id, got a {value.bit_length()}-bit number")
    return int(value)


def validate_answer(obj: Any, approximate: bool = False) -> ParsedAnswer:
    """Check a decoded answer against the schema of the module docstring of :mod:`.prompts`.

    Accepted variants, because models drift: ``excerpts`` for ``references``; in exact mode a
    reference may be ``{"content": str}``; in approximate mode ``[first, last]`` or a single id.
    The number of references is not capped here: the *too many references* filter decides.
    """
    question = _check_question(obj)
    return _validate_references(obj.get("references", obj.get("excerpts")), approximate, question)


def _check_question(obj: Any) -> str:
    """The answer object's ``question``, whitespace collapsed; an :class:`AnswerError` when unusable."""
    if not isinstance(obj, dict):
        raise AnswerError("schema", f"the answer must be a JSON object, got {type(obj).__name__}")
    question = obj.get("question")
    if question is None:
        raise AnswerError("schema", "the answer has no 'question' field")
    if not isinstance(question, str) or not question.strip():
        raise AnswerError("schema", f"'question' must be a non-empty string, got {_value_preview(question)}")
    question = _clean(" ".join(question.split()))
    if len(question) > MAX_QUESTION_CHARS:
        raise AnswerError("schema", f"'question' is {len(question)} characters long (limit {MAX_QUESTION_CHARS})")
    return question


def _validate_references(references: Any, approximate: bool, question: str) -> ParsedAnswer:
    if references is None:
        raise AnswerError("schema", "the answer has no 'references' field")
    if not isinstance(references, list) or not references:
        raise AnswerError("schema", f"'references' must be a non-empty list, got {_value_preview(references)}")
    if approximate:
        ranges: list[tuple[int, int]] = []
        for i, ref in enumerate(references):
            if isinstance(ref, dict):
                if "start_piece" not in ref or "end_piece" not in ref:
                    raise AnswerError(
                        "schema",
                        f"reference {i} needs 'start_piece' and 'end_piece', got keys {_value_preview(sorted(ref))}",
                    )
                first, last = ref["start_piece"], ref["end_piece"]
            elif isinstance(ref, list) and len(ref) == 2:
                first, last = ref
            elif isinstance(ref, (int, str)) and not isinstance(ref, bool):
                first = last = ref
            else:
                raise AnswerError(
                    "schema", f"reference {i} must be {{'start_piece', 'end_piece'}}, got {_value_preview(ref)}"
                )
            ranges.append(
                (_as_piece_id(first, f"reference {i} start_piece"), _as_piece_id(last, f"reference {i} end_piece"))
            )
        return ParsedAnswer(question=question, piece_ranges=tuple(ranges))
    excerpts: list[str] = []
    for i, ref in enumerate(references):
        if isinstance(ref, dict) and isinstance(ref.get("content"), str):
            ref = ref["content"]
        if not isinstance(ref, str):
            raise AnswerError(
                "schema", f"reference {i} must be a string quoted from the text, got {_value_preview(ref)}"
            )
        if not ref.strip():
            raise AnswerError("schema", f"reference {i} is empty")
        excerpts.append(_clean(ref))
    return ParsedAnswer(question=question, excerpts=tuple(excerpts))


def parse_answer(text: str, approximate: bool = False, *, question_only: bool = False) -> ParsedAnswer:
    """Reply text → :class:`ParsedAnswer` (strip reasoning, extract the object, validate).

    ``question_only`` (unanswerable questions): only ``question`` is read; references, if the model
    added any anyway, are ignored.
    """
    obj = _answer_object(text)
    if question_only:
        return ParsedAnswer(question=_check_question(obj))
    return validate_answer(obj, approximate)


VERDICTS = ("yes", "partial", "no")


def parse_verdict(text: str) -> tuple[str, str]:
    """A grounding check's reply → ``(verdict, reason)``; :class:`AnswerError` ``verify_unreadable``
    when it holds no ``{"verdict": yes|partial|no, "reason": str}`` object."""
    try:
        obj = _answer_object(text)
    except AnswerError as exc:
        raise AnswerError("verify_unreadable", exc.detail) from None
    verdict = obj.get("verdict") if isinstance(obj, dict) else None
    if not isinstance(verdict, str) or verdict.strip().lower() not in VERDICTS:
        raise AnswerError(
            "verify_unreadable", f"'verdict' must be one of {', '.join(VERDICTS)}, got {_value_preview(verdict)}"
        )
    reason = obj.get("reason", "")
    if not isinstance(reason, str):
        raise AnswerError("verify_unreadable", f"'reason' must be a string, got {_value_preview(reason)}")
    return verdict.strip().lower(), _clean(" ".join(reason.split()))[:MAX_QUESTION_CHARS]


def _answer_object(text: str) -> Any:
    answer, reasoning = strip_reasoning(text)
    try:
        obj = extract_json_object(answer)
    except AnswerError:
        if answer or not reasoning:
            raise
        # An unclosed <think>: the only JSON may be inside the reasoning.
        try:
            obj = extract_json_object(reasoning)
        except AnswerError:
            raise AnswerError(
                "unfinished_reasoning", f"the reply stops inside <think> without an answer: {_preview(reasoning)}"
            ) from None
    return obj


def _preview(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _value_preview(value: Any, limit: int = 120) -> str:
    """A decoded JSON value as it appeared, shortened; never raises (deep nests, huge numbers)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = f"<{type(value).__name__}>"
    return _preview(text, limit)


def _first_clause(exc: BaseException) -> str:
    """``"Exceeds the limit (4300 digits) for integer string conversion"`` out of its longer message."""
    return str(exc).split(":")[0].strip()[:120]


def _clean(text: str) -> str:
    """Lone surrogates (a ``"\\ud800"`` escape decodes to one) become U+FFFD: they cannot be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)
