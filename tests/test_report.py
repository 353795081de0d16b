"""The report: labels, confidence intervals, per-metric axes, legends, the recommendation rule, cost.

Numbers in the HTML are checked against numpy recomputations (means) and an independent bootstrap
written here with index gathering (intervals); the regression tests at the top each reproduce one
defect of issue 9's "report" list.
"""

from __future__ import annotations

import argparse
import html.parser
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from chunkeval.report import (
    ConfigSummary,
    add_subparser,
    pareto_frontier,
    plot_cost_frontier,
    plot_frontier,
    plot_metrics_vs_size,
    recommend,
    summarize,
    write_report,
)
from chunkeval.results import Configuration, config_id, read_results, results_table

METRICS = ("iou", "recall", "precision", "precision_omega")

# name -> (chunker, size, embedder, k, mean iou, mean recall)
CONFIGS = {
    "fixed-100": ("fixed", 100, "minilm", 5, 0.50, 0.55),  # best IoU, but recall far below the others
    "fixed-200": ("fixed", 200, "minilm", 5, 0.40, 0.80),
    "fixed-400": ("fixed", 400, "minilm", 5, 0.25, 0.95),
    "recursive-200": ("recursive", 200, "minilm", 5, 0.38, 0.82),
    "recursive-200-bge": ("recursive", 200, "bge", 5, 0.30, 0.90),
}


def _configuration(chunker: str, size: int, embedder: str, k: int) -> Configuration:
    return Configuration(chunker=chunker, chunker_spec=f"{chunker}:{size}", chunk_size=size, size_unit="tokens",
                         chunk_overlap=0, embedder=embedder, retrieval="hnsw", scope="global", k=k)


def _rows(
    name: str, spec: tuple[str, int, str, int, float, float], question_ids: list[str], corpus_ids: list[str],
    iou: np.ndarray, recall: np.ndarray, precision: np.ndarray, omega: np.ndarray,
    cost: dict[str, int | None] | None = None, spans: list[list[tuple[str, int, int]]] | None = None,
) -> pa.Table:
    chunker, size, embedder, k, _, _ = spec
    n = len(question_ids)
    return results_table(
        _configuration(chunker, size, embedder, k), config_id({"name": name, "k": k}),
        question_ids=question_ids, corpus_ids=corpus_ids,
        metrics={"iou": iou, "recall": recall, "precision": precision, "precision_omega": omega,
                 "coverage": np.ones(n), "n_evidence_chunks": np.ones(n, dtype=np.int64)},
        retrieved_ids=[[0] * k] * n, retrieved_spans=spans, cost=cost,
    )


