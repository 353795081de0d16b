"""An independent re-statement of how Chroma's ``chunking_evaluation`` scores one question.

The reference toolkit (brandonstarxel/chunking_evaluation, ``BaseEvaluation._full_precision_score``
and ``_scores_from_dataset_and_retrievals``) works on lists of ``(start, end)`` ranges of a single
corpus: it walks chunks and references pairwise, keeps a list of "unused" reference pieces from
which every intersection is cut, a merged list of intersections (the numerator), and divides by
plain sums. This module restates that procedure range-list by range-list, in our own code, so the
tests can check that ``semantics="chroma"`` reproduces the toolkit's numbers, quirks included.
It is test-only and deliberately unoptimised.
"""

from __future__ import annotations


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort by start and merge ranges that overlap or touch (the toolkit's ``union_ranges``)."""
    if not ranges:
        return []
    ordered = sorted(ranges, key=lambda r: r[0])
    out = [ordered[0]]
    for s, e in ordered[1:]:
        ls, le = out[-1]
        if s <= le:
            out[-1] = (ls, max(le, e))
        else:
            out.append((s, e))
    return out


def _total(ranges: list[tuple[int, int]]) -> int:
    return sum(e - s for s, e in ranges)


def _intersect(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    """Touching ranges intersect (in an empty range), as in the toolkit."""
    s, e = max(a[0], b[0]), min(a[1], b[1])
    return (s, e) if s <= e else None


def _cut(ranges: list[tuple[int, int]], target: tuple[int, int]) -> list[tuple[int, int]]:
    """Remove ``target`` from every range of the list (the toolkit's ``difference``)."""
    ts, te = target
    out = []
    for s, e in ranges:
        if e < ts or s > te:
            out.append((s, e))
        elif s < ts and e > te:
            out.extend([(s, ts), (te, e)])
        elif s < ts:
            out.append((s, ts))
        elif e > te:
            out.append((te, e))
    return out


def precision_omega_and_count(refs: list[tuple[int, int]], chunks: list[tuple[int, int]]) -> tuple[float, int]:
    """Precision Ω and the highlighted (evidence) chunk count for one question, one corpus."""
    numerator: list[tuple[int, int]] = []
    chunk_union: list[tuple[int, int]] = []
    unused = list(refs)
    count = 0
    for chunk in chunks:
        touched = False
        for ref in refs:
            inter = _intersect(chunk, ref)
            if inter is not None:
                touched = True
                unused = _cut(unused, inter)
                numerator = _merge([inter] + numerator)
                chunk_union = _merge([chunk] + chunk_union)
        count += touched
    denominator = _merge(chunk_union + unused)
    omega = _total(numerator) / _total(denominator) if numerator else 0.0
    return omega, count


def retrieval_scores(
    refs: list[tuple[int, int]], retrieved: list[tuple[int, int, bool]], n: int
) -> tuple[float, float, float]:
    """(iou, recall, precision) on the first ``n`` retrieved chunks.

    ``retrieved`` rows are ``(start, end, same_corpus)``: chunks of another corpus add to the
    precision denominator but intersect nothing.
    """
    numerator: list[tuple[int, int]] = []
    unused = list(refs)
    for start, end, same_corpus in retrieved[:n]:
        if not same_corpus:
            continue
        for ref in refs:
            inter = _intersect((start, end), ref)
            if inter is not None:
                unused = _cut(unused, inter)
                numerator = _merge([inter] + numerator)
    num = _total(numerator) if numerator else 0
    recall_den = _total(refs)
    precision_den = sum(e - s for s, e, _ in retrieved[:n])
    iou = num / (precision_den + _total(unused))
    return iou, num / recall_den, num / precision_den
