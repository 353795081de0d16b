"""Rank metrics in the report (issue 12): means and intervals of hit, MRR, MAP and nDCG, the
``metrics=`` choice in every table, plot and comparison, its errors, and results without rank
metrics rendering exactly as before.

The hand-made results below score four questions (q1, q2 in corpus a; q3, q4 in corpus b) with two
configurations at k=3. Their rank metrics follow docs/metrics.md from the ranks of the relevant
retrieved chunks, written next to each value.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from chunkeval.report import (
    METRICS,
    RANK_METRICS,
    plot_metrics_vs_size,
    summarize,
    write_explorer,
    write_report,
)
from chunkeval.results import Configuration, read_results, results_table
from test_report import _parse, _parser
from test_report_browser import CHROMIUM, _chromium, _screenshot
from test_report_explorer import _dataset
from test_report_explorer import _table as _explorer_table

QUESTIONS = ("q1", "q2", "q3", "q4")
CORPORA = ("a", "a", "b", "b")
L3 = math.log2(3)
SPAN = {
    "A": {"iou": [0.5, 0.25, 0.0, 0.125], "recall": [1.0, 0.5, 0.0, 0.75], "precision": [0.5, 0.25, 0.0, 0.25],
          "precision_omega": [0.75, 0.5, 0.25, 0.5], "coverage": [1.0, 1.0, 0.5, 1.0]},
    "B": {"iou": [0.25, 0.25, 0.125, 0.5], "recall": [1.0, 1.0, 0.5, 1.0], "precision": [0.25, 0.25, 0.125, 0.5],
          "precision_omega": [0.5, 0.5, 0.25, 0.75], "coverage": [1.0, 1.0, 1.0, 1.0]},
}
# Relevant ranks per question (R = evidence chunks): A: q1 {1} R=1, q2 {2} R=1, q3 {} R=1, q4 {1, 3} R=2 with
# gains 30 and 10; B: q1 {1} R=1, q2 {1} R=1, q3 {3} R=1, q4 {1, 2} R=2 with gains 10 and 30.
RANK = {
    "A": {"hit": [1.0, 1.0, 0.0, 1.0], "mrr": [1.0, 1 / 2, 0.0, 1.0], "map": [1.0, 1 / 2, 0.0, (1 + 2 / 3) / 2],
          "ndcg": [1.0, 1 / L3, 0.0, (1 + 1 / 2) / (1 + 1 / L3)],
          "ndcg_graded": [1.0, 1 / L3, 0.0, (30 + 10 / 2) / (30 + 10 / L3)]},
    "B": {"hit": [1.0, 1.0, 1.0, 1.0], "mrr": [1.0, 1.0, 1 / 3, 1.0], "map": [1.0, 1.0, 1 / 3, 1.0],
          "ndcg": [1.0, 1.0, 1 / 2, 1.0], "ndcg_graded": [1.0, 1.0, 1 / 2, (10 + 30 / L3) / (30 + 10 / L3)]},
}
EVIDENCE = [1, 1, 1, 2]
SIZE = {"A": 100, "B": 200}
RESAMPLES = 400


def _exact(expected: Any) -> Any:
    """Equal up to the last bits that a different summation order changes."""
    return pytest.approx(expected, rel=1e-14, abs=1e-15)


def _table(rank: bool = True, configs: tuple[str, ...] = ("A", "B")) -> pa.Table:
    parts = []
    for name in configs:
        metrics = {m: np.array(v) for m, v in SPAN[name].items()}
        metrics["n_evidence_chunks"] = np.array(EVIDENCE, dtype=np.int64)
        if rank:
            metrics.update({m: np.array(v) for m, v in RANK[name].items()})
        size = SIZE[name]
        parts.append(results_table(
            Configuration(chunker="fixed", chunker_spec=f"fixed:{size}", chunk_size=size, size_unit="chars",
                          chunk_overlap=0, embedder="minilm", retrieval="exact", scope="global", k=3),
            f"cfg-{name}", question_ids=list(QUESTIONS), corpus_ids=list(CORPORA), metrics=metrics,
            retrieved_ids=[[0, 1, 2]] * 4,
            cost={"n_chunks": 10_000 // size, "embedded_tokens": 2500 + size, "index_bytes": 384 * 10_000 // size}))
    return pa.concat_tables(parts)


def _bootstrap(values: np.ndarray, n_resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """An independent percentile bootstrap: gather resampled questions, average, take quantiles."""
    idx = np.random.default_rng(seed).integers(0, len(values), size=(n_resamples, len(values)))
    low, high = np.quantile(values[idx].mean(axis=1), [0.025, 0.975])
    return float(low), float(high)


# What report.md was for _table(rank=False) with baseline="cfg-A", 400 resamples and permutations, seed 0, written
# by chunkeval before the rank metrics reached the report (report.py of commit 1de062e).
OLD_MARKDOWN = """\
# chunkeval report