def _results(n_per_corpus: int = 30, configs: dict[str, tuple[str, int, str, int, float, float]] = CONFIGS) -> pa.Table:
    rng = np.random.default_rng(42)
    parts = []
    difficulty = {c: rng.normal(0, 0.05, size=n_per_corpus) for c in ("finance", "pubmed")}
    for name, spec in configs.items():
        size, iou, recall = spec[1], spec[4], spec[5]
        qids: list[str] = []
        corpora: list[str] = []
        cols: dict[str, list[float]] = {m: [] for m in METRICS}
        for corpus in ("finance", "pubmed"):
            for q in range(n_per_corpus):
                qids.append(f"{corpus}-q{q}")
                corpora.append(corpus)
                noise = rng.normal(0, 0.03, size=4)
                cols["iou"].append(float(np.clip(iou + difficulty[corpus][q] + noise[0], 0, 1)))
                cols["recall"].append(float(np.clip(recall + difficulty[corpus][q] + noise[1], 0, 1)))
                cols["precision"].append(float(np.clip(iou * 1.2 + noise[2], 0, 1)))
                cols["precision_omega"].append(float(np.clip(0.6 + noise[3] - size / 2000, 0, 1)))
        cost: dict[str, int | None] = {"n_chunks": 100_000 // size, "embedded_tokens": 100_000 + 10 * size,
                                       "index_bytes": 1536 * 100_000 // size}
        iou_v, recall_v, precision_v, omega_v = (np.array(cols[m]) for m in METRICS)
        parts.append(_rows(name, spec, qids, corpora, iou_v, recall_v, precision_v, omega_v, cost=cost))
    return pa.concat_tables(parts)


def _id(name: str, k: int = 5) -> str:
    return config_id({"name": name, "k": k})


def _bootstrap(values: np.ndarray, n_resamples: int, seed: int = 0) -> tuple[float, float]:
    """An independent percentile bootstrap: gather resampled questions, average, take quantiles."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    low, high = np.quantile(values[idx].mean(axis=1), [0.025, 0.975])
    return float(low), float(high)


class _TableParser(html.parser.HTMLParser):
    """Collects metric cells: (domain, config, metric) -> {mean, low, high, text, bold}."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.costs: dict[tuple[str, str, str], str] = {}
        self.labels: dict[str, str] = {}
        self.label_text: dict[str, str] = {}
        self.recommended: list[str] = []
        self.rec_k: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._domain = self._config = ""
        self._cell: dict[str, Any] | None = None
        self._label_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and "data-domain" in a:
            self._domain = a["data-domain"] or ""
        elif tag == "tr" and "data-config" in a:
            self._config = a["data-config"] or ""
            if "data-label" in a:
                self.labels[self._config] = a["data-label"] or ""
        elif tag == "td" and a.get("class") == "label":
            self._label_cell = True
            self.label_text[self._config] = ""
        elif tag == "td" and "data-metric" in a:
            self._cell = {"mean": float(a["data-mean"] or "nan"), "low": float(a["data-low"] or "nan"),
                          "high": float(a["data-high"] or "nan"), "text": "", "bold": False}
            self.cells[(self._domain, self._config, a["data-metric"] or "")] = self._cell
        elif tag == "td" and "data-cost" in a:
            self.costs[(self._domain, self._config, a["data-cost"] or "")] = a.get("data-value") or ""
        elif tag == "strong" and self._cell is not None:
            self._cell["bold"] = True
        elif tag == "p" and "data-recommended" in a:
            self.recommended.append(a["data-recommended"] or "")
            self.rec_k.append(a.get("data-k") or "")
        elif tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "a":
            self.links.append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
            self._label_cell = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data
        if self._label_cell:
            self.label_text[self._config] += data


def _parse(path: Path) -> _TableParser:
    parser = _TableParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, dict[str, Path]]:
    table = _results()
    path = tmp_path_factory.mktemp("results") / "results.parquet"
    pq.write_table(table, path)
    out = tmp_path_factory.mktemp("report")
    paths = write_report(path, out, baseline=_id("fixed-400"), n_resamples=2000, n_permutations=2000,
                         show_progress=False)
    return table, paths


# ------------------------------------------------------------------- regressions (issue 9, report)


def test_configurations_are_named_by_label_not_hash(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    parser = _parse(paths["html"])
    expected = {_id(name): _configuration(*spec[:4]).label() for name, spec in CONFIGS.items()}
    assert parser.labels == expected
    assert expected[_id("fixed-200")] == "fixed 200 tokens, overlap 0 · minilm · hnsw · k=5"
    for cid, label in expected.items():
        # The label leads the cell; the hash follows, shortened to 12 hex digits.
        assert parser.label_text[cid].startswith(label) and parser.label_text[cid].endswith(cid[:12])
    md = paths["markdown"].read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "<sub>" in line]
    assert len(rows) == 3 * len(CONFIGS)
    assert all(any(row.startswith(f"| {label} ") or row.startswith(f"| **{label} ") for label in expected.values())
               for row in rows)
    assert not any(f"| {cid}" in md for cid in expected)


def test_each_metric_gets_its_own_y_axis() -> None:
    # IoU and precision here live in 0.01-0.06 (as on real data): a 0-1 axis would draw flat lines.
    specs = {f"fixed-{s}": ("fixed", s, "minilm", 5, 0.01 + s / 10_000, 0.5 + s / 1000) for s in (100, 200, 400)}
    configs = summarize(_results(10, specs), n_resamples=200)["all"]
    fig = plot_metrics_vs_size("all", "minilm", configs)
    axes = {ax.get_title(): ax for ax in fig.axes}
    for metric, title in (("iou", "IoU"), ("recall", "Recall"), ("precision", "Precision")):
        lo, hi = axes[title].get_ylim()
        data_lo = min(c.ci_low[metric] for c in configs)
        data_hi = max(c.ci_high[metric] for c in configs)
        assert lo <= data_lo and data_hi <= hi
        # The axis spans at most twice the data's range plus a small pad, never the whole 0-1.
        assert hi - lo <= 2 * (data_hi - data_lo) + 0.02
    assert axes["IoU"].get_ylim()[1] < 0.1


