"""The report: numbers in the HTML equal numpy recomputations, best-of-column marks, recommendation."""

from __future__ import annotations

import argparse
import html.parser
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chunkeval.report import add_subparser, pareto_frontier, recommend, write_report

METRICS = ("iou", "recall", "precision", "precision_omega")

# config_id -> (chunker, size, embedder, mean iou, mean recall)
CONFIGS = {
    "fixed-100": ("fixed", 100, "minilm", 0.50, 0.55),  # best IoU overall, but low recall
    "fixed-200": ("fixed", 200, "minilm", 0.40, 0.80),
    "fixed-400": ("fixed", 400, "minilm", 0.25, 0.95),
    "recursive-200": ("recursive", 200, "minilm", 0.38, 0.82),
    "recursive-200-bge": ("recursive", 200, "bge", 0.30, 0.90),
}


def _results(n_per_corpus: int = 30) -> pa.Table:
    rng = np.random.default_rng(42)
    cols: dict[str, list] = {c: [] for c in (
        "question_id", "corpus_id", "config_id", "chunker", "chunk_size", "size_unit", "chunk_overlap", "embedder",
        "k", "semantics", "units", *METRICS, "coverage", "n_evidence_chunks")}
    for corpus in ("finance", "pubmed"):
        difficulty = rng.normal(0, 0.05, size=n_per_corpus)
        for config_id, (chunker, size, embedder, iou, recall) in CONFIGS.items():
            for q in range(n_per_corpus):
                cols["question_id"].append(f"{corpus}-q{q}")
                cols["corpus_id"].append(corpus)
                cols["config_id"].append(config_id)
                cols["chunker"].append(chunker)
                cols["chunk_size"].append(size)
                cols["size_unit"].append("tokens")
                cols["chunk_overlap"].append(0)
                cols["embedder"].append(embedder)
                cols["k"].append(5)
                cols["semantics"].append("set")
                cols["units"].append("tokens")
                noise = rng.normal(0, 0.03, size=4)
                cols["iou"].append(float(np.clip(iou + difficulty[q] + noise[0], 0, 1)))
                cols["recall"].append(float(np.clip(recall + difficulty[q] + noise[1], 0, 1)))
                cols["precision"].append(float(np.clip(iou * 1.2 + noise[2], 0, 1)))
                cols["precision_omega"].append(float(np.clip(0.6 + noise[3] - size / 2000, 0, 1)))
                cols["coverage"].append(1.0)
                cols["n_evidence_chunks"].append(int(rng.integers(1, 4)))
    types = {"chunk_size": pa.int64(), "chunk_overlap": pa.int64(), "k": pa.int64(), "n_evidence_chunks": pa.int64()}
    return pa.table({name: pa.array(values, type=types.get(name)) for name, values in cols.items()})


class _TableParser(html.parser.HTMLParser):
    """Collects metric cells: (domain, config, metric) -> (mean attr, std attr, text, bold)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str], dict] = {}
        self.recommended: list[str] = []
        self.images: list[str] = []
        self._domain = self._config = ""
        self._cell: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and "data-domain" in a:
            self._domain = a["data-domain"] or ""
        elif tag == "tr" and "data-config" in a:
            self._config = a["data-config"] or ""
        elif tag == "td" and "data-metric" in a:
            self._cell = {"mean": float(a["data-mean"]), "std": float(a["data-std"]), "text": "", "bold": False}
            self.cells[(self._domain, self._config, a["data-metric"])] = self._cell
        elif tag == "strong" and self._cell is not None:
            self._cell["bold"] = True
        elif tag == "p" and "data-recommended" in a:
            self.recommended.append(a["data-recommended"] or "")
        elif tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, dict[str, Path]]:
    table = _results()
    path = tmp_path_factory.mktemp("results") / "results.parquet"
    pq.write_table(table, path)
    out = tmp_path_factory.mktemp("report")
    paths = write_report(path, out, recall_floor=0.7, baseline="fixed-400", n_resamples=2000, n_permutations=2000,
                         show_progress=False)
    return table, paths


def test_report_files_exist(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    for key in ("markdown", "html", "summary"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    plots = sorted(k for k in paths if k.startswith("plots/"))
    expected = []
    for domain in ("all", "finance", "pubmed"):
        for embedder in ("bge", "minilm"):
            expected += [f"plots/metrics_vs_size__{domain}__{embedder}.png", f"plots/metrics_vs_size__{domain}__{embedder}.svg"]
        expected += [f"plots/frontier__{domain}.png", f"plots/frontier__{domain}.svg"]
    assert plots == sorted(expected)
    for key in plots:
        data = paths[key].read_bytes()
        assert data.startswith(b"\x89PNG") if key.endswith(".png") else b"<svg" in data[:1000]


def test_html_is_self_contained(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    text = paths["html"].read_text(encoding="utf-8")
    assert "<link" not in text and "<script" not in text
    parser = _TableParser()
    parser.feed(text)
    assert len(parser.images) == 9
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert not re.search(r"""(src|href)=["'](https?:|//|plots/)""", text)


