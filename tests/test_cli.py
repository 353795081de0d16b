"""The ``chunkeval`` command line: help, ``metrics`` on hand-worked files, user errors, ``evaluate``.

The ``metrics`` inputs are the worked example of docs/metrics.md plus a second question, written as
Parquet, CSV and JSONL with string question ids and document names. Expected values are the
fractions worked out by hand in the comments (float64 divisions of exact counts, so ``==``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import chunkeval
from chunkeval import RaggedSpans, datasets, span_metrics
from chunkeval.chunkers import get_chunker
from chunkeval.cli import build_parser, main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "CHUNKEVAL_PROGRESS": "0"}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chunkeval.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------ help


def test_top_level_help_lists_every_command() -> None:
    done = run_cli("--help", timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("evaluate", "metrics", "generate", "sweep", "report"):
        assert command in done.stdout
    assert run_cli("--version", timeout=60).stdout.strip() == f"chunkeval {chunkeval.__version__}"


@pytest.mark.parametrize(("command", "options"), [
    ("evaluate", ["--chunker", "--embedder", "--k", "--semantics", "--units", "--retrieval", "--scope",
                  "--cache-dir", "--corpora", "--max-questions", "--out", "--json"]),
    ("metrics", ["--references", "--retrieved", "--chunks", "--k", "--semantics", "--group-column", "--out", "--json"]),
    ("sweep", ["--out", "--chunkers", "--sizes", "--types", "--k", "--units", "--cache-dir"]),
    ("report", ["--out", "--recall-floor", "--baseline"]),
    ("generate", ["--out"]),
])
def test_subcommand_help(command: str, options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text, f"{command} --help does not mention {option}"


@pytest.mark.parametrize("command", ["evaluate", "metrics", "sweep", "report", "generate"])
def test_every_option_has_a_help_text(command: str) -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    undocumented = [a.option_strings or a.dest for a in sub.choices[command]._actions
                    if not a.help and not isinstance(a, argparse._HelpAction)]
    assert undocumented == []


# ------------------------------------------------------------------------------- metrics: inputs

# q-worked (docs/metrics.md): doc "report.txt" of length 100 in chunks [0,10) [10,20) ... [90,100);
#   reference [15,25); retrieved in order [20,30), [50,60), then [10,20).
# q-two: doc "notes.md" of length 50 in chunks [0,25) [25,50); references [0,5) and [40,50);
#   retrieved [25,50) first, then [0,25) (the file lists them the other way round, with ranks).
REFERENCES = {"question_id": ["q-worked", "q-two", "q-two"], "doc": ["report.txt", "notes.md", "notes.md"],
              "start": [15, 0, 40], "end": [25, 5, 50], "domain": ["legal", "medical", "medical"]}
RETRIEVED = {"question_id": ["q-worked", "q-two", "q-worked", "q-two", "q-worked"],
             "doc": ["report.txt", "notes.md", "report.txt", "notes.md", "report.txt"],
             "start": [20, 0, 50, 25, 10], "end": [30, 25, 60, 50, 20], "rank": [1, 2, 2, 1, 3]}
CHUNKS = {"doc": ["report.txt"] * 10 + ["notes.md"] * 2,
          "start": list(range(0, 100, 10)) + [0, 25], "end": list(range(10, 101, 10)) + [25, 50]}

# Hand-worked, set semantics. q-worked: |E| = 10. q-two: E = [0,5) u [40,50), |E| = 15.
EXPECTED = {
    # k=1. q-worked: R = [20,30), I = 5 -> 5/10, 5/10, 5/15.  q-two: R = [25,50), I = 10 -> 10/15, 10/25, 10/30.
    1: {"q-worked": (5 / 10, 5 / 10, 5 / 15), "q-two": (10 / 15, 10 / 25, 10 / 30)},
    # k=2. q-worked (the worked example): R = [20,30) u [50,60), |R| = 20, I = 5 -> 0.5, 0.25, 5/25.
    #      q-two: R = [0,50), I = 15 -> 1, 15/50, 15/50.
    2: {"q-worked": (5 / 10, 5 / 20, 5 / 25), "q-two": (15 / 15, 15 / 50, 15 / 50)},
    # k=3 (= everything retrieved). q-worked: R = [10,30) u [50,60), |R| = 30, I = 10 -> 1, 10/30, 10/30.
    3: {"q-worked": (10 / 10, 10 / 30, 10 / 30), "q-two": (15 / 15, 15 / 50, 15 / 50)},
}
# Chunk-only metrics. q-worked: C* = [10,30), omega 10/20. q-two: C* = [0,50), omega 15/50. Coverage 1.
OMEGA = {"q-worked": (10 / 20, 1.0, 2), "q-two": (15 / 50, 1.0, 2)}


def _write(columns: dict, path: Path) -> Path:
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pcsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    return path


@pytest.fixture(params=["parquet", "csv", "jsonl"])
def span_files(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    ext = request.param
    return {name: str(_write(columns, tmp_path / f"{name}.{ext}"))
            for name, columns in (("references", REFERENCES), ("retrieved", RETRIEVED), ("chunks", CHUNKS))}


def _metrics(files: dict[str, str], *extra: str, chunks: bool = True) -> list[str]:
    args = ["metrics", "--references", files["references"], "--retrieved", files["retrieved"]]
    return args + (["--chunks", files["chunks"]] if chunks else []) + list(extra)


def _json_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


# ------------------------------------------------------------------------------ metrics: numbers


def test_metrics_per_question_numbers_every_format(span_files: dict[str, str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "per_question.parquet"
    summary = _json_out(capsys, _metrics(span_files, "--k", "1,2,3", "--out", str(out), "--json"))
    table = pq.read_table(out).to_pylist()
    # The results table is long: one configuration (cut-off) after the other, questions in file order.
    assert [(r["question_id"], r["k"]) for r in table] == [(q, k) for k in (1, 2, 3) for q in ("q-worked", "q-two")]
    assert {r["retrieval"] for r in table} == {"given"} and len({r["config_id"] for r in table}) == 3
    for row in table:
        q, k = row["question_id"], row["k"]
        assert (row["recall"], row["precision"], row["iou"]) == EXPECTED[k][q], (q, k)
        assert (row["precision_omega"], row["coverage"], row["n_evidence_chunks"]) == OMEGA[q]
    assert summary["k"] == [1, 2, 3]
    for k in (1, 2, 3):
        at = summary["at_k"][str(k)]
        assert at["n_questions"] == 2
        for j, name in enumerate(("recall", "precision", "iou")):
            values = [EXPECTED[k][q][j] for q in ("q-worked", "q-two")]
            assert at[f"{name}_mean"] == pytest.approx(np.mean(values), rel=1e-15)
            assert at[f"{name}_std"] == pytest.approx(np.std(values), rel=1e-12)
        assert at["precision_omega_mean"] == pytest.approx((0.5 + 0.3) / 2, rel=1e-15)


def test_metrics_without_k_scores_everything_retrieved(span_files: dict[str, str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "per_question.csv"
    summary = _json_out(capsys, _metrics(span_files, "--out", str(out), "--json"))
    rows = pcsv.read_csv(out).to_pylist()
    assert [r["question_id"] for r in rows] == ["q-worked", "q-two"]
    for row in rows:
        assert (row["recall"], row["precision"], row["iou"]) == EXPECTED[3][row["question_id"]]
    assert summary["k"] is None
    assert summary["recall_mean"] == 1.0


def test_metrics_k_auto_scores_each_question_on_its_evidence_chunk_count(
        span_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "auto.parquet"
    summary = _json_out(capsys, _metrics(span_files, "--k", "auto", "--out", str(out), "--json"))
    # Both questions have 2 evidence chunks: q-worked is scored on its first 2 of 3 retrieved.
    for row in pq.read_table(out).to_pylist():
        assert row["n_evidence_chunks"] == 2
        assert (row["recall"], row["precision"], row["iou"]) == EXPECTED[2][row["question_id"]]
    assert summary["k"] == "auto"


def test_metrics_rank_column_decides_the_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {"references": str(_write(REFERENCES, tmp_path / "r.parquet")),
             "chunks": str(_write(CHUNKS, tmp_path / "c.parquet"))}
    unranked = {k: v for k, v in RETRIEVED.items() if k != "rank"}  # file order: q-two's [0,25) comes first
    files["retrieved"] = str(_write(unranked, tmp_path / "t.parquet"))
    out = tmp_path / "o.parquet"
    _json_out(capsys, _metrics(files, "--k", "1", "--out", str(out), "--json"))
    two = [r for r in pq.read_table(out).to_pylist() if r["question_id"] == "q-two"][0]
    # Without ranks the first retrieved chunk of q-two is [0,25): I = 5 -> 5/15, 5/25, 5/35.
    assert (two["recall"], two["precision"], two["iou"]) == (5 / 15, 5 / 25, 5 / 35)


def test_metrics_group_column(span_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grouped.parquet"
    summary = _json_out(capsys, _metrics(span_files, "--k", "2", "--group-column", "domain", "--out", str(out),
                                         "--json"))
    assert list(summary["corpora_scores"]) == ["legal", "medical"]
    assert summary["corpora_scores"]["legal"]["iou_mean"] == 5 / 25
    assert summary["corpora_scores"]["medical"]["recall_mean"] == 1.0
    assert summary["corpora_scores"]["medical"]["n_questions"] == 1
    assert pq.read_table(out).column("corpus_id").to_pylist() == ["legal", "medical"]  # the report's domains


def test_metrics_prints_a_table(span_files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_metrics(span_files, "--k", "2")) == 0
    text = capsys.readouterr().out
    assert "k=2" in text and "0.2500 ± 0.0500" in text  # IoU: mean and std of 5/25 and 15/50
    assert "questions" in text


def test_metrics_chroma_semantics(span_files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    summary = _json_out(capsys, _metrics(span_files, "--k", "1", "--semantics", "chroma", "--json"))
    # q-worked @1 under Chroma's arithmetic: N = 5, sum |retrieved| = 10, unused = 5 -> iou 5 / 15.
    # q-two: N = 10 of sum |reference| 15; precision 10/25; unused = 5 (all of [0,5)) -> iou 10 / 30.
    assert summary["semantics"] == "chroma"
    assert summary["iou_mean"] == pytest.approx((5 / 15 + 10 / 30) / 2, rel=1e-15)
    assert summary["recall_mean"] == pytest.approx((5 / 10 + 10 / 15) / 2, rel=1e-15)


# ------------------------------------------------------------------------------- metrics: errors


def _user_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.fixture
def parquet_files(tmp_path: Path) -> dict[str, str]:
    return {name: str(_write(columns, tmp_path / f"{name}.parquet"))
            for name, columns in (("references", REFERENCES), ("retrieved", RETRIEVED), ("chunks", CHUNKS))}


def _with(columns: dict, **changes) -> dict:
    out = {k: list(v) for k, v in columns.items()}
    for name, (row, value) in changes.items():
        out[name][row] = value
    return out


def test_missing_file(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parquet_files["references"] = str(tmp_path / "nope.parquet")
    line = _user_error(capsys, _metrics(parquet_files))
    assert line == f"chunkeval metrics: error: {tmp_path / 'nope.parquet'}: no such file"


def test_unknown_format(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "refs.txt").write_text("question_id,doc,start,end\n")
    parquet_files["references"] = str(tmp_path / "refs.txt")
    assert "unknown format '.txt'; use .parquet, .csv or .jsonl" in _user_error(capsys, _metrics(parquet_files))


def test_missing_column(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write({k: v for k, v in RETRIEVED.items() if k != "end"}, tmp_path / "no_end.csv")
    parquet_files["retrieved"] = str(path)
    line = _user_error(capsys, _metrics(parquet_files))
    assert f"{path}: missing column(s) ['end']" in line


def test_empty_references(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("question_id,doc,start,end\n")
    parquet_files["references"] = str(path)
    assert f"{path}: no rows" in _user_error(capsys, _metrics(parquet_files))


def test_missing_group_column(parquet_files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, _metrics(parquet_files, "--group-column", "tenant"))
    assert "missing column(s) ['tenant']" in line


def test_unknown_question_id(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(_with(RETRIEVED, question_id=(3, "q-three")), tmp_path / "t.jsonl")
    parquet_files["retrieved"] = str(path)
    line = _user_error(capsys, _metrics(parquet_files))
    assert f"{path}: row 4: question_id 'q-three' has no reference in {parquet_files['references']}" in line


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "argument --k: 'abc': use an integer, a comma-separated list (1,3,5) or 'auto'"),
    ("1,x", "argument --k: '1,x'"),
    ("0", "argument --k: '0': cut-offs are integers >= 1"),
    ("3,1", "argument --k: '3,1': list the cut-offs in increasing order without repeats"),
])
def test_bad_k(value: str, message: str, parquet_files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _user_error(capsys, _metrics(parquet_files, "--k", value))


def test_k_auto_needs_chunks(parquet_files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, _metrics(parquet_files, "--k", "auto", chunks=False))
    assert "--k auto" in line and "pass --chunks" in line


@pytest.mark.parametrize(("which", "row", "start", "end", "why"), [
    ("references", 1, 30, 20, "is reversed"),
    ("retrieved", 4, 10, 10, "is empty"),
    ("chunks", 11, -5, 50, "has a negative start"),
])
def test_bad_span_row_names_the_file_and_row(which: str, row: int, start: int, end: int, why: str,
                                             parquet_files: dict[str, str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    columns = {"references": REFERENCES, "retrieved": RETRIEVED, "chunks": CHUNKS}[which]
    path = _write(_with(columns, start=(row, start), end=(row, end)), tmp_path / f"bad_{which}.csv")
    parquet_files[which] = str(path)
    line = _user_error(capsys, _metrics(parquet_files))
    assert f"{path}: row {row + 2} span [{start}, {end}) {why}" in line  # a CSV header is row 1


def test_fractional_offset(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(_with(REFERENCES, start=(2, 40.5)), tmp_path / "frac.csv")
    parquet_files["references"] = str(path)
    assert f"{path}: start: row 4 is 40.5, not an integer" in _user_error(capsys, _metrics(parquet_files))


def test_doc_without_chunks(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(_with(RETRIEVED, doc=(4, "appendix.txt")), tmp_path / "t.parquet")
    parquet_files["retrieved"] = str(path)
    line = _user_error(capsys, _metrics(parquet_files))
    assert f"{path}: row 5 names doc 'appendix.txt', which has no chunk in {parquet_files['chunks']}" in line


def test_bad_out_suffix(parquet_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, _metrics(parquet_files, "--out", str(tmp_path / "x.json")))
    assert "use a .parquet or .csv file name" in line
    assert not (tmp_path / "x.json").exists()


def test_missing_required_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, ["metrics", "--references", "r.csv"])
    assert line == ("chunkeval metrics: error: the following arguments are required: --retrieved "
                    "(see chunkeval metrics --help)")


def test_user_error_in_a_real_process(parquet_files: dict[str, str], tmp_path: Path) -> None:
    path = _write(_with(REFERENCES, start=(0, 30), end=(0, 20)), tmp_path / "reversed.jsonl")
    parquet_files["references"] = str(path)
    done = run_cli(*_metrics(parquet_files), timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (f"chunkeval metrics: error: {path}: row 1 span [30, 20) is reversed; spans are "
                                   "half-open [start, end) with 0 <= start < end (fix or drop the row)")


# --------------------------------------------------------------------------------------- evaluate


def test_evaluate_json_in_a_subprocess(embedding_cache: Path) -> None:
    done = run_cli("evaluate", "--corpora", "chatlogs", "--max-questions", "10", "--json",
                   "--cache-dir", str(embedding_cache))
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert payload["config"]["dataset"]["corpora"] == ["chatlogs"]
    assert payload["config"]["dataset"]["n_questions"] == 10
    assert payload["config"]["chunkeval_version"] == chunkeval.__version__
    summary = payload["summary"]
    assert summary["n_questions"] == 10 and summary["k"] == 5
    assert 0.0 <= summary["iou_mean"] <= summary["recall_mean"] <= 1.0
    assert list(summary["corpora_scores"]) == ["chatlogs"]


def test_evaluate_user_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown corpus id(s) ['atlantis']" in _user_error(capsys, ["evaluate", "--corpora", "atlantis"])
    assert "--units: invalid choice: 'furlongs'" in _user_error(capsys, ["evaluate", "--units", "furlongs"])
    assert "no questions to evaluate" in _user_error(capsys, ["evaluate", "--max-questions", "0"])


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import chunkeval.evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(chunkeval.evaluate, "evaluate", interrupted)
    assert main(["evaluate"]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_defaults_on_the_whole_benchmark(embedding_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_cli("evaluate", "--out", str(out), "--cache-dir", str(embedding_cache), timeout=1200)
    assert done.returncode == 0, done.stderr
    assert "all" in done.stdout and str(out / "results.parquet") in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["results.parquet", "summary.json"]

    data = datasets.load()
    table = pq.read_table(out / "results.parquet")
    written = json.loads((out / "summary.json").read_text())
    config, summary = written["config"], written["summary"]
    provenance = json.loads(table.schema.metadata[b"chunkeval.provenance"])
    assert provenance == {config["config_ids"][0]: config}
    assert config["chunkeval_version"] == chunkeval.__version__
    assert {k: v for k, v in config["dataset"].items() if k != "source"} == {
        "name": "chroma-general", "fingerprint": data.fingerprint(), "n_questions": 472,
        "corpora": ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]}
    assert config["chunker"] == {"type": "fixed", "size": 200, "overlap": 0, "tokenizer": "cl100k_base"}
    assert (config["k"], config["semantics"], config["units"]) == (5, "set", "chars")
    assert config["retrieval"]["method"] == "hnsw" and config["retrieval"]["scope"] == "global"
    assert summary["hnsw_recall_vs_exact"] > 0.95

    chunks = get_chunker("fixed:200:0").chunk(data.texts)
    assert config["n_chunks"] == len(chunks)
    ids = table.column("retrieved_chunk_ids").to_pylist()
    assert all(len(row) == 5 for row in ids)
    retrieved = RaggedSpans.from_lists(
        [[(int(chunks.doc[i]), int(chunks.start[i]), int(chunks.end[i])) for i in row] for row in ids])
    corpus_ids = [q["corpus_id"] for q in data.questions]
    expected = span_metrics(data.references(), retrieved, chunks, k=5, groups=np.asarray(corpus_ids, dtype=object))
    assert table.column("question_id").to_pylist() == [q["question_id"] for q in data.questions]
    assert table.column("corpus_id").to_pylist() == corpus_ids
    for name in ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks"):
        np.testing.assert_array_equal(np.asarray(table.column(name)), getattr(expected, name), err_msg=name)
    direct = expected.summary()
    for key in ("iou_mean", "iou_std", "recall_mean", "precision_mean", "precision_omega_mean", "n_questions"):
        assert summary[key] == direct[key], key
    assert set(summary["corpora_scores"]) == set(data.corpus_ids)
    for corpus in data.corpus_ids:
        assert summary["corpora_scores"][corpus]["iou_mean"] == direct["corpora_scores"][corpus]["iou_mean"]


# ------------------------------------------------------------------- metrics: missing questions


def test_a_question_without_retrieved_rows_is_refused(parquet_files: dict[str, str], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    keep = [i for i, q in enumerate(RETRIEVED["question_id"]) if q != "q-two"]
    path = _write({k: [v[i] for i in keep] for k, v in RETRIEVED.items()}, tmp_path / "t.parquet")
    parquet_files["retrieved"] = str(path)
    line = _user_error(capsys, _metrics(parquet_files))
    assert line == (f"chunkeval metrics: error: {path}: question 'q-two' of {parquet_files['references']} has no "
                    "retrieved row (1 question(s) have none); add their rows, or pass --on-missing zero to score them "
                    "as retrieving nothing")


def test_on_missing_zero_scores_and_reports_them(parquet_files: dict[str, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    keep = [i for i, q in enumerate(RETRIEVED["question_id"]) if q != "q-two"]
    parquet_files["retrieved"] = str(_write({k: [v[i] for i in keep] for k, v in RETRIEVED.items()},
                                            tmp_path / "t.parquet"))
    out = tmp_path / "m.parquet"
    assert main(_metrics(parquet_files, "--k", "2", "--on-missing", "zero", "--out", str(out), "--json")) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["questions_without_retrieved_rows"] == 1
    assert "1 question(s) had no retrieved row and scored as retrieving nothing (first: 'q-two')" in captured.err
    rows = {r["question_id"]: r for r in pq.read_table(out).to_pylist()}
    assert (rows["q-two"]["recall"], rows["q-two"]["precision"], rows["q-two"]["iou"]) == (0.0, 0.0, 0.0)
    assert (rows["q-worked"]["recall"], rows["q-worked"]["precision"]) == EXPECTED[2]["q-worked"][:2]
    assert rows["q-two"]["retrieved_spans"] == [] and rows["q-worked"]["retrieved_spans"] == [
        {"corpus_id": "report.txt", "start": 20, "end": 30}, {"corpus_id": "report.txt", "start": 50, "end": 60}]


def test_evaluate_refuses_an_unwritable_out_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    line = _user_error(capsys, ["evaluate", "--out", str(taken)])
    assert line == f"chunkeval evaluate: error: --out {taken}: is a file; pass a folder for the results " \
                   "(it is created if missing)"


def test_help_shows_defaults_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command, default, example in (("evaluate", "(default: fixed:200:0)", "chunkeval evaluate ./my-data"),
                                      ("metrics", "(default: error)", "chunkeval metrics --references refs.csv"),
                                      ("sweep", "(default: local)", "chunkeval sweep --out sweep/")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert default in text and example in text, command


def test_a_bad_dataset_row_is_one_line_with_file_row_column_and_fix(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "mine"
    (data / "corpora").mkdir(parents=True)
    (data / "corpora" / "notes.txt").write_text("x" * 50)
    refs = json.dumps([{"start_index": 40, "end_index": 60}]).replace('"', '""')
    (data / "questions.csv").write_text(f'question,references,corpus_id\nWhat?,"{refs}",notes\n')
    line = _user_error(capsys, ["evaluate", str(data)])
    assert line.startswith(f"chunkeval evaluate: error: {data / 'questions.csv'} row 2, column references: ")
    assert "past the end of corpus 'notes' (50 chars)" in line and "--on-invalid skip" in line


def test_metrics_on_parquet_folders_equals_metrics_on_files(parquet_files: dict[str, str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # The same spans as two aligned parts per folder: part i of both holds the same questions.
    for name, columns in (("references", REFERENCES), ("retrieved", RETRIEVED)):
        folder = tmp_path / f"{name}-parts"
        folder.mkdir()
        for part, question in enumerate(("q-worked", "q-two")):
            rows = [i for i, q in enumerate(columns["question_id"]) if q == question]
            _write({k: [v[i] for i in rows] for k, v in columns.items()}, folder / f"part-{part}.parquet")
    single = tmp_path / "single.parquet"
    assert main(_metrics(parquet_files, "--k", "1,2", "--out", str(single))) == 0
    folders = {"references": str(tmp_path / "references-parts"), "retrieved": str(tmp_path / "retrieved-parts"),
               "chunks": parquet_files["chunks"]}
    out = tmp_path / "job"
    assert main(_metrics(folders, "--k", "1,2", "--out", str(out))) == 0
    printed = capsys.readouterr().out
    # recall@2 = (0.5 + 1) / 2, precision@2 = (5/20 + 15/50) / 2
    assert "2 questions in" in printed and "k=2: recall 0.7500, precision 0.2750" in printed

    from chunkeval.results import read_results

    def key(row: dict) -> tuple:
        return row["question_id"], row["k"]

    metric_names = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks", "retrieved_spans")
    expected = {key(r): [r[m] for m in metric_names] for r in pq.read_table(single).to_pylist()}
    got = {key(r): [r[m] for m in metric_names] for r in read_results(out).to_pylist()}
    assert got == expected