def test_error_bars_are_bootstrap_intervals_of_the_mean() -> None:
    table = _results(20)
    configs = summarize(table, n_resamples=500, seed=0)
    corpus = np.asarray(table.column("corpus_id").to_pylist())
    config = np.asarray(table.column("config_id").to_pylist())
    qid = np.asarray(table.column("question_id").to_pylist())
    for domain in ("all", "finance", "pubmed"):
        for summary in configs[domain]:
            rows = np.flatnonzero((config == summary.config_id) & ((corpus == domain) | (domain == "all")))
            rows = rows[np.lexsort((qid[rows], corpus[rows]))]
            for metric in METRICS:
                values = np.asarray(table.column(metric).to_pylist())[rows]
                low, high = _bootstrap(values, 500)
                assert summary.ci_low[metric] == pytest.approx(low, rel=1e-12, abs=1e-15)
                assert summary.ci_high[metric] == pytest.approx(high, rel=1e-12, abs=1e-15)
                assert summary.mean[metric] == pytest.approx(values.mean(), rel=1e-12)
                # An interval of the mean, not the spread of the questions: much narrower than ±std.
                assert summary.ci_high[metric] - summary.ci_low[metric] < values.std()
    # The figure's error bars are those intervals (not std, not clipped).
    minilm = [c for c in configs["all"] if c.attributes["embedder"] == "minilm"]
    fig = plot_metrics_vs_size("all", "minilm", minilm)
    iou_axis = next(ax for ax in fig.axes if ax.get_title() == "IoU")
    drawn = set()
    for container in iou_axis.containers:
        for segment in container.lines[2][0].get_segments():
            drawn.add((round(float(segment[0][0])), round(float(segment[0][1]), 12), round(float(segment[1][1]), 12)))
    expected = {(int(c.attributes["chunk_size"]), round(c.ci_low["iou"], 12), round(c.ci_high["iou"], 12))
                for c in minilm}
    assert drawn == expected


def test_metrics_figure_has_one_legend() -> None:
    specs = {**CONFIGS, "fixed-200-k3": ("fixed", 200, "minilm", 3, 0.5, 0.6)}
    configs = summarize(_results(5, specs), n_resamples=100)["all"]
    fig = plot_metrics_vs_size("all", "minilm", [c for c in configs if c.attributes["embedder"] == "minilm"])
    assert len(fig.legends) == 1
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["fixed, k=3", "fixed, k=5", "recursive, k=5"]


def test_frontier_points_are_labelled_with_k_and_size() -> None:
    configs = summarize(_results(5), n_resamples=100)["all"]
    fig = plot_frontier("all", configs)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    recall = np.array([c.mean["recall"] for c in configs])
    precision = np.array([c.mean["precision"] for c in configs])
    front = pareto_frontier(recall, precision).tolist()
    expected = sorted(f"k=5 · {configs[i].attributes['chunk_size']} tok" for i in front)
    assert texts == expected and len(texts) >= 2