2 configurations, 4 questions, 2 corpora. Cells are the mean over questions and its 95 % confidence interval (percentile bootstrap over questions, 400 resamples, seed 0); the best mean of each column is bold, ★ marks the recommendation.

no explorer: the results hold no retrieved spans (they record only scores).

## All questions

| Configuration | n | IoU | Recall | Precision | Precision Ω | Chunks | Tokens embedded | Index size |
|---|---|---|---|---|---|---|---|---|
| fixed 100 chars, overlap 0 · minilm · exact · k=3 <sub>`cfg-A`</sub> | 4 | 0.2188 [0.0312, 0.3758] | 0.5625 [0.1875, 0.8750] | 0.2500 [0.0625, 0.3766] | **0.5000 [0.3125, 0.6266]** | 100 | 2,600 | 37.5 KiB |
| **fixed 200 chars, overlap 0 · minilm · exact · k=3 <sub>`cfg-B`</sub>** ★ | 4 | **0.2812 [0.1562, 0.4375]** | **0.8750 [0.6250, 1.0000]** | **0.2812 [0.1562, 0.4375]** | **0.5000 [0.3125, 0.6875]** | 50 | 2,700 | 18.8 KiB |

At k=3, the only k in these results: recommended **fixed 200 chars, overlap 0 · minilm · exact · k=3** (`cfg-B`), the best mean IoU among configurations with mean recall ≥ 0.7875 (90 % of the best mean recall at this k). IoU 0.2812 [0.1562, 0.4375], recall 0.8750 [0.6250, 1.0000], precision 0.2812 [0.1562, 0.4375]. It is the only eligible configuration, so there is no runner-up to test against.

### Against the baseline fixed 100 chars, overlap 0 · minilm · exact · k=3

| Configuration | ΔIoU [CI], p | ΔRecall [CI], p | ΔPrecision [CI], p |
|---|---|---|---|
| fixed 200 chars, overlap 0 · minilm · exact · k=3 | +0.0625 [-0.1562, +0.2508], p=0.75 | +0.3125 [+0.1250, +0.5000], p=0.25 | +0.0312 [-0.1562, +0.1875], p=1 |

▲ significantly better than the baseline, ▼ significantly worse (p < 0.05 and the CI excludes 0).

![all, minilm: metrics against chunk size (95 % CI)](plots/metrics_vs_size__all__minilm.png)

![all: recall–precision frontier](plots/frontier__all.png)

![all: recall against tokens embedded at k=3](plots/cost_frontier__all.png)

## Domain: a

| Configuration | n | IoU | Recall | Precision | Precision Ω | Chunks | Tokens embedded | Index size |
|---|---|---|---|---|---|---|---|---|
| fixed 100 chars, overlap 0 · minilm · exact · k=3 <sub>`cfg-A`</sub> | 2 | **0.3750 [0.2500, 0.5000]** | 0.7500 [0.5000, 1.0000] | **0.3750 [0.2500, 0.5000]** | **0.6250 [0.5000, 0.7500]** | 100 | 2,600 | 37.5 KiB |
| **fixed 200 chars, overlap 0 · minilm · exact · k=3 <sub>`cfg-B`</sub>** ★ | 2 | 0.2500 [0.2500, 0.2500] | **1.0000 [1.0000, 1.0000]** | 0.2500 [0.2500, 0.2500] | 0.5000 [0.5000, 0.5000] | 50 | 2,700 | 18.8 KiB |

At k=3, the only k in these results: recommended **fixed 200 chars, overlap 0 · minilm · exact · k=3** (`cfg-B`), the best mean IoU among configurations with mean recall ≥ 0.9000 (90 % of the best mean recall at this k). IoU 0.2500 [0.2500, 0.2500], recall 1.0000 [1.0000, 1.0000], precision 0.2500 [0.2500, 0.2500]. It is the only eligible configuration, so there is no runner-up to test against.

