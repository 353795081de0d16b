"""Quality filters on hand-chosen vectors and spans, values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from chunkeval.generate.filters import (
    DEFAULT_DUPLICATE_THRESHOLD,
    DEFAULT_EXCERPT_THRESHOLD,
    FilterSettings,
    excerpt_similarities,
    has_poor_excerpt,
    is_near_duplicate,
    max_similarity,
    merge_overlapping,
    question_key,
    too_many_references,
)

Spans = list[tuple[int, int]]


def test_near_duplicate_at_and_around_the_threshold() -> None:
    question = np.array([1.0, 0.0], dtype=np.float32)
    accepted = np.array([[0.0, 1.0], [0.6, 0.8], [0.96, 0.28]], dtype=np.float32)  # cosines 0, 0.6, 0.96
    duplicate, best = is_near_duplicate(question, accepted, 0.95)
    assert duplicate and best == pytest.approx(0.96)
    duplicate, best = is_near_duplicate(question, accepted, 0.97)
    assert not duplicate and best == pytest.approx(0.96)
    assert is_near_duplicate(question, accepted[:2], 0.6)[0]  # equal to the threshold counts
    assert is_near_duplicate(question, np.zeros((0, 2), np.float32), 0.5) == (False, None)


def test_vectors_need_not_be_normalised_and_zero_vectors_are_harmless() -> None:
    assert max_similarity(np.array([3.0, 0.0]), np.array([[0.0, 2.0], [5.0, 5.0]])) == pytest.approx(2 ** -0.5)
    assert max_similarity(np.array([0.0, 0.0]), np.array([[1.0, 0.0]])) == 0.0


def test_poor_excerpt_uses_the_worst_excerpt() -> None:
    question = np.array([0.0, 0.0, 1.0])
    excerpts = np.array([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # cosines 0.8, 0.0, 1.0
    assert excerpt_similarities(question, excerpts).tolist() == pytest.approx([0.8, 0.0, 1.0])
    assert has_poor_excerpt(question, excerpts, 0.2) == (True, 0.0)
    poor, worst = has_poor_excerpt(question, excerpts[[0, 2]], 0.8)
    assert not poor and worst == pytest.approx(0.8)
    assert has_poor_excerpt(question, excerpts[0], 0.81)[0]  # one excerpt as a vector


def test_shape_and_value_errors_are_named() -> None:
    with pytest.raises(ValueError, match="dimension 3, the question vector 2"):
        max_similarity(np.ones(2), np.ones((1, 3)))
    with pytest.raises(ValueError, match="excerpt_vectors holds NaN"):
        excerpt_similarities(np.ones(2), np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="accepted_vectors must be a vector or a 2-D array"):
        max_similarity(np.ones(2), np.ones((1, 1, 2)))


def test_too_many_references() -> None:
    assert not too_many_references(5) and too_many_references(6) and too_many_references(3, max_references=2)


@pytest.mark.parametrize(
    "spans, merged, members",
    [
        ([], [], []),
        ([(0, 5)], [(0, 5)], [[0]]),
        ([(10, 20), (0, 5)], [(0, 5), (10, 20)], [[1], [0]]),  # sorted by start
        ([(0, 5), (5, 9)], [(0, 5), (5, 9)], [[0], [1]]),  # touching spans stay apart
        ([(0, 6), (5, 9)], [(0, 9)], [[0, 1]]),
        ([(0, 10), (2, 4)], [(0, 10)], [[0, 1]]),  # nested
        ([(7, 12), (0, 4), (3, 8), (20, 30)], [(0, 12), (20, 30)], [[1, 2, 0], [3]]),  # a chain
        ([(3, 8), (3, 8)], [(3, 8)], [[0, 1]]),  # duplicates
    ],
)
def test_merge_overlapping(spans: Spans, merged: Spans, members: list[list[int]]) -> None:
    assert merge_overlapping(spans) == (merged, members)


def test_question_key() -> None:
    assert question_key("  What  IS\nit? ") == question_key("what is it?") == "what is it?"


def test_settings_validation_and_defaults() -> None:
    assert (DEFAULT_DUPLICATE_THRESHOLD, DEFAULT_EXCERPT_THRESHOLD) == (0.92, 0.20)
    assert FilterSettings().use_embeddings and FilterSettings().max_references == 5
    with pytest.raises(ValueError, match="excerpt_threshold is a cosine similarity"):
        FilterSettings(excerpt_threshold=-2)
    with pytest.raises(ValueError, match="max_references must be at least 1"):
        FilterSettings(max_references=0)
