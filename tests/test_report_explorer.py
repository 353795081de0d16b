"""The per-question explorer: which text it embeds, the hit/miss/noise counts, where the corpus
comes from (dataset= or the results' provenance), the question cap and HTML safety."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from chunkeval.datasets import Dataset, write_questions
from chunkeval.report import char_overlap, write_explorer, write_report
from chunkeval.results import Configuration, results_table, with_provenance

TEXT_A = "".join(f"sentence {i:02d}. " for i in range(60))  # 13 characters per sentence, 780 in all
TEXT_B = "<b>bold</b></script> " + "".join(f"line {i:02d}. " for i in range(40))
QUESTIONS: list[dict[str, Any]] = [
    {"question_id": "q1", "question": "What is in sentences 10 and 11?", "corpus_id": "a",
     "references": [{"start_index": 130, "end_index": 156}]},
    {"question_id": "q2", "question": "Sentences 20 and 40?", "corpus_id": "a",
     "references": [{"start_index": 260, "end_index": 273}, {"start_index": 520, "end_index": 533}]},
    {"question_id": "q3", "question": "The markup?", "corpus_id": "b",
     "references": [{"start_index": 0, "end_index": 26}]},
]
# config -> question -> retrieved spans (corpus, start, end), in rank order. Y never scored q3.
RETRIEVED = {
    "X": {"q1": [("a", 120, 150), ("a", 600, 650)], "q2": [("a", 255, 275), ("a", 515, 540)],
          "q3": [("b", 10, 30), ("b", 20, 50)]},
    "Y": {"q1": [("a", 130, 156), ("b", 0, 40)], "q2": [("a", 0, 13), ("a", 13, 26)]},
}
# (hit, miss, noise) characters, worked out by hand from the spans above.
EXPECTED = {
    ("X", "q1"): (20, 6, 60),   # [120,150) ∩ [130,156) = 20; 6 reference chars missed; 10 + 50 outside
    ("X", "q2"): (26, 0, 19),   # both references inside the chunks; 20 + 25 - 26 outside
    ("X", "q3"): (16, 10, 24),  # the two chunks overlap: [10, 50) counts once
    ("Y", "q1"): (26, 0, 40),   # exact hit, plus 40 characters of another corpus
    ("Y", "q2"): (0, 26, 26),
}
CORPUS = {"q1": "a", "q2": "a", "q3": "b"}


def _dataset() -> Dataset:
    return Dataset("tiny", {"a": TEXT_A, "b": TEXT_B}, [dict(q) for q in QUESTIONS])


def _table(provenance: dict[str, Any] | None = None, extra_question: bool = False) -> pa.Table:
    parts = []
    for name, runs in RETRIEVED.items():
        qids = list(runs)
        if extra_question and name == "X":
            qids.append("q-unknown")
        spans = [runs.get(q, [("a", 0, 5)]) for q in qids]
        hits = [EXPECTED.get((name, q), (1, 0, 4)) for q in qids]
        recall = np.array([h / (h + m) if h + m else 0.0 for h, m, _ in hits])
        iou = np.array([h / (h + m + n) for h, m, n in hits])
        n = len(qids)
        parts.append(results_table(
            Configuration(chunker="fixed", chunker_spec="fixed:10", chunk_size=10, size_unit="tokens", chunk_overlap=0,
                          embedder=f"emb-{name}", retrieval="exact", scope="global", k=2),
            f"cfg-{name}", question_ids=qids, corpus_ids=[CORPUS.get(q, "a") for q in qids],
            metrics={"recall": recall, "precision": iou, "iou": iou, "precision_omega": iou, "coverage": np.ones(n),
                     "n_evidence_chunks": np.ones(n, dtype=np.int64)},
            retrieved_ids=[[0, 1]] * n, retrieved_spans=spans))
    table = pa.concat_tables(parts)
    return with_provenance(table, provenance) if provenance is not None else table


def _payload(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page, re.S)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_char_overlap_by_hand() -> None:
    for (config, question), expected in EXPECTED.items():
        record: dict[str, Any] = QUESTIONS[int(question[1]) - 1]
        refs = [(r["start_index"], r["end_index"]) for r in record["references"]]
        assert char_overlap(refs, RETRIEVED[config][question], CORPUS[question]) == expected
    assert char_overlap([(0, 10), (5, 15)], [], "a") == (0, 15, 0)


def test_explorer_payload(tmp_path: Path) -> None:
    path, note = write_explorer(_table(), tmp_path / "explorer.html", dataset=_dataset(), context=20)
    assert path == tmp_path / "explorer.html" and note == "3 questions, 2 configurations"
    page = path.read_text(encoding="utf-8")
    data = _payload(page)
    assert data["corpora"] == ["a", "b"]
    assert [c["id"] for c in data["configs"]] == ["cfg-X", "cfg-Y"]
    assert [(q["id"], q["c"]) for q in data["questions"]] == [("q1", 0), ("q2", 0), ("q3", 1)]
    # Windows: the references ± 20 characters, clipped to the corpus and merged.
    assert [q["win"] for q in data["questions"]] == [[[110, 176]], [[240, 293], [500, 553]], [[0, 46]]]
    for qi, question in enumerate(("q1", "q2", "q3")):
        for ci, config in enumerate(("X", "Y")):
            run = data["questions"][qi]["runs"][ci]
            if (config, question) not in EXPECTED:
                assert run is None
                continue
            assert (run["hit"], run["miss"], run["noise"]) == EXPECTED[(config, question)]
            assert run["ret"] == [[data["corpora"].index(c), s, e] for c, s, e in RETRIEVED[config][question]]
    # Only the windows and an excerpt of each chunk retrieved away from them are embedded.
    assert data["segments"] == {
        "0": [[s, TEXT_A[s:e]] for s, e in ((0, 26), (110, 176), (240, 293), (500, 553), (600, 650))],
        "1": [[0, TEXT_B[0:46]]],
    }
    assert "sentence 55." not in page
    # Self-contained: one inline script and the data, no external source, a link back to the report.
    assert not re.search(r"""(src|href)=["'](https?:|//)""", page) and "<link" not in page
    assert page.count("<script") == 2 and 'href="report.html"' in page
    # Corpus markup cannot close the data element early.
    assert page.count("</script>") == 2 and "\\u003cb>bold\\u003c/b>\\u003c/script>" in page