def test_recommendation_compares_at_one_k() -> None:
    # The defect: ranking configurations of different k by IoU always picked k=1 (recall 0.23).
    specs = {}
    for size in (200, 400):
        specs[f"fixed-{size}-k1"] = ("fixed", size, "minilm", 1, 0.30 + size / 10_000, 0.23)
        specs[f"fixed-{size}-k5"] = ("fixed", size, "minilm", 5, 0.08 + size / 20_000, 0.70 + size / 4000)
    table = _results(20, specs)
    recs = recommend(table, n_resamples=500, n_permutations=500)
    rec = recs["all"]
    assert rec.k == 5 and rec.k_rule == "k=5, the largest k at which every configuration was run"
    assert rec.best is not None and rec.best.k == 5
    # Both k=5 configurations clear 90 % of the best recall (0.80 vs 0.75): the better IoU wins.
    assert rec.top_recall is not None and rec.top_recall.config_id == _id("fixed-400-k5", 5)
    assert rec.recall_floor == pytest.approx(0.9 * rec.top_recall.mean["recall"], rel=1e-12)
    assert rec.best.config_id == _id("fixed-400-k5", 5)
    assert rec.runner_up is not None and rec.runner_up.config_id == _id("fixed-200-k5", 5)
    # Asking for k=1 compares the k=1 runs only.
    rec1 = recommend(table, k=1, n_resamples=200, n_permutations=200)["all"]
    assert rec1.k == 1 and rec1.k_rule == "k=1, as asked" and rec1.best is not None and rec1.best.k == 1
    missing = recommend(table, k=3, n_resamples=100, n_permutations=100)["all"]
    assert missing.best is None and missing.top_recall is None
    assert missing.k_rule == "no configuration was run at k=3 here (present: 1, 5)"


def test_k_rule_when_not_every_configuration_has_the_largest_k() -> None:
    specs = {"a-k1": ("fixed", 200, "minilm", 1, 0.3, 0.3), "a-k5": ("fixed", 200, "minilm", 5, 0.1, 0.8),
             "b-k1": ("fixed", 400, "minilm", 1, 0.3, 0.4), "b-k5": ("fixed", 400, "minilm", 5, 0.1, 0.85),
             "c-k1": ("recursive", 400, "minilm", 1, 0.2, 0.5), "d-k10": ("sentence", 3, "minilm", 10, 0.1, 0.9)}
    rec = recommend(_results(5, specs), n_resamples=100, n_permutations=100)["all"]
    # No k is shared by all four chunkings; k=1 and k=5 each by two... k=1 by three (a, b, c).
    assert rec.k == 1
    assert rec.k_rule == "k=1, the k that most configurations were run at (3 of 4); the other 1 are not candidates"


def test_default_floor_is_relative_to_the_best_recall_at_that_k() -> None:
    # fixed-100 has the best IoU but 0.55 recall, far below 90 % of the best (0.95): never recommended.
    table = _results()
    rec = recommend(table, n_resamples=500, n_permutations=500)["all"]
    means = {c.config_id: c.mean for c in summarize(table, n_resamples=10)["all"]}
    best_recall = max(m["recall"] for m in means.values())
    assert rec.recall_floor == pytest.approx(0.9 * best_recall, rel=1e-12)
    eligible = {cid for cid, m in means.items() if m["recall"] >= 0.9 * best_recall}
    assert eligible == {_id("fixed-400"), _id("recursive-200-bge")}
    assert rec.best is not None and rec.best.config_id == _id("recursive-200-bge")
    assert rec.floor_rule == "90 % of the best mean recall at this k"
    # An absolute floor replaces the relative one; 0 gives back the plain best IoU.
    assert recommend(table, 0.0, n_resamples=200, n_permutations=200)["all"].best.config_id == _id("fixed-100")  # type: ignore[union-attr]
    assert recommend(table, 0.7, n_resamples=200, n_permutations=200)["all"].best.config_id == _id("fixed-200")  # type: ignore[union-attr]
    looser = recommend(table, relative_floor=0.5, n_resamples=200, n_permutations=200)["all"]
    assert looser.best is not None and looser.best.config_id == _id("fixed-100")
    assert all(r.best is None for r in recommend(table, 0.999, n_resamples=100, n_permutations=100).values())


def test_recommendation_significance_against_runner_up() -> None:
    table = _results()
    rec = recommend(table, 0.7, n_resamples=1000, n_permutations=1000)["all"]
    assert rec.best is not None and rec.runner_up is not None and rec.comparison is not None
    assert rec.runner_up.config_id == _id("recursive-200")
    assert rec.comparison.diff == pytest.approx(rec.best.mean["iou"] - rec.runner_up.mean["iou"], rel=1e-9)
    assert rec.significant == (rec.comparison.winner == "b")
    clear = recommend(table, 0.0, n_resamples=1000, n_permutations=1000)
    assert all(r.significant for r in clear.values())
    alone = recommend(table, 0.93, n_resamples=100, n_permutations=100)["all"]
    assert alone.best is not None and alone.best.config_id == _id("fixed-400") and alone.runner_up is None


