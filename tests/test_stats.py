"""Paired statistics on constructed data whose answers are known."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from chunkeval.stats import (
    bootstrap_mean_ci,
    bootstrap_mean_cis,
    compare,
    paired_bootstrap_ci,
    paired_permutation_test,
)


def _results(values_by_config: dict[str, dict[str, np.ndarray]], corpora: list[str]) -> pa.Table:
    rows: dict[str, list[str | float]] = {
        "config_id": [], "question_id": [], "corpus_id": [], "iou": [], "recall": [], "precision": []
    }
    for config_id, metrics in values_by_config.items():
        n = len(metrics["iou"])
        for i in range(n):
            rows["config_id"].append(config_id)
            rows["question_id"].append(f"q{i}")
            rows["corpus_id"].append(corpora[i % len(corpora)])
            for m in ("iou", "recall", "precision"):
                rows[m].append(float(metrics[m][i]))
    return pa.table(rows)


def test_exact_permutation_p_value_by_hand() -> None:
    # d = (0.1, 0.2, 0.4): the 8 sign patterns give sums ±0.7, ±0.1, ±0.3, ±0.5; |sum| >= 0.7 for 2 of 8.
    assert paired_permutation_test([0.0, 0.0, 0.0], [0.1, 0.2, 0.4]) == 0.25
    # d = (1, 1, 1): |sum| = 3 only for +++ and ---.
    assert paired_permutation_test([0, 0, 0], [1, 1, 1]) == 0.25
    # d = (1, -1, 2): sums 2, 0, 4, -2, -4, ... -> |sum| >= 2 for 6 of 8.
    assert paired_permutation_test([0, 0, 0], [1, -1, 2]) == 0.75


def test_exact_permutation_matches_brute_force_enumeration() -> None:
    rng = np.random.default_rng(3)
    d = np.round(rng.normal(0.05, 0.1, size=10), 3)
    observed = abs(d.sum())
    count = sum(abs(np.dot(signs, d)) >= observed - 1e-12 for signs in itertools.product((1, -1), repeat=10))
    assert paired_permutation_test(np.zeros(10), d) == count / 2**10


def test_random_permutation_has_plus_one_correction() -> None:
    # n = 40 identical positive differences: only the all-plus/all-minus patterns are as extreme, and a
    # random pattern hits them with probability 2**-39, so p = (0 + 1) / (n_permutations + 1).
    p = paired_permutation_test(np.zeros(40), np.full(40, 0.3), n_permutations=999, seed=1)
    assert p == 1 / 1000


def test_identical_configurations() -> None:
    a = np.random.default_rng(0).uniform(size=50)
    assert paired_bootstrap_ci(a, a) == (0.0, 0.0, 0.0)
    assert paired_permutation_test(a, a) == 1.0
    same = {"iou": a, "recall": a, "precision": a}
    table = _results({"x": same, "y": same}, ["c1", "c2"])
    rows = compare(table, "x", "y")
    assert len(rows) == 3 * 3  # 3 metrics x (all, c1, c2)
    for row in rows:
        assert row.diff == 0.0 and row.p_value == 1.0 and row.winner is None


def test_clearly_better_configuration_wins() -> None:
    rng = np.random.default_rng(7)
    a = rng.uniform(0.2, 0.6, size=200)
    b = a + 0.2 + rng.normal(0, 0.05, size=200)
    table = _results(
        {"base": {"iou": a, "recall": a, "precision": b}, "new": {"iou": b, "recall": b, "precision": a}}, ["c1", "c2"]
    )
    rows = {(r.metric, r.group): r for r in compare(table, "base", "new", n_resamples=2000, n_permutations=2000)}
    for group in ("all", "c1", "c2"):
        assert rows[("iou", group)].winner == "b"
        assert rows[("recall", group)].winner == "b"
        assert rows[("precision", group)].winner == "a"
        assert rows[("iou", group)].n_questions == (200 if group == "all" else 100)
    iou = rows[("iou", "all")]
    assert iou.mean_a == pytest.approx(a.mean()) and iou.mean_b == pytest.approx(b.mean())
    assert iou.diff == pytest.approx((b - a).mean())
    assert iou.ci_low < iou.diff < iou.ci_high and iou.ci_low > 0.15
    assert iou.p_value == 1 / 2001


def test_small_significant_p_but_ci_rule_is_applied_with_alpha() -> None:
    # Tiny n: the exact p-value cannot drop below 2 / 2**n = 0.25 for n = 3, so no winner at alpha 0.05.
    table = _results({"a": {m: np.zeros(3) for m in ("iou", "recall", "precision")},
                      "b": {m: np.ones(3) for m in ("iou", "recall", "precision")}}, ["c"])
    rows = compare(table, "a", "b", metrics=("iou",), group_by=None)
    assert [(r.group, r.p_value, r.winner) for r in rows] == [("all", 0.25, None)]


def test_bootstrap_ci_covers_true_mean_difference() -> None:
    # Simulate 40 experiments with true mean difference 0.1; a 90% interval must cover it in most.
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(40):
        a = rng.uniform(0, 1, size=60)
        b = a + 0.1 + rng.normal(0, 0.2, size=60)
        diff, low, high = paired_bootstrap_ci(a, b, n_resamples=1000, confidence=0.9, seed=int(rng.integers(1 << 30)))
        assert low <= diff <= high
        covered += low <= 0.1 <= high
    # Binomial(40, 0.9): P(covered < 30) is about 0.2%.
    assert covered >= 30


def test_bootstrap_is_seeded_and_percentile() -> None:
    d = np.array([0.0, 1.0])
    # Resampled means of two values are 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    # The 30% and 70% quantiles both fall inside the block of 0.5s (cumulative 0.25 .. 0.75).
    diff, low, high = paired_bootstrap_ci(np.zeros(2), d, n_resamples=4000, confidence=0.4, seed=5)
    assert (diff, low, high) == (0.5, 0.5, 0.5)
    first = paired_bootstrap_ci(np.zeros(9), np.arange(9.0), seed=2)
    assert first == paired_bootstrap_ci(np.zeros(9), np.arange(9.0), seed=2)


def test_mismatched_questions_are_an_error() -> None:
    table = pa.table({
        "config_id": ["a", "a", "b", "b"],
        "question_id": ["q1", "q2", "q1", "q3"],
        "iou": [0.1, 0.2, 0.3, 0.4],
    })
    with pytest.raises(ValueError, match="did not score the same questions.*1 only in a.*1 only in b"):
        compare(table, "a", "b", metrics=("iou",), group_by=None)
    with pytest.raises(ValueError, match="no rows have config_id 'c'"):
        compare(table, "a", "c", metrics=("iou",), group_by=None)
    dup = pa.table({"config_id": ["a", "a", "b"], "question_id": ["q1", "q1", "q1"], "iou": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="twice"):
        compare(dup, "a", "b", metrics=("iou",), group_by=None)
    with pytest.raises(ValueError, match="lacks column"):
        compare(table, "a", "b", metrics=("recall",), group_by=None)


def test_pairing_is_by_question_id_not_row_order() -> None:
    table = pa.table({
        "config_id": ["a", "a", "a", "b", "b", "b"],
        "question_id": ["q1", "q2", "q3", "q3", "q1", "q2"],
        "iou": [0.1, 0.2, 0.4, 0.4, 0.1, 0.2],
    })
    (row,) = compare(table, "a", "b", metrics=("iou",), group_by=None)
    assert row.diff == 0.0 and row.p_value == 1.0


def test_bad_arrays() -> None:
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="row 1"):
        paired_permutation_test([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        paired_permutation_test([], [])


def _gather_bootstrap(values: np.ndarray, n_resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Independent percentile bootstrap: index the resampled questions, average them, take quantiles."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    tail = (1 - confidence) / 2
    low, high = np.quantile(values[idx].mean(axis=1), [tail, 1 - tail])
    return float(low), float(high)


def test_bootstrap_mean_ci_matches_an_independent_implementation() -> None:
    rng = np.random.default_rng(5)
    values = rng.beta(0.5, 2.0, size=73)
    mean, low, high = bootstrap_mean_ci(values, n_resamples=3000, confidence=0.95, seed=9)
    assert mean == pytest.approx(values.mean(), rel=1e-15)
    assert (low, high) == pytest.approx(_gather_bootstrap(values, 3000, 0.95, 9), rel=1e-12, abs=1e-15)
    # The interval of a mean shrinks like 1/sqrt(n): far narrower than the spread of the values.
    assert low < mean < high and high - low < values.std()


def test_bootstrap_mean_cis_columns_share_draws_and_are_independent_of_each_other() -> None:
    rng = np.random.default_rng(6)
    columns = rng.uniform(size=(40, 3))
    mean, low, high = bootstrap_mean_cis(columns, n_resamples=500, seed=1)
    for j in range(3):
        assert (mean[j], low[j], high[j]) == pytest.approx(bootstrap_mean_ci(columns[:, j], n_resamples=500, seed=1),
                                                           rel=1e-12)
    # A long column splits the draws into batches (4M cells / 300,000 rows = 13 resamples each):
    # the batches continue one random stream, so the result equals one big draw.
    long = rng.uniform(size=300_000)
    assert bootstrap_mean_ci(long, n_resamples=20, seed=3) == pytest.approx(
        (long.mean(), *_gather_bootstrap(long, 20, 0.95, 3)), rel=1e-12)


def test_paired_bootstrap_is_the_bootstrap_of_the_differences() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.uniform(size=30), rng.uniform(size=30)
    assert paired_bootstrap_ci(a, b, n_resamples=400, seed=4) == bootstrap_mean_ci(b - a, n_resamples=400, seed=4)


def test_bootstrap_bad_input() -> None:
    with pytest.raises(ValueError, match="columns must be 2-dimensional"):
        bootstrap_mean_cis(np.zeros(3))
    with pytest.raises(ValueError, match="values must be 1-dimensional"):
        bootstrap_mean_ci(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="columns has no rows"):
        bootstrap_mean_cis(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="row 1, column 0 is nan"):
        bootstrap_mean_cis(np.array([[0.0, 1.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="n_resamples must be a positive integer"):
        bootstrap_mean_ci([0.1, 0.2], n_resamples=0)
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        bootstrap_mean_ci([0.1, 0.2], confidence=1.0)
