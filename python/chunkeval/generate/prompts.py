"""Prompt templates for question generation, versioned so every question records what it was asked.

A template is plain text with a system part and a user part separated by a line that reads exactly
``=== user ===`` (without that line the whole text is the user message and no system message is
sent). Three placeholders are substituted, and nothing else is touched, so JSON examples with
braces need no escaping:

``{window}``
    the corpus window the model must quote from (exact mode) or the window cut into tagged pieces
    ``<p id=N>…</p>`` (approximate mode). Required.
``{previous_questions}``
    the most recent accepted questions of the same corpus, one per line, or ``(none yet)``.
``{max_references}``
    the most references a question may have (5 by default).

The model must answer with one JSON object: ``{"question": str, "references": [str, ...]}`` in
exact mode, ``{"question": str, "references": [{"start_piece": int, "end_piece": int}, ...]}``
(inclusive piece ids) in approximate mode. Reasoning blocks, code fences and chatter around the
object are tolerated (see :mod:`chunkeval.generate.parsing`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PROMPT_VERSION",
    "PLACEHOLDERS",
    "USER_SEPARATOR",
    "PromptTemplate",
    "answer_response_format",
    "answer_schema",
    "default_template",
    "kind_template",
    "verify_messages",
    "verdict_response_format",
    "VERIFY_VERSION",
    "load_template",
]

#: Bump whenever the default wording changes: questions record it in their provenance.
PROMPT_VERSION = "v1"

PLACEHOLDERS = ("{window}", "{previous_questions}", "{max_references}")
USER_SEPARATOR = "=== user ==="

_EXACT_V1 = """\
You write evaluation questions for a retrieval system. You are shown part of a document. Write ONE
question that can be answered only from facts stated in that text, and copy the passages that
answer it.

Rules:
1. The question is specific, about a single topic, and makes sense on its own: someone who has not
   seen the text must understand it (never write "in the text", "in this passage", "the author").
2. "references" lists every passage needed to answer the question: 1 to {max_references} passages,
   each copied character for character from the text (same words, punctuation and capitalisation),
   preferably whole sentences, not overlapping each other. Do not paraphrase, shorten with "..."
   or join passages that are apart in the text.
3. Do not repeat or rephrase any of the previous questions.
4. Reply with one JSON object and nothing else:
{"question": "...", "references": ["first passage", "second passage"]}
=== user ===
Previous questions (do not repeat them):
{previous_questions}

Text:
<document>
{window}
</document>

Reply with the JSON object only.
"""

_APPROXIMATE_V1 = """\
You write evaluation questions for a retrieval system. You are shown part of a document, cut into
numbered pieces written as <p id=N>...</p>. Write ONE question that can be answered only from facts
stated in that text, and cite the pieces that answer it.

Rules:
1. The question is specific, about a single topic, and makes sense on its own: someone who has not
   seen the text must understand it (never write "in the text", "in this passage", "the author").
2. "references" lists every passage needed to answer the question: 1 to {max_references} passages,
   each given as an inclusive range of piece ids {"start_piece": first id, "end_piece": last id}.
   Cite as few pieces as cover the answer; passages must not overlap.
3. Do not repeat or rephrase any of the previous questions.
4. Reply with one JSON object and nothing else:
{"question": "...", "references": [{"start_piece": 3, "end_piece": 4}, {"start_piece": 9, "end_piece": 9}]}
=== user ===
Previous questions (do not repeat them):
{previous_questions}

Text:
<document>
{window}
</document>

Reply with the JSON object only.
"""


_MULTI_V1 = """\
You write evaluation questions for a retrieval system. You are shown two parts of one document,
taken from places far apart. Write ONE question whose answer needs facts from BOTH parts: someone
who has read only one of them cannot answer it fully.

Rules:
1. The question is specific and makes sense on its own: someone who has not seen the text must
   understand it (never write "in the text", "in part 1", "the author").
2. "references" lists every passage needed to answer the question: at least one from part 1 and at
   least one from part 2, 2 to {max_references} passages in all, each copied character for
   character from its part (same words, punctuation and capitalisation), preferably whole
   sentences. Do not paraphrase, shorten with "..." or join passages.