def test_explorer_caps_questions_by_recall_spread(tmp_path: Path) -> None:
    path, note = write_explorer(_table(extra_question=True), tmp_path / "e.html", dataset=_dataset(), max_questions=2)
    assert path is not None and note == "2 questions, 2 configurations"
    page = path.read_text(encoding="utf-8")
    # q2 (recall 1 against 0) and q1 (0.77 against 1) differ most; q3 has one configuration only.
    assert [q["id"] for q in _payload(page)["questions"]] == ["q1", "q2"]
    assert ("Showing 2 of 3 questions (at most --explorer-questions, in a page under 6 MB): those on which the "
            "configurations&#x27; recall differs most.") in page
    assert "1 of 4 questions of the results are not in dataset &#x27;tiny&#x27; and are left out." in page
    with pytest.raises(ValueError, match="max_questions must be a positive int"):
        write_explorer(_table(), tmp_path / "e.html", dataset=_dataset(), max_questions=0)


def _dataset_folder(root: Path) -> Path:
    folder = root / "tiny"
    (folder / "corpora").mkdir(parents=True)
    (folder / "corpora" / "a.txt").write_text(TEXT_A, encoding="utf-8")
    (folder / "corpora" / "b.txt").write_text(TEXT_B, encoding="utf-8")
    write_questions(QUESTIONS, folder / "questions.jsonl")
    return folder


