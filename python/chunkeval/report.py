"""Reports: turn a per-question results table into tables, plots and a recommendation per domain.

Input is the evaluation's per-question table (a ``pyarrow.Table`` or a Parquet path), one row per
(configuration, question) with columns ``question_id``, ``corpus_id`` (the domain), ``config_id``,
``chunker``, ``chunk_size``, ``size_unit``, ``chunk_overlap``, ``embedder``, ``k``, ``semantics``,
``units`` and the metrics ``recall``, ``precision``, ``iou``, ``precision_omega`` (float64).

:func:`write_report` writes into ``out_dir``:

- ``report.md``: per domain (every ``corpus_id``, and ``all`` for every question together), a
  table with one row per configuration (sorted by chunker, embedder, chunk size) and the mean ±
  population standard deviation (ddof=0) of IoU, Recall, Precision and Precision Ω; the best mean
  of each column is bold. Then the recommendation and, with ``baseline``, every configuration's
  paired difference to the baseline.
- ``report.html``: the same, self-contained (inline CSS, plots embedded as base64 PNG).
- ``plots/*.png`` and ``plots/*.svg``: each metric against chunk size per domain and embedder, and
  the recall–precision frontier per domain (a dot per configuration, the Pareto frontier as a line).
- ``summary.csv``: the numbers of the tables, one row per (domain, configuration).

The recommendation for a domain is the configuration with the best mean IoU among those whose mean
recall is at least ``recall_floor``; :func:`chunkeval.stats.compare` against the runner-up (the
second-best eligible configuration) says whether the win is significant (paired permutation test
p < alpha and a bootstrap interval of the IoU difference that excludes 0).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import io
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ._io import atomic_open, write_bytes_atomic, write_text_atomic
from ._progress import progress
from .stats import ComparisonRow, compare, read_results_table

__all__ = [
    "ConfigSummary",
    "Recommendation",
    "add_subparser",
    "pareto_frontier",
    "recommend",
    "summarize",
    "write_report",
]

METRICS = ("iou", "recall", "precision", "precision_omega")
METRIC_LABELS = {"iou": "IoU", "recall": "Recall", "precision": "Precision", "precision_omega": "Precision Ω"}
CONFIG_COLUMNS = ("chunker", "chunk_size", "size_unit", "chunk_overlap", "embedder", "k", "semantics", "units")
REQUIRED_COLUMNS = ("question_id", "corpus_id") + METRICS
ALL_DOMAINS = "all"
# A table without config_id (one `chunkeval evaluate` run) is one configuration of this name.
SINGLE_CONFIG_ID = "default"


@dataclasses.dataclass(frozen=True)
class ConfigSummary:
    """One configuration's scores on one domain: mean and population std of every metric."""

    domain: str
    config_id: str
    attributes: dict[str, Any]
    n_questions: int
    mean: dict[str, float]
    std: dict[str, float]

    def label(self) -> str:
        """A short human description: ``recursive 400 tokens, overlap 0, minilm, k=5``."""
        a = self.attributes
        parts = [" ".join(str(a[c]) for c in ("chunker", "chunk_size", "size_unit") if a.get(c) is not None)]
        if a.get("chunk_overlap") not in (None, "", 0):
            parts.append(f"overlap {a['chunk_overlap']}")
        if a.get("embedder") is not None:
            parts.append(str(a["embedder"]))
        if a.get("k") not in (None, ""):
            parts.append(f"k={a['k']}")
        return ", ".join(p for p in parts if p) or self.config_id


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The configuration to use for one domain, and whether it beats the runner-up significantly.

    ``best`` is ``None`` when no configuration reaches the recall floor; ``runner_up`` is ``None``
    when only one does. ``comparison`` is the IoU row of :func:`chunkeval.stats.compare` (runner-up
    as ``a``, best as ``b``), and ``significant`` is ``comparison.winner == "b"``. ``error`` says why
    the comparison could not be made (e.g. the two scored different questions).
    """

    domain: str
    recall_floor: float
    best: ConfigSummary | None
    runner_up: ConfigSummary | None
    comparison: ComparisonRow | None
    significant: bool
    error: str | None = None


def _to_python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _prepare(results: Any) -> tuple[Any, dict[str, np.ndarray]]:
    import pyarrow as pa

    table = read_results_table(results)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(
            f"results: the table lacks column(s) {missing}; a per-question results table has {list(REQUIRED_COLUMNS)} "
            f"(plus config_id and {list(CONFIG_COLUMNS)} when it holds several configurations)"
        )
    if table.num_rows == 0:
        raise ValueError("results: the table has no rows; run an evaluation first")
    columns: dict[str, np.ndarray] = {}
    if "config_id" not in table.column_names:
        table = table.append_column("config_id", pa.array([SINGLE_CONFIG_ID] * table.num_rows))
    for name in ("question_id", "corpus_id", "config_id"):
        columns[name] = np.asarray(table.column(name).to_numpy(zero_copy_only=False)).astype(str)
    for name in CONFIG_COLUMNS:
        if name in table.column_names:
            columns[name] = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=object)
        else:
            columns[name] = np.full(table.num_rows, None, dtype=object)
    for name in METRICS:
        values = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            raise ValueError(f"results: row {row} has {name} = {values[row]!r}; metrics must be finite numbers")
        columns[name] = values
    return table, columns


def _config_attributes(columns: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    attributes: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    for row, config_id in enumerate(columns["config_id"].tolist()):
        attrs = {name: _to_python(columns[name][row]) for name in CONFIG_COLUMNS}
        known = attributes.get(config_id)
        if known is None:
            attributes[config_id] = attrs
            first_row[config_id] = row
        elif known != attrs:
            differing = sorted(k for k in attrs if attrs[k] != known[k])
            raise ValueError(
                f"results: config_id {config_id!r} has different {differing} in rows {first_row[config_id]} and {row}; "
                "a config_id must name one configuration (give each its own id)"
            )
    return attributes


def _sort_key(summary: ConfigSummary) -> tuple[Any, ...]:
    a = summary.attributes

    def num(x: Any) -> float:
        try:
            return float(x)
        except (TypeError, ValueError):
            return float("inf")

    return (
        str(a["chunker"]), str(a["embedder"]), str(a["size_unit"]), num(a["chunk_size"]),
        num(a["chunk_overlap"]), num(a["k"]), str(a["semantics"]), str(a["units"]), summary.config_id,
    )


def summarize(results: Any) -> dict[str, list[ConfigSummary]]:
    """Mean and population std (ddof=0) of every metric per domain and configuration.

    Returns ``{domain: [ConfigSummary, ...]}`` with ``"all"`` first (every question of every
    corpus) and then each ``corpus_id`` in sorted order; within a domain the configurations are
    sorted by chunker, embedder, size unit, chunk size, overlap and k.
    """
    _, columns = _prepare(results)
    attributes = _config_attributes(columns)
    domains = [ALL_DOMAINS] + sorted(set(columns["corpus_id"].tolist()))
    out: dict[str, list[ConfigSummary]] = {}
    for domain in domains:
        in_domain = np.ones(len(columns["config_id"]), dtype=bool) if domain == ALL_DOMAINS else columns["corpus_id"] == domain
        summaries = []
        for config_id in sorted(set(columns["config_id"][in_domain].tolist())):
            rows = np.flatnonzero(in_domain & (columns["config_id"] == config_id))
            summaries.append(
                ConfigSummary(
                    domain=domain,
                    config_id=config_id,
                    attributes=attributes[config_id],
                    n_questions=len(rows),
                    mean={m: float(np.mean(columns[m][rows])) for m in METRICS},
                    std={m: float(np.std(columns[m][rows])) for m in METRICS},
                )
            )
        out[domain] = sorted(summaries, key=_sort_key)
    return out


def _domain_rows(table: Any, columns: dict[str, np.ndarray], domain: str) -> Any:
    if domain == ALL_DOMAINS:
        return table
    import pyarrow as pa

    return table.filter(pa.array(columns["corpus_id"] == domain))


def recommend(
    results: Any,
    recall_floor: float = 0.0,
    *,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    n_permutations: int = 10000,
    seed: int | None = 0,
    summaries: dict[str, list[ConfigSummary]] | None = None,
) -> dict[str, Recommendation]:
    """Per domain, the configuration with the best mean IoU among those with mean recall ≥ ``recall_floor``.

    Ties on IoU go to the higher mean recall, then to the configuration listed first. The winner is
    compared with the runner-up by :func:`chunkeval.stats.compare` on IoU (paired on the domain's
    questions) to say whether the win is significant at ``alpha``.
    """
    if not np.isfinite(recall_floor) or not (0.0 <= float(recall_floor) <= 1.0):
        raise ValueError(f"recall_floor must lie in [0, 1] (a mean recall), got {recall_floor!r}")
    table, columns = _prepare(results)
    if summaries is None:
        summaries = summarize(table)
    out: dict[str, Recommendation] = {}
    for domain, configs in summaries.items():
        eligible = [c for c in configs if c.mean["recall"] >= recall_floor]
        order = sorted(range(len(eligible)), key=lambda i: (-eligible[i].mean["iou"], -eligible[i].mean["recall"], i))
        ranked = [eligible[i] for i in order]
        best = ranked[0] if ranked else None
        runner_up = ranked[1] if len(ranked) > 1 else None
        comparison: ComparisonRow | None = None
        error: str | None = None
        if best is not None and runner_up is not None:
            try:
                (comparison,) = compare(
                    _domain_rows(table, columns, domain), runner_up.config_id, best.config_id, metrics=("iou",),
                    group_by=None, alpha=alpha, n_resamples=n_resamples, n_permutations=n_permutations, seed=seed,
                )
            except ValueError as exc:
                error = str(exc)
        out[domain] = Recommendation(
            domain=domain,
            recall_floor=float(recall_floor),
            best=best,
            runner_up=runner_up,
            comparison=comparison,
            significant=comparison is not None and comparison.winner == "b",
            error=error,
        )
    return out


def pareto_frontier(recall: Sequence[float], precision: Sequence[float]) -> np.ndarray:
    """Indices of the points no other point dominates, sorted by recall (ascending).

    Point ``j`` dominates ``i`` when ``recall[j] >= recall[i]`` and ``precision[j] >= precision[i]``
    with at least one strict. Duplicated points are all kept.

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
    return keep[np.lexsort((-p[keep], r[keep]))]


