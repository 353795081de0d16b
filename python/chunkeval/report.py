"""Reports: turn results tables into tables, plots, a recommendation and a per-question explorer.

Input is one or more results tables (:mod:`chunkeval.results`: Parquet files, folders of them or
``pyarrow.Table`` objects, read with :func:`chunkeval.results.read_results`), one row per
(configuration, question, cut-off ``k``). A *domain* is one ``corpus_id``; ``all`` holds every
question of every corpus (with a single corpus, ``all`` is the only domain).

:func:`write_report` writes into ``out_dir``:

- ``report.md``: per domain, a table with one row per configuration, named by its
  ``config_label`` (the ``config_id`` hash follows, small), holding the mean of each metric shown
  over the domain's questions with its 95 % confidence interval, and the configuration's cost
  (chunks embedded, tokens embedded, index size). The metrics shown are ``metrics=`` (``--metrics``)
  or by default IoU, Recall, Precision and Precision Ω, plus MRR and nDCG when the results have
  rank metrics (docs/metrics.md; results scored without a chunking have none); the file's first
  line is a comment naming them. The best mean of each column is bold. Then the recommendation
  and, with ``baseline``, every configuration's paired difference to the baseline.
- ``report.html``: the same, self-contained (inline CSS, plots embedded as base64 PNG), linking to
  ``explorer.html``.
- ``explorer.html``: a self-contained page (plain JavaScript, no external assets) that shows, for a
  chosen question and two chosen configurations, the corpus text around the question's evidence
  with the reference spans and each configuration's retrieved chunks highlighted: *hit* (retrieved
  and in a reference), *miss* (in a reference, not retrieved), *noise* (retrieved, in no
  reference). Chunks retrieved away from the evidence are listed with an excerpt.
- ``plots/*.png`` and ``plots/*.svg``: per domain and embedder, each metric shown against chunk
  size (one panel per metric; one series per chunker, k and the other attributes that vary; error
  bars are the 95 % confidence intervals; each metric has its own y axis); per domain the
  recall–precision frontier and the recall–cost frontier (points on the frontier labelled with k
  and chunk size).
- ``summary.csv``: the numbers of the tables, one row per (domain, configuration).

**Confidence intervals.** The interval of a mean is a percentile bootstrap over questions:
``n_resamples`` resamples (default 10,000) of the domain's questions drawn with replacement by
``numpy.random.default_rng(seed)`` (default seed 0), the 2.5 % and 97.5 % quantiles of the
resampled means (:func:`chunkeval.stats.bootstrap_mean_cis`). Questions are put in
``(corpus_id, question_id)`` order first, so the interval does not depend on row order, and
configurations that scored the same questions are resampled with the same draws.

**Recommendation.** Per domain, configurations are compared at one cut-off ``k``: the ``k=``
argument, or else the largest ``k`` at which every configuration (every combination of the other
attributes) was run; when no ``k`` is shared by all, the ``k`` most of them were run at (ties to the
larger) and the others are left out, which the report says. ``k=-1`` (Chroma's "auto") and ``k=0``
(every retrieved row) rank below every positive ``k``. At that ``k``:

1. the recall floor is ``recall_floor`` when given, otherwise ``relative_floor`` (default 0.9)
   times the best mean recall at that ``k``, so the recommendation never gives up more than 10 % of
   the recall that the best configuration reaches;
2. among the configurations whose mean recall is at least the floor, the one with the best mean
   IoU (the least retrieved text outside the evidence for the evidence it finds) is recommended;
   ties go to the higher mean recall, then to the configuration listed first;
3. :func:`chunkeval.stats.compare` tests it against the runner-up (the second-best eligible
   configuration) on IoU, paired by question: the win is significant when the permutation test's
   p < ``alpha`` and the bootstrap interval of the IoU difference excludes 0.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from ._io import atomic_open, write_bytes_atomic, write_text_atomic
from ._progress import progress
from .stats import ComparisonRow, bootstrap_mean_cis, compare

if TYPE_CHECKING:
    import pyarrow as pa

    from .datasets import Dataset

__all__ = [
    "ConfigSummary",
    "Recommendation",
    "add_subparser",
    "char_overlap",
    "pareto_frontier",
    "plot_cost_frontier",
    "plot_frontier",
    "plot_metrics_vs_size",
    "recommend",
    "run_report_command",
    "summarize",
    "write_explorer",
    "write_report",
]

#: What :func:`write_report` and friends accept: a table, a Parquet file or folder, or a list of them.
ResultsSource = Union["pa.Table", str, "os.PathLike[str]", Sequence[Union["pa.Table", str, "os.PathLike[str]"]]]

#: The span metrics a report shows by default; the recommendation and the frontiers use them whatever is shown.
METRICS = ("iou", "recall", "precision", "precision_omega")
#: Every span metric a report can show (``metrics=``), in the results table's order of importance.
SPAN_METRICS = ("iou", "recall", "precision", "precision_omega", "coverage")
#: The rank metrics (docs/metrics.md, *Rank metrics*): null in results scored without a chunking.
RANK_METRICS = ("hit", "mrr", "map", "ndcg", "ndcg_graded")
#: The rank metrics shown by default when the results have them.
DEFAULT_RANK_METRICS = ("mrr", "ndcg")
METRIC_LABELS = {"iou": "IoU", "recall": "Recall", "precision": "Precision", "precision_omega": "Precision Ω",
                 "coverage": "Coverage", "hit": "Hit rate", "mrr": "MRR", "map": "MAP", "ndcg": "nDCG",
                 "ndcg_graded": "nDCG (graded)"}
# The baseline section's default metrics: precision Ω is left out as before (it is often not computed).
_BASELINE_METRICS = ("iou", "recall", "precision")
CONFIG_COLUMNS = ("chunker", "chunker_spec", "chunk_size", "size_unit", "chunk_overlap", "embedder", "retrieval",
                  "scope", "k", "semantics", "units")
COST_COLUMNS = ("n_chunks", "embedded_tokens", "index_bytes")
COST_LABELS = {"n_chunks": "Chunks", "embedded_tokens": "Tokens embedded", "index_bytes": "Index size"}
REQUIRED_COLUMNS = ("config_id", "question_id", "corpus_id") + METRICS
ALL_DOMAINS = "all"
CONFIDENCE = 0.95
DEFAULT_RELATIVE_FLOOR = 0.9
DEFAULT_EXPLORER_QUESTIONS = 100
# Characters of corpus text shown on each side of a question's references in the explorer.
EXPLORER_CONTEXT = 300
# Characters shown of a retrieved chunk that lies away from the evidence.
EXPLORER_EXCERPT = 240
# The explorer's embedded data stays below this; beyond it fewer questions are shown (with a note).
EXPLORER_MAX_BYTES = 6_000_000
_K_NAMES = {-1: "auto", 0: "all"}
_UNIT_SHORT = {"tokens": "tok", "chars": "ch", "sentences": "sent"}


# ------------------------------------------------------------------------------------ data model


@dataclasses.dataclass(frozen=True)
class ConfigSummary:
    """One configuration's scores on one domain: the mean of every metric and its 95 % interval.

    ``ci_low``/``ci_high`` are the percentile bootstrap interval of the mean over questions (see
    the module docstring); ``cost`` holds ``n_chunks``, ``embedded_tokens`` and ``index_bytes``
    (``None`` when the results do not record it).
    """

    domain: str
    config_id: str
    label: str
    attributes: dict[str, Any]
    n_questions: int
    mean: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    cost: dict[str, int | None]

    @property
    def k(self) -> int | None:
        value = self.attributes.get("k")
        return None if value is None else int(value)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The configuration to use for one domain, and whether it beats the runner-up significantly.

    ``k`` is the cut-off the candidates share and ``k_rule`` says how it was chosen;
    ``recall_floor`` is the floor applied and ``floor_rule`` how it was set. ``best`` is ``None``
    when no configuration qualifies, ``runner_up`` when only one does; ``top_recall`` is the
    candidate with the best mean recall. ``comparison`` is the IoU row of
    :func:`chunkeval.stats.compare` (runner-up as ``a``, best as ``b``), ``significant`` is
    ``comparison.winner == "b"``, and ``error`` says why no comparison could be made.
    """

    domain: str
    k: int | None
    k_rule: str
    recall_floor: float
    floor_rule: str
    best: ConfigSummary | None
    runner_up: ConfigSummary | None
    top_recall: ConfigSummary | None
    comparison: ComparisonRow | None
    significant: bool
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class _ConfigInfo:
    label: str
    attributes: dict[str, Any]
    cost: dict[str, int | None]


@dataclasses.dataclass(frozen=True)
class _Results:
    table: pa.Table
    columns: dict[str, np.ndarray]
    configs: dict[str, _ConfigInfo]


def _k_text(k: Any) -> str:
    if k is None:
        return ""
    return _K_NAMES.get(int(k), str(int(k)))


def _k_rank(k: int | None) -> tuple[bool, int]:
    """Sort key of cut-offs: every positive k above "all" (0) above "auto" (-1) above unknown."""
    return (k is not None and k > 0, -2 if k is None else k)


def _read_results(results: Any) -> pa.Table:
    import pyarrow as pa

    from .results import read_results

    if isinstance(results, pa.RecordBatch):
        results = pa.Table.from_batches([results])
    if isinstance(results, (str, os.PathLike, pa.Table)):
        return read_results(results)
    if isinstance(results, Iterable) and not isinstance(results, (bytes, dict)):
        sources = list(results)
        bad = [type(s).__name__ for s in sources if not isinstance(s, (str, os.PathLike, pa.Table))]
        if bad:
            raise TypeError(f"results: a list of results must hold paths or pyarrow Tables, got {bad[0]}")
        return read_results(*sources)
    raise TypeError(
        "results must be a pyarrow Table, a results Parquet file or folder, or a list of them; "
        f"got {type(results).__name__}"
    )


def _label_from(attributes: dict[str, Any], config_id: str) -> str:
    a = attributes
    chunking = " ".join(str(a[c]) for c in ("chunker", "chunk_size", "size_unit") if a.get(c) is not None)
    if chunking and a.get("chunk_overlap") is not None:
        chunking += f", overlap {a['chunk_overlap']}"
    parts = [chunking, str(a["embedder"] or ""), str(a["retrieval"] or "")]
    if a.get("k") is not None:
        parts.append(f"k={_k_text(a['k'])}")
    return " · ".join(p for p in parts if p) or config_id