def test_html_values_equal_numpy_recomputation(report: tuple[pa.Table, dict[str, Path]]) -> None:
    table, paths = report
    parser = _TableParser()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    corpus = np.asarray(table.column("corpus_id").to_pylist())
    config = np.asarray(table.column("config_id").to_pylist())
    checked = 0
    for domain in ("all", "finance", "pubmed"):
        in_domain = np.ones(len(corpus), bool) if domain == "all" else corpus == domain
        for metric in METRICS:
            values = np.asarray(table.column(metric).to_pylist())
            means = {c: values[in_domain & (config == c)].mean() for c in CONFIGS}
            best = max(means.values())
            for c in CONFIGS:
                v = values[in_domain & (config == c)]
                cell = parser.cells[(domain, c, metric)]
                assert cell["mean"] == pytest.approx(v.mean(), rel=1e-12, abs=1e-15)
                assert cell["std"] == pytest.approx(np.sqrt(((v - v.mean()) ** 2).mean()), rel=1e-9, abs=1e-15)
                assert cell["text"] == f"{v.mean():.4f} ± {v.std(ddof=0):.4f}"
                assert cell["bold"] == (means[c] == best)
                checked += 1
    assert checked == 3 * 4 * len(CONFIGS)
    # Exactly one bold cell per column here (no ties in this data).
    for domain in ("all", "finance", "pubmed"):
        for metric in METRICS:
            assert sum(parser.cells[(domain, c, metric)]["bold"] for c in CONFIGS) == 1