# ----------------------------------------------------------------------------------------- plots


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def _series_key(summary: ConfigSummary) -> tuple[str, ...]:
    a = summary.attributes
    return (str(a["chunker"]), str(a["size_unit"]), str(a["chunk_overlap"]), str(a["k"]), str(a["semantics"]), str(a["units"]))


def _series_label(key: tuple[str, ...], keys: list[tuple[str, ...]]) -> str:
    # Name only the parts that vary between the plotted series, so legends stay short.
    names = ("", "unit", "overlap", "k", "semantics", "units")
    parts = [key[0]]
    for i in range(1, len(key)):
        if len({k[i] for k in keys}) > 1:
            parts.append(f"{names[i]} {key[i]}")
    return ", ".join(parts)


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
    try:
        size = float(summary.attributes["chunk_size"])
    except (TypeError, ValueError):
        return None
    return size if np.isfinite(size) else None


def _embedder_label(summary: ConfigSummary) -> str:
    embedder = summary.attributes.get("embedder")
    return "unknown-embedder" if embedder is None else str(embedder)


def _plot_metrics_vs_size(domain: str, embedder: str, configs: list[ConfigSummary]) -> Any:
    configs = [c for c in configs if _numeric_size(c) is not None]
    fig = _new_figure(9.0, 6.5)
    axes = fig.subplots(2, 2, sharex=True)
    keys = sorted({_series_key(c) for c in configs})
    units = sorted({str(c.attributes["size_unit"]) for c in configs})
    for ax, metric in zip(axes.ravel(), METRICS):
        for key in keys:
            series = sorted((c for c in configs if _series_key(c) == key), key=lambda c: _numeric_size(c) or 0.0)
            x = np.array([_numeric_size(c) for c in series], dtype=np.float64)
            y = np.array([c.mean[metric] for c in series])
            sd = np.array([c.std[metric] for c in series])
            (line,) = ax.plot(x, y, marker="o", label=_series_label(key, keys))
            ax.fill_between(x, np.clip(y - sd, 0, 1), np.clip(y + sd, 0, 1), color=line.get_color(), alpha=0.12, linewidth=0)
        ax.set_title(METRIC_LABELS[metric])
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel(f"chunk size ({', '.join(units)})")
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"{domain} — {embedder}: mean ± std per chunk size")
    return fig