@pytest.mark.parametrize("recorded", ["questions file", "folder"])
def test_explorer_dataset_from_provenance(tmp_path: Path, recorded: str) -> None:
    folder = _dataset_folder(tmp_path)
    source = str(folder / "questions.jsonl") if recorded == "questions file" else str(folder)
    record = {"dataset": {"name": "tiny", "source": source, "fingerprint": _dataset().fingerprint()}}
    table = _table({"cfg-X": record, "cfg-Y": record})
    paths = write_report(table, tmp_path / "out", n_resamples=50, n_permutations=50, plots=False, show_progress=False)
    assert paths["explorer"] == tmp_path / "out" / "explorer.html"
    assert [q["id"] for q in _payload(paths["explorer"].read_text(encoding="utf-8"))["questions"]] == ["q1", "q2", "q3"]
    assert '<a href="explorer.html">Per-question explorer</a>' in paths["html"].read_text(encoding="utf-8")


def test_explorer_without_a_dataset_is_skipped_with_a_note(tmp_path: Path) -> None:
    paths = write_report(_table(), tmp_path / "o1", n_resamples=50, n_permutations=50, plots=False, show_progress=False)
    assert "explorer" not in paths and not (tmp_path / "o1" / "explorer.html").exists()
    text = paths["html"].read_text(encoding="utf-8")
    assert "no explorer: the results do not name their dataset; pass --dataset" in text
    gone = {"dataset": {"name": "elsewhere", "source": str(tmp_path / "gone" / "questions.jsonl")}}
    paths = write_report(_table({"cfg-X": gone, "cfg-Y": gone}), tmp_path / "o2", n_resamples=50, n_permutations=50,
                         plots=False, show_progress=False)
    assert "explorer" not in paths
    assert "could not be loaded here; pass --dataset" in paths["markdown"].read_text(encoding="utf-8")
    # Given explicitly (a folder), it is used.
    paths = write_report(_table(), tmp_path / "o3", dataset=str(_dataset_folder(tmp_path)), n_resamples=50,
                         n_permutations=50, plots=False, show_progress=False)
    assert paths["explorer"].is_file()
    other = Dataset("other", {"z": "nothing here"}, [])
    assert write_explorer(_table(), tmp_path / "e.html", dataset=other) == (
        None, "no explorer: none of the results' questions is in dataset 'other'; pass the right --dataset")


def test_explorer_stays_under_its_size_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import chunkeval.report as report

    full, _ = write_explorer(_table(), tmp_path / "full.html", dataset=_dataset())
    assert full is not None
    size = len(full.read_bytes())
    monkeypatch.setattr(report, "EXPLORER_MAX_BYTES", size - 1)
    path, note = write_explorer(_table(), tmp_path / "small.html", dataset=_dataset())
    assert path is not None and note == "1 question, 2 configurations"
    page = path.read_text(encoding="utf-8")
    assert len(page.encode("utf-8")) < size
    # Three questions do not fit, so half as many (one): q2, on which the two configurations differ most.
    assert [q["id"] for q in _payload(page)["questions"]] == ["q2"]
    assert "Showing 1 of 3 questions" in page


def test_explorer_notes_a_dataset_that_differs_from_the_recorded_one(tmp_path: Path) -> None:
    folder = _dataset_folder(tmp_path)
    record = {"dataset": {"name": "tiny", "source": str(folder), "fingerprint": "0" * 64}}
    path, _ = write_explorer(_table({"cfg-X": record, "cfg-Y": record}), tmp_path / "e.html")
    assert path is not None
    assert (f"Dataset {folder} differs from the one the results were computed on (a subset or an edited copy); "
            "questions are matched by id and shown with its references.") in path.read_text(encoding="utf-8")
    # A recorded name that is not a bundled benchmark is never looked up as a folder of the working directory.
    named = {"dataset": {"name": str(folder)}}
    assert write_explorer(_table({"cfg-X": named}), tmp_path / "e2.html") == (
        None, "no explorer: the results do not name their dataset; pass --dataset (a bundled name or a dataset folder)")