### Against the baseline fixed 100 chars, overlap 0 · minilm · exact · k=3

| Configuration | ΔIoU [CI], p | ΔRecall [CI], p | ΔPrecision [CI], p |
|---|---|---|---|
| fixed 200 chars, overlap 0 · minilm · exact · k=3 | -0.1250 [-0.2500, +0.0000], p=1 | +0.2500 [+0.0000, +0.5000], p=1 | -0.1250 [-0.2500, +0.0000], p=1 |

▲ significantly better than the baseline, ▼ significantly worse (p < 0.05 and the CI excludes 0).

![a, minilm: metrics against chunk size (95 % CI)](plots/metrics_vs_size__a__minilm.png)

![a: recall–precision frontier](plots/frontier__a.png)

![a: recall against tokens embedded at k=3](plots/cost_frontier__a.png)

## Domain: b

| Configuration | n | IoU | Recall | Precision | Precision Ω | Chunks | Tokens embedded | Index size |
|---|---|---|---|---|---|---|---|---|
| fixed 100 chars, overlap 0 · minilm · exact · k=3 <sub>`cfg-A`</sub> | 2 | 0.0625 [0.0000, 0.1250] | 0.3750 [0.0000, 0.7500] | 0.1250 [0.0000, 0.2500] | 0.3750 [0.2500, 0.5000] | 100 | 2,600 | 37.5 KiB |
| **fixed 200 chars, overlap 0 · minilm · exact · k=3 <sub>`cfg-B`</sub>** ★ | 2 | **0.3125 [0.1250, 0.5000]** | **0.7500 [0.5000, 1.0000]** | **0.3125 [0.1250, 0.5000]** | **0.5000 [0.2500, 0.7500]** | 50 | 2,700 | 18.8 KiB |

At k=3, the only k in these results: recommended **fixed 200 chars, overlap 0 · minilm · exact · k=3** (`cfg-B`), the best mean IoU among configurations with mean recall ≥ 0.6750 (90 % of the best mean recall at this k). IoU 0.3125 [0.1250, 0.5000], recall 0.7500 [0.5000, 1.0000], precision 0.3125 [0.1250, 0.5000]. It is the only eligible configuration, so there is no runner-up to test against.

### Against the baseline fixed 100 chars, overlap 0 · minilm · exact · k=3

| Configuration | ΔIoU [CI], p | ΔRecall [CI], p | ΔPrecision [CI], p |
|---|---|---|---|
| fixed 200 chars, overlap 0 · minilm · exact · k=3 | +0.2500 [+0.1250, +0.3750], p=0.5 | +0.3750 [+0.2500, +0.5000], p=0.5 | +0.1875 [+0.1250, +0.2500], p=0.5 |

▲ significantly better than the baseline, ▼ significantly worse (p < 0.05 and the CI excludes 0).

![b, minilm: metrics against chunk size (95 % CI)](plots/metrics_vs_size__b__minilm.png)

![b: recall–precision frontier](plots/frontier__b.png)

