"""Sweeps: the results table, agreement with ``evaluate()``, resuming, interrupts, sweep files.

The main sweep is 2 chunkers x 2 units x 3 cut-offs on ``chatlogs`` (10 questions) with the real
model through the session's embedding cache, so its texts are embedded once per session."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from chunkeval.chunkers import Chunker, get_chunker
from chunkeval.cli import main
from chunkeval.evaluate import configuration, evaluate
from chunkeval.sweep import SweepConfig, _grid_chunkers, load_sweep_config, run_sweep, sweep_config_from_dict
from test_evaluate import HashingEmbedder as WordHashing

CORPUS = "chatlogs"
N_QUESTIONS = 10
CHUNKERS = ["fixed:200:0", "sentence:10"]
UNITS = ["chars", "tokens"]
KS = [1, 3, 5]
CONFIG_COLUMNS = ("config_id", "chunker", "chunk_size", "size_unit", "chunk_overlap", "embedder", "k", "semantics",
                  "units")
METRICS = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks")


def _config(**overrides) -> SweepConfig:
    raw = {"corpora": [CORPUS], "max_questions": N_QUESTIONS, "chunkers": CHUNKERS, "units": UNITS, "k": KS}
    return sweep_config_from_dict({**raw, **overrides})


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def sweep_dir(embedding_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    run_sweep(_config(), out, cache_dir=embedding_cache, show_progress=False)
    return out


@pytest.fixture(scope="module")
def results(sweep_dir: Path):
    return pq.read_table(sweep_dir / "results.parquet")


class HashingEmbedder(WordHashing):
    """Bag of hashed words: instant and deterministic, for sweeps that test plumbing, not vectors."""

    name = "hashing-256"


# ---------------------------------------------------------------------------------- the results


def test_results_table_has_one_row_per_question_k_and_configuration(results, sweep_dir: Path) -> None:
    for column in CONFIG_COLUMNS + METRICS + ("question_id", "corpus_id"):
        assert column in results.column_names, column
    rows = results.to_pylist()
    assert len(rows) == N_QUESTIONS * len(KS) * len(CHUNKERS) * len(UNITS)
    assert len({(r["question_id"], r["config_id"]) for r in rows}) == len(rows)
    # A config_id names exactly one configuration, k included (what the report compares).
    configs = {}
    for r in rows:
        configs.setdefault(r["config_id"], set()).add(tuple(r[c] for c in CONFIG_COLUMNS[1:]))
    assert all(len(v) == 1 for v in configs.values())
    assert len(configs) == len(CHUNKERS) * len(UNITS) * len(KS)
    seen = {next(iter(v)) for v in configs.values()}
    expected = {("fixed", 200, "tokens", 0, "all-MiniLM-L6-v2", k, "set", u) for k in KS for u in UNITS}
    expected |= {("sentence", 10, "sentences", 0, "all-MiniLM-L6-v2", k, "set", u) for k in KS for u in UNITS}
    assert seen == expected
    assert {r["corpus_id"] for r in rows} == {CORPUS}

    parts = sorted(p.stem for p in (sweep_dir / "parts").iterdir())
    assert parts == sorted(configs)
    assert json.loads((sweep_dir / "sweep.json").read_text())["configurations"] == list(dict.fromkeys(
        r["config_id"] for r in rows))
    assert not [p for p in sweep_dir.rglob(".*")]  # atomic writes leave no temp file


@pytest.mark.parametrize("chunker", CHUNKERS)
@pytest.mark.parametrize("units", UNITS)
def test_sweep_metrics_equal_evaluate(results, chunker: str, units: str, embedding_cache: Path) -> None:
    single = evaluate(corpora=[CORPUS], max_questions=N_QUESTIONS, chunker=chunker, units=units, k=KS,
                      cache_dir=embedding_cache, show_progress=False)
    assert single.summary["embedding_stats"]["embedded"] == 0  # the sweep embedded every text already
    name = get_chunker(chunker).name
    for k in KS:
        rows = [r for r in results.to_pylist() if r["chunker_spec"] == name and r["units"] == units and r["k"] == k]
        # The same configuration gives the same rows: same config_id, same numbers, same retrieved ids.
        assert rows == [r for r in single.table.to_pylist() if r["k"] == k], (chunker, units, k)
        assert {r["n_chunks"] for r in rows} == {single.config["n_chunks"]}


# --------------------------------------------------------------------------- resume and interrupt


def test_resume_recomputes_only_the_missing_configuration(sweep_dir: Path, results, tmp_path: Path,
                                                          embedding_cache: Path, monkeypatch) -> None:
    import chunkeval.pipeline

    out = tmp_path / "resumed"
    shutil.copytree(sweep_dir, out)
    before = _mtimes(out / "parts")
    victim = sorted(before)[3]
    (out / "parts" / victim).unlink()

    scored = []
    real_score = chunkeval.pipeline.score_stage

    def counting_score(spans, ids, *, k, **kwargs):
        scored.append(k)
        return real_score(spans, ids, k=k, **kwargs)

    monkeypatch.setattr(chunkeval.pipeline, "score_stage", counting_score)
    run_sweep(_config(), out, cache_dir=embedding_cache, show_progress=False)
    assert len(scored) == 1 and len(scored[0]) == 1  # one configuration, i.e. one cut-off of one scoring
    after = _mtimes(out / "parts")
    assert set(after) == set(before)
    assert {n for n in after if after[n] != before[n]} == {victim}
    assert pq.read_table(out / "results.parquet").equals(results)

    scored.clear()
    run_sweep(_config(), out, cache_dir=embedding_cache, show_progress=False)  # nothing left to do
    assert scored == [] and _mtimes(out / "parts") == after


class InterruptOnSecondChunking(Chunker):
    """A chunker equal to ``spec`` whose chunking is interrupted (Ctrl-C) on the shared second call."""

    calls = 0

    def __init__(self, spec: str) -> None:
        self.inner = get_chunker(spec)
        self.name = self.inner.name

    def config(self) -> dict:
        return self.inner.config()

    def _spans(self, text: str):
        return self.inner._spans(text)

    def chunk(self, texts, *, show_progress=None):
        type(self).calls += 1
        if type(self).calls == 2:
            raise KeyboardInterrupt
        return self.inner.chunk(texts, show_progress=show_progress)


def test_interrupted_sweep_keeps_finished_parts(results, tmp_path: Path, embedding_cache: Path) -> None:
    InterruptOnSecondChunking.calls = 0
    flaky = _config()
    flaky.chunkers = [InterruptOnSecondChunking(spec) for spec in CHUNKERS]
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(flaky, out, cache_dir=embedding_cache, show_progress=False)
    finished = _mtimes(out / "parts")
    fixed_ids = {r["config_id"] for r in results.to_pylist() if r["chunker"] == "fixed"}
    assert set(Path(n).stem for n in finished) == fixed_ids  # the first chunker's parts survived
    assert not (out / "results.parquet").exists()
    assert not [p for p in out.rglob(".*")]

    run_sweep(_config(), out, cache_dir=embedding_cache, show_progress=False)
    after = _mtimes(out / "parts")
    assert {n: after[n] for n in finished} == finished  # kept, not redone
    assert pq.read_table(out / "results.parquet").equals(results)


def test_interrupted_sweep_cli_exits_130(tmp_path: Path, monkeypatch, capsys) -> None:
    import chunkeval.sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(chunkeval.sweep, "run_sweep", interrupted)
    assert main(["sweep", "--out", str(tmp_path), "--corpora", CORPUS, "--quiet"]) == 130
    assert "everything written so far is kept" in capsys.readouterr().err


def test_config_ids_do_not_depend_on_the_other_cut_offs(results, tmp_path: Path, embedding_cache: Path,
                                                        capsys) -> None:
    out = tmp_path / "cli"
    argv = ["sweep", "--out", str(out), "--corpora", CORPUS, "--max-questions", str(N_QUESTIONS),
            "--chunkers", "fixed:200:0", "--units", "chars", "--k", "5,1", "--cache-dir", str(embedding_cache),
            "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1] == f"results: {out / 'results.parquet'}"
    assert "2 configuration(s): 2 computed, 0 reused" in printed
    assert "MRR" in printed and "nDCG" in printed  # the rank metrics beside the span metrics
    small = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["k"] for r in small] == [1] * N_QUESTIONS + [5] * N_QUESTIONS
    big = {(r["config_id"], r["question_id"]): r for r in results.to_pylist()}
    for row in small:
        assert big[(row["config_id"], row["question_id"])] == row  # same configuration, same id, same numbers


def test_sweep_file_through_the_cli(results, tmp_path: Path, embedding_cache: Path, capsys) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(textwrap.dedent(f"""\
        corpora: [{CORPUS}]
        max_questions: {N_QUESTIONS}
        chunkers: [sentence:10]
        units: [tokens]
        k: [3]
        retrieval: {{method: hnsw, scope: global, ef_search: 100}}
    """))
    common = ["--cache-dir", str(embedding_cache), "--quiet"]
    assert main(["sweep", str(path), "--out", str(tmp_path / "hnsw"), *common]) == 0
    rows = pq.read_table(tmp_path / "hnsw" / "results.parquet").to_pylist()
    # ef_search 100 is HNSW's default: the same configuration as the main sweep's, so the same id and rows.
    expected = [r for r in results.to_pylist() if (r["chunker"], r["units"], r["k"]) == ("sentence", "tokens", 3)]
    assert rows == expected
    # --retrieval exact drops the file's HNSW parameters rather than rejecting them.
    assert main(["sweep", str(path), "--out", str(tmp_path / "exact"), "--retrieval", "exact", *common]) == 0
    exact = pq.read_table(tmp_path / "exact" / "results.parquet").to_pylist()
    assert len(exact) == N_QUESTIONS and exact[0]["config_id"] != rows[0]["config_id"]
    capsys.readouterr()


# ------------------------------------------------------------------------------ chunking details


def test_chunkers_with_the_same_name_are_chunked_separately(tmp_path: Path) -> None:
    # Both are "recursive:300:0:chars:custom-separators"; a cache keyed by name would reuse one chunking.
    specs = [{"type": "recursive", "size": 300, "length": "chars", "separators": ["\n\n", ""]},
             {"type": "recursive", "size": 300, "length": "chars", "separators": [".", ""]}]
    assert len({get_chunker(s).name for s in specs}) == 1
    config = _config(chunkers=specs, units=["chars"], k=[5], retrieval={"method": "exact", "scope": "global"})
    config.embedders = [HashingEmbedder()]
    table = pq.read_table(run_sweep(config, tmp_path, cache_dir=None, show_progress=False)).to_pylist()
    n_chunks = {r["config_id"]: r["n_chunks"] for r in table}
    expected = sorted(len(get_chunker(s).chunk(list(_chatlogs_texts()))) for s in specs)
    assert len(n_chunks) == 2 and sorted(n_chunks.values()) == expected and expected[0] != expected[1]
    assert {r["embedder"] for r in table} == {"hashing-256"}


def _chatlogs_texts() -> list[str]:
    from chunkeval import datasets

    return datasets.load().subset(corpora=[CORPUS]).texts


def test_configuration_attributes_name_kind_size_unit_and_overlap() -> None:
    def attrs(spec: str) -> tuple:
        c = configuration(get_chunker(spec), "all-MiniLM-L6-v2", "hnsw", "global")
        return c.chunker, c.chunk_size, c.size_unit, c.chunk_overlap

    assert attrs("fixed:200:0") == ("fixed", 200, "tokens", 0)
    assert attrs("fixed:100:10:chars") == ("fixed", 100, "chars", 10)
    assert attrs("recursive:400:50") == ("recursive", 400, "tokens", 50)
    assert attrs("recursive:800:0:chars") == ("recursive", 800, "chars", 0)
    assert attrs("sentence:5") == ("sentence", 5, "sentences", 0)
    label = configuration(get_chunker("recursive:400:50"), "all-MiniLM-L6-v2", "exact", "corpus").at_k(5).label()
    assert label == "recursive 400 tokens, overlap 50 · all-MiniLM-L6-v2 · exact (corpus scope) · k=5"


# -------------------------------------------------------------------------------- sweep files


YAML = """\
dataset: chroma-general
corpora: [chatlogs]
max_questions: 10
chunkers:
  - fixed:200:0
  - {type: recursive, size: 400, overlap: 50}
