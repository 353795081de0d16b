"""``report`` on what the other commands write: ``metrics`` (fast) and ``evaluate`` (slow: embeds)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chunkeval.cli import main
from chunkeval.datasets import write_questions
from test_report import _parse


def test_metrics_then_report(tmp_path: Path) -> None:
    (tmp_path / "refs.csv").write_text("question_id,doc,start,end\nq1,a,10,50\nq2,a,100,160\nq3,b,0,30\n")
    (tmp_path / "ret.csv").write_text("question_id,doc,start,end\nq1,a,0,40\nq1,a,200,240\nq2,a,90,130\n"
                                      "q2,a,130,170\nq3,b,50,80\nq3,b,0,20\n")
    out = tmp_path / "m.parquet"
    assert main(["metrics", "--references", str(tmp_path / "refs.csv"), "--retrieved", str(tmp_path / "ret.csv"),
                 "--k", "1,2", "--out", str(out)]) == 0
    table = pq.read_table(out)
    ids = {k: cid for k, cid in zip(table.column("k").to_pylist(), table.column("config_id").to_pylist(), strict=True)}
    assert main(["report", str(out), "--out", str(tmp_path / "R"), "--resamples", "200", "--no-plots"]) == 0
    parser = _parse(tmp_path / "R" / "report.html")
    # By hand: k=1 recalls 30/40, 30/60, 0; k=2 adds [130,170) to q2 (60/60) and [0,20) to q3 (20/30).
    assert parser.cells[("all", ids[1], "recall")]["mean"] == pytest.approx((0.75 + 0.5 + 0.0) / 3, rel=1e-12)
    assert parser.cells[("all", ids[2], "recall")]["mean"] == pytest.approx((0.75 + 1.0 + 2 / 3) / 3, rel=1e-12)
    assert parser.cells[("a", ids[2], "recall")]["mean"] == pytest.approx(0.875, rel=1e-12)
    assert parser.labels[ids[1]].endswith("k=1") and parser.labels[ids[2]].endswith("k=2")
    # No chunking given: precision Ω was not computed and is shown as a dash, not a number.
    assert parser.cells[("all", ids[2], "precision_omega")]["text"] == "–"
    assert parser.recommended == [ids[2]] * 3 and parser.rec_k == ["2"] * 3


SENTENCES = [f"The {animal} lives near the {place} and likes to eat {food}. "
             for animal, place, food in (("fox", "forest", "berries"), ("otter", "river", "fish"),
                                         ("camel", "desert", "dates"), ("puffin", "cliffs", "sand eels"),
                                         ("marmot", "mountains", "grass"), ("gecko", "garden", "crickets"),
                                         ("heron", "marsh", "frogs"), ("bison", "prairie", "sedges"))]


def _folder(root: Path) -> Path:
    folder = root / "animals"
    (folder / "corpora").mkdir(parents=True)
    texts = {"north": "".join(SENTENCES[:4]) * 3, "south": "".join(SENTENCES[4:]) * 3}
    questions = []
    for corpus, text in texts.items():
        (folder / "corpora" / f"{corpus}.txt").write_text(text, encoding="utf-8")
        for sentence in (s for s in SENTENCES if s in text):
            animal = sentence.split()[1]
            start = text.index(sentence)
            questions.append({"question_id": f"{corpus}-{animal}", "question": f"Where does the {animal} live?",
                              "corpus_id": corpus,
                              "references": [{"start_index": start, "end_index": start + len(sentence) - 1}]})
    write_questions(questions, folder / "questions.jsonl")
    return folder


@pytest.mark.slow
def test_evaluate_twice_then_report_with_explorer(tmp_path: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    folder = _folder(tmp_path)
    runs = []
    for chunker in ("fixed:20:0", "recursive:40:0"):
        run = tmp_path / chunker.replace(":", "-")
        assert main(["evaluate", str(folder), "--chunker", chunker, "--k", "1,2", "--retrieval", "exact",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(run), "--quiet"]) == 0
        runs.append(run)
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "R"), "--resamples", "200"]) == 0
    parser = _parse(tmp_path / "R" / "report.html")
    assert len(parser.labels) == 4 and parser.rec_k[0] == "2"
    assert sorted(label.split(" · ")[0] for label in parser.labels.values()) == [
        "fixed 20 tokens, overlap 0"] * 2 + ["recursive 40 tokens, overlap 0"] * 2
    # The explorer found the dataset through the results' provenance.
    page = (tmp_path / "R" / "explorer.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="explorer-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert data["corpora"] == ["north", "south"] and len(data["questions"]) == 8
    assert all(run is not None and run["hit"] + run["miss"] > 0 for q in data["questions"] for run in q["runs"])