3. Do not repeat or rephrase any of the previous questions.
4. Reply with one JSON object and nothing else:
{"question": "...", "references": ["passage from part 1", "passage from part 2"]}
=== user ===
Previous questions (do not repeat them):
{previous_questions}

The two parts of the document:
{window}

Reply with the JSON object only.
"""

_CROSS_V1 = """\
You write evaluation questions for a retrieval system. You are shown parts of two different
documents. Write ONE question whose answer needs facts from BOTH documents: someone who has read
only one of them cannot answer it fully (a comparison, or a fact of one that bears on the other).

Rules:
1. The question is specific and makes sense on its own: someone who has not seen the texts must
   understand it (never write "in the text", "in document 1", "the author").
2. "references" lists every passage needed to answer the question: at least one from document 1
   and at least one from document 2, 2 to {max_references} passages in all, each copied character
   for character from its document (same words, punctuation and capitalisation), preferably whole
   sentences. Do not paraphrase, shorten with "..." or join passages.
3. Do not repeat or rephrase any of the previous questions.
4. Reply with one JSON object and nothing else:
{"question": "...", "references": ["passage from document 1", "passage from document 2"]}
=== user ===
Previous questions (do not repeat them):
{previous_questions}

The two documents:
{window}

Reply with the JSON object only.
"""

_UNANSWERABLE_V1 = """\
You write evaluation questions for a retrieval system. You are shown part of a document. Write ONE
question that a reader of this document could plausibly ask, on its topic and about the people,
places or things it names, but that the text does NOT answer: the answer is neither stated nor
implied anywhere in it. These questions test that a system admits it has no evidence.

Rules:
1. The question is specific and makes sense on its own (never write "in the text", "the author").
2. It must not be answerable from the text, not even partly; do not ask about something the text
   says is unknown.
3. Do not repeat or rephrase any of the previous questions.
4. Reply with one JSON object and nothing else:
{"question": "..."}
=== user ===
Previous questions (do not repeat them):
{previous_questions}

Text:
<document>
{window}
</document>

Reply with the JSON object only.
"""


@dataclass(frozen=True)
class PromptTemplate:
    """A system + user template; ``render`` fills the placeholders listed in the module docstring."""

    system: str
    user: str
    version: str
    source: str  # "builtin" or the file it was read from

    @property
    def sha256(self) -> str:
        """Hash of the template text (system, separator, user): identifies a custom template."""
        text = f"{self.system}\n{USER_SEPARATOR}\n{self.user}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def is_custom(self) -> bool:
        return self.source != "builtin"

    def render(self, window: str, previous_questions: Sequence[str], max_references: int) -> list[dict[str, str]]:
        """Chat messages for one request (a system message only when the template has one)."""
        previous = "\n".join(f"- {q}" for q in previous_questions) if previous_questions else "(none yet)"
        values = {"{previous_questions}": previous, "{max_references}": str(max_references)}

        def fill(text: str) -> str:
            # {window} goes last and in one pass over the other text's pieces, so placeholder-like
            # strings inside the corpus itself are never substituted.
            pieces = text.split("{window}")
            for key, value in values.items():
                pieces = [p.replace(key, value) for p in pieces]
            return window.join(pieces)

        messages = []
        if self.system.strip():
            messages.append({"role": "system", "content": fill(self.system)})
        messages.append({"role": "user", "content": fill(self.user)})
        return messages


def _split(text: str, source: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if line.strip() == USER_SEPARATOR]
    if len(marks) > 1:
        raise ValueError(
            f"prompt template {source}: the separator line {USER_SEPARATOR!r} appears "
            f"{len(marks)} times (lines {[m + 1 for m in marks]}); keep one, between system and user parts"
        )
    if not marks:
        return "", text
    return "".join(lines[: marks[0]]).rstrip("\n"), "".join(lines[marks[0] + 1:])


def kind_template(kind: str) -> PromptTemplate:
    """The built-in template of a question kind other than ``single`` (``multi``, ``cross``, ``unanswerable``)."""
    texts = {"multi": _MULTI_V1, "cross": _CROSS_V1, "unanswerable": _UNANSWERABLE_V1}
    if kind not in texts:
        raise ValueError(f"kind: no built-in template for {kind!r}; known: {', '.join(texts)}")
    system, user = _split(texts[kind], "builtin")
    return PromptTemplate(system=system, user=user, version=PROMPT_VERSION, source="builtin")


def default_template(approximate: bool = False) -> PromptTemplate:
    """The built-in template of :data:`PROMPT_VERSION` for exact (quoting) or approximate (piece ids) mode."""
    system, user = _split(_APPROXIMATE_V1 if approximate else _EXACT_V1, "builtin")
    return PromptTemplate(system=system, user=user, version=PROMPT_VERSION, source="builtin")


def load_template(path: str | os.PathLike[str]) -> PromptTemplate:
    """Read a custom template file (UTF-8); see the module docstring for its format."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ValueError(f"prompt_file: {os.fspath(path)!r} does not exist; pass an existing template file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"prompt_file: {os.fspath(path)!r} is not UTF-8 text ({exc.reason}); save it as UTF-8"
        ) from None
    system, user = _split(text, os.fspath(path))
    if "{window}" not in system + user:
        raise ValueError(f"prompt_file: {os.fspath(path)!r} has no {{window}} placeholder; the model must see the "
                         "text it quotes from (placeholders: " + ", ".join(PLACEHOLDERS) + ")")
    if not user.strip():
        raise ValueError(f"prompt_file: {os.fspath(path)!r} has an empty user part after {USER_SEPARATOR!r}")
    return PromptTemplate(system=system, user=user, version="custom", source=os.fspath(path))


