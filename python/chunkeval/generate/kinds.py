"""Question kinds and how a run mixes them.

``single``        one window, one passage or a few close ones (the original generator);
``multi``         two windows from distant places of one document, shown as two parts; the
                  question must need evidence from both (at least one reference in each part), so
                  its evidence is spread out: the questions that separate chunkers;
``cross``         one window from each of two documents of the corpus set (the corpora of the
                  run); the question needs evidence from both, each reference located in its own
                  document. The question is counted and labelled under the first document (its
                  ``corpus_id``); the second document's references carry their own ``corpus_id``;
``unanswerable``  one window, and a question on the document's topic that the text does *not*
                  answer. It has no references, so it is written to ``<stem>.unanswerable.jsonl``
                  and never mixed into the span metrics.

A mix (``--mix single=0.5,multi=0.3,unanswerable=0.2``) splits each corpus's target into per-kind
quotas by largest remainder; each kind has its own attempts, windows and attempt limit, so one
kind's rejections never use up another's attempts.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from .coverage import spread_index

__all__ = ["KINDS", "DEFAULT_MIX", "parse_mix", "check_mix", "quotas", "multi_windows", "render_parts",
           "cross_partner", "render_documents", "MIN_MULTI_PART_CHARS"]

KINDS = ("single", "multi", "cross", "unanswerable")
DEFAULT_MIX: Mapping[str, float] = {"single": 1.0}

#: Shortest part a multi-span window may have; a corpus under three times this cannot have two
#: distant parts.
MIN_MULTI_PART_CHARS = 100

#: Other spellings of a kind, accepted in a mix.
_ALIASES = {"cross_document": "cross", "cross-document": "cross"}


def check_mix(mix: Mapping[str, float], name: str = "mix") -> dict[str, float]:
    """Validate a kind → weight mapping and return it normalised to sum 1, in :data:`KINDS` order."""
    if not isinstance(mix, Mapping) or not mix:
        raise ValueError(f"{name} must map question kinds to weights, e.g. single=0.7,multi=0.3")
    mix = {_ALIASES.get(kind, kind) if isinstance(kind, str) else kind: weight for kind, weight in mix.items()}
    for kind, weight in mix.items():
        if kind not in KINDS:
            raise ValueError(f"{name}: unknown question kind {kind!r}; known: {', '.join(KINDS)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{name}: the weight of {kind} must be a number >= 0, got {weight!r}")
    total = float(sum(mix.values()))
    if total <= 0:
        raise ValueError(f"{name}: the weights sum to 0; give at least one kind a positive weight")
    return {kind: float(mix[kind]) / total for kind in KINDS if mix.get(kind, 0) > 0}


def parse_mix(text: str) -> dict[str, float]:
    """``"single=0.5,multi=0.3,unanswerable=0.2"`` → the normalised mix (see :func:`check_mix`)."""
    mix: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, sep, value = item.partition("=")
        kind = _ALIASES.get(kind.strip(), kind.strip())
        if not sep:
            raise ValueError(f"--mix: {item!r} is not KIND=WEIGHT; write e.g. single=0.7,multi=0.3")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--mix: the weight of {kind} is {value.strip()!r}, not a number") from None
        if kind in mix:
            raise ValueError(f"--mix: {kind} is given twice; give each kind once")
        mix[kind] = weight
    return check_mix(mix, "--mix")


def quotas(target: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Split ``target`` questions by ``mix`` (normalised) with the largest-remainder method; ties
    go to the kind listed first in :data:`KINDS`. The quotas sum to ``target``."""
    exact = {kind: target * share for kind, share in mix.items()}
    counts = {kind: math.floor(value) for kind, value in exact.items()}
    left = target - sum(counts.values())
    order = sorted(exact, key=lambda kind: (-(exact[kind] - counts[kind]), KINDS.index(kind)))
    for kind in order[:left]:
        counts[kind] += 1
    return {kind: counts[kind] for kind in KINDS if kind in counts}


def multi_windows(text_length: int, window_chars: int, seed: int, corpus_id: str,
                  attempt: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The two parts ``[a0, a1)``, ``[b0, b1)`` of multi-span attempt ``attempt``: a pure function.

    Each part has ``min(window_chars // 2, text_length // 3)`` characters and at least that many
    characters separate them, so the evidence of one part is never next to the other's. The first
    part's start spreads over the places that leave room for the gap and the second part as
    single windows do (:func:`.coverage.spread_index` of ``(seed, corpus_id)``); the second is
    uniform over what is left, drawn from sha256 of ``(seed, corpus_id, attempt)``.
    """
    part = min(window_chars // 2, text_length // 3)
    if part < MIN_MULTI_PART_CHARS:
        raise ValueError(f"corpus {corpus_id!r} has {text_length} characters, too few for two distant parts of "
                         f"at least {MIN_MULTI_PART_CHARS}; give it no multi quota (--mix) or a longer text")
    first = spread_index(f"chunkeval-multi\0{seed}\0{corpus_id}", attempt, text_length - 3 * part + 1)
    digest = hashlib.sha256(f"chunkeval-multi\0{seed}\0{corpus_id}\0{attempt}".encode()).digest()
    lowest_second = first + 2 * part
    second = lowest_second + int.from_bytes(digest[8:16], "little") % (text_length - part - lowest_second + 1)
    return (first, first + part), (second, second + part)


def render_parts(text: str, parts: tuple[tuple[int, int], ...]) -> str:
    """The parts of a multi-span window as the model sees them (in place of ``{window}``)."""
    return "\n\n".join(f'<part n="{i}">\n{text[start:end]}\n</part>' for i, (start, end) in enumerate(parts, start=1))


def cross_partner(corpus_ids: list[str], corpus_id: str, seed: int, attempt: int) -> str:
    """The second document of cross-document attempt ``attempt`` of ``corpus_id``: a pure function.

    The partners of successive attempts spread evenly over the other documents
    (:func:`.coverage.spread_index` of ``(seed, corpus_id)``), so every pair is asked about.
    """
    others = [cid for cid in corpus_ids if cid != corpus_id]
    if not others:
        raise ValueError(f"mix: cross-document questions pair two documents of the corpus set, and only {corpus_id!r} "
                         "is given; add documents, or give cross no share (--mix)")
    return others[spread_index(f"chunkeval-cross\0{seed}\0{corpus_id}", attempt, len(others))]


def render_documents(texts: tuple[str, ...]) -> str:
    """The windows of a cross-document attempt as the model sees them (in place of ``{window}``)."""
    return "\n\n".join(f'<document n="{i}">\n{text}\n</document>' for i, text in enumerate(texts, start=1))