def _plot_frontier(domain: str, configs: list[ConfigSummary]) -> Any:
    fig = _new_figure(6.5, 5.0)
    ax = fig.subplots()
    recall = np.array([c.mean["recall"] for c in configs])
    precision = np.array([c.mean["precision"] for c in configs])
    groups = sorted({(_cell(c.attributes["chunker"]) or "configuration", _embedder_label(c)) for c in configs})
    several_embedders = len({g[1] for g in groups}) > 1
    markers = "osD^v<>P*X"
    embedder_marker = {e: markers[i % len(markers)] for i, e in enumerate(sorted({g[1] for g in groups}))}
    for chunker, embedder in groups:
        idx = [i for i, c in enumerate(configs)
               if (_cell(c.attributes["chunker"]) or "configuration", _embedder_label(c)) == (chunker, embedder)]
        label = f"{chunker} / {embedder}" if several_embedders else chunker
        ax.scatter(recall[idx], precision[idx], label=label, marker=embedder_marker[embedder], alpha=0.8)
    front = pareto_frontier(recall, precision)
    ax.plot(recall[front], precision[front], color="black", linewidth=1, linestyle="--", label="Pareto frontier")
    for i in front.tolist():
        ax.annotate(_cell(configs[i].attributes["chunk_size"]) or configs[i].config_id, (recall[i], precision[i]), fontsize="x-small",
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mean recall")
    ax.set_ylabel("mean precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, max(0.05, float(precision.max()) * 1.15))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{domain}: recall–precision frontier")
    return fig


# ---------------------------------------------------------------------------------------- tables


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _best_means(configs: list[ConfigSummary]) -> dict[str, float]:
    return {m: max(c.mean[m] for c in configs) for m in METRICS}


def _varying(configs: list[ConfigSummary], column: str) -> bool:
    return len({str(c.attributes[column]) for c in configs}) > 1


def _descriptor_columns(configs: list[ConfigSummary]) -> list[tuple[str, Any]]:
    cols: list[tuple[str, Any]] = [
        ("Config", lambda c: c.config_id),
        ("Chunker", lambda c: c.attributes["chunker"]),
        ("Embedder", lambda c: c.attributes["embedder"]),
        ("Size", lambda c: " ".join(str(c.attributes[k]) for k in ("chunk_size", "size_unit") if c.attributes[k] is not None)),
        ("Overlap", lambda c: c.attributes["chunk_overlap"]),
        ("k", lambda c: c.attributes["k"]),
    ]
    for column, title in (("semantics", "Semantics"), ("units", "Units")):
        if _varying(configs, column):
            cols.append((title, lambda c, column=column: c.attributes[column]))
    cols.append(("n", lambda c: c.n_questions))
    return cols


def _shared_note(configs: list[ConfigSummary]) -> str:
    parts = []
    for column in ("semantics", "units"):
        if not _varying(configs, column) and configs[0].attributes[column] is not None:
            parts.append(f"{column}: {configs[0].attributes[column]}")
    return "; ".join(parts)


def _markdown_table(configs: list[ConfigSummary]) -> str:
    descriptors = _descriptor_columns(configs)
    best = _best_means(configs)
    header = [title for title, _ in descriptors] + [METRIC_LABELS[m] for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for c in configs:
        cells = [_cell(get(c)).replace("|", "\\|") for _, get in descriptors]
        for m in METRICS:
            text = _fmt(c.mean[m], c.std[m])
            cells.append(f"**{text}**" if c.mean[m] == best[m] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(configs: list[ConfigSummary]) -> str:
    descriptors = _descriptor_columns(configs)
    best = _best_means(configs)
    esc = html.escape
    head = "".join(f"<th>{esc(title)}</th>" for title, _ in descriptors)
    head += "".join(f'<th class="metric">{esc(METRIC_LABELS[m])}</th>' for m in METRICS)
    body = []
    for c in configs:
        cells = "".join(f"<td>{esc(_cell(get(c)))}</td>" for _, get in descriptors)
        for m in METRICS:
            text = esc(_fmt(c.mean[m], c.std[m]))
            is_best = c.mean[m] == best[m]
            cells += (
                f'<td class="metric{" best" if is_best else ""}" data-metric="{m}" '
                f'data-mean="{c.mean[m]!r}" data-std="{c.std[m]!r}">'
                + (f"<strong>{text}</strong>" if is_best else text)
                + "</td>"
            )
        body.append(f'<tr data-config="{esc(c.config_id)}">{cells}</tr>')
    return f'<table data-domain="{esc(configs[0].domain)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _comparison_text(row: ComparisonRow, alpha: float) -> str:
    verdict = {"b": "significant", "a": "significantly worse", None: "not significant"}[row.winner]
    return (
        f"Δ{METRIC_LABELS.get(row.metric, row.metric)} = {row.diff:+.4f} "
        f"({100 * (1 - alpha):.0f}% CI [{row.ci_low:+.4f}, {row.ci_high:+.4f}], p = {row.p_value:.4g}, "
        f"n = {row.n_questions}): {verdict} at α = {alpha:g}"
    )


def _recommendation_text(rec: Recommendation, alpha: float, code: Any) -> str:
    if rec.best is None:
        return f"No configuration reaches a mean recall of {rec.recall_floor:g}; lower the recall floor to get a recommendation."
    b = rec.best
    text = (
        f"Recommended: {code(b.config_id)} ({b.label()}): IoU {_fmt(b.mean['iou'], b.std['iou'])}, "
        f"recall {b.mean['recall']:.4f}, precision {b.mean['precision']:.4f}"
    )
    if rec.recall_floor > 0:
        text += f" (best IoU among configurations with mean recall ≥ {rec.recall_floor:g})"
    text += ". "
    if rec.runner_up is None:
        text += "It is the only eligible configuration, so there is no runner-up to test against."
    elif rec.comparison is None:
        text += f"Against the runner-up {code(rec.runner_up.config_id)} no paired test was possible: {rec.error}"
    else:
        text += (
            f"Against the runner-up {code(rec.runner_up.config_id)} ({rec.runner_up.label()}, IoU "
            f"{rec.runner_up.mean['iou']:.4f}): {_comparison_text(rec.comparison, alpha)}."
        )
        if not rec.significant:
            text += " These questions do not separate the two; prefer whichever is cheaper to run."
    return text


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}
th{background:#f4f4f4}td.metric{font-variant-numeric:tabular-nums;text-align:right;white-space:nowrap}
td.best{background:#eaf6ea}.rec{background:#f6f8fb;border-left:4px solid #4a7bd0;padding:.6rem 1rem}
.note{color:#666;font-size:.85rem}img{max-width:100%;height:auto;margin:.5rem 0}code{background:#f1f1f1;padding:0 .2rem}
"""


def write_report(
    results: Any,
    out_dir: str | os.PathLike[str],
    recall_floor: float = 0.0,
    baseline: str | None = None,
    *,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    n_permutations: int = 10000,
    seed: int | None = 0,
    plots: bool = True,
    show_progress: bool | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``summary.csv`` and ``plots/`` for a results table.

    ``baseline`` (a ``config_id``) adds, per domain, every other configuration's paired difference
    to it on IoU, recall and precision (bootstrap CI and permutation p-value, see
    :func:`chunkeval.stats.compare`). Returns ``{"markdown": ..., "html": ..., "summary": ...,
    "plots/<file>": ...}``, every value a ``Path``.
    """
    table, columns = _prepare(results)
    if baseline is not None and baseline not in set(columns["config_id"].tolist()):
        known = sorted(set(columns["config_id"].tolist()))
        raise ValueError(f"baseline: no rows have config_id {baseline!r}; known config_ids: {known[:20]}")
    summaries = summarize(table)
    recommendations = recommend(
        table, recall_floor, alpha=alpha, n_resamples=n_resamples, n_permutations=n_permutations, seed=seed,
        summaries=summaries,
    )
    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    domain_stems = _unique_stems(list(summaries))

    md: list[str] = [
        "# chunkeval report",
        "",
        f"{len(set(columns['config_id'].tolist()))} configurations, {len(set(zip(columns['corpus_id'].tolist(), columns['question_id'].tolist())))} questions, "
        f"{len(summaries) - 1} domains. Cells are mean ± population std over questions; the best mean of each column is bold.",
        "",
    ]
    body: list[str] = [
        "<h1>chunkeval report</h1>",
        f'<p class="note">{html.escape(md[2])}</p>',
    ]
    n_plots = sum(len({_embedder_label(c) for c in cs if _numeric_size(c) is not None}) + 1
                  for cs in summaries.values()) if plots else 0
    with progress(show_progress) as bar:
        task = bar.add_task("report", total=len(summaries) + n_plots)
        for domain, configs in summaries.items():
            title = "All domains" if domain == ALL_DOMAINS else f"Domain: {domain}"
            md += [f"## {title}", ""]
            body.append(f'<section id="{html.escape(_safe_name(domain))}"><h2>{html.escape(title)}</h2>')
            note = _shared_note(configs)
            if note:
                md += [note, ""]
                body.append(f'<p class="note">{html.escape(note)}</p>')
            md += [_markdown_table(configs), ""]
            body.append(_html_table(configs))
            rec = recommendations[domain]
            md += [_recommendation_text(rec, alpha, lambda s: f"`{s}`"), ""]
            body.append(f'<p class="rec" data-recommended="{html.escape(rec.best.config_id if rec.best else "")}">'
                        f"{_recommendation_text(rec, alpha, lambda s: f'<code>{html.escape(s)}</code>')}</p>")
            if baseline is not None:
                lines_md, lines_html = _baseline_section(table, columns, domain, configs, baseline, alpha, n_resamples,
                                                         n_permutations, seed)
                md += lines_md
                body += lines_html
            bar.advance(task)
            if plots:
                embedders = sorted({_embedder_label(c) for c in configs if _numeric_size(c) is not None})
                embedder_stems = _unique_stems(embedders)
                for embedder in embedders:
                    fig = _plot_metrics_vs_size(domain, embedder, [c for c in configs if _embedder_label(c) == embedder])
                    stem = f"metrics_vs_size__{domain_stems[domain]}__{embedder_stems[embedder]}"
                    _add_plot(fig, plot_dir, stem, f"{domain}, {embedder}: metrics against chunk size", paths, md, body)
                    bar.advance(task)
                fig = _plot_frontier(domain, configs)
                _add_plot(fig, plot_dir, f"frontier__{domain_stems[domain]}", f"{domain}: recall–precision frontier",
                          paths, md, body)
                bar.advance(task)
            body.append("</section>")

    md_path = out / "report.md"
    write_text_atomic(md_path, "\n".join(md).rstrip() + "\n")
    html_path = out / "report.html"
    write_text_atomic(
        html_path,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chunkeval report</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n",
    )
    summary_path = out / "summary.csv"
    _write_summary_csv(summaries, summary_path)
    return {"markdown": md_path, "html": html_path, "summary": summary_path, **paths}


def _unique_stems(names: list[str]) -> dict[str, str]:
    """File-name-safe stems, made unique when two names sanitise to the same text."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        stem = base = _safe_name(name)
        i = 2
        while stem in used:
            stem = f"{base}-{i}"
            i += 1
        used.add(stem)
        stems[name] = stem
    return stems


def _add_plot(fig: Any, plot_dir: Path, stem: str, caption: str, paths: dict[str, Path], md: list[str], body: list[str]) -> None:
    png_path, svg_path, png = _save_figure(fig, plot_dir, stem)
    paths[f"plots/{png_path.name}"] = png_path
    paths[f"plots/{svg_path.name}"] = svg_path
    md += [f"![{caption}](plots/{png_path.name})", ""]
    encoded = base64.b64encode(png).decode("ascii")
    body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
                f"<figcaption class=\"note\">{html.escape(caption)}</figcaption></figure>")


def _baseline_section(
    table: Any, columns: dict[str, np.ndarray], domain: str, configs: list[ConfigSummary], baseline: str,
    alpha: float, n_resamples: int, n_permutations: int, seed: int | None,
) -> tuple[list[str], list[str]]:
    metrics = ("iou", "recall", "precision")
    ids = {c.config_id for c in configs}
    if baseline not in ids:
        text = f"The baseline `{baseline}` was not run on this domain."
        return [text, ""], [f'<p class="note">{html.escape(text)}</p>']
    rows = _domain_rows(table, columns, domain)
    header = ["Config"] + [f"Δ{METRIC_LABELS[m]} [CI], p" for m in metrics]
    md = [f"### Against the baseline `{baseline}`", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    trs = []
    for c in configs:
        if c.config_id == baseline:
            continue
        try:
            result = {r.metric: r for r in compare(rows, baseline, c.config_id, metrics=metrics, group_by=None, alpha=alpha,
                                                   n_resamples=n_resamples, n_permutations=n_permutations, seed=seed)}
        except ValueError as exc:
            md.append(f"| {c.config_id} | " + " | ".join(["n/a"] * len(metrics)) + " |")
            trs.append(f"<tr><td>{html.escape(c.config_id)}</td><td colspan=\"{len(metrics)}\">{html.escape(str(exc))}</td></tr>")
            continue
        cells = []
        for m in metrics:
            r = result[m]
            mark = {"b": " ▲", "a": " ▼", None: ""}[r.winner]
            cells.append(f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], p={r.p_value:.3g}{mark}")
        md.append(f"| {c.config_id} | " + " | ".join(cells) + " |")
        trs.append(f"<tr><td>{html.escape(c.config_id)}</td>" + "".join(f'<td class="metric">{html.escape(x)}</td>' for x in cells) + "</tr>")
    legend = f"▲ significantly better than the baseline, ▼ significantly worse (p < {alpha:g} and the CI excludes 0)."
    md += ["", legend, ""]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    html_lines = [
        f"<h3>Against the baseline <code>{html.escape(baseline)}</code></h3>",
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
            row: dict[str, Any] = {"domain": domain, "config_id": c.config_id}
            row.update({k: (None if v is None else str(v)) for k, v in c.attributes.items()})
            row["n_questions"] = c.n_questions
            for m in METRICS:
                row[f"{m}_mean"] = c.mean[m]
                row[f"{m}_std"] = c.std[m]
            rows.append(row)
    with atomic_open(path, "wb") as handle:
        pacsv.write_csv(pa.Table.from_pylist(rows), handle)


# ------------------------------------------------------------------------------------------- CLI


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``chunkeval report RESULTS --out DIR [--recall-floor X] [--baseline ID]``.

    The parser's ``handler`` default is :func:`run_report_command`: ``args.handler(args)`` returns the exit code
    (0 written, 2 bad input with a one-line reason on stderr).
    """
    parser = subparsers.add_parser(
        "report",
        help="write report.md, report.html and plots from a per-question results table",
        description="Per-domain tables (mean ± std of IoU, recall, precision, precision Ω), plots, the "
        "recall-precision frontier and a recommendation (best IoU above a recall floor, tested against the runner-up).",
    )
    parser.add_argument("results", help="per-question results table (Parquet)")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--recall-floor", type=float, default=0.0,
                        help="only recommend configurations whose mean recall is at least this (default 0)")
    parser.add_argument("--baseline", default=None, help="config_id to compare every other configuration against")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples and random sign flips (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap and permutation test")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots (faster)")
    parser.set_defaults(handler=run_report_command)
    return parser


def run_report_command(args: argparse.Namespace) -> int:
    """Handler of ``chunkeval report``; returns the process exit code."""
    try:
        paths = write_report(
            args.results, args.out, recall_floor=args.recall_floor, baseline=args.baseline, alpha=args.alpha,
            n_resamples=args.resamples, n_permutations=args.resamples, seed=args.seed, plots=not args.no_plots,
        )
    except (ValueError, TypeError, OSError) as exc:
        print(f"chunkeval report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {paths['markdown']} and {paths['html']} ({sum(k.startswith('plots/') for k in paths)} plot files)")
    return 0
