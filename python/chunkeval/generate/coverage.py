"""How a question set covers its corpora: per-document quotas and the share of each document that
holds at least one reference.

Coverage is counted over segments: each corpus is cut into ``ceil(len / segment_chars)`` segments
of equal length (the last one may be shorter by the rounding), and a segment is covered when a
reference span overlaps it. ``share`` is covered segments / all segments, per corpus and over all
corpora together; ``chars_share`` is the share of characters inside at least one reference.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["COVERAGE_SEGMENT_CHARS", "proportional_quotas", "corpus_coverage", "spread_index"]

#: Segment length of the coverage report: about a paragraph, finer than any window.
COVERAGE_SEGMENT_CHARS = 1000


#: 2**64 / golden ratio, odd: the step of the additive (Weyl) sequence behind :func:`spread_index`.
_GOLDEN_STEP = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def spread_index(key: str, attempt: int, n_positions: int) -> int:
    """Position in ``[0, n_positions)`` of attempt ``attempt`` of the sequence named by ``key``.

    Attempt ``n`` sits at ``frac(u + n / phi) * n_positions`` (``u`` from sha256 of ``key``) in
    64-bit fixed point: a golden-ratio rotation, so any run of consecutive attempts is spread evenly
    over the range (the largest gap between ``k`` of them is under ``2.7 / k`` of it) instead of
    clumping as independent uniform draws do. A pure function of its arguments.
    """
    if n_positions < 1:
        raise ValueError(f"n_positions must be at least 1, got {n_positions}")
    offset = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return (((offset + attempt * _GOLDEN_STEP) & _MASK) * n_positions) >> 64


def proportional_quotas(lengths: Mapping[str, int], total: int) -> dict[str, int]:
    """``total`` questions split over documents in proportion to their lengths (largest remainder;
    ties go to the document listed first). The quotas sum to ``total``; a short document may get 0."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be a positive integer (questions over all documents), got {total!r}")
    size = sum(lengths.values())
    if size <= 0:
        raise ValueError("lengths: the documents are all empty; nothing to share the questions over")
    order = list(lengths)
    exact = {cid: total * lengths[cid] / size for cid in order}
    counts = {cid: math.floor(exact[cid]) for cid in order}
    left = total - sum(counts.values())
    for cid in sorted(order, key=lambda c: (-(exact[c] - counts[c]), order.index(c)))[:left]:
        counts[cid] += 1
    return counts


def corpus_coverage(records: Iterable[Mapping[str, Any]], lengths: Mapping[str, int],
                    segment_chars: int = COVERAGE_SEGMENT_CHARS) -> dict[str, Any]:
    """Coverage of the corpora (``corpus_id`` → length) by the references of ``records``.

    Returns ``{"segment_chars", "share", "chars_share", "per_corpus": {cid: {"segments", "covered",
    "share", "chars_share"}}}``; each reference counts in its own corpus (its ``corpus_id``, else
    the record's), and references in other corpora are ignored.
    """
    if segment_chars < 1:
        raise ValueError(f"segment_chars must be at least 1, got {segment_chars}")
    spans: dict[str, list[tuple[int, int]]] = {cid: [] for cid in lengths}
    for record in records:
        for ref in record.get("references") or []:
            # A cross-document question's reference in another corpus counts there.
            cid = ref.get("corpus_id", record.get("corpus_id")) if isinstance(ref, Mapping) else None
            if not isinstance(cid, str) or cid not in spans:
                continue
            start, end = ref.get("start_index"), ref.get("end_index")
            if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= lengths[cid]:
                spans[cid].append((start, end))
    per_corpus: dict[str, dict[str, Any]] = {}
    for cid, length in lengths.items():
        n_segments = max(1, math.ceil(length / segment_chars))
        width = length / n_segments
        covered: set[int] = set()
        chars = 0
        reach = 0
        for start, end in sorted(spans[cid]):
            covered.update(range(int(start // width), min(n_segments - 1, int((end - 1) // width)) + 1))
            chars += max(0, end - max(start, reach))  # characters not counted by an earlier span
            reach = max(reach, end)
        per_corpus[cid] = {"segments": n_segments, "covered": len(covered), "share": len(covered) / n_segments,
                           "chars_share": chars / length if length else 0.0}
    all_segments = sum(c["segments"] for c in per_corpus.values())
    all_chars = sum(lengths.values())
    return {
        "segment_chars": segment_chars,
        "share": sum(c["covered"] for c in per_corpus.values()) / all_segments if all_segments else 0.0,
        "chars_share": sum(c["chars_share"] * lengths[cid] for cid, c in per_corpus.items()) / all_chars
        if all_chars
        else 0.0,
        "per_corpus": per_corpus,
    }