![b: recall against tokens embedded at k=3](plots/cost_frontier__b.png)
"""  # noqa: E501


def _report(tmp_path: Path, table: pa.Table, name: str = "out", **kwargs: Any) -> dict[str, Path]:
    options: dict[str, Any] = {"n_resamples": RESAMPLES, "n_permutations": RESAMPLES, "show_progress": False}
    return write_report(table, tmp_path / name, **{**options, **kwargs})


def _header(markdown: str) -> dict[str, Any]:
    match = re.fullmatch(r"<!-- chunkeval report: (\{.*\}) -->", markdown.splitlines()[0])
    assert match is not None
    value: dict[str, Any] = json.loads(match.group(1))
    return value


def _table_header(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("| Configuration | n |"))


# ------------------------------------------------------------------------------- means and intervals


def test_rank_means_and_intervals_exact() -> None:
    summaries = summarize(_table(), n_resamples=RESAMPLES, metrics=RANK_METRICS)
    by_id = {d: {s.config_id: s for s in configs} for d, configs in summaries.items()}
    # The means, summed by hand from the ranks above.
    means = {
        "A": {"hit": 3 / 4, "mrr": 2.5 / 4, "map": 7 / 12, "ndcg": (1 + 1 / L3 + 1.5 / (1 + 1 / L3)) / 4,
              "ndcg_graded": (1 + 1 / L3 + 35 / (30 + 10 / L3)) / 4},
        "B": {"hit": 1.0, "mrr": 5 / 6, "map": 5 / 6, "ndcg": 3.5 / 4,
              "ndcg_graded": (2.5 + (10 + 30 / L3) / (30 + 10 / L3)) / 4},
    }
    for name, expected in means.items():
        summary = by_id["all"][f"cfg-{name}"]
        assert list(summary.mean) == [*METRICS, *RANK_METRICS]
        for metric, mean in expected.items():
            assert summary.mean[metric] == _exact(mean)
            values = np.array(RANK[name][metric])
            assert (summary.ci_low[metric], summary.ci_high[metric]) == _exact(_bootstrap(values))
    # Two questions per corpus: the resampled means are x, (x + y) / 2 and y, a quarter of the draws at each end,
    # so the 2.5 % and 97.5 % quantiles are the two values themselves.
    for domain, rows in (("a", slice(0, 2)), ("b", slice(2, 4))):
        for name in ("A", "B"):
            summary = by_id[domain][f"cfg-{name}"]
            for metric in RANK_METRICS:
                pair = RANK[name][metric][rows]
                assert summary.mean[metric] == _exact(sum(pair) / 2)
                assert (summary.ci_low[metric], summary.ci_high[metric]) == (min(pair), max(pair))
    assert (by_id["b"]["cfg-A"].ci_low["mrr"], by_id["b"]["cfg-A"].ci_high["mrr"]) == (0.0, 1.0)
    assert by_id["all"]["cfg-B"].ci_low["hit"] == by_id["all"]["cfg-B"].ci_high["hit"] == 1.0
    # The span metrics' intervals do not move when rank metrics are summarized with them.
    plain = summarize(_table(), n_resamples=RESAMPLES, metrics=["iou"])
    for domain, configs in plain.items():
        for s in configs:
            assert list(s.mean) == list(METRICS)
            assert s.ci_low == {m: by_id[domain][s.config_id].ci_low[m] for m in METRICS}


def test_default_metrics_follow_the_table() -> None:
    with_rank = summarize(_table(), n_resamples=10)["all"][0]
    assert list(with_rank.mean) == [*METRICS, "mrr", "ndcg"]
    without = summarize(_table(rank=False), n_resamples=10)["all"][0]
    assert list(without.mean) == list(METRICS)


# ----------------------------------------------------------------------------------- the report


def test_metrics_choice_in_markdown_html_and_csv(tmp_path: Path) -> None:
    chosen = ["iou", "recall", "mrr", "ndcg", "hit"]
    paths = _report(tmp_path, _table(), metrics=chosen, baseline="cfg-A", plots=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert _header(md) == {"metrics": chosen}
    assert md.count(_table_header(md)) == 3
    assert _table_header(md) == ("| Configuration | n | IoU | Recall | MRR | nDCG | Hit rate | Chunks "
                                 "| Tokens embedded | Index size |")
    row = next(line for line in md.splitlines() if line.startswith("| fixed 100 chars"))
    # cfg-A's hit rate is 3/4; cfg-B's 1.0 is the column's best, so A's is not bold.
    assert row.split(" | ")[6] == f"0.7500 [{_bootstrap(np.array(RANK['A']['hit']))[0]:.4f}, 1.0000]"
    assert "| ΔIoU [CI], p | ΔRecall [CI], p | ΔMRR [CI], p | ΔnDCG [CI], p | ΔHit rate [CI], p |" in md
    baseline_row = next(line for line in md.split("### Against the baseline")[1].splitlines()
                        if line.startswith("| fixed 200 chars"))
    assert baseline_row.split(" | ")[3].startswith(f"{5 / 6 - 2.5 / 4:+.4f} [")  # ΔMRR of B against A
    page = paths["html"].read_text(encoding="utf-8")
    assert '<meta name="chunkeval-metrics" content="iou,recall,mrr,ndcg,hit">' in page
    parser = _parse(paths["html"])
    assert {metric for (_, _, metric) in parser.cells} == set(chosen)
    for domain, rows in (("all", slice(0, 4)), ("a", slice(0, 2)), ("b", slice(2, 4))):
        for name in ("A", "B"):
            for metric in ("mrr", "ndcg", "hit"):
                values = np.array(RANK[name][metric][rows])
                cell = parser.cells[(domain, f"cfg-{name}", metric)]
                assert cell["mean"] == _exact(values.mean())
                expected = _bootstrap(values) if domain == "all" else (values.min(), values.max())
                assert (cell["low"], cell["high"]) == _exact(expected)
    assert parser.cells[("all", "cfg-B", "mrr")]["bold"] and not parser.cells[("all", "cfg-A", "mrr")]["bold"]
    assert "<th>ΔMRR [CI], p</th>" in page and "<th>ΔPrecision Ω [CI], p</th>" not in page
    summary = pacsv.read_csv(paths["summary"])
    assert [c for c in summary.column_names if c.endswith("_mean")] == [
        f"{m}_mean" for m in (*METRICS, "mrr", "ndcg", "hit")]
    assert summary.column("mrr_mean").to_pylist()[:2] == _exact([2.5 / 4, 5 / 6])


def test_default_report_with_rank_metrics(tmp_path: Path) -> None:
    paths = _report(tmp_path, _table(), baseline="cfg-A", plots=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert _header(md) == {"metrics": [*METRICS, "mrr", "ndcg"]}
    assert _table_header(md).startswith("| Configuration | n | IoU | Recall | Precision | Precision Ω | MRR | nDCG |")
    # The baseline section compares what it always did, plus the rank metrics shown.
    assert ("| Configuration | ΔIoU [CI], p | ΔRecall [CI], p | ΔPrecision [CI], p | ΔMRR [CI], p | ΔnDCG [CI], p |"
            in md)
    # The recommendation still reads IoU with the recall floor: cfg-B, as without rank metrics.
    assert _parse(paths["html"]).recommended == ["cfg-B"] * 3


def test_results_without_rank_metrics_render_as_before(tmp_path: Path) -> None:
    paths = _report(tmp_path, _table(rank=False), baseline="cfg-A")
    md = paths["markdown"].read_text(encoding="utf-8")
    first, rest = md.split("\n", 1)
    assert first == '<!-- chunkeval report: {"metrics": ["iou", "recall", "precision", "precision_omega"]} -->'
    assert rest == OLD_MARKDOWN
    # Asking for the same four metrics gives the same report.
    again = _report(tmp_path, _table(rank=False), "again", baseline="cfg-A", plots=False,
                    metrics="iou,recall,precision,precision_omega")
    assert _table_header(again["markdown"].read_text(encoding="utf-8")) == _table_header(md)


def test_mixed_tables_show_a_dash_where_a_configuration_has_no_rank_metrics(tmp_path: Path) -> None:
    # cfg-A from an older table (no rank metrics), cfg-B scored with its chunking.
    mixed = read_results(_table(rank=False, configs=("A",)), _table(configs=("B",)))
    paths = _report(tmp_path, mixed, baseline="cfg-A", plots=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert _header(md) == {"metrics": [*METRICS, "mrr", "ndcg"]}
    row_a = next(line for line in md.splitlines() if line.startswith("| fixed 100 chars"))
    assert row_a.split(" | ")[6:8] == ["–", "–"]
    parser = _parse(paths["html"])
    assert math.isnan(parser.cells[("all", "cfg-A", "mrr")]["mean"])
    assert parser.cells[("all", "cfg-B", "mrr")]["mean"] == _exact(5 / 6)
    # The baseline has no MRR: those cells are dashes, the span metrics are still compared.
    baseline_row = next(line for line in md.split("### Against the baseline")[1].splitlines()
                        if line.startswith("| fixed 200 chars"))
    cells = baseline_row.strip(" |").split(" | ")[1:]
    assert cells[3:] == ["–", "–"] and all(c.startswith("+") for c in cells[:3])


def test_metrics_vs_size_has_one_panel_per_metric() -> None:
    configs = summarize(_table(), n_resamples=20, metrics=RANK_METRICS)["all"]
    six = ("iou", "recall", "hit", "mrr", "map", "ndcg")
    fig = plot_metrics_vs_size("all", "minilm", configs, six)
    assert [ax.get_title() for ax in fig.axes] == ["IoU", "Recall", "Hit rate", "MRR", "MAP", "nDCG"]
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes] == [(2, 3)] * 6
    assert tuple(fig.get_size_inches()) == (14.25, 7.0)
    assert [ax.get_xlabel() for ax in fig.axes] == [""] * 3 + ["chunk size (chars)"] * 3
    # Five panels in a 2 × 3 grid: the third column's only panel is in the first row and carries the x label.
    fig = plot_metrics_vs_size("all", "minilm", configs, six[:5])
    assert len(fig.axes) == 5 and [ax.get_xlabel() != "" for ax in fig.axes] == [False, False, True, True, True]
    # The error bars of the MRR panel are the summaries' intervals.
    mrr_axis = next(ax for ax in plot_metrics_vs_size("all", "minilm", configs, ["mrr"]).axes)
    segments = {(round(float(s[0][0])), float(s[0][1]), float(s[1][1]))
                for container in mrr_axis.containers for s in container.lines[2][0].get_segments()}
    assert segments == {(int(c.attributes["chunk_size"]), c.ci_low["mrr"], c.ci_high["mrr"]) for c in configs}
    assert plot_metrics_vs_size("all", "minilm", configs).get_size_inches().tolist() == [9.5, 7.0]
    with pytest.raises(ValueError, match="the summaries hold no 'coverage'; summarize with metrics including it"):
        plot_metrics_vs_size("all", "minilm", configs, ["coverage"])


def test_plots_of_a_report_with_rank_metrics(tmp_path: Path) -> None:
    paths = _report(tmp_path, _table(), metrics=["iou", "mrr", "ndcg_graded"])
    assert "plots/metrics_vs_size__all__minilm.png" in paths
    png = paths["plots/metrics_vs_size__all__minilm.png"].read_bytes()
    # 3 panels in one row: 3 × 4.75 by 3.5 + 0.5 (the legend) inches at 110 dpi (PNG header: width, height).
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1567, 440)


# ------------------------------------------------------------------------------------------ errors


def test_bad_metric_choices(tmp_path: Path) -> None:
    table = _table()
    valid = "iou, recall, precision, precision_omega, coverage, hit, mrr, map, ndcg, ndcg_graded"
    with pytest.raises(ValueError, match=f"metrics: unknown metric 'ndcg@10'; choose from {valid}"):
        write_report(table, tmp_path, metrics=["iou", "ndcg@10"], plots=False)
    with pytest.raises(ValueError, match="metrics is empty; name at least one of iou, recall"):
        write_report(table, tmp_path, metrics=[], plots=False)
    with pytest.raises(ValueError, match="metrics: 'mrr' is named twice; name each metric once"):
        summarize(table, metrics="mrr,iou,mrr")
    with pytest.raises(TypeError, match="metrics: every metric is named by a string, got int 3"):
        summarize(table, metrics=["iou", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="metrics must be a sequence of metric names"):
        summarize(table, metrics=3)  # type: ignore[arg-type]
    no_rank = (r"metrics: the results have no rank metrics \(mrr, ndcg is null in every row\): they were scored "
               r"without a chunking \(chunkeval metrics without --chunks, or a results table written before the rank "
               r"metrics\)\. Rescore with the chunking \(chunkeval evaluate or sweep, or chunkeval metrics --chunks\) "
               "or choose from the span metrics iou, recall, precision, precision_omega, coverage")
    with pytest.raises(ValueError, match=no_rank):
        write_report(_table(rank=False), tmp_path, metrics=["iou", "mrr", "ndcg"], plots=False)
    with pytest.raises(ValueError, match=r"the results have no rank metrics \(hit is null"):
        write_explorer(_table(rank=False), tmp_path / "e.html", metrics=["hit"])
    assert not (tmp_path / "report.md").exists()


def test_cli_metrics_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.parquet"
    import pyarrow.parquet as pq

    pq.write_table(_table(), results)
    args = _parser().parse_args(["report", str(results), "--out", str(tmp_path / "out"), "--metrics",
                                 "iou,recall,mrr,ndcg", "--resamples", "100", "--no-plots"])
    assert args.metrics == ("iou", "recall", "mrr", "ndcg")
    assert args.handler(args) == 0
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert _header(md) == {"metrics": ["iou", "recall", "mrr", "ndcg"]}
    assert _table_header(md).startswith("| Configuration | n | IoU | Recall | MRR | nDCG | Chunks |")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", str(results), "--out", "o", "--metrics", "iou,mrr@5"])
    assert "--metrics 'iou,mrr@5': metrics: unknown metric 'mrr@5'; choose from iou" in capsys.readouterr().err
    pq.write_table(_table(rank=False), results)
    args = _parser().parse_args(["report", str(results), "--out", str(tmp_path / "o2"), "--metrics", "mrr"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("chunkeval report: error: metrics: the results have no rank metrics") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--metrics M1,M2,..." in help_text and "plus mrr and ndcg when the results have rank metrics" in help_text


# ---------------------------------------------------------------------------------------- explorer


def _explorer_rank_table() -> pa.Table:
    """The explorer tests' table with rank metrics. X chunks q1's reference into two evidence chunks and retrieves
    the first at rank 1 (nDCG 1 / (1 + 1/log2 3)); Y retrieves q1's one evidence chunk at rank 1 and nothing
    relevant for q2; X's first chunk is relevant for q2 and q3, each with one evidence chunk."""
    table = _explorer_table()  # rows: X q1, X q2, X q3, Y q1, Y q2
    values = {"hit": [1.0, 1.0, 1.0, 1.0, 0.0], "mrr": [1.0, 1.0, 1.0, 1.0, 0.0],
              "map": [0.5, 1.0, 1.0, 1.0, 0.0], "ndcg": [1 / (1 + 1 / L3), 1.0, 1.0, 1.0, 0.0],
              "ndcg_graded": [20 / (20 + 6 / L3), 1.0, 1.0, 1.0, 0.0]}
    for name, column in values.items():
        table = table.set_column(table.column_names.index(name), name, pa.array(column, pa.float64()))
    return table