def answer_schema(approximate: bool = False, max_references: int = 5) -> dict[str, Any]:
    """The JSON schema of the answer object the templates ask for (exact or approximate mode)."""
    if approximate:
        piece = {"type": "integer", "minimum": 0}
        item: dict[str, Any] = {"type": "object", "properties": {"start_piece": piece, "end_piece": piece},
                                "required": ["start_piece", "end_piece"], "additionalProperties": False}
    else:
        item = {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "question": {"type": "string"},
            "references": {"type": "array", "items": item, "minItems": 1, "maxItems": max_references},
        },
        "required": ["question", "references"],
        "additionalProperties": False,
    }


def question_only_schema() -> dict[str, Any]:
    """The JSON schema of an unanswerable question's answer: ``{"question": str}``."""
    return {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"],
            "additionalProperties": False}


def answer_response_format(approximate: bool = False, max_references: int = 5, *,
                           question_only: bool = False) -> dict[str, Any]:
    """``response_format`` for structured output: OpenAI's ``json_schema`` form, which vLLM, SGLang,
    llama.cpp server, LM Studio and Ollama's OpenAI endpoint also take (they constrain decoding to it)."""
    schema = question_only_schema() if question_only else answer_schema(approximate, max_references)
    return {"type": "json_schema", "json_schema": {"name": "chunkeval_question", "strict": True, "schema": schema}}


#: Bump whenever the grounding check's wording changes: verdicts record it.
VERIFY_VERSION = "v1"

_VERIFY_SYSTEM = """\
You check evaluation questions for a retrieval system. You are given a question and passages from a
document. Decide whether the passages, and nothing else, answer the question: "yes" when they
state everything the answer needs, "partial" when they answer only part of it or need outside
knowledge, "no" when they do not answer it. Reply with one JSON object and nothing else:
{"verdict": "yes", "reason": "one short sentence"}"""


def verify_messages(question: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """The grounding check's chat messages for one question and the passages it must rest on."""
    shown = "\n\n".join(f'<passage n="{i}">\n{text}\n</passage>' for i, text in enumerate(passages, start=1))
    user = f"Question: {question}\n\nPassages:\n{shown}\n\nReply with the JSON object only."
    return [{"role": "system", "content": _VERIFY_SYSTEM}, {"role": "user", "content": user}]


def verdict_response_format() -> dict[str, Any]:
    """``response_format`` of the grounding check: ``{"verdict": yes|partial|no, "reason": str}``."""
    schema = {"type": "object",
              "properties": {"verdict": {"type": "string", "enum": ["yes", "partial", "no"]},
                             "reason": {"type": "string"}},
              "required": ["verdict", "reason"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "chunkeval_verdict", "strict": True, "schema": schema}}