# --------------------------------------------------------------------------------- the HTML report


def test_html_values_equal_recomputation(report: tuple[pa.Table, dict[str, Path]]) -> None:
    table, paths = report
    parser = _parse(paths["html"])
    corpus = np.asarray(table.column("corpus_id").to_pylist())
    config = np.asarray(table.column("config_id").to_pylist())
    qid = np.asarray(table.column("question_id").to_pylist())
    checked = 0
    for domain in ("all", "finance", "pubmed"):
        in_domain = np.ones(len(corpus), bool) if domain == "all" else corpus == domain
        for metric in METRICS:
            values = np.asarray(table.column(metric).to_pylist())
            means = {_id(c): values[in_domain & (config == _id(c))].mean() for c in CONFIGS}
            for c in CONFIGS:
                rows = np.flatnonzero(in_domain & (config == _id(c)))
                v = values[rows[np.lexsort((qid[rows], corpus[rows]))]]
                low, high = _bootstrap(v, 2000)
                cell = parser.cells[(domain, _id(c), metric)]
                assert cell["mean"] == pytest.approx(v.mean(), rel=1e-12, abs=1e-15)
                assert (cell["low"], cell["high"]) == pytest.approx((low, high), rel=1e-12, abs=1e-15)
                assert cell["text"] == f"{v.mean():.4f}[{cell['low']:.4f}, {cell['high']:.4f}]"
                assert cell["bold"] == (means[_id(c)] == max(means.values()))
                checked += 1
    assert checked == 3 * 4 * len(CONFIGS)