def _payload(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page, re.S)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_explorer_shows_rank_metrics_where_present(tmp_path: Path) -> None:
    path, _ = write_explorer(_explorer_rank_table(), tmp_path / "e.html", dataset=_dataset())
    assert path is not None
    data = _payload(path.read_text(encoding="utf-8"))
    assert data["rank"] == ["MRR", "nDCG"]
    runs = [[None if r is None else r.get("rk") for r in q["runs"]] for q in data["questions"]]
    assert runs == [[[1.0, 1 / (1 + 1 / L3)], [1.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], None]]
    path, _ = write_explorer(_explorer_rank_table(), tmp_path / "e2.html", dataset=_dataset(),
                             metrics=["map", "iou", "hit"])
    assert path is not None
    data = _payload(path.read_text(encoding="utf-8"))
    assert data["rank"] == ["MAP", "Hit rate"] and data["questions"][0]["runs"][0]["rk"] == [0.5, 1.0]
    # Without rank metrics nothing changes: no labels, no values.
    path, _ = write_explorer(_explorer_table(), tmp_path / "e3.html", dataset=_dataset())
    assert path is not None
    data = _payload(path.read_text(encoding="utf-8"))
    assert "rank" not in data and all("rk" not in r for q in data["questions"] for r in q["runs"] if r is not None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: apt-get update && apt-get install -y chromium")
def test_report_with_rank_metrics_renders_in_chromium(tmp_path: Path) -> None:
    paths = write_report(_explorer_rank_table(), tmp_path / "report", dataset=_dataset(), n_resamples=200,
                         n_permutations=200, show_progress=False)
    report = _screenshot(tmp_path, paths["html"], "report_rank", (1280, 1600))
    assert len({tuple(c) for c in report.reshape(-1, 3)[::7].tolist()}) > 50
    dom = _chromium(tmp_path, "--dump-dom", paths["html"].as_uri()).stdout
    assert dom.count('<th class="metric">MRR <span class="unit">[95 % CI]</span></th>') == 3
    _screenshot(tmp_path, paths["explorer"], "explorer_rank", (1280, 1200))
    dom = _chromium(tmp_path, "--dump-dom", paths["explorer"].as_uri()).stdout
    # The first question with X and Y: each panel's second line holds its rank metrics.
    assert f'<div class="stats rank-metrics">MRR 1.000 · nDCG {1 / (1 + 1 / L3):.3f}</div>' in dom
    assert '<div class="stats rank-metrics">MRR 1.000 · nDCG 1.000</div>' in dom
    assert "recall 0.769 · precision 0.233 · IoU 0.233 · characters: 20 hit, 6 missed, 60 noise" in dom
    if os.environ.get("CHUNKEVAL_SCREENSHOTS"):
        assert (Path(os.environ["CHUNKEVAL_SCREENSHOTS"]) / "report_rank.png").is_file()