def _column_values(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_pylist(), dtype=object)


def _config_infos(table: pa.Table, config_ids: np.ndarray) -> dict[str, _ConfigInfo]:
    _, first_rows = np.unique(config_ids, return_index=True)
    first_rows = np.sort(first_rows)
    attrs: dict[str, dict[str, Any]] = {str(config_ids[r]): {} for r in first_rows.tolist()}
    for name in CONFIG_COLUMNS:
        values = _column_values(table, name)
        seen: dict[str, tuple[int, Any]] = {}
        for row, (config_id, value) in enumerate(zip(config_ids.tolist(), values.tolist(), strict=True)):
            first = seen.setdefault(config_id, (row, value))
            if first[1] != value:
                raise ValueError(
                    f"results: config_id {config_id!r} has {name} {first[1]!r} in row {first[0]} but {value!r} in row "
                    f"{row}; a config_id must name one configuration (give each its own id)"
                )
        for config_id, (_, value) in seen.items():
            attrs[config_id][name] = value
    labels = _column_values(table, "config_label")
    costs: dict[str, dict[str, int | None]] = {c: {} for c in attrs}
    for name in COST_COLUMNS:
        values = _column_values(table, name)
        for config_id in attrs:
            known = [int(v) for v in values[config_ids == config_id].tolist() if v is not None]
            # The cost is the configuration's; rows that disagree (per-corpus indexes) report the largest.
            costs[config_id][name] = max(known) if known else None
    out: dict[str, _ConfigInfo] = {}
    for row in first_rows.tolist():
        config_id = str(config_ids[row])
        label = labels[row] if labels[row] else _label_from(attrs[config_id], config_id)
        out[config_id] = _ConfigInfo(label=str(label), attributes=attrs[config_id], cost=costs[config_id])
    return out


def _prepare(results: Any) -> _Results:
    if isinstance(results, _Results):
        return results
    arrow = _read_results(results)
    if arrow.num_rows == 0:
        raise ValueError("results: the table has no rows; run chunkeval evaluate, sweep or metrics first")
    columns: dict[str, np.ndarray] = {}
    for name in ("question_id", "corpus_id", "config_id"):
        values = _column_values(arrow, name)
        nulls = [i for i, v in enumerate(values.tolist()) if v is None]
        if nulls:
            raise ValueError(f"results: row {nulls[0]} has no {name}; every row needs one")
        columns[name] = values.astype(str)
    res = _Results(arrow, columns, _config_infos(arrow, columns["config_id"]))
    _load_metrics(res, METRICS)
    return res


