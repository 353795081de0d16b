"""Quality filters for generated questions; each works on plain vectors or spans so it can be tested alone.

Defaults, measured with all-MiniLM-L6-v2 (the default :class:`chunkeval.embedding.Embedder`) on
Chroma's published general evaluation set (472 human-reviewed questions, 790 references):

``DEFAULT_DUPLICATE_THRESHOLD = 0.92``
    a question is a near duplicate when its cosine to an earlier accepted question of the same
    corpus is at or above this. The largest cosine between two different questions of one corpus in
    Chroma's set is 0.892 ("What are some negative effects of social media usage on personal
    relationships?" vs "…positive aspects…"); 0.85 would already drop 4 of its 467 pairs.
``DEFAULT_EXCERPT_THRESHOLD = 0.20``
    a question is dropped when any reference's cosine to it is below this. In Chroma's set
    (filtered by Chroma at 0.36 with text-embedding-3-large) 8 of 472 questions (1.7 %) fall below
    0.20 with MiniLM; 0.36 would drop 53 (11 %).

Embedding models differ in how their cosines spread: recalibrate both thresholds for another model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "DEFAULT_EXCERPT_THRESHOLD",
    "DEFAULT_MAX_REFERENCES",
    "FilterSettings",
    "max_similarity",
    "excerpt_similarities",
    "is_near_duplicate",
    "has_poor_excerpt",
    "too_many_references",
    "merge_overlapping",
    "question_key",
]

DEFAULT_DUPLICATE_THRESHOLD = 0.92
DEFAULT_EXCERPT_THRESHOLD = 0.20
DEFAULT_MAX_REFERENCES = 5


@dataclass(frozen=True)
class FilterSettings:
    """Which filters run. ``use_embeddings=False`` (``--no-filters``) skips both embedding filters;
    the reference count, overlap merging and exact-duplicate checks always apply (they are about the
    record being valid, not about quality)."""

    use_embeddings: bool = True
    duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD
    excerpt_threshold: float = DEFAULT_EXCERPT_THRESHOLD
    max_references: int = DEFAULT_MAX_REFERENCES

    def __post_init__(self) -> None:
        for name in ("duplicate_threshold", "excerpt_threshold"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} is a cosine similarity and must be within [-1, 1], got {value}")
        if self.max_references < 1:
            raise ValueError(f"max_references must be at least 1, got {self.max_references}")


def _unit_rows(vectors: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a vector or a 2-D array of row vectors, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values; check the embedder")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    # A zero vector has no direction: its cosine to anything is 0, not NaN.
    unit: np.ndarray = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return unit


def max_similarity(question_vector: np.ndarray, accepted_vectors: np.ndarray) -> float | None:
    """Largest cosine between a question and earlier accepted ones (``None`` when there are none)."""
    accepted = np.asarray(accepted_vectors)
    if accepted.size == 0:
        return None
    q = _unit_rows(question_vector, "question_vector")[0]
    rows = _unit_rows(accepted, "accepted_vectors")
    if rows.shape[1] != q.shape[0]:
        raise ValueError(
            f"accepted_vectors have dimension {rows.shape[1]}, the question vector {q.shape[0]}; use one embedder"
        )
    return float((rows @ q).max())


def excerpt_similarities(question_vector: np.ndarray, excerpt_vectors: np.ndarray) -> np.ndarray:
    """Cosine between a question and each of its excerpts (float64, one per excerpt)."""
    q = _unit_rows(question_vector, "question_vector")[0]
    rows = _unit_rows(excerpt_vectors, "excerpt_vectors")
    if rows.shape[1] != q.shape[0]:
        raise ValueError(
            f"excerpt_vectors have dimension {rows.shape[1]}, the question vector {q.shape[0]}; use one embedder"
        )
    cosines: np.ndarray = rows @ q
    return cosines


def is_near_duplicate(
    question_vector: np.ndarray, accepted_vectors: np.ndarray, threshold: float
) -> tuple[bool, float | None]:
    """``(duplicate, max cosine)``: duplicate when the max cosine to an accepted question is ≥ ``threshold``."""
    best = max_similarity(question_vector, accepted_vectors)
    return (best is not None and best >= threshold), best


def has_poor_excerpt(question_vector: np.ndarray, excerpt_vectors: np.ndarray, threshold: float) -> tuple[bool, float]:
    """``(poor, min cosine)``: poor when any excerpt's cosine to the question is below ``threshold``."""
    worst = float(excerpt_similarities(question_vector, excerpt_vectors).min())
    return worst < threshold, worst


def too_many_references(n_references: int, max_references: int = DEFAULT_MAX_REFERENCES) -> bool:
    """True when an answer cites more than ``max_references`` passages."""
    return n_references > max_references


def merge_overlapping(spans: Sequence[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """Sort half-open spans and merge those that overlap (touching spans stay apart).

    Returns ``(merged, members)``: ``members[i]`` lists the input positions merged into span ``i``.
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], spans[i][1]))
    merged: list[tuple[int, int]] = []
    members: list[list[int]] = []
    for i in order:
        start, end = spans[i]
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            members[-1].append(i)
        else:
            merged.append((start, end))
            members.append([i])
    return merged, members


def question_key(question: str) -> str:
    """Case- and whitespace-insensitive key: two questions with the same key are the same question."""
    return " ".join(question.casefold().split())