grid:
  type: [sentence]
  size: [5, 10, 15, 20]
embedders: [all-MiniLM-L6-v2]
k: [10, 1, 5, 3]
units: [chars, tokens]
semantics: [set, chroma]
retrieval: {method: hnsw, scope: corpus, M: 32, ef_construction: 100, ef_search: 50, seed: 7}
embed: {device: cpu, batch_size: 16}
"""

TOML = """\
dataset = "chroma-general"
corpora = ["chatlogs"]
max_questions = 10
chunkers = ["fixed:200:0", {type = "recursive", size = 400, overlap = 50}]
embedders = ["all-MiniLM-L6-v2"]
k = [10, 1, 5, 3]
units = ["chars", "tokens"]
semantics = ["set", "chroma"]

[grid]
type = ["sentence"]
size = [5, 10, 15, 20]

[retrieval]
method = "hnsw"
scope = "corpus"
M = 32
ef_construction = 100
ef_search = 50
seed = 7

[embed]
device = "cpu"
batch_size = 16
"""


def test_yaml_and_toml_sweep_files_parse_to_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(YAML)
    (tmp_path / "sweep.toml").write_text(TOML)
    from_yaml = load_sweep_config(tmp_path / "sweep.yaml")
    assert from_yaml == load_sweep_config(tmp_path / "sweep.toml")
    assert from_yaml.chunkers == ["fixed:200:0", {"type": "recursive", "size": 400, "overlap": 50}] + [
        {"type": "sentence", "sentences_per_chunk": n} for n in (5, 10, 15, 20)]
    assert from_yaml.k == [1, 3, 5, 10]
    assert (from_yaml.corpora, from_yaml.max_questions) == (["chatlogs"], 10)
    assert from_yaml.units == ["chars", "tokens"] and from_yaml.semantics == ["set", "chroma"]
    assert from_yaml.retrieval == {"method": "hnsw", "scope": "corpus", "M": 32, "ef_construction": 100,
                                   "ef_search": 50, "seed": 7}
    assert from_yaml.embed == {"device": "cpu", "batch_size": 16}
    assert [get_chunker(s).name for s in from_yaml.chunker_specs()] == [
        "fixed:200:0", "recursive:400:50", "sentence:5", "sentence:10", "sentence:15", "sentence:20"]


def test_grid_expansion() -> None:
    specs = _grid_chunkers({"type": ["fixed", "sentence"], "size": [5, 10, 15, 20], "overlap": [0, 2]})
    names = [get_chunker(s).name for s in specs]
    assert names == ["fixed:5:0", "fixed:5:2", "fixed:10:0", "fixed:10:2", "fixed:15:0", "fixed:15:2",
                     "fixed:20:0", "fixed:20:2", "sentence:5", "sentence:10", "sentence:15", "sentence:20"]
    assert _grid_chunkers({"type": "sentence", "size": 5}) == [{"type": "sentence", "sentences_per_chunk": 5}]


@pytest.mark.parametrize(("raw", "message"), [
    ({"chunker": ["fixed:200:0"]}, r"unknown key\(s\) \['chunker'\]; known keys are \["),
    ({"retrieval": {"metod": "exact"}}, r"unknown retrieval key\(s\) \['metod'\]; known: \["),
    ({"embed": {"devise": "cpu"}}, r"unknown embed key\(s\) \['devise'\]"),
    ({"retrieval": {"method": "annoy"}}, r"retrieval.method 'annoy' is not 'hnsw', 'exact', 'bm25' or 'hybrid'"),
    ({"retrieval": {"method": "exact", "M": 8}}, r"HNSW parameters; drop them with method: exact"),
    ({"grid": {"type": ["fixed"]}}, r"grid.size is required"),
    ({"grid": {"size": []}}, r"grid.size is empty"),
    ({"grid": [5, 10]}, r"grid must be a mapping"),
    ({"k": [0, 5]}, r"k entry 0 is 0; cut-offs are integers >= 1"),
    ({"units": ["words"]}, r"units entry 'words' is not 'chars' or 'tokens'"),
    ({"semantics": ["fuzzy"]}, r"semantics entry 'fuzzy'"),
])
def test_bad_sweep_config_is_rejected(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweep_config_from_dict(raw, "test.yaml")


def test_bad_sweep_file_names_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(textwrap.dedent("""\
        chunkers: [fixed:200:0]
        embeders: [all-MiniLM-L6-v2]
    """))
    with pytest.raises(ValueError, match=re.escape(f"{path}: unknown key(s) ['embeders']")):
        load_sweep_config(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chunkeval sweep: error: ") and "'embeders'" in err[0]
    assert not (tmp_path / "out").exists()  # rejected before any work

    broken = tmp_path / "broken.toml"
    broken.write_text("k = [1, 3\n")
    with pytest.raises(ValueError, match=re.escape(f"{broken}: not valid TOML")):
        load_sweep_config(broken)
    with pytest.raises(ValueError, match=r"a sweep file is .yaml, .yml or .toml"):
        (tmp_path / "sweep.json").write_text("{}")
        load_sweep_config(tmp_path / "sweep.json")


def test_no_questions_is_an_error_not_the_whole_benchmark(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no questions to evaluate .*max_questions=0"):
        run_sweep(_config(max_questions=0), tmp_path, cache_dir=None, show_progress=False)


# ------------------------------------------------------------------------------------- report


def test_report_on_the_sweep_output(sweep_dir: Path, results, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(sweep_dir / "results.parquet"), "--out", str(out), "--no-plots",
                 "--resamples", "200"]) == 0
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    rows = [r for r in results.to_pylist() if r["chunker"] == "sentence" and r["units"] == "tokens" and r["k"] == 5]
    iou = np.array([r["iou"] for r in rows])
    assert f"{iou.mean():.4f} [" in (out / "report.md").read_text()  # mean [95 % CI]