def _load_metrics(res: _Results, names: Iterable[str]) -> None:
    """Read and check the metric columns ``names`` into ``res.columns`` (once each): the other
    columns of a table are never checked, so a report shows what it always did for what it did."""
    for name in names:
        if name not in res.columns:
            values = np.asarray(res.table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
            _check_metric(name, values, res.columns["config_id"])
            res.columns[name] = values


def _has_values(res: _Results, name: str) -> bool:
    """Whether any row has metric ``name`` (rank metrics are null in results scored without a chunking)."""
    _load_metrics(res, (name,))
    return bool(np.isfinite(res.columns[name]).any())


def _metric_names(metrics: str | Sequence[str]) -> tuple[str, ...]:
    """``metrics`` as a tuple of known names; a string is a comma-separated list (``"iou,mrr"``)."""
    valid = SPAN_METRICS + RANK_METRICS
    if isinstance(metrics, str):
        names: list[Any] = [m.strip() for m in metrics.split(",")]
    elif isinstance(metrics, Iterable):
        names = list(metrics)
    else:
        raise TypeError(f"metrics must be a sequence of metric names (or a comma-separated string), "
                        f"got {type(metrics).__name__}")
    wrong = [n for n in names if not isinstance(n, str)]
    if wrong:
        raise TypeError(f"metrics: every metric is named by a string, got {type(wrong[0]).__name__} {wrong[0]!r}")
    if not names or names == [""]:
        raise ValueError(f"metrics is empty; name at least one of {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"metrics: unknown metric {unknown[0]!r}; choose from {', '.join(valid)}")
    twice = [n for n, count in Counter(names).items() if count > 1]
    if twice:
        raise ValueError(f"metrics: {twice[0]!r} is named twice; name each metric once")
    return tuple(names)


def _resolve_metrics(res: _Results, metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    """The metrics a report shows: ``metrics``, or by default :data:`METRICS` and, when the results
    have them, :data:`DEFAULT_RANK_METRICS`. A rank metric asked for on results without it is an error."""
    if metrics is None:
        return METRICS + tuple(m for m in DEFAULT_RANK_METRICS if _has_values(res, m))
    names = _metric_names(metrics)
    absent = [m for m in names if m in RANK_METRICS and not _has_values(res, m)]
    if absent:
        raise ValueError(
            f"metrics: the results have no rank metrics ({', '.join(absent)} is null in every row): they were scored "
            "without a chunking (chunkeval metrics without --chunks, or a results table written before the rank "
            "metrics). Rescore with the chunking (chunkeval evaluate or sweep, or chunkeval metrics --chunks) or "
            f"choose from the span metrics {', '.join(SPAN_METRICS)}"
        )
    _load_metrics(res, names)
    return names


def _summary_metrics(shown: Sequence[str]) -> tuple[str, ...]:
    """What a summary holds: :data:`METRICS` (the recommendation and the frontiers read them
    whatever is shown), then the other metrics shown, in their order."""
    return METRICS + tuple(m for m in shown if m not in METRICS)


def _check_metric(name: str, values: np.ndarray, config_ids: np.ndarray) -> None:
    """A metric is a finite number in every row of a configuration, or NaN/null in all of them
    (not computed: ``precision_omega`` of ``chunkeval metrics`` without ``--chunks``)."""
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise ValueError(f"results: row {row} has {name} = {values[row]!r}; metrics must be finite numbers")
    missing = np.isnan(values)
    if not missing.any():
        return
    partly = set(config_ids[missing].tolist()) & set(config_ids[~missing].tolist())
    if partly:
        config = sorted(partly)[0]
        row = int(np.flatnonzero(missing & (config_ids == config))[0])
        raise ValueError(f"results: row {row} has no {name} but other rows of configuration {config} do; a metric is "
                         "computed for every question of a configuration or for none")


# -------------------------------------------------------------------------------------- summaries


def _sort_key(summary: ConfigSummary) -> tuple[Any, ...]:
    a = summary.attributes

    def num(x: Any) -> float:
        return float("inf") if x is None else float(x)

    return (
        str(a["chunker"]), str(a["embedder"]), str(a["size_unit"]), num(a["chunk_size"]), num(a["chunk_overlap"]),
        str(a["retrieval"]), str(a["scope"]), _k_rank(summary.k), str(a["semantics"]), str(a["units"]),
        summary.label, summary.config_id,
    )


def _domains(res: _Results) -> list[str]:
    corpora = sorted(set(res.columns["corpus_id"].tolist()))
    return [ALL_DOMAINS] + (corpora if len(corpora) > 1 else [])


def _domain_mask(res: _Results, domain: str) -> np.ndarray:
    if domain == ALL_DOMAINS:
        return np.ones(len(res.columns["config_id"]), dtype=bool)
    mask: np.ndarray = res.columns["corpus_id"] == domain
    return mask


def _summarize_domain(
    res: _Results, domain: str, n_resamples: int, seed: int | None, metrics: Sequence[str] = METRICS
) -> list[ConfigSummary]:
    rows = np.flatnonzero(_domain_mask(res, domain))
    c = res.columns
    # By configuration, then by question, so each configuration's rows are in one question order.
    rows = rows[np.lexsort((c["question_id"][rows], c["corpus_id"][rows], c["config_id"][rows]))]
    config_of = c["config_id"][rows]
    bounds = np.flatnonzero(np.r_[True, config_of[1:] != config_of[:-1], True])
    by_questions: dict[tuple[tuple[str, str], ...], list[tuple[str, np.ndarray]]] = {}
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        own = rows[lo:hi]
        key = tuple(zip(c["corpus_id"][own].tolist(), c["question_id"][own].tolist(), strict=True))
        by_questions.setdefault(key, []).append((str(config_of[lo]), own))
    summaries: list[ConfigSummary] = []
    for group in by_questions.values():
        matrix = np.column_stack([c[m][own] for _, own in group for m in metrics])
        # A metric a configuration did not compute is NaN in all its rows: resample zeros, report NaN.
        absent = np.isnan(matrix[0])
        mean, low, high = bootstrap_mean_cis(np.where(np.isnan(matrix), 0.0, matrix), n_resamples=n_resamples,
                                             confidence=CONFIDENCE, seed=seed)
        for out in (mean, low, high):
            out[absent] = np.nan
        for j, (config_id, own) in enumerate(group):
            info = res.configs[config_id]
            cols = {m: j * len(metrics) + i for i, m in enumerate(metrics)}
            summaries.append(ConfigSummary(
                domain=domain, config_id=config_id, label=info.label, attributes=info.attributes,
                n_questions=len(own), mean={m: float(mean[i]) for m, i in cols.items()},
                ci_low={m: float(low[i]) for m, i in cols.items()},
                ci_high={m: float(high[i]) for m, i in cols.items()}, cost=info.cost,
            ))
    return sorted(summaries, key=_sort_key)


def summarize(
    results: ResultsSource, *, n_resamples: int = 10000, seed: int | None = 0,
    metrics: str | Sequence[str] | None = None,
) -> dict[str, list[ConfigSummary]]:
    """Mean and 95 % bootstrap interval of every metric per domain and configuration.

    Returns ``{domain: [ConfigSummary, ...]}`` with ``"all"`` first (every question of every
    corpus) and then, when there are several corpora, each ``corpus_id`` in sorted order; within a
    domain configurations are sorted by chunker, embedder, size unit, chunk size, overlap,
    retrieval, scope and k.

    ``metrics`` are the metrics to summarize (as :func:`write_report` takes them; default: IoU,
    recall, precision, precision Ω, and MRR and nDCG when the results have rank metrics); a
    summary always holds :data:`METRICS`, which the recommendation reads. A metric a configuration
    did not compute (null) has NaN mean and interval. Adding a metric does not change the others'
    intervals: the resampled questions depend only on ``seed`` and the questions.
    """
    res = _prepare(results)
    names = _summary_metrics(_resolve_metrics(res, metrics))
    return {domain: _summarize_domain(res, domain, n_resamples, seed, names) for domain in _domains(res)}


# --------------------------------------------------------------------------------- recommendation


def _without_k(summary: ConfigSummary) -> tuple[str, ...]:
    return tuple(str(summary.attributes[c]) for c in CONFIG_COLUMNS if c != "k")


def _fix_k(configs: list[ConfigSummary], k: int | None) -> tuple[int | None, str, list[ConfigSummary]]:
    """The cut-off to compare at, the sentence that says why, and the configurations run at it."""
    if k is not None:
        at_k = [c for c in configs if c.k == k]
        if not at_k:
            present = ", ".join(_k_text(x) for x in sorted({c.k for c in configs}, key=_k_rank) if x is not None)
            return k, f"no configuration was run at k={_k_text(k)} here (present: {present or 'none'})", []
        return k, f"k={_k_text(k)}, as asked", at_k
    groups: dict[tuple[str, ...], set[int | None]] = {}
    for c in configs:
        groups.setdefault(_without_k(c), set()).add(c.k)
    every = set.intersection(*groups.values())
    all_ks = set.union(*groups.values())
    if len(all_ks) == 1:
        chosen = next(iter(all_ks))
        rule = "the only k in these results" if chosen is not None else "the results record no k"
    elif every:
        chosen = max(every, key=_k_rank)
        rule = "the largest k at which every configuration was run"
    else:
        counts = Counter(x for ks in groups.values() for x in ks)
        chosen = max(counts, key=lambda x: (counts[x], _k_rank(x)))
        rule = (f"the k that most configurations were run at ({counts[chosen]} of {len(groups)}); "
                f"the other {len(groups) - counts[chosen]} are not candidates")
    prefix = f"k={_k_text(chosen)}, " if chosen is not None else ""
    return chosen, prefix + rule, [c for c in configs if c.k == chosen]


def _check_recommend_args(recall_floor: float | None, relative_floor: float, k: int | None) -> None:
    if recall_floor is not None and (
        isinstance(recall_floor, bool) or not np.isfinite(recall_floor) or not 0.0 <= float(recall_floor) <= 1.0
    ):
        raise ValueError(f"recall_floor must lie in [0, 1] (a mean recall) or be None, got {recall_floor!r}")
    if isinstance(relative_floor, bool) or not np.isfinite(relative_floor) or not 0.0 < float(relative_floor) <= 1.0:
        raise ValueError(f"relative_floor must lie in (0, 1] (a share of the best mean recall), got {relative_floor!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < -1):
        raise ValueError(f"k must be a cut-off (a positive int, 0 for all or -1 for auto) or None, got {k!r}")


def _rank_eligible(candidates: list[ConfigSummary], floor: float) -> list[ConfigSummary]:
    # A hair of tolerance so the best-recall configuration itself always clears a floor computed from it.
    eligible = [c for c in candidates if c.mean["recall"] >= floor - 1e-12]
    order = sorted(range(len(eligible)), key=lambda i: (-eligible[i].mean["iou"], -eligible[i].mean["recall"], i))
    return [eligible[i] for i in order]


def recommend(
    results: ResultsSource,
    recall_floor: float | None = None,
    *,
    k: int | None = None,
    relative_floor: float = DEFAULT_RELATIVE_FLOOR,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    n_permutations: int = 10000,
    seed: int | None = 0,
    summaries: dict[str, list[ConfigSummary]] | None = None,
) -> dict[str, Recommendation]:
    """Per domain, the configuration to use (the rule is in the module docstring).

    Candidates share one cut-off: ``k``, or else the largest k every configuration was run at.
    The recall floor is ``recall_floor`` (absolute) or else ``relative_floor`` × the best mean
    recall at that k. Among candidates at or above the floor the best mean IoU wins, and
    :func:`chunkeval.stats.compare` tests it against the runner-up on IoU at ``alpha``.
    """
    _check_recommend_args(recall_floor, relative_floor, k)
    res = _prepare(results)
    if summaries is None:
        summaries = summarize(res, n_resamples=n_resamples, seed=seed)
    out: dict[str, Recommendation] = {}
    for domain, configs in summaries.items():
        chosen_k, k_rule, candidates = _fix_k(configs, k)
        top = max(candidates, key=lambda c: c.mean["recall"]) if candidates else None
        if recall_floor is not None:
            floor, floor_rule = float(recall_floor), "as given"
        else:
            floor = float(relative_floor) * (top.mean["recall"] if top else 0.0)
            floor_rule = f"{100 * relative_floor:g} % of the best mean recall at this k"
        ranked = _rank_eligible(candidates, floor)
        best = ranked[0] if ranked else None
        runner_up = ranked[1] if len(ranked) > 1 else None
        comparison: ComparisonRow | None = None
        error: str | None = None
        if best is not None and runner_up is not None:
            try:
                (comparison,) = compare(
                    res.table.filter(_domain_mask(res, domain)), runner_up.config_id, best.config_id, metrics=("iou",),
                    group_by=None, alpha=alpha, n_resamples=n_resamples, n_permutations=n_permutations, seed=seed,
                )
            except ValueError as exc:
                error = str(exc)
        out[domain] = Recommendation(
            domain=domain, k=chosen_k, k_rule=k_rule, recall_floor=floor, floor_rule=floor_rule, best=best,
            runner_up=runner_up, top_recall=top, comparison=comparison,
            significant=comparison is not None and comparison.winner == "b", error=error,
        )
    return out


def pareto_frontier(recall: Sequence[float] | np.ndarray, precision: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates, sorted by recall (ascending).

    Point ``j`` dominates ``i`` when ``recall[j] >= recall[i]`` and ``precision[j] >= precision[i]``
    with at least one strict. Duplicated points are all kept. (Any two "higher is better" axes
    work: the cost frontier passes ``-cost`` as the second.)

    >>> pareto_frontier([0.9, 0.5, 0.4, 0.8], [0.1, 0.3, 0.2, 0.1]).tolist()
    [1, 0]
    """
    r = np.asarray(recall, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1:
        raise ValueError(f"recall and precision must be 1-D of equal length, got shapes {r.shape} and {p.shape}")
    geq = (r[None, :] >= r[:, None]) & (p[None, :] >= p[:, None])
    strict = (r[None, :] > r[:, None]) | (p[None, :] > p[:, None])
    dominated = (geq & strict).any(axis=1)
    keep = np.flatnonzero(~dominated)
    order: np.ndarray = keep[np.lexsort((-p[keep], r[keep]))]
    return order


# ----------------------------------------------------------------------------------------- plots


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


_SERIES_COLUMNS = ("chunker", "size_unit", "chunk_overlap", "retrieval", "scope", "k", "semantics", "units")
_SERIES_NAMES = {"size_unit": "unit", "chunk_overlap": "overlap", "retrieval": "", "scope": "scope", "k": "k",
                 "semantics": "semantics", "units": "in"}


def _series_key(summary: ConfigSummary) -> tuple[str, ...]:
    return tuple(_k_text(summary.k) if c == "k" else str(summary.attributes[c]) for c in _SERIES_COLUMNS)


def _series_label(key: tuple[str, ...], keys: list[tuple[str, ...]]) -> str:
    # Name only the parts that vary between the plotted series, so the legend stays short.
    parts = [key[0]]
    for i, column in enumerate(_SERIES_COLUMNS[1:], start=1):
        if len({k[i] for k in keys}) > 1:
            name = _SERIES_NAMES[column]
            parts.append(f"{name}={key[i]}" if name == "k" else f"{name} {key[i]}".strip())
    return ", ".join(parts)


def _point_label(summary: ConfigSummary) -> str:
    """What a frontier point says about itself: ``k=5 · 200 tok``."""
    a = summary.attributes
    parts = []
    if summary.k is not None:
        parts.append(f"k={_k_text(summary.k)}")
    if a.get("chunk_size") is not None:
        unit = a.get("size_unit")
        parts.append(f"{a['chunk_size']} {_UNIT_SHORT.get(str(unit), unit or '')}".strip())
    return " · ".join(parts) or summary.label[:30]


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, plot_dir: Path, stem: str) -> tuple[Path, Path, bytes]:
    png_buffer = io.BytesIO()
    fig.savefig(png_buffer, format="png", dpi=110)
    png = png_buffer.getvalue()
    png_path = plot_dir / f"{stem}.png"
    svg_path = plot_dir / f"{stem}.svg"
    write_bytes_atomic(png_path, png)
    svg_buffer = io.BytesIO()
    # A fixed (absent) date keeps the SVG identical between runs on the same data.
    fig.savefig(svg_buffer, format="svg", metadata={"Date": None})
    write_bytes_atomic(svg_path, svg_buffer.getvalue())
    return png_path, svg_path, png


def _numeric_size(summary: ConfigSummary) -> float | None:
    size = summary.attributes.get("chunk_size")
    return None if size is None else float(size)


def _embedder_label(summary: ConfigSummary) -> str:
    embedder = summary.attributes.get("embedder")
    return "unknown-embedder" if embedder is None else str(embedder)


def _metric_limits(low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """A y range fitted to one metric's intervals (IoU and precision often live in 0.01–0.1)."""
    lo, hi = float(low.min()), float(high.max())
    pad = max(0.08 * (hi - lo), 0.005)
    return max(0.0, lo - pad), min(1.0 + pad / 2, hi + pad)


def _error_bars(configs: list[ConfigSummary], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.array([c.mean[metric] for c in configs], dtype=np.float64)
    low = np.array([c.ci_low[metric] for c in configs], dtype=np.float64)
    high = np.array([c.ci_high[metric] for c in configs], dtype=np.float64)
    return y, low, high


def _yerr(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    # A percentile interval can miss the mean by a rounding error (or, for skewed data, by more);
    # matplotlib needs non-negative bar lengths.
    return np.vstack([np.maximum(y - low, 0.0), np.maximum(high - y, 0.0)])


def _set_size_axis(ax: Any, sizes: list[float]) -> None:
    from matplotlib.ticker import NullLocator

    if sizes and min(sizes) > 0 and max(sizes) / min(sizes) > 8:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
        ax.xaxis.set_minor_locator(NullLocator())


def _panel_grid(n: int) -> tuple[int, int]:
    """``(rows, columns)`` of a figure with ``n`` panels: one row up to three, the four default
    metrics in a square, three columns beyond."""
    columns = n if n <= 3 else 2 if n == 4 else 3
    return -(-n // columns), columns


def plot_metrics_vs_size(
    domain: str, embedder: str, configs: list[ConfigSummary], metrics: Sequence[str] = METRICS
) -> Any:
    """Each metric against chunk size (a ``matplotlib.figure.Figure``): one panel per metric of
    ``metrics`` with its own y range (one row up to three metrics, a square of four, three columns
    beyond), one series per chunker (and k, overlap, … where they vary), error bars that are the
    95 % intervals of the mean, and one legend for the figure. Every summary must hold every metric."""
    configs = [c for c in configs if _numeric_size(c) is not None]
    missing = [m for m in metrics if any(m not in c.mean for c in configs)]
    if missing or not metrics:
        raise ValueError(f"metrics: the summaries hold no {missing[0]!r}; summarize with metrics including it"
                         if missing else "metrics is empty; name at least one metric to plot")
    n_rows, n_columns = _panel_grid(len(metrics))
    # A single row gets half an inch more for the legend below it (two rows fit theirs in 7 inches).
    fig = _new_figure(4.75 * n_columns, 3.5 * n_rows + (0.5 if n_rows == 1 else 0.0))
    grid = fig.subplots(n_rows, n_columns, sharex=True, squeeze=False)
    for ax in grid.ravel()[len(metrics):]:
        ax.remove()
    axes = grid.ravel()[:len(metrics)]
    keys = sorted({_series_key(c) for c in configs})
    units = sorted({str(c.attributes["size_unit"]) for c in configs})
    sizes = sorted({float(_numeric_size(c) or 0.0) for c in configs})
    # One colour per series without its k, one line style and marker per k: k=1,3,5 of a chunker read as a family.
    k_index = _SERIES_COLUMNS.index("k")
    families = sorted({key[:k_index] + key[k_index + 1:] for key in keys})
    ks = sorted({key[k_index] for key in keys}, key=lambda text: (len(text), text))
    colours = [f"C{i % 10}" for i in range(len(families))]
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v")]
    for ax, metric in zip(axes, metrics, strict=True):
        for key in keys:
            series = sorted((c for c in configs if _series_key(c) == key), key=lambda c: _numeric_size(c) or 0.0)
            x = np.array([_numeric_size(c) for c in series], dtype=np.float64)
            y, low, high = _error_bars(series, metric)
            linestyle, marker = styles[ks.index(key[k_index]) % len(styles)]
            ax.errorbar(x, y, yerr=_yerr(y, low, high), marker=marker, markersize=4, capsize=3, linewidth=1.2,
                        linestyle=linestyle, color=colours[families.index(key[:k_index] + key[k_index + 1:])],
                        label=_series_label(key, keys))
        _, low, high = _error_bars(configs, metric)
        if np.isfinite(low).any():
            ax.set_ylim(*_metric_limits(low[np.isfinite(low)], high[np.isfinite(high)]))
        else:
            ax.text(0.5, 0.5, "not computed", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.set_title(METRIC_LABELS[metric])
        ax.grid(True, alpha=0.3)
        _set_size_axis(ax, sizes)
    for column in range(n_columns):
        # The lowest panel of each column carries the x label (the last row may be short).
        lowest = max(i for i in range(column, len(metrics), n_columns))
        axes[lowest].set_xlabel(f"chunk size ({', '.join(units)})")
        axes[lowest].xaxis.set_tick_params(labelbottom=True)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), fontsize="small")
    fig.suptitle(f"{domain} — {embedder}: mean and 95 % bootstrap CI per chunk size")
    return fig


def _scatter_groups(configs: list[ConfigSummary]) -> list[tuple[str, list[int], str]]:
    groups = sorted({(str(c.attributes["chunker"] or "configuration"), _embedder_label(c)) for c in configs})
    several_embedders = len({g[1] for g in groups}) > 1
    markers = "osD^v<>P*X"
    embedder_marker = {e: markers[i % len(markers)] for i, e in enumerate(sorted({g[1] for g in groups}))}
    out = []
    for chunker, embedder in groups:
        idx = [i for i, c in enumerate(configs)
               if (str(c.attributes["chunker"] or "configuration"), _embedder_label(c)) == (chunker, embedder)]
        out.append((f"{chunker} / {embedder}" if several_embedders else chunker, idx, embedder_marker[embedder]))
    return out


def _annotate(ax: Any, configs: list[ConfigSummary], points: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    for i in points.tolist():
        ax.annotate(_point_label(configs[i]), (x[i], y[i]), fontsize="x-small", xytext=(4, 4),
                    textcoords="offset points")


def plot_frontier(domain: str, configs: list[ConfigSummary]) -> Any:
    """Mean recall against mean precision, a dot per configuration, the Pareto frontier as a line;
    frontier points are labelled with k and chunk size."""
    fig = _new_figure(7.0, 5.2)
    ax = fig.subplots()
    recall = np.array([c.mean["recall"] for c in configs])
    precision = np.array([c.mean["precision"] for c in configs])
    for label, idx, marker in _scatter_groups(configs):
        ax.scatter(recall[idx], precision[idx], label=label, marker=marker, alpha=0.8)
    front = pareto_frontier(recall, precision)
    ax.plot(recall[front], precision[front], color="black", linewidth=1, linestyle="--", label="Pareto frontier")
    _annotate(ax, configs, front, recall, precision)
    ax.set_xlabel("mean recall")
    ax.set_ylabel("mean precision")
    ax.set_xlim(*_metric_limits(recall, recall))
    ax.set_ylim(*_metric_limits(precision, precision))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{domain}: recall–precision frontier")
    return fig


def _cost_axis(configs: list[ConfigSummary]) -> str | None:
    """The cost the frontier plots: tokens embedded where known, else chunks, else index bytes."""
    for name in ("embedded_tokens", "n_chunks", "index_bytes"):
        if sum(c.cost.get(name) is not None for c in configs) >= 2:
            return name
    return None


def plot_cost_frontier(domain: str, configs: list[ConfigSummary], cost: str) -> Any:
    """Mean recall (with its 95 % interval) against a cost column; the frontier joins the
    configurations no cheaper one matches in recall, labelled with k and chunk size."""
    configs = [c for c in configs if c.cost.get(cost) is not None]
    fig = _new_figure(7.0, 5.2)
    ax = fig.subplots()
    x = np.array([float(c.cost[cost] or 0) for c in configs])
    y, low, high = _error_bars(configs, "recall")
    for label, idx, marker in _scatter_groups(configs):
        ax.errorbar(x[idx], y[idx], yerr=_yerr(y[idx], low[idx], high[idx]), fmt=marker,
                    capsize=2, alpha=0.85, label=label)
    front = pareto_frontier(y, -x)
    ax.step(x[front], y[front], where="post", color="black", linewidth=1, linestyle="--", label="frontier")
    _annotate(ax, configs, front, x, y)
    if x.min() > 0 and x.max() / x.min() > 10:
        ax.set_xscale("log")
    ax.set_xlabel(f"{COST_LABELS[cost].lower()} (per configuration)")
    ax.set_ylabel("mean recall (95 % CI)")
    ax.set_ylim(*_metric_limits(low, high))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{domain}: recall against cost")
    return fig


# ---------------------------------------------------------------------------------------- tables


def _fmt(summary: ConfigSummary, metric: str) -> str:
    if not np.isfinite(summary.mean[metric]):
        return "–"
    return f"{summary.mean[metric]:.4f} [{summary.ci_low[metric]:.4f}, {summary.ci_high[metric]:.4f}]"


def _fmt_cost(name: str, value: int | None) -> str:
    if value is None:
        return "–"
    if name == "index_bytes":
        amount = float(value)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if amount < 1024 or unit == "GiB":
                return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
            amount /= 1024
    return f"{value:,}"


def _best_means(configs: list[ConfigSummary], metrics: Sequence[str]) -> dict[str, float]:
    best = {}
    for m in metrics:
        known = [c.mean[m] for c in configs if np.isfinite(c.mean[m])]
        best[m] = max(known) if known else np.nan
    return best


def _cost_columns(configs: list[ConfigSummary]) -> list[str]:
    return [name for name in COST_COLUMNS if any(c.cost.get(name) is not None for c in configs)]


def _short_id(config_id: str) -> str:
    return config_id[:12]


def _markdown_table(configs: list[ConfigSummary], recommended: str | None, metrics: Sequence[str] = METRICS) -> str:
    best = _best_means(configs, metrics)
    costs = _cost_columns(configs)
    header = ["Configuration", "n"] + [METRIC_LABELS[m] for m in metrics] + [COST_LABELS[c] for c in costs]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for c in configs:
        name = c.label.replace("|", "\\|") + f" <sub>`{_short_id(c.config_id)}`</sub>"
        cells = [f"**{name}** ★" if c.config_id == recommended else name, str(c.n_questions)]
        for m in metrics:
            text = _fmt(c, m)
            cells.append(f"**{text}**" if c.mean[m] == best[m] else text)
        cells += [_fmt_cost(name, c.cost.get(name)) for name in costs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(configs: list[ConfigSummary], recommended: str | None, metrics: Sequence[str] = METRICS) -> str:
    best = _best_means(configs, metrics)
    costs = _cost_columns(configs)
    esc = html.escape
    head = "<th>Configuration</th><th>n</th>"
    head += "".join(f'<th class="metric">{esc(METRIC_LABELS[m])} <span class="unit">[95 % CI]</span></th>'
                    for m in metrics)
    head += "".join(f'<th class="metric">{esc(COST_LABELS[c])}</th>' for c in costs)
    body = []
    for c in configs:
        star = ' <span class="star" title="recommended">★</span>' if c.config_id == recommended else ""
        cells = (f'<td class="label">{esc(c.label)}{star}<br><span class="hash" title="config_id {esc(c.config_id)}">'
                 f"{esc(_short_id(c.config_id))}</span></td><td>{c.n_questions}</td>")
        for m in metrics:
            is_best = c.mean[m] == best[m]
            attrs = (f'data-metric="{m}" data-mean="{c.mean[m]!r}" data-low="{c.ci_low[m]!r}" '
                     f'data-high="{c.ci_high[m]!r}"')
            if not np.isfinite(c.mean[m]):
                cells += f'<td class="metric" {attrs} title="not computed">–</td>'
                continue
            mean = f"{c.mean[m]:.4f}"
            cells += (
                f'<td class="metric{" best" if is_best else ""}" {attrs}>'
                + (f"<strong>{mean}</strong>" if is_best else mean)
                + f'<br><span class="ci">[{c.ci_low[m]:.4f}, {c.ci_high[m]:.4f}]</span></td>'
            )
        for name in costs:
            value = c.cost.get(name)
            cells += f'<td class="metric" data-cost="{name}" data-value="{"" if value is None else value}">' \
                     f"{esc(_fmt_cost(name, value))}</td>"
        row_class = ' class="recommended"' if c.config_id == recommended else ""
        body.append(f'<tr data-config="{esc(c.config_id)}" data-label="{esc(c.label)}"{row_class}>{cells}</tr>')
    return (f'<table data-domain="{esc(configs[0].domain)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _comparison_text(row: ComparisonRow, alpha: float) -> str:
    verdict = {"b": "significant", "a": "significantly worse", None: "not significant"}[row.winner]
    return (
        f"Δ{METRIC_LABELS.get(row.metric, row.metric)} = {row.diff:+.4f} "
        f"({100 * (1 - alpha):.0f}% CI [{row.ci_low:+.4f}, {row.ci_high:+.4f}], p = {row.p_value:.4g}, "
        f"n = {row.n_questions}): {verdict} at α = {alpha:g}"
    )


def _recommendation_text(rec: Recommendation, alpha: float, name: Callable[[ConfigSummary], str]) -> str:
    if rec.top_recall is None:
        return f"No recommendation: {rec.k_rule}; pass another k."
    floor = f"mean recall ≥ {rec.recall_floor:.4f} ({rec.floor_rule})"
    if rec.best is None:
        return (f"At {rec.k_rule}, no configuration reaches a {floor}; the best mean recall is "
                f"{rec.top_recall.mean['recall']:.4f} ({name(rec.top_recall)}). Lower the recall floor.")
    b = rec.best
    text = (f"At {rec.k_rule}: recommended {name(b)}, the best mean IoU among configurations with {floor}. "
            f"IoU {_fmt(b, 'iou')}, recall {_fmt(b, 'recall')}, precision {_fmt(b, 'precision')}")
    if rec.top_recall.config_id != b.config_id:
        top = rec.top_recall.mean["recall"]
        text += (f"; it keeps {100 * b.mean['recall'] / top:.1f} % of the best mean recall at this k "
                 f"({top:.4f}, {name(rec.top_recall)})")
    text += ". "
    if rec.runner_up is None:
        text += "It is the only eligible configuration, so there is no runner-up to test against."
    elif rec.comparison is None:
        text += f"Against the runner-up {name(rec.runner_up)} no paired test was possible: {rec.error}"
    else:
        text += (f"Against the runner-up {name(rec.runner_up)} (IoU {rec.runner_up.mean['iou']:.4f}): "
                 f"{_comparison_text(rec.comparison, alpha)}.")
        if not rec.significant:
            text += " These questions do not separate the two; prefer whichever is cheaper to run."
    return text


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1280px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.82rem}
th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.metric{font-variant-numeric:tabular-nums;text-align:right;white-space:nowrap}
td.best{background:#eaf6ea}tr.recommended td.label{background:#eef3fc}.star{color:#d08a00}
td.label{min-width:18rem}.ci{color:#777;font-size:.72rem}
.hash{color:#999;font-size:.72rem;font-family:ui-monospace,monospace}.unit{font-weight:normal;color:#777}
.rec{background:#f6f8fb;border-left:4px solid #4a7bd0;padding:.6rem 1rem}
.note{color:#666;font-size:.85rem}img{max-width:100%;height:auto;margin:.5rem 0}code{background:#f1f1f1;padding:0 .2rem}
"""


# -------------------------------------------------------------------------------------- explorer


def _resolve_dataset(dataset: Any, table: pa.Table) -> tuple[Dataset | None, str]:
    """The dataset behind the results, and a note: ``dataset=``, else the source the provenance
    records (a dataset folder, its questions file or a bundled benchmark)."""
    from . import datasets
    from .results import provenance

    if isinstance(dataset, datasets.Dataset):
        return dataset, ""
    # The explorer shows the questions the results hold: rows the evaluation skipped as invalid
    # are skipped here too, rather than failing the report.
    if dataset is not None:
        return datasets.load(dataset, on_invalid="skip"), ""
    records = [c["dataset"] for c in provenance(table).values()
               if isinstance(c, dict) and isinstance(c.get("dataset"), dict)]
    sources = sorted({str(d["source"]) for d in records if d.get("source")})
    # A recorded name is tried only when it is a bundled benchmark: a folder of that name here may be another dataset.
    names = sorted({str(d["name"]) for d in records if d.get("name") in datasets.BUNDLED})
    if len(sources) > 1:
        return None, (f"the results come from {len(sources)} datasets ({', '.join(sources[:3])}); "
                      "pass --dataset to choose")
    candidates = [*sources, *names]
    for attempt in (a for source in candidates for a in _loadable(source)):
        try:
            data = datasets.load(attempt, on_invalid="skip")
        except (ValueError, TypeError, OSError):
            continue
        fingerprints = {str(d["fingerprint"]) for d in records if d.get("fingerprint")}
        if fingerprints and data.fingerprint() not in fingerprints:
            return data, (f"Dataset {attempt} differs from the one the results were computed on (a subset or an "
                          "edited copy); questions are matched by id and shown with its references.")
        return data, ""
    if candidates:
        return None, f"the dataset the results name ({candidates[0]}) could not be loaded here; pass --dataset"
    return None, "the results do not name their dataset; pass --dataset (a bundled name or a dataset folder)"


def _loadable(source: str) -> list[str]:
    """What :func:`chunkeval.datasets.load` might accept for a recorded dataset source."""
    from .datasets import BUNDLED

    path = Path(source)
    out = []
    if source in BUNDLED:
        out.append(source)
    elif source.startswith("chunkeval/data/") and path.name in BUNDLED:
        out.append(path.name)
    if path.is_dir():
        out.append(source)
    elif path.is_file():
        out.append(str(path.parent))
    return out


def _merge(intervals: Iterable[tuple[int, int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged


def _covered(intervals: list[list[int]]) -> int:
    return sum(e - s for s, e in intervals)


def _intersection(a: list[list[int]], b: list[list[int]]) -> int:
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def char_overlap(
    references: Sequence[tuple[int, int]], retrieved: Sequence[tuple[str, int, int]], corpus_id: str
) -> tuple[int, int, int]:
    """``(hit, miss, noise)`` in characters: reference text retrieved, reference text not
    retrieved, retrieved text outside every reference (a retrieved span of another corpus is all
    noise). Overlapping spans count once."""
    refs = _merge(references)
    own = _merge((s, e) for c, s, e in retrieved if c == corpus_id)
    other = _covered(_merge((s, e) for c, s, e in retrieved if c != corpus_id))
    hit = _intersection(refs, own)
    return hit, _covered(refs) - hit, _covered(own) - hit + other


def _select_questions(res: _Results, keys: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """The questions configurations disagree on most (largest spread of recall) first."""
    c = res.columns
    spread: dict[tuple[str, str], tuple[float, float]] = {}
    for corpus, qid, recall in zip(c["corpus_id"].tolist(), c["question_id"].tolist(), c["recall"].tolist(),
                                   strict=True):
        lo, hi = spread.get((corpus, qid), (recall, recall))
        spread[(corpus, qid)] = (min(lo, recall), max(hi, recall))
    ranked = sorted(keys, key=lambda key: (-(spread[key][1] - spread[key][0]), key))
    return sorted(ranked[:limit])


def _explorer_runs(
    res: _Results, selected: list[tuple[str, str]], rank: Sequence[str] = ()
) -> dict[tuple[str, str, str], dict[str, Any]]:
    c = res.columns
    wanted = set(selected)
    keys = zip(c["corpus_id"].tolist(), c["question_id"].tolist(), strict=True)
    rows = [i for i, key in enumerate(keys) if key in wanted]
    picked = res.table.take(rows)
    spans = picked.column("retrieved_spans").to_pylist()
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for j, row in enumerate(rows):
        corpus = str(c["corpus_id"][row])
        listed = [(str(s["corpus_id"] or corpus), int(s["start"]), int(s["end"])) for s in spans[j] or []]
        values = [float(c[m][row]) for m in rank]
        out[(str(c["config_id"][row]), corpus, str(c["question_id"][row]))] = {
            "recall": float(c["recall"][row]), "precision": float(c["precision"][row]), "iou": float(c["iou"][row]),
            "spans": listed,
            # A configuration scored without a chunking has no rank metrics: none are shown for it.
            "rank": values if values and all(np.isfinite(values)) else None,
        }
    return out


def _explorer_payload(
    res: _Results, data: Dataset, selected: list[tuple[str, str]], config_order: list[ConfigSummary],
    defaults: tuple[int, int], context: int, rank: Sequence[str] = (),
) -> dict[str, Any]:
    records = {(q["corpus_id"], str(q["question_id"])): q for q in data.questions}
    corpus_index = {cid: i for i, cid in enumerate(data.corpora)}
    runs = _explorer_runs(res, selected, rank)
    needed: dict[str, list[tuple[int, int]]] = {}
    questions = []
    for corpus, qid in selected:
        record = records[(corpus, qid)]
        length = len(data.corpora[corpus])
        # A cross-document question's references in other corpora are not drawn on this one's text.
        refs = [(int(r["start_index"]), int(r["end_index"])) for r in record["references"]
                if r.get("corpus_id", corpus) == corpus]
        windows = _merge((max(0, s - context), min(length, e + context)) for s, e in refs)
        needed.setdefault(corpus, []).extend((s, e) for s, e in windows)
        per_config: list[dict[str, Any] | None] = []
        for summary in config_order:
            run = runs.get((summary.config_id, corpus, qid))
            if run is None:
                per_config.append(None)
                continue
            for c_id, s, e in run["spans"]:
                inside = c_id == corpus and any(s < we and ws < e for ws, we in windows)
                if not inside and c_id in data.corpora:
                    needed.setdefault(c_id, []).append((s, min(e, s + EXPLORER_EXCERPT)))
            hit, miss, noise = char_overlap(refs, run["spans"], corpus)
            entry = {
                "r": run["recall"], "p": run["precision"], "i": run["iou"], "hit": hit, "miss": miss, "noise": noise,
                "ret": [[corpus_index.get(c_id, -1), s, e] for c_id, s, e in run["spans"]],
            }
            if run["rank"] is not None:
                entry["rk"] = run["rank"]
            per_config.append(entry)
        questions.append({"id": qid, "c": corpus_index[corpus], "q": str(record.get("question", "")),
                          "refs": [list(r) for r in refs], "win": windows, "runs": per_config})
    segments = {cid: [[s, data.corpora[cid][s:e]] for s, e in _merge(spans)] for cid, spans in needed.items()}
    payload: dict[str, Any] = {
        "corpora": list(data.corpora), "segments": {str(corpus_index[c]): v for c, v in segments.items()},
        "configs": [{"id": s.config_id, "label": s.label} for s in config_order], "defaults": list(defaults),
        "questions": questions, "excerpt": EXPLORER_EXCERPT,
    }
    if rank:
        payload["rank"] = [METRIC_LABELS[m] for m in rank]
    return payload


_EXPLORER_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem}select{max-width:100%;font-size:.9rem;margin:.2rem 0}label{display:block;margin-top:.4rem}
.controls{max-width:1400px}.question{background:#f6f8fb;border-left:4px solid #4a7bd0;padding:.5rem 1rem;margin:1rem 0}
.panels{display:flex;gap:1.2rem;align-items:flex-start}.panel{flex:1;min-width:0;border:1px solid #ddd;padding:.6rem}
.panel h2{font-size:1rem;margin:.2rem 0}.stats{font-size:.85rem;color:#444;font-variant-numeric:tabular-nums}
.window{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.78rem;line-height:1.45;background:#fcfcfc;
border:1px solid #eee;padding:.5rem;margin:.5rem 0;max-height:32rem;overflow:auto}
.hit{background:#9be59b}.miss{background:#ffb3b3;text-decoration:underline wavy #c00}.noise{background:#ffe9a8}
.rank{font-size:.65rem;color:#fff;background:#555;border-radius:3px;padding:0 .2rem;margin-right:.1rem}
.legend span{padding:0 .4rem;margin-right:.4rem}.note{color:#666;font-size:.85rem}.elsewhere li{margin:.3rem 0}
.elsewhere .excerpt{font-family:ui-monospace,monospace;font-size:.75rem;background:#ffe9a8;white-space:pre-wrap}
"""

# Plain JavaScript: builds every text node with textContent, so corpus text is never parsed as HTML.
_EXPLORER_JS = r"""
const D = JSON.parse(document.getElementById('explorer-data').textContent);
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text; return e; }
function textAt(corpus, a, b) { const segs = D.segments[String(corpus)] || [];
  for (const [s, t] of segs) { if (s <= a && b <= s + t.length) return t.slice(a - s, b - s); } return null; }
function covers(spans, x, y) { return spans.some(sp => sp[0] <= x && y <= sp[1]); }
function renderWindow(q, a, b, rets) {
  const box = el('div', 'window'); const cuts = new Set([a, b]);
  for (const sp of q.refs.concat(rets)) { for (const v of [sp[0], sp[1]]) if (v > a && v < b) cuts.add(v); }
  const xs = Array.from(cuts).sort((u, v) => u - v);
  const starts = new Map(); rets.forEach(r => { const at = Math.max(r[0], a); if (!starts.has(at)) starts.set(at, []);
    starts.get(at).push(r[2]); });
  if (a > 0) box.appendChild(el('span', 'note', '… '));
  for (let i = 0; i + 1 < xs.length; i++) { const x = xs[i], y = xs[i + 1];
    if (starts.has(x)) for (const rank of starts.get(x)) box.appendChild(el('span', 'rank', '#' + rank));
    const inRef = covers(q.refs, x, y), inRet = covers(rets, x, y);
    const cls = inRef ? (inRet ? 'hit' : 'miss') : (inRet ? 'noise' : '');
    box.appendChild(el('span', cls, textAt(q.c, x, y))); }
  box.appendChild(el('span', 'note', ' …')); return box; }
function renderPanel(panel, q, ci) {
  panel.replaceChildren(); const cfg = D.configs[ci]; const run = q.runs[ci];
  panel.appendChild(el('h2', '', cfg.label)); panel.appendChild(el('div', 'note', cfg.id));
  if (!run) { panel.appendChild(el('p', 'note', 'This configuration did not score this question.')); return; }
  panel.appendChild(el('div', 'stats', 'recall ' + run.r.toFixed(3) + ' · precision ' + run.p.toFixed(3) +
    ' · IoU ' + run.i.toFixed(3) + ' · characters: ' + run.hit + ' hit, ' + run.miss + ' missed, ' +
    run.noise + ' noise'));
  if (run.rk) panel.appendChild(el('div', 'stats rank-metrics',
    D.rank.map((name, i) => name + ' ' + run.rk[i].toFixed(3)).join(' · ')));
  const rets = []; const away = [];
  run.ret.forEach((r, i) => { const inside = r[0] === q.c && q.win.some(w => r[1] < w[1] && w[0] < r[2]);
    (inside ? rets : away).push([r[1], r[2], i + 1, r[0]]); });
  for (const w of q.win) panel.appendChild(renderWindow(q, w[0], w[1], rets));
  if (away.length) { panel.appendChild(el('h3', 'note', 'Retrieved away from the evidence (noise)'));
    const list = el('ol', 'elsewhere');
    for (const r of away) { const li = el('li'); li.value = r[2];
      const where = r[3] >= 0 ? D.corpora[r[3]] : 'another corpus';
      li.appendChild(el('div', 'note', where + ', characters ' + r[0] + '–' + r[1]));
      const t = r[3] >= 0 ? textAt(r[3], r[0], Math.min(r[1], r[0] + D.excerpt)) : null;
      if (t !== null) li.appendChild(el('span', 'excerpt', t + (r[1] - r[0] > D.excerpt ? ' …' : '')));
      list.appendChild(li); }
    panel.appendChild(list); } }
function fill(select, items) { items.forEach((text, i) => { const o = el('option', '', text); o.value = i;
  select.appendChild(o); }); }
const qs = document.getElementById('question'), ca = document.getElementById('config-a'),
  cb = document.getElementById('config-b');
fill(qs, D.questions.map(q => D.corpora[q.c] + ' · ' + q.id + ' · ' + q.q.slice(0, 90)));
fill(ca, D.configs.map(c => c.label)); fill(cb, D.configs.map(c => c.label));
ca.value = D.defaults[0]; cb.value = D.defaults[1];
function update() { const q = D.questions[Number(qs.value)];
  document.getElementById('question-text').textContent = q.q + '  (' + D.corpora[q.c] + ', ' + q.refs.length +
    ' reference span' + (q.refs.length === 1 ? '' : 's') + ')';
  renderPanel(document.getElementById('panel-a'), q, Number(ca.value));
  renderPanel(document.getElementById('panel-b'), q, Number(cb.value)); }
[qs, ca, cb].forEach(s => s.addEventListener('change', update)); update();
"""


def _explorer_html(payload: dict[str, Any], notes: list[str]) -> str:
    # "<" never appears unescaped inside the script element, so no corpus text can close it early.
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chunkeval explorer</title>"
        f"<style>{_EXPLORER_CSS}</style></head><body>\n<h1>chunkeval: per-question explorer</h1>"
        '<p class="note"><a href="report.html">← report</a>. The corpus text around the question\'s evidence, '
        "with each configuration's top-k retrieved chunks (#rank).</p>"
        '<p class="legend"><span class="hit">hit: reference text retrieved</span><span class="miss">miss: reference '
        'text not retrieved</span><span class="noise">noise: retrieved outside the references</span></p>'
        f"{note_html}"
        '<div class="controls"><label>Question <select id="question"></select></label>'
        '<label>Configuration A <select id="config-a"></select></label>'
        '<label>Configuration B <select id="config-b"></select></label></div>'
        '<div class="question" id="question-text"></div>'
        '<div class="panels"><div class="panel" id="panel-a"></div><div class="panel" id="panel-b"></div></div>\n'
        f'<script type="application/json" id="explorer-data">{data}</script>\n'
        f"<script>{_EXPLORER_JS}</script>\n</body></html>\n"
    )


def _explorer_defaults(config_order: list[ConfigSummary], rec: Recommendation | None) -> tuple[int, int]:
    """Configurations shown first: the recommendation against the runner-up, else against the
    best-recall other configuration at the same k, else against the next one listed."""
    ids = [s.config_id for s in config_order]
    first = ids.index(rec.best.config_id) if rec and rec.best and rec.best.config_id in ids else 0
    same_k = sorted((s for s in config_order if s.k == config_order[first].k and s.config_id != ids[first]),
                    key=lambda s: -s.mean["recall"])
    for other in [rec.runner_up if rec else None, *same_k]:
        if other is not None and other.config_id in ids and other.config_id != ids[first]:
            return first, ids.index(other.config_id)
    return first, next((i for i in range(len(ids)) if i != first), first)


def write_explorer(
    results: ResultsSource,
    path: str | os.PathLike[str],
    *,
    dataset: Dataset | str | os.PathLike[str] | None = None,
    max_questions: int = DEFAULT_EXPLORER_QUESTIONS,
    context: int = EXPLORER_CONTEXT,
    summaries: list[ConfigSummary] | None = None,
    recommendation: Recommendation | None = None,
    metrics: str | Sequence[str] | None = None,
) -> tuple[Path | None, str]:
    """Write the per-question explorer page to ``path``; returns ``(path or None, note)``.

    The corpus texts and references come from ``dataset`` (a :class:`~chunkeval.datasets.Dataset`,
    a bundled name or a dataset folder) or, when it is ``None``, from the dataset source the
    results' provenance records. Without either, or when the results hold no retrieved spans,
    nothing is written and the note says why. At most ``max_questions`` questions are shown, those
    on which the configurations' recall differs most; only ``context`` characters around each
    question's references are embedded, plus a short excerpt of every chunk retrieved elsewhere.
    The rank metrics among ``metrics`` (as :func:`write_report` takes them; by default MRR and nDCG
    when the results have rank metrics) are shown per question for each configuration that has them.
    """
    if isinstance(max_questions, bool) or not isinstance(max_questions, int) or max_questions < 1:
        raise ValueError(f"max_questions must be a positive int (questions shown in the explorer), "
                         f"got {max_questions!r}")
    res = _prepare(results)
    rank = [m for m in _resolve_metrics(res, metrics) if m in RANK_METRICS]
    spans = res.table.column("retrieved_spans")
    if spans.null_count == len(spans):
        return None, "no explorer: the results hold no retrieved spans (they record only scores)"
    data, why = _resolve_dataset(dataset, res.table)
    if data is None:
        return None, f"no explorer: {why}"
    notes = [why] if why else []
    config_order = summaries if summaries is not None else summarize(res, n_resamples=1)[ALL_DOMAINS]
    c = res.columns
    keys = sorted(set(zip(c["corpus_id"].tolist(), c["question_id"].tolist(), strict=True)))
    known = {(q["corpus_id"], str(q["question_id"])) for q in data.questions}
    matched = [key for key in keys if key in known]
    if len(matched) < len(keys):
        notes.append(f"{len(keys) - len(matched)} of {len(keys)} questions of the results are not in dataset "
                     f"{data.name!r} and are left out.")
    if not matched:
        return None, (f"no explorer: none of the results' questions is in dataset {data.name!r}; "
                      "pass the right --dataset")
    limit = min(max_questions, len(matched))
    defaults = _explorer_defaults(config_order, recommendation)
    while True:
        selected = _select_questions(res, matched, limit)
        page = _explorer_html(_explorer_payload(res, data, selected, config_order, defaults, context, rank), notes + (
            [f"Showing {limit} of {len(matched)} questions (at most --explorer-questions, in a page under "
             f"{EXPLORER_MAX_BYTES / 1e6:g} MB): those on which the configurations' recall differs most."]
            if limit < len(matched) else []))
        if len(page.encode("utf-8")) <= EXPLORER_MAX_BYTES or limit == 1:
            break
        limit = max(1, limit // 2)
    out = Path(path)
    write_text_atomic(out, page)
    return out, f"{_plural(limit, 'question')}, {_plural(len(config_order), 'configuration')}"


# ------------------------------------------------------------------------------------------ report


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _resolve_baseline(baseline: str | None, configs: dict[str, _ConfigInfo]) -> str | None:
    if baseline is None or baseline in configs:
        return baseline
    by_label = [cid for cid, info in configs.items() if info.label == baseline]
    if len(by_label) == 1:
        return by_label[0]
    known = [f"{info.label} ({cid})" for cid, info in list(configs.items())[:10]]
    raise ValueError(f"baseline: no configuration has config_id or config_label {baseline!r}; known: {known}")


def write_report(
    results: ResultsSource,
    out_dir: str | os.PathLike[str],
    recall_floor: float | None = None,
    baseline: str | None = None,
    *,
    dataset: Dataset | str | os.PathLike[str] | None = None,
    k: int | None = None,
    relative_floor: float = DEFAULT_RELATIVE_FLOOR,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    n_permutations: int = 10000,
    seed: int | None = 0,
    plots: bool = True,
    explorer: bool = True,
    explorer_questions: int = DEFAULT_EXPLORER_QUESTIONS,
    show_progress: bool | None = None,
    metrics: str | Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``summary.csv``, ``explorer.html`` and ``plots/``.

    ``results``: a results table, a Parquet file or folder, or a list of them (read and checked by
    :func:`chunkeval.results.read_results`). ``recall_floor``, ``relative_floor`` and ``k`` set the
    recommendation (module docstring); ``baseline`` (a ``config_id`` or ``config_label``) adds, per
    domain, every other configuration's paired difference to it on each metric shown (by default
    IoU, recall, precision and the rank metrics shown; precision Ω only when asked for).
    ``dataset`` supplies the corpus texts for the explorer (default: the results' provenance).

    ``metrics`` chooses the metrics shown (a sequence of names or a comma-separated string, in
    the order of the columns): any of :data:`SPAN_METRICS` and :data:`RANK_METRICS`. By default
    the report shows IoU, recall, precision and precision Ω, plus MRR and nDCG when the results
    have rank metrics (results scored without a chunking have none). Each gets a table column
    with its bootstrap interval, a panel of the metrics-against-size figure and a column of the
    baseline section; ``report.md`` opens with a comment naming them (``<!-- chunkeval report:
    {"metrics": [...]} -->``) and ``report.html`` with ``<meta name="chunkeval-metrics">``. The
    recommendation (IoU with a recall floor) does not depend on the choice.

    Returns ``{"markdown", "html", "summary", ["explorer"], "plots/<file>"...: Path}``.
    """
    _check_recommend_args(recall_floor, relative_floor, k)
    res = _prepare(results)
    shown = _resolve_metrics(res, metrics)
    compared = tuple(m for m in shown if m != "precision_omega") if metrics is None else shown
    baseline = _resolve_baseline(baseline, res.configs)
    summaries = summarize(res, n_resamples=n_resamples, seed=seed, metrics=shown)
    recommendations = recommend(
        res, recall_floor, k=k, relative_floor=relative_floor, alpha=alpha, n_resamples=n_resamples,
        n_permutations=n_permutations, seed=seed, summaries=summaries,
    )
    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    explorer_note = "explorer not written (explorer=False)"
    if explorer:
        written, explorer_note = write_explorer(
            res, out / "explorer.html", dataset=dataset, max_questions=explorer_questions,
            summaries=summaries[ALL_DOMAINS], recommendation=recommendations[ALL_DOMAINS], metrics=shown)
        if written is not None:
            paths["explorer"] = written
    n_questions = len(set(zip(res.columns["corpus_id"].tolist(), res.columns["question_id"].tolist(), strict=True)))
    n_corpora = len(set(res.columns["corpus_id"].tolist()))
    intro = (f"{_plural(len(res.configs), 'configuration')}, {_plural(n_questions, 'question')}, "
             f"{_plural(n_corpora, 'corpus', 'corpora')}. Cells are the mean over questions and its 95 % confidence "
             f"interval (percentile bootstrap over questions, {n_resamples} resamples, seed {seed}); the best mean of "
             "each column is bold, ★ marks the recommendation.")
    # Invisible when rendered (a table without rank metrics reads as it always did), parseable by tools.
    header = json.dumps({"metrics": list(shown)})
    md: list[str] = [f"<!-- chunkeval report: {header} -->", "# chunkeval report", "", intro, ""]
    body: list[str] = ["<h1>chunkeval report</h1>", f'<p class="note">{html.escape(intro)}</p>']
    if "explorer" in paths:
        body.append('<p><a href="explorer.html">Per-question explorer</a>: the corpus text around each question\'s '
                    f"evidence with the retrieved chunks highlighted ({html.escape(explorer_note)}).</p>")
        md += [f"[Per-question explorer](explorer.html) ({explorer_note}).", ""]
    else:
        body.append(f'<p class="note">{html.escape(explorer_note)}.</p>')
        md += [explorer_note + ".", ""]
    with progress(show_progress) as bar:
        task = bar.add_task("report", total=len(summaries))
        for domain, configs in summaries.items():
            _domain_section(res, domain, configs, recommendations[domain], baseline, md, body, paths, plot_dir,
                            plots=plots, alpha=alpha, n_resamples=n_resamples, n_permutations=n_permutations, seed=seed,
                            metrics=shown, compared=compared)
            bar.advance(task)
    md_path = out / "report.md"
    write_text_atomic(md_path, "\n".join(md).rstrip() + "\n")
    html_path = out / "report.html"
    write_text_atomic(
        html_path,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chunkeval report</title>"
        f'<meta name="chunkeval-metrics" content="{",".join(shown)}">'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n",
    )
    summary_path = out / "summary.csv"
    _write_summary_csv(summaries, summary_path)
    return {"markdown": md_path, "html": html_path, "summary": summary_path, **paths}


def _domain_section(
    res: _Results, domain: str, configs: list[ConfigSummary], rec: Recommendation, baseline: str | None,
    md: list[str], body: list[str], paths: dict[str, Path], plot_dir: Path, *, plots: bool, alpha: float,
    n_resamples: int, n_permutations: int, seed: int | None, metrics: Sequence[str] = METRICS,
    compared: Sequence[str] = _BASELINE_METRICS,
) -> None:
    title = "All questions" if domain == ALL_DOMAINS else f"Domain: {domain}"
    md += [f"## {title}", ""]
    body.append(f'<section id="{html.escape(_safe_name(domain))}"><h2>{html.escape(title)}</h2>')
    recommended = rec.best.config_id if rec.best else None
    md += [_markdown_table(configs, recommended, metrics), ""]
    body.append(_html_table(configs, recommended, metrics))
    md += [_recommendation_text(rec, alpha, lambda s: f"**{s.label}** (`{_short_id(s.config_id)}`)"), ""]
    body.append(f'<p class="rec" data-recommended="{html.escape(recommended or "")}" data-k="{_k_text(rec.k)}" '
                f'data-floor="{rec.recall_floor!r}">'
                f"{_recommendation_text(rec, alpha, lambda s: f'<strong>{html.escape(s.label)}</strong>')}</p>")
    if baseline is not None:
        lines_md, lines_html = _baseline_section(res, domain, configs, baseline, alpha, n_resamples, n_permutations,
                                                 seed, compared)
        md += lines_md
        body += lines_html
    if plots:
        stem = _safe_name(domain)
        embedders = sorted({_embedder_label(c) for c in configs if _numeric_size(c) is not None})
        for embedder in embedders:
            fig = plot_metrics_vs_size(domain, embedder, [c for c in configs if _embedder_label(c) == embedder],
                                       metrics)
            _add_plot(fig, plot_dir, f"metrics_vs_size__{stem}__{_safe_name(embedder)}",
                      f"{domain}, {embedder}: metrics against chunk size (95 % CI)", paths, md, body)
        _add_plot(plot_frontier(domain, configs), plot_dir, f"frontier__{stem}", f"{domain}: recall–precision frontier",
                  paths, md, body)
        # Cost does not depend on k, so the cost frontier compares the configurations at the recommendation's k.
        at_k = [c for c in configs if c.k == rec.k] or configs
        cost = _cost_axis(at_k)
        if cost is None:
            note = "No recall–cost plot: the results record no cost for at least two configurations at this k."
            md += [note, ""]
            body.append(f'<p class="note">{html.escape(note)}</p>')
        else:
            _add_plot(plot_cost_frontier(domain, at_k, cost), plot_dir, f"cost_frontier__{stem}",
                      f"{domain}: recall against {COST_LABELS[cost].lower()} at k={_k_text(rec.k)}", paths, md, body)
    body.append("</section>")


def _add_plot(
    fig: Any, plot_dir: Path, stem: str, caption: str, paths: dict[str, Path], md: list[str], body: list[str]
) -> None:
    png_path, svg_path, png = _save_figure(fig, plot_dir, stem)
    paths[f"plots/{png_path.name}"] = png_path
    paths[f"plots/{svg_path.name}"] = svg_path
    md += [f"![{caption}](plots/{png_path.name})", ""]
    encoded = base64.b64encode(png).decode("ascii")
    body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
                f"<figcaption class=\"note\">{html.escape(caption)}</figcaption></figure>")


def _baseline_section(
    res: _Results, domain: str, configs: list[ConfigSummary], baseline: str,
    alpha: float, n_resamples: int, n_permutations: int, seed: int | None,
    metrics: Sequence[str] = _BASELINE_METRICS,
) -> tuple[list[str], list[str]]:
    label = res.configs[baseline].label
    base = next((c for c in configs if c.config_id == baseline), None)
    if base is None:
        text = f"The baseline {label} was not run on this domain."
        return [text, ""], [f'<p class="note">{html.escape(text)}</p>']
    rows = res.table.filter(_domain_mask(res, domain))
    header = ["Configuration"] + [f"Δ{METRIC_LABELS[m]} [CI], p" for m in metrics]
    md = [f"### Against the baseline {label}", "", "| " + " | ".join(header) + " |",
          "|" + "|".join("---" for _ in header) + "|"]
    trs = []
    for c in configs:
        if c.config_id == baseline:
            continue
        name = c.label.replace("|", "\\|")
        # A metric either side did not compute (a rank metric of results without a chunking) is not compared.
        known = [m for m in metrics if np.isfinite(base.mean[m]) and np.isfinite(c.mean[m])]
        try:
            rows_out = compare(rows, baseline, c.config_id, metrics=known, group_by=None, alpha=alpha,
                               n_resamples=n_resamples, n_permutations=n_permutations, seed=seed) if known else []
            result = {r.metric: r for r in rows_out}
        except ValueError as exc:
            md.append(f"| {name} | " + " | ".join(["n/a"] * len(metrics)) + " |")
            trs.append(f"<tr><td>{html.escape(c.label)}</td>"
                       f"<td colspan=\"{len(metrics)}\">{html.escape(str(exc))}</td></tr>")
            continue
        cells = []
        for m in metrics:
            r = result.get(m)
            if r is None:
                cells.append("–")
                continue
            mark = {"b": " ▲", "a": " ▼", None: ""}[r.winner]
            cells.append(f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], p={r.p_value:.3g}{mark}")
        md.append(f"| {name} | " + " | ".join(cells) + " |")
        trs.append(f'<tr data-config="{html.escape(c.config_id)}"><td>{html.escape(c.label)}</td>'
                   + "".join(f'<td class="metric">{html.escape(x)}</td>' for x in cells) + "</tr>")
    legend = f"▲ significantly better than the baseline, ▼ significantly worse (p < {alpha:g} and the CI excludes 0)."
    md += ["", legend, ""]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    html_lines = [
        f"<h3>Against the baseline {html.escape(label)}</h3>",
        f'<table class="baseline"><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody></table>',
        f'<p class="note">{html.escape(legend)}</p>',
    ]
    return md, html_lines


def _write_summary_csv(summaries: dict[str, list[ConfigSummary]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rows = []
    for domain, configs in summaries.items():
        for c in configs:
            row: dict[str, Any] = {"domain": domain, "config_id": c.config_id, "config_label": c.label}
            row.update({name: (None if v is None else str(v)) for name, v in c.attributes.items()})
            row["n_questions"] = c.n_questions
            for m in c.mean:
                row[f"{m}_mean"] = c.mean[m]
                row[f"{m}_ci_low"] = c.ci_low[m]
                row[f"{m}_ci_high"] = c.ci_high[m]
            row.update(c.cost)
            rows.append(row)
    schema = pa.Table.from_pylist(rows).schema
    fields = [pa.field(f.name, pa.int64()) if f.name in COST_COLUMNS else f for f in schema]
    with atomic_open(path, "wb") as handle:
        pacsv.write_csv(pa.Table.from_pylist(rows, schema=pa.schema(fields)), handle)


# ------------------------------------------------------------------------------------------- CLI


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` where there is a value to show; an unset option's help says what happens."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.required:
            return action.help
        return super()._get_help_string(action)


def _parse_k(text: str) -> int:
    if text.strip().lower() == "auto":
        return -1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k {text!r}: give a positive integer, 0 (all) or 'auto'") from None
    if value < -1:
        raise argparse.ArgumentTypeError(f"--k {text!r}: give a positive integer, 0 (all) or 'auto'")
    return value


def _parse_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a value between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is outside [0, 1]; give a value between 0 and 1")
    return value


def _parse_metrics(text: str) -> tuple[str, ...]:
    try:
        return _metric_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--metrics {text!r}: {exc}") from None


_EPILOG = """\
The recommendation compares configurations at one k (--k, else the largest k every configuration
was run at) and picks the best mean IoU among those whose mean recall is at least the floor
(--recall-floor, else --relative-floor times the best mean recall at that k).

examples:
  chunkeval report runs/results.parquet --out report/
  chunkeval report a.parquet b.parquet sweep-out/ --out report/ --dataset my-data/ --k 5
  chunkeval report runs/results.parquet --out report/ --metrics iou,recall,mrr,ndcg
"""


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``chunkeval report RESULTS... --out DIR`` on an ``argparse`` subparsers object.

    The parser's ``handler`` default is :func:`run_report_command`: ``args.handler(args)`` returns the exit code
    (0 written, 2 bad input with a one-line reason on stderr).
    """
    parser = subparsers.add_parser(
        "report",
        help="write report.html, report.md, explorer.html and plots from results tables",
        description="Per-domain tables (mean and 95% bootstrap CI of IoU, recall, precision, precision Ω, the rank "
        "metrics MRR and nDCG where the results have them, or the --metrics chosen, and each configuration's cost), "
        "plots, the recall-precision and recall-cost frontiers, a recommendation, and a "
        "per-question explorer page.",
        epilog=_EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="results Parquet files written by evaluate, sweep or metrics, or folders holding them")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--dataset", default=None,
                        help="dataset for the explorer (bundled name or folder); default: the one the results name")
    parser.add_argument("--k", type=_parse_k, default=None,
                        help="compare configurations at this k ('auto' for -1); default: the largest k all share")
    parser.add_argument("--recall-floor", type=_parse_fraction, default=None,
                        help="absolute recall floor of the recommendation; default: --relative-floor × the best recall")
    parser.add_argument("--relative-floor", type=_parse_fraction, default=DEFAULT_RELATIVE_FLOOR,
                        help="recall floor as a share of the best mean recall at the chosen k")
    parser.add_argument("--baseline", default=None,
                        help="config_id or config_label to compare every configuration with")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the comparisons")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples and random sign flips")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap and permutation test")
    parser.add_argument("--explorer-questions", type=int, default=DEFAULT_EXPLORER_QUESTIONS,
                        help="most questions shown in explorer.html")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots (faster)")
    parser.add_argument("--metrics", type=_parse_metrics, default=None, metavar="M1,M2,...",
                        help=f"comma-separated metrics to show, in column order, from {', '.join(SPAN_METRICS)} and "
                        f"the rank metrics {', '.join(RANK_METRICS)}; default: {', '.join(METRICS)}, plus "
                        f"{' and '.join(DEFAULT_RANK_METRICS)} when the results have rank metrics")
    parser.set_defaults(handler=run_report_command)
    return cast(argparse.ArgumentParser, parser)


def run_report_command(args: argparse.Namespace) -> int:
    """Handler of ``chunkeval report``; returns the process exit code."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"chunkeval report: error: --out {out} is a file; pass a directory", file=sys.stderr)
        return 2
    if args.relative_floor == 0:
        print("chunkeval report: error: --relative-floor must be above 0 (e.g. 0.9)", file=sys.stderr)
        return 2
    try:
        paths = write_report(
            args.results, out, recall_floor=args.recall_floor, baseline=args.baseline, dataset=args.dataset, k=args.k,
            relative_floor=args.relative_floor, alpha=args.alpha, n_resamples=args.resamples,
            n_permutations=args.resamples, seed=args.seed, plots=not args.no_plots,
            explorer_questions=args.explorer_questions, metrics=args.metrics,
        )
    except (ValueError, TypeError, OSError) as exc:
        print(f"chunkeval report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    extra = f", {paths['explorer']}" if "explorer" in paths else " (no explorer: see the report)"
    n_plots = sum(k.startswith("plots/") for k in paths)
    print(f"wrote {paths['markdown']}, {paths['html']}{extra} and {n_plots} plot files")
    return 0
