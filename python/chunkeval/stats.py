"""Paired statistics: is configuration B really better than configuration A on these questions?

Two configurations scored on the *same* questions give paired per-question values ``a[i]`` and
``b[i]``. Everything here works on the differences ``d = b - a``, so question difficulty (which
moves ``a[i]`` and ``b[i]`` together) cancels out:

- :func:`bootstrap_mean_ci` / :func:`bootstrap_mean_cis`: percentile bootstrap confidence interval
  of a mean over questions (one column, or many columns resampled with the same questions).
- :func:`paired_bootstrap_ci`: the same interval for ``mean(d)``, resampling questions with
  replacement.
- :func:`paired_permutation_test`: two-sided p-value of ``mean(d) = 0`` by random sign flips of
  ``d`` (exact enumeration of all ``2**n`` sign patterns when ``n <= 16``).
- :func:`compare`: both, per metric and per group (corpus), from a per-question results table,
  with a winner named only when the p-value is below ``alpha`` *and* the interval excludes 0.

All metrics compared here are "higher is better" (recall, precision, IoU, precision Ω, coverage).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ComparisonRow",
    "bootstrap_mean_ci",
    "bootstrap_mean_cis",
    "compare",
    "paired_bootstrap_ci",
    "paired_permutation_test",
    "read_results_table",
]

# Exact enumeration costs 2**n * n; at n = 16 that is ~1M cells, cheaper than 10,000 random flips
# of a long vector and free of Monte-Carlo error.
EXACT_PERMUTATION_MAX_N = 16

# Resample this many bootstrap rows at a time so that memory stays bounded for long question lists.
_BATCH_CELLS = 4_000_000


def _paired_differences(a: Any, b: Any) -> np.ndarray:
    a_arr = np.asarray(a, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    for name, arr in (("a", a_arr), ("b", b_arr)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-dimensional (one value per question), got shape {arr.shape}")
        finite = np.isfinite(arr)
        if not finite.all():
            row = int(np.argmin(finite))
            raise ValueError(f"{name}: row {row} is {arr[row]!r}; every question needs a finite score "
                             "(drop the question from both)")
    if len(a_arr) != len(b_arr):
        raise ValueError(
            f"a and b must be paired (one value per question for both), got lengths {len(a_arr)} and {len(b_arr)}"
        )
    if len(a_arr) == 0:
        raise ValueError("a and b are empty; a paired comparison needs at least one question")
    return b_arr - a_arr


def _check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")


def bootstrap_mean_cis(
    columns: Any, n_resamples: int = 10000, confidence: float = 0.95, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap confidence intervals of the column means of an ``(n, m)`` array.

    Row ``i`` is question ``i``. Each of ``n_resamples`` resamples draws ``n`` row indices with
    replacement (``numpy.random.default_rng(seed).integers(0, n, size=(n_resamples, n))``, in that
    order) and takes every column's mean over those rows; the same rows serve every column, so
    columns that score the same questions in the same row order are resampled together. The
    interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (numpy's
    default linear interpolation) of the resampled means.

    The resampled rows depend only on ``seed``, ``n`` and ``n_resamples``, never on the values, so
    a column's interval does not change when other columns are added.

    Returns ``(mean, low, high)``, three arrays of length ``m``; ``mean`` is over the original rows.

    >>> mean, low, high = bootstrap_mean_cis([[0.5, 1.0], [0.5, 1.0]])
    >>> mean.tolist(), low.tolist(), high.tolist()
    ([0.5, 1.0], [0.5, 1.0], [0.5, 1.0])
    """
    values = np.asarray(columns, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("columns must be 2-dimensional (one row per question, one column per series), "
                         f"got shape {values.shape}")
    n, m = values.shape
    if n == 0:
        raise ValueError("columns has no rows; a confidence interval needs at least one question")
    finite = np.isfinite(values)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"columns: row {row}, column {col} is {float(values[row, col])!r}; "
                         "every question needs a finite score")
    _check_bootstrap_args(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    means = np.empty((int(n_resamples), m), dtype=np.float64)
    batch = max(1, _BATCH_CELLS // n)
    for lo in range(0, int(n_resamples), batch):
        hi = min(int(n_resamples), lo + batch)
        idx = rng.integers(0, n, size=(hi - lo, n))
        # How often each question was drawn, so one matrix product averages every column at once.
        flat = (idx + (np.arange(hi - lo, dtype=np.int64) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=(hi - lo) * n).reshape(hi - lo, n).astype(np.float64)
        means[lo:hi] = (counts @ values) / n
    tail = (1.0 - float(confidence)) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return values.mean(axis=0), np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def bootstrap_mean_ci(
    values: Any, n_resamples: int = 10000, confidence: float = 0.95, seed: int | None = 0
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``mean(values)`` over questions.

    One column of :func:`bootstrap_mean_cis` (same resampling, same seed rule). Returns
    ``(mean, low, high)``.

    >>> bootstrap_mean_ci([0.25, 0.25, 0.25])
    (0.25, 0.25, 0.25)
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be 1-dimensional (one value per question), got shape {arr.shape}")
    mean, low, high = bootstrap_mean_cis(arr[:, None], n_resamples=n_resamples, confidence=confidence, seed=seed)
    return float(mean[0]), float(low[0]), float(high[0])


def paired_bootstrap_ci(
    a: Any, b: Any, n_resamples: int = 10000, confidence: float = 0.95, seed: int | None = 0
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of the mean paired difference ``mean(b - a)``.

    Each resample draws ``n`` question indices with replacement (the same indices for ``a`` and
    ``b``, which keeps the pairing) and takes the mean of ``d = b - a`` over them; the interval is
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means. This is
    :func:`bootstrap_mean_ci` of ``d``.

    Returns ``(mean_diff, low, high)`` where ``mean_diff = mean(b - a)`` over the original questions.

    >>> paired_bootstrap_ci([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    (0.0, 0.0, 0.0)
    """
    d = _paired_differences(a, b)
    _check_bootstrap_args(n_resamples, confidence)
    return bootstrap_mean_ci(d, n_resamples=n_resamples, confidence=confidence, seed=seed)


def paired_permutation_test(a: Any, b: Any, n_permutations: int = 10000, seed: int | None = 0) -> float:
    """Two-sided paired permutation (sign-flip) test of ``mean(b - a) = 0``; returns the p-value.

    Under the null hypothesis the sign of each difference ``d_i = b_i - a_i`` is exchangeable, so
    the p-value is the share of sign patterns ``s`` with ``|sum(s * d)| >= |sum(d)|``.

    - ``n <= 16``: all ``2**n`` patterns are enumerated, ``p = count / 2**n`` (exact).
    - otherwise: ``n_permutations`` random patterns, ``p = (count + 1) / (n_permutations + 1)``
      (the +1 counts the observed pattern, so ``p`` is never 0 and the test stays valid).

    Differences that are all zero give ``p = 1``.

    >>> paired_permutation_test([0.0, 0.0, 0.0], [0.1, 0.2, 0.4])
    0.25
    """
    d = _paired_differences(a, b)
    if not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    n = len(d)
    observed = abs(float(d.sum()))
    # Sums of the same numbers in another order differ in the last bits; a pattern that ties the
    # observed statistic must count as "at least as extreme", or p drifts below its true value.
    tolerance = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if n <= EXACT_PERMUTATION_MAX_N:
        patterns = np.arange(2**n, dtype=np.int64)
        bits = (patterns[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1
        signs = 1.0 - 2.0 * bits
        stats = np.abs(signs @ d)
        return float(np.count_nonzero(stats >= observed - tolerance) / 2**n)
    rng = np.random.default_rng(seed)
    count = 0
    batch = max(1, _BATCH_CELLS // n)
    for lo in range(0, int(n_permutations), batch):
        size = min(int(n_permutations), lo + batch) - lo
        signs = rng.integers(0, 2, size=(size, n)).astype(np.float64) * 2.0 - 1.0
        count += int(np.count_nonzero(np.abs(signs @ d) >= observed - tolerance))
    return float((count + 1) / (int(n_permutations) + 1))


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One line of :func:`compare`: configuration ``b`` against ``a`` on one metric and group.

    ``diff = mean_b - mean_a``; ``winner`` is ``"b"`` or ``"a"`` only when ``p_value < alpha``
    and the confidence interval of ``diff`` excludes 0, otherwise ``None``.
    """

    metric: str
    group: str
    n_questions: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    winner: str | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_results_table(results: Any) -> Any:
    """A per-question results table as a ``pyarrow.Table``.

    Accepts a ``pyarrow.Table``/``RecordBatch``, a path to a Parquet file, a mapping of column name
    to values, a list of row dicts, or anything with ``to_arrow()`` or a pandas ``DataFrame``.
    """
    import pyarrow as pa

    if isinstance(results, pa.Table):
        return results
    if isinstance(results, pa.RecordBatch):
        return pa.Table.from_batches([results])
    if isinstance(results, (str, os.PathLike)):
        path = os.fspath(results)
        if not os.path.exists(path):
            raise ValueError(f"results: {path!r} does not exist; pass a Parquet file written by the evaluation")
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if hasattr(results, "to_arrow"):
        return read_results_table(results.to_arrow())
    if isinstance(results, Mapping):
        return pa.table(dict(results))
    if isinstance(results, list):
        return pa.Table.from_pylist(results)
    if type(results).__module__.startswith("pandas"):
        return pa.Table.from_pandas(results, preserve_index=False)
    raise TypeError(
        "results must be a pyarrow Table, a Parquet path, a dict of columns or a list of rows, "
        f"got {type(results).__name__}"
    )


def _require_columns(table: Any, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(
            f"results: the table lacks column(s) {missing} needed for {what}; it has {table.column_names}"
        )


def _column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False))


def _pair_rows(table: Any, config_a: str, config_b: str, key_columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(rows_a, rows_b)`` such that ``rows_a[i]`` and ``rows_b[i]`` are the same question."""
    config = _column(table, "config_id").astype(str)
    keys = list(zip(*(_column(table, c).astype(str).tolist() for c in key_columns), strict=True))
    per_config: dict[str, dict[tuple[str, ...], int]] = {}
    for label, config_id in (("config_a", config_a), ("config_b", config_b)):
        rows = np.flatnonzero(config == str(config_id))
        if len(rows) == 0:
            known = sorted(set(config.tolist()))
            raise ValueError(f"{label}: no rows have config_id {config_id!r}; known config_ids: {known[:20]}")
        index: dict[tuple[str, ...], int] = {}
        for row in rows.tolist():
            key = keys[row]
            if key in index:
                raise ValueError(
                    f"results: config_id {config_id!r} scores question {key} twice (rows {index[key]} and {row}); "
                    "a paired comparison needs one row per question and configuration (filter to one k first)"
                )
            index[key] = row
        per_config[label] = index
    index_a, index_b = per_config["config_a"], per_config["config_b"]
    only_a = [k for k in index_a if k not in index_b]
    only_b = [k for k in index_b if k not in index_a]
    if only_a or only_b:
        raise ValueError(
            f"config_a {config_a!r} and config_b {config_b!r} did not score the same questions: "
            f"{len(only_a)} only in a (e.g. {only_a[:3]}), {len(only_b)} only in b (e.g. {only_b[:3]}); "
            "score both on the same question set (or filter the table to the shared questions)"
        )
    ordered = sorted(index_a)
    return (
        np.array([index_a[k] for k in ordered], dtype=np.int64),
        np.array([index_b[k] for k in ordered], dtype=np.int64),
    )


def compare(
    results_table: Any,
    config_a: str,
    config_b: str,
    metrics: Sequence[str] = ("iou", "recall", "precision"),
    group_by: str | None = "corpus_id",
    alpha: float = 0.05,
    *,
    n_resamples: int = 10000,
    n_permutations: int = 10000,
    seed: int | None = 0,
) -> list[ComparisonRow]:
    """Compare two configurations question by question, per metric, overall and per group.

    ``results_table`` holds one row per (configuration, question) with columns ``config_id``,
    ``question_id``, the metric columns and, if ``group_by`` is set, that column (the corpus).
    Rows are paired on ``question_id`` (and ``corpus_id`` when the table has it, so question ids
    only need to be unique within a corpus). The two configurations must have scored exactly the
    same questions; anything else is a ``ValueError`` listing the unmatched questions.

    For every metric there is one row for ``group="all"`` and, with ``group_by``, one per group
    value (sorted). The confidence interval has level ``1 - alpha``; ``winner`` is ``"b"``
    (``"a"``) only when ``p_value < alpha`` and the whole interval lies above (below) 0.
    """
    table = read_results_table(results_table)
    if not (0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must lie strictly between 0 and 1 (e.g. 0.05), got {alpha!r}")
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics is empty; name at least one metric column, e.g. ('iou',)")
    _require_columns(table, ("config_id", "question_id"), "pairing questions")
    _require_columns(table, metrics, "the requested metrics")
    if group_by is not None:
        _require_columns(table, (group_by,), f"group_by={group_by!r}")
    key_columns = ["question_id"]
    if "corpus_id" in table.column_names:
        key_columns.insert(0, "corpus_id")
    if group_by is not None and group_by not in key_columns:
        key_columns.insert(0, group_by)
    rows_a, rows_b = _pair_rows(table, config_a, config_b, key_columns)

    groups: list[tuple[str, np.ndarray]] = [("all", np.arange(len(rows_a)))]
    if group_by is not None:
        group_values = _column(table, group_by).astype(str)[rows_a]
        for value in sorted(set(group_values.tolist())):
            groups.append((value, np.flatnonzero(group_values == value)))

    out: list[ComparisonRow] = []
    for metric in metrics:
        values = _column(table, metric).astype(np.float64)
        for group, members in groups:
            out.append(_compare_group(values, rows_a[members], rows_b[members], metric, group, alpha,
                                      n_resamples, n_permutations, seed))
    return out


def _compare_group(
    values: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray, metric: str, group: str, alpha: float,
    n_resamples: int, n_permutations: int, seed: int | None,
) -> ComparisonRow:
    a = values[rows_a]
    b = values[rows_b]
    for arr, rows in ((a, rows_a), (b, rows_b)):
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise ValueError(f"results: row {int(rows[bad])} has {metric} = {arr[bad]!r}; metrics must be finite")
    diff, low, high = paired_bootstrap_ci(a, b, n_resamples=n_resamples, confidence=1.0 - float(alpha), seed=seed)
    p_value = paired_permutation_test(a, b, n_permutations=n_permutations, seed=seed)
    winner: str | None = None
    if p_value < alpha and low > 0.0:
        winner = "b"
    elif p_value < alpha and high < 0.0:
        winner = "a"
    return ComparisonRow(metric=metric, group=group, n_questions=len(rows_a), mean_a=float(a.mean()),
                         mean_b=float(b.mean()), diff=diff, ci_low=low, ci_high=high, p_value=p_value, winner=winner)
