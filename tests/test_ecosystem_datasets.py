"""chunkeval.ecosystem_datasets: passage-string questions (MTCB and the reference toolkit's synthetic
layout) and BEIR folders, from fixtures written here in those formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chunkeval.datasets import DatasetError
from chunkeval.ecosystem_datasets import load_beir, load_passages, locate_passages

DOC = "A cat sat. B dog ran. A cat sat. C end."
#     0         10        20        30


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def corpora(tmp_path: Path) -> Path:
    folder = tmp_path / "corpora"
    folder.mkdir()
    (folder / "pets.md").write_text(DOC, encoding="utf-8")
    (folder / "other.txt").write_text("Nothing here repeats.", encoding="utf-8")
    return folder


def test_locate_passages_in_order() -> None:
    assert locate_passages(DOC, ["A cat sat.", "A cat sat.", "C end.", "A cat", "zzz"]) == [
        (0, 10), (22, 32), (33, 39), (0, 5), None]


def test_mtcb_layout_locates_repeated_passages_in_order(corpora: Path, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "mtcb.jsonl", [
        {"question": "Who sat twice?", "answer": "the cat", "corpus_id": "pets",
         "chunk-must-contain": ["A cat sat.", "A cat sat."]},
        {"question": "What ran?", "corpus_id": "pets", "chunk-must-contain": "B dog ran."},
    ])
    data = load_passages(corpora, questions)
    assert data.name == "mtcb" and len(data) == 2
    first, second = data.questions
    assert [(r["start_index"], r["end_index"]) for r in first["references"]] == [(0, 10), (22, 32)]
    assert [(r["start_index"], r["end_index"]) for r in second["references"]] == [(11, 21)]
    assert first["answer"] == "the cat" and "chunk-must-contain" not in first
    refs = data.references()
    assert refs.offsets.tolist() == [0, 2, 3] and refs.start.tolist() == [0, 22, 11]
    assert data.corpus_ids.index("pets") == int(refs.doc[0])


def test_reference_toolkit_synthetic_layout(corpora: Path) -> None:
    records = [{"question_id": "q7", "question": "How does it end?", "corpus_id": "pets.md",
                "references": [{"content": "C end."}]}]
    data = load_passages(corpora, records, name="synthetic")
    assert data.questions[0]["question_id"] == "q7"
    assert data.questions[0]["references"] == [{"content": "C end.", "start_index": 33, "end_index": 39}]


def test_single_corpus_needs_no_document_field() -> None:
    data = load_passages({"only": DOC}, [{"query": "dog?", "passages": ["dog ran"]}])
    assert data.questions[0]["corpus_id"] == "only"
    assert data.questions[0]["references"][0]["start_index"] == 13


def test_a_passage_not_in_its_document_raises_or_is_skipped(corpora: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"question": "ok", "corpus_id": "pets", "chunk-must-contain": "C end."},
        {"question": "bad", "corpus_id": "pets", "chunk-must-contain": ["A cat sat.", "A bird flew."]},
        {"question": "worse", "corpus_id": "nope", "chunk-must-contain": "x"},
    ])
    with pytest.raises(DatasetError, match=r"q\.jsonl line 2, field chunk-must-contain: passage 1 \('A bird flew\.'\) "
                                           r"is not in document 'pets'; fix the passage so it is verbatim document "
                                           r"text or drop the row \(--on-invalid skip\) \(and 1 more row with "
                                           r"problems"):
        load_passages(corpora, path)
    data = load_passages(corpora, path, on_invalid="skip")
    assert [q["question"] for q in data.questions] == ["ok"]
    assert [(s["row"], s["column"]) for s in data.skipped] == [(2, "chunk-must-contain"), (3, "corpus_id")]
    assert data.skipped[1]["reason"] == "names document 'nope', which is not a corpus"


def test_bad_passage_records(corpora: Path) -> None:
    with pytest.raises(DatasetError, match=r"row 1, field passages: has no evidence passages; give passages/"):
        load_passages(corpora, [{"question": "q", "corpus_id": "pets", "passages": []}])
    with pytest.raises(DatasetError, match=r"row 1, field question: has no question text"):
        load_passages(corpora, [{"corpus_id": "pets", "passages": "A cat"}])
    with pytest.raises(TypeError, match=r"questions\[0\] is str, not a dict"):
        load_passages(corpora, ["A cat"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"on_invalid must be 'error' or 'skip', got 'drop'"):
        load_passages(corpora, [], on_invalid="drop")  # type: ignore[arg-type]


# -- BEIR -------------------------------------------------------------------------------------------


def beir(tmp_path: Path, qrels: str) -> Path:
    root = tmp_path / "scifact-mini"
    write_jsonl(root / "corpus.jsonl", [
        {"_id": "d1", "title": "Cats", "text": "Cats sit on mats."},
        {"_id": "d2", "title": "Dogs", "text": "Dogs run in parks. They bark."},
        {"_id": 3, "title": "Birds", "text": "Birds fly."},
        {"_id": "d4", "title": "Empty", "text": ""},
    ])
    write_jsonl(root / "queries.jsonl", [
        {"_id": "q1", "text": "Where do cats sit?"},
        {"_id": "q2", "text": "Which animals move?"},
        {"_id": "q3", "text": "Unjudged"},
    ])
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_beir_folder_relevant_documents_are_whole_document_spans(tmp_path: Path) -> None:
    root = beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\t3\t1\nq3\td1\t0\n")
    data = load_beir(root)
    assert data.name == "scifact-mini" and data.corpus_ids == ["d1", "d2", "3", "d4"]
    assert [(q["question_id"], q["corpus_id"], q["relevance"]) for q in data.questions] == [
        ("q1", "d1", 1), ("q2#d2", "d2", 2), ("q2#3", "3", 1)]
    assert [q["references"] for q in data.questions] == [
        [{"start_index": 0, "end_index": 17}], [{"start_index": 0, "end_index": 29}],
        [{"start_index": 0, "end_index": 10}]]
    assert data.questions[1]["question"] == "Which animals move?"


def test_beir_problem_rows_raise_or_are_skipped(tmp_path: Path) -> None:
    root = beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\nq1\td9\t1\nq2\td4\t1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv row 3, column query-id: query 'q9' is not in queries\.jsonl; "
                                           r"add the query or drop the row \(--on-invalid skip\) \(and 2 more rows"):
        load_beir(root)
    data = load_beir(root, on_invalid="skip")
    assert [q["question_id"] for q in data.questions] == ["q1"]
    assert [s["reason"] for s in data.skipped] == [
        "query 'q9' is not in queries.jsonl", "document 'd9' is not in corpus.jsonl",
        "document 'd4' is empty, so it has no span"]


def test_beir_layout_errors(tmp_path: Path) -> None:
    root = beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\tone\n")
    with pytest.raises(DatasetError, match=r"test\.tsv row 2: has fields \['q1', 'd1', 'one'\]; write "
                                           r"query-id<TAB>corpus-id<TAB>integer score"):
        load_beir(root)
    with pytest.raises(DatasetError, match=r"is not a BEIR folder: qrels/dev\.tsv is missing; a BEIR folder holds"):
        load_beir(root, split="dev")
    (root / "qrels" / "test.tsv").write_text("q1\td1\t0\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"qrels/test\.tsv has no relevant \(score > 0\) pair left"):
        load_beir(root)
    write_jsonl(root / "corpus.jsonl", [{"_id": "d1"}])
    with pytest.raises(DatasetError, match=r"corpus\.jsonl line 1: needs _id \(a string\) and text"):
        load_beir(root)


def test_datasets_load_detects_a_beir_folder(tmp_path: Path) -> None:
    from chunkeval import datasets

    root = beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
    data = datasets.load(root)
    assert [(q["question_id"], q["corpus_id"]) for q in data.questions] == [("q1", "d1"), ("q2", "d2")]
    assert data.questions == load_beir(root).questions