def test_markdown_marks_best_and_lists_rows(report: tuple[pa.Table, dict[str, Path]]) -> None:
    table, paths = report
    md = paths["markdown"].read_text(encoding="utf-8")
    assert md.count("## ") >= 3
    # fixed-100 has the best IoU in every domain: its IoU cell is bold.
    row = next(line for line in md.splitlines() if line.startswith("| fixed-100 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["fixed-100", "fixed", "minilm", "100 tokens", "0", "5"]
    assert cells[-4].startswith("**") and not cells[-3].startswith("**")


def test_recommendation_respects_recall_floor(report: tuple[pa.Table, dict[str, Path]]) -> None:
    table, paths = report
    parser = _TableParser()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    # fixed-100 wins IoU but its recall (~0.55) is under the floor 0.7; fixed-200 (0.40 IoU, 0.80 recall) is next.
    assert parser.recommended == ["fixed-200", "fixed-200", "fixed-200"]
    recs = recommend(table, 0.0, n_resamples=1000, n_permutations=1000)
    assert {d: r.best.config_id for d, r in recs.items()} == {"all": "fixed-100", "finance": "fixed-100", "pubmed": "fixed-100"}
    assert all(r.runner_up.config_id == "fixed-200" and r.significant for r in recs.values())
    recs = recommend(table, 0.7, n_resamples=1000, n_permutations=1000)
    # fixed-200 (0.40) against recursive-200 (0.38), 60 questions: a real but small gap.
    assert recs["all"].runner_up.config_id == "recursive-200"
    assert recs["all"].comparison.diff == pytest.approx(recs["all"].best.mean["iou"] - recs["all"].runner_up.mean["iou"])
    recs = recommend(table, 0.99, n_resamples=100, n_permutations=100)
    assert all(r.best is None for r in recs.values())
    recs = recommend(table, 0.93, n_resamples=100, n_permutations=100)
    assert recs["all"].best.config_id == "fixed-400" and recs["all"].runner_up is None


def test_baseline_section(report: tuple[pa.Table, dict[str, Path]]) -> None:
    _, paths = report
    md = paths["markdown"].read_text(encoding="utf-8")
    assert md.count("### Against the baseline `fixed-400`") == 3
    # fixed-100 beats fixed-400 on IoU by ~0.25 on 60 questions: marked significantly better.
    section = md.split("## All domains")[1].split("## Domain")[0].split("### Against the baseline")[1]
    row = next(line for line in section.splitlines() if line.startswith("| fixed-100 |"))
    assert "▲" in row.split("|")[2]


def test_pareto_frontier_by_hand() -> None:
    recall = [0.9, 0.5, 0.4, 0.8, 0.5, 0.95]
    precision = [0.1, 0.3, 0.2, 0.1, 0.3, 0.05]
    # (0.4, 0.2) is dominated by (0.5, 0.3); (0.8, 0.1) by (0.9, 0.1); the two (0.5, 0.3) tie and both stay.
    assert pareto_frontier(recall, precision).tolist() == [1, 4, 0, 5]


def test_cli_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _results(n_per_corpus=6).filter(pa.compute.is_in(pa.compute.field("config_id"), pa.array(["fixed-100", "fixed-200"])))
    path = tmp_path / "r.parquet"
    pq.write_table(table, path)
    parser = argparse.ArgumentParser(prog="chunkeval")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(path), "--out", str(tmp_path / "out"), "--recall-floor", "0.5",
                              "--resamples", "200", "--no-plots"])
    assert args.handler(args) == 0
    assert (tmp_path / "out" / "report.html").is_file() and not list((tmp_path / "out" / "plots").iterdir())
    args = parser.parse_args(["report", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o2")])
    assert args.handler(args) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_tables(tmp_path: Path) -> None:
    table = _results(n_per_corpus=2)
    with pytest.raises(ValueError, match="lacks column"):
        write_report(table.drop_columns(["iou"]), tmp_path)
    with pytest.raises(ValueError, match="baseline"):
        write_report(table, tmp_path, baseline="nope", plots=False)
    clash = table.set_column(table.column_names.index("chunker"), "chunker",
                             pa.array(["x"] + table.column("chunker").to_pylist()[1:]))
    with pytest.raises(ValueError, match="config_id 'fixed-100' has different \\['chunker'\\]"):
        write_report(clash, tmp_path, plots=False)


def test_single_configuration_table_without_config_columns(tmp_path: Path) -> None:
    # What one `chunkeval evaluate` run writes: no config_id and no descriptor columns.
    table = pa.table({
        "question_id": ["q1", "q2", "q3"], "corpus_id": ["a", "a", "b"],
        "iou": [0.1, 0.2, 0.3], "recall": [1.0, 0.5, 0.0], "precision": [0.1, 0.1, 0.4], "precision_omega": [0.5, 0.5, 0.5],
    })
    paths = write_report(table, tmp_path, n_resamples=100, n_permutations=100)
    parser = _TableParser()
    parser.feed(paths["html"].read_text(encoding="utf-8"))
    assert parser.cells[("all", "default", "iou")]["mean"] == pytest.approx(0.2)
    assert parser.cells[("a", "default", "recall")]["text"] == "0.7500 ± 0.2500"
    assert parser.recommended == ["default"] * 3
    assert sorted(k for k in paths if k.startswith("plots/")) == [
        f"plots/frontier__{d}.{ext}" for d in ("a", "all", "b") for ext in ("png", "svg")]


def test_report_files_are_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.csv as pacsv

    table = _results(n_per_corpus=3)
    first = write_report(table, tmp_path, n_resamples=100, n_permutations=100, show_progress=False)
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p.name for p in written} >= {"report.md", "report.html", "summary.csv"}
    assert not [p for p in written if p.name.endswith(".tmp")]  # no temporary file left behind

    def crash(data: pa.Table, sink: object) -> None:
        sink.write(b"domain,config_id\n")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(pacsv, "write_csv", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(table, tmp_path, n_resamples=100, n_permutations=100, show_progress=False)
    # The interrupted run leaves the finished summary.csv intact, not a torn half-written one.
    assert first["summary"].read_bytes() == written[first["summary"]]
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(written)