def test_cost_columns(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    parser = _parse(paths["html"])
    for name, spec in CONFIGS.items():
        size = spec[1]
        assert parser.costs[("all", _id(name), "n_chunks")] == str(100_000 // size)
        assert parser.costs[("all", _id(name), "embedded_tokens")] == str(100_000 + 10 * size)
        assert parser.costs[("all", _id(name), "index_bytes")] == str(1536 * 100_000 // size)
    md = paths["markdown"].read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| fixed 400 tokens"))
    # 250 chunks, 104,000 tokens, 1536 * 250 bytes = 375.0 KiB.
    assert row.rstrip(" |").endswith("| 250 | 104,000 | 375.0 KiB")
    summary = pacsv.read_csv(paths["summary"]).to_pylist()
    row_csv = next(r for r in summary if r["domain"] == "all" and r["config_id"] == _id("fixed-400"))
    assert (row_csv["n_chunks"], row_csv["embedded_tokens"], row_csv["index_bytes"]) == (250, 104_000, 384_000)
    assert row_csv["config_label"] == "fixed 400 tokens, overlap 0 · minilm · hnsw · k=5"


def test_cost_frontier_plot() -> None:
    configs = summarize(_results(5), n_resamples=100)["all"]
    fig = plot_cost_frontier("all", configs, "embedded_tokens")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "tokens embedded (per configuration)"
    # The frontier: no cheaper configuration has as much recall. Cost rises with size here, and so
    # does recall except for recursive-200 (cheaper than fixed-400, less recall): every point but
    # the dominated ones is labelled.
    x = np.array([c.cost["embedded_tokens"] for c in configs], dtype=float)
    y = np.array([c.mean["recall"] for c in configs])
    frontier = {i for i in range(len(configs)) if not any((x[j] <= x[i] and y[j] > y[i]) or
                                                          (x[j] < x[i] and y[j] >= y[i]) for j in range(len(configs)))}
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        f"k=5 · {configs[i].attributes['chunk_size']} tok" for i in frontier)


def test_report_files_and_self_contained_html(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    for key in ("markdown", "html", "summary"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    plots = sorted(k for k in paths if k.startswith("plots/"))
    expected = []
    for domain in ("all", "finance", "pubmed"):
        for embedder in ("bge", "minilm"):
            expected += [f"plots/metrics_vs_size__{domain}__{embedder}.{ext}" for ext in ("png", "svg")]
        expected += [f"plots/{kind}__{domain}.{ext}" for kind in ("frontier", "cost_frontier")
                     for ext in ("png", "svg")]
    assert plots == sorted(expected)
    text = paths["html"].read_text(encoding="utf-8")
    assert "<link" not in text and "<script" not in text
    parser = _parse(paths["html"])
    assert len(parser.images) == 3 * 4 and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert not re.search(r"""(src|href)=["'](https?:|//|plots/)""", text)
    # Scores without retrieved spans: the explorer is skipped and the report says why.
    assert "explorer" not in paths and "no explorer: the results hold no retrieved spans" in text


def test_baseline_section_by_label(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    md = paths["markdown"].read_text(encoding="utf-8")
    label = "fixed 400 tokens, overlap 0 · minilm · hnsw · k=5"
    assert md.count(f"### Against the baseline {label}") == 3
    section = md.split("## All questions")[1].split("## Domain")[0].split("### Against the baseline")[1]
    row = next(line for line in section.splitlines() if line.startswith("| fixed 100 tokens"))
    assert "▲" in row.split("|")[2]  # IoU 0.50 against 0.25 on 60 questions


def test_reads_several_files_and_folders(tmp_path: Path) -> None:
    table = _results(4)
    ids = table.column("config_id").to_pylist()
    first, second = sorted(set(ids))[:2], sorted(set(ids))[2:]
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, part in enumerate((first, second)):
        chosen = table.filter(pa.compute.is_in(table.column("config_id"), pa.array(part)))
        pq.write_table(chosen, folder / f"{i}.parquet")
    whole = summarize(table, n_resamples=50)
    assert summarize([folder / "0.parquet", folder / "1.parquet"], n_resamples=50) == whole
    assert summarize(folder, n_resamples=50) == whole
    with pytest.raises(ValueError, match="pass each run once"):
        write_report([folder / "0.parquet", folder], tmp_path / "out", plots=False)
    with pytest.raises(TypeError, match="a list of results must hold paths or pyarrow Tables, got int"):
        write_report([folder / "0.parquet", 3], tmp_path / "out", plots=False)


def test_bad_arguments(tmp_path: Path) -> None:
    table = _results(2)
    with pytest.raises(ValueError, match="lacks column"):
        write_report(table.drop_columns(["iou"]), tmp_path)
    with pytest.raises(ValueError, match="baseline: no configuration has config_id or config_label 'nope'"):
        write_report(table, tmp_path, baseline="nope", plots=False)
    with pytest.raises(ValueError, match=r"recall_floor must lie in \[0, 1\]"):
        recommend(table, 1.5)
    with pytest.raises(ValueError, match=r"relative_floor must lie in \(0, 1\]"):
        recommend(table, relative_floor=0.0)
    with pytest.raises(ValueError, match="k must be a cut-off"):
        recommend(table, k=-3)
    chunker = table.column("chunker").to_pylist()
    clash = table.set_column(table.column_names.index("chunker"), "chunker", pa.array(["x"] + chunker[1:]))
    clash_message = f"config_id '{_id('fixed-100')}' has chunker 'x' in row 0 but 'fixed' in row 1"
    with pytest.raises(ValueError, match=clash_message):
        write_report(clash, tmp_path, plots=False)
    empty = table.slice(0, 0)
    with pytest.raises(ValueError, match="the table has no rows"):
        summarize(empty)


def test_results_without_configuration_attributes(tmp_path: Path) -> None:
    # What `chunkeval metrics` writes for a user's own retrieved lists: no chunker, size or embedder.
    configuration = Configuration(retrieval="given", k=0)
    table = results_table(
        configuration, "given-1", question_ids=["q1", "q2", "q3"], corpus_ids=["a", "a", "b"],
        metrics={"iou": np.array([0.1, 0.2, 0.3]), "recall": np.array([1.0, 0.5, 0.0]),
                 "precision": np.array([0.1, 0.1, 0.4]), "precision_omega": np.full(3, 0.5),
                 "coverage": np.ones(3), "n_evidence_chunks": np.full(3, -1)},
        retrieved_ids=[[1], [2], [3]])
    paths = write_report(table, tmp_path, n_resamples=100, n_permutations=100, show_progress=False)
    parser = _parse(paths["html"])
    assert parser.labels == {"given-1": "given · k=all"}
    assert parser.cells[("a", "given-1", "recall")]["mean"] == 0.75
    assert parser.recommended == ["given-1"] * 3 and parser.rec_k == ["all"] * 3
    assert sorted(k for k in paths if k.startswith("plots/")) == [
        f"plots/frontier__{d}.{ext}" for d in ("a", "all", "b") for ext in ("png", "svg")]
    assert "no explorer: the results hold no retrieved spans" in paths["html"].read_text(encoding="utf-8")


def test_pareto_frontier_by_hand() -> None:
    recall = [0.9, 0.5, 0.4, 0.8, 0.5, 0.95]
    precision = [0.1, 0.3, 0.2, 0.1, 0.3, 0.05]
    # (0.4, 0.2) is dominated by (0.5, 0.3); (0.8, 0.1) by (0.9, 0.1); the two (0.5, 0.3) tie and both stay.
    assert pareto_frontier(recall, precision).tolist() == [1, 4, 0, 5]


def test_report_files_are_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _results(n_per_corpus=3)
    first = write_report(table, tmp_path, n_resamples=100, n_permutations=100, plots=False, show_progress=False)
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p.name for p in written} >= {"report.md", "report.html", "summary.csv"}
    assert not [p for p in written if p.name.endswith(".tmp")]

    def crash(data: pa.Table, sink: object) -> None:
        sink.write(b"domain,config_id\n")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(pacsv, "write_csv", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(table, tmp_path, n_resamples=100, n_permutations=100, plots=False, show_progress=False)
    assert first["summary"].read_bytes() == written[first["summary"]]
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(written)


# ------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chunkeval")
    add_subparser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_several_inputs_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _results(6)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    ids = sorted(set(table.column("config_id").to_pylist()))
    pq.write_table(table.filter(pa.compute.is_in(table.column("config_id"), pa.array(ids[:2]))), a)
    pq.write_table(table.filter(pa.compute.is_in(table.column("config_id"), pa.array(ids[2:]))), b)
    args = _parser().parse_args(["report", str(a), str(b), "--out", str(tmp_path / "out"), "--relative-floor", "0.9",
                                 "--k", "5", "--resamples", "200", "--no-plots"])
    assert args.handler(args) == 0
    assert "wrote" in capsys.readouterr().out
    parser = _parse(tmp_path / "out" / "report.html")
    # Recall ≥ 0.9 × 0.95 leaves fixed-400 (IoU 0.25) and recursive-200-bge (IoU 0.30).
    assert parser.recommended == [_id("recursive-200-bge")] * 3 and parser.rec_k == ["5"] * 3
    assert len(parser.labels) == len(CONFIGS)
    assert not list((tmp_path / "out" / "plots").iterdir())
    assert _parser().parse_args(["report", str(a), "--out", "o", "--k", "auto"]).k == -1
    assert _parser().parse_args(["report", str(a), "--out", "o", "--recall-floor", "0.85"]).recall_floor == 0.85


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["report", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.parquet does not exist" in err
    file_out = tmp_path / "taken"
    file_out.write_text("x")
    args = _parser().parse_args(["report", str(tmp_path / "missing.parquet"), "--out", str(file_out)])
    assert args.handler(args) == 2
    assert capsys.readouterr().err == f"chunkeval report: error: --out {file_out} is a file; pass a directory\n"
    for bad, message in ((["--k", "-4"], "--k '-4': give a positive integer"), (["--recall-floor", "2"], "outside")):
        with pytest.raises(SystemExit):
            _parser().parse_args(["report", "x.parquet", "--out", "o", *bad])
        assert message in capsys.readouterr().err


def test_cli_help_shows_defaults_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "chunkeval report runs/results.parquet --out report/" in out
    assert "(default: 0.9)" in out and "(default: 10000)" in out and "(default: 100)" in out
    assert "RESULTS [RESULTS ...]" in out


def test_summaries_are_config_summaries() -> None:
    summaries = summarize(_results(3), n_resamples=20)
    assert list(summaries) == ["all", "finance", "pubmed"]
    assert all(isinstance(c, ConfigSummary) and c.n_questions == (6 if d == "all" else 3)
               for d, cs in summaries.items() for c in cs)
    assert read_results(_results(3)).num_rows == 3 * 2 * len(CONFIGS)
