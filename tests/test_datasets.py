"""Datasets: the bundled benchmark, question file round trips, validation messages, loaders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import chunkeval

from chunkeval.datasets import (
    Dataset,
    append_question,
    load,
    load_corpora,
    read_questions,
    write_questions,
)
from chunkeval.spans import RaggedSpans

# The project's source copy of the benchmark sits beside the checkout (../shared), in CI too.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "chroma_general"
BUNDLED = Path(chunkeval.__file__).parent / "data" / "chroma_general"


@pytest.fixture(scope="module")
def bundled() -> Dataset:
    return load()


def small_dataset() -> Dataset:
    corpora = {"alpha": "The quick brown fox. Jumps over the lazy dog.", "beta": "Lorem ipsum dolor sit amet."}
    questions = [
        {"question": "Who jumps?", "corpus_id": "alpha",
         "references": [{"content": "The quick brown fox.", "start_index": 0, "end_index": 20}]},
        {"question_id": "q-b", "question": "What is it?", "corpus_id": "beta",
         "references": [{"content": "Lorem", "start_index": 0, "end_index": 5},
                        {"start_index": 12, "end_index": 17}],
         "provenance": {"model": "m", "score": 0.5, "tags": ["x", None]}},
    ]
    return Dataset("small", corpora, questions)


def test_bundled_benchmark(bundled: Dataset) -> None:
    assert bundled.name == "chroma-general"
    assert len(bundled) == 472
    assert bundled.corpus_ids == ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]
    assert bundled.doc_lengths().tolist() == [40000, 737905, 500000, 48051, 118372]
    references = bundled.references()
    assert isinstance(references, RaggedSpans)
    assert len(references.spans) == 790
    assert int((references.counts() == 1).sum()) == 284
    assert references.counts().min() == 1 and references.counts().max() == 5
    texts = bundled.texts
    docs = bundled.question_doc()
    checked = 0
    for q, question in enumerate(bundled.questions):
        assert docs[q] == bundled.corpus_ids.index(question["corpus_id"])
        for (doc, start, end), ref in zip(references[q], question["references"]):
            assert doc == docs[q]
            assert texts[doc][start:end] == ref["content"]
            checked += 1
    assert checked == 790
    assert bundled.questions[0]["question_id"] == "chroma-general:0"
    assert len({q["question_id"] for q in bundled.questions}) == 472


def test_bundled_matches_shared_copy(bundled: Dataset) -> None:
    if not SHARED.is_dir():
        pytest.skip("the shared source copy of the benchmark is not on this machine")
    shared = load(corpora=SHARED / "corpora", questions=SHARED / "questions_df.csv", name="chroma-general")
    assert shared.fingerprint() == bundled.fingerprint()


def test_fingerprint_is_stable_and_sensitive(bundled: Dataset) -> None:
    # Pinned: a change here means every cached result keyed by this fingerprint is invalidated.
    # Changed when generated question ids ("chroma-general:0", ...) left the fingerprint (v2).
    assert bundled.fingerprint() == "7f32271d6fc69620cc3238fd76ea1d06ec5015c45a1f2e99b2a2953a1e73c7d7"
    assert load("chroma_general").fingerprint() == bundled.fingerprint()
    d = small_dataset()
    changed = [dict(q) for q in d.questions]
    changed[0]["question"] = "Who jumps now?"
    assert Dataset("small", d.corpora, changed).fingerprint() != d.fingerprint()
    assert Dataset("other-name", d.corpora, d.questions).fingerprint() == d.fingerprint()


def write_folder(folder: Path, d: Dataset, questions: list[dict]) -> Path:
    (folder / "corpora").mkdir(parents=True)
    for corpus_id, text in d.corpora.items():
        (folder / "corpora" / f"{corpus_id}.txt").write_text(text, encoding="utf-8")
    write_questions(questions, folder / "questions.jsonl")
    return folder


def test_fingerprint_ignores_the_name_but_not_the_offsets(tmp_path: Path) -> None:
    d = small_dataset()
    raw = [{k: v for k, v in q.items() if k != "question_id"} for q in d.questions]  # every id generated
    folder = write_folder(tmp_path / "bench", d, raw)
    first, second = load(folder, name="first"), load(folder, name="second")
    assert [q["question_id"] for q in first.questions] == ["first:0", "first:1"]
    assert [q["question_id"] for q in second.questions] == ["second:0", "second:1"]
    assert first.fingerprint() == second.fingerprint() == load(folder).fingerprint()
    # Writing the generated ids out makes them explicit; the data, and so the fingerprint, is the same.
    assert Dataset("third", d.corpora, first.questions).fingerprint() == first.fingerprint()
    moved = [dict(q, references=[dict(r) for r in q["references"]]) for q in raw]
    moved[1]["references"][1]["start_index"] = 13
    shifted = load(write_folder(tmp_path / "shifted", d, moved), name="first")
    assert shifted.fingerprint() != first.fingerprint()
    moved[1]["references"][1]["start_index"] = 12
    moved[1]["references"][1]["end_index"] = 16
    assert Dataset("first", d.corpora, moved).fingerprint() != first.fingerprint()


def test_corpus_folders_are_read_by_one_rule(tmp_path: Path, bundled: Dataset) -> None:
    folder = tmp_path / "corpora"
    folder.mkdir()
    (folder / "b.MD").write_text("bee", encoding="utf-8")
    (folder / "a.Txt").write_text("one\r\ntwo", encoding="utf-8")  # universal newlines
    (folder / "c.pdf").write_bytes(b"%PDF")
    (folder / "d.txt").mkdir()  # a folder is not a corpus, whatever its name
    assert load_corpora(folder) == {"a": "one\ntwo", "b": "bee"}
    (folder / "b.txt").write_text("bee", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus id 'b' appears twice"):
        load_corpora(folder)
    # The bundled benchmark goes through the same reader.
    assert load_corpora(BUNDLED / "corpora") == bundled.corpora


def test_subset(bundled: Dataset) -> None:
    sub = bundled.subset(["wikitexts", "chatlogs"])
    assert sub.corpus_ids == ["chatlogs", "wikitexts"]
    assert all(q["corpus_id"] in ("chatlogs", "wikitexts") for q in sub.questions)
    expected = sum(q["corpus_id"] in ("chatlogs", "wikitexts") for q in bundled.questions)
    assert len(sub) == expected
    few = bundled.subset(max_questions=20, seed=3)
    again = bundled.subset(max_questions=20, seed=3)
    assert len(few) == 20 and few.fingerprint() == again.fingerprint()
    positions = [bundled.questions.index(q) for q in few.questions]
    assert positions == sorted(positions)
    assert bundled.subset(max_questions=20, seed=4).fingerprint() != few.fingerprint()
    assert len(bundled.subset(max_questions=10_000)) == 472
    with pytest.raises(ValueError, match=r"unknown corpus id\(s\) \['nope'\]"):
        bundled.subset(["nope"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trips(tmp_path: Path, suffix: str) -> None:
    d = small_dataset()
    path = write_questions(d.questions, tmp_path / f"questions{suffix}")
    assert read_questions(path) == d.questions
    assert Dataset("small", d.corpora, read_questions(path)).fingerprint() == d.fingerprint()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_round_trip_keeps_records_without_ids(tmp_path: Path) -> None:
    raw = [{"question": "Q?", "corpus_id": "c", "references": [{"content": "ab", "start_index": 0, "end_index": 2}]}]
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = write_questions(raw, tmp_path / f"raw{suffix}")
        assert read_questions(path) == raw


def test_jsonl_parquet_jsonl_is_lossless(tmp_path: Path) -> None:
    d = small_dataset()
    first = write_questions(d.questions, tmp_path / "a.jsonl")
    parquet = write_questions(read_questions(first), tmp_path / "b.parquet")
    second = write_questions(read_questions(parquet), tmp_path / "c.jsonl")
    assert first.read_bytes() == second.read_bytes()


def test_csv_is_readable_like_the_reference_toolkit(bundled: Dataset, tmp_path: Path) -> None:
    path = write_questions(bundled.questions, tmp_path / "questions_df.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 472
    assert rows[0]["question"] == bundled.questions[0]["question"]
    assert json.loads(rows[5]["references"]) == bundled.questions[5]["references"]
    assert rows[0]["corpus_id"] == "state_of_the_union"


def test_bundled_csv_round_trip_is_byte_identical_in_the_toolkit_columns(bundled: Dataset, tmp_path: Path) -> None:
    original = read_questions(BUNDLED / "questions_df.csv")
    path = write_questions(original, tmp_path / "questions_df.csv")
    assert path.read_bytes() == (BUNDLED / "questions_df.csv").read_bytes()


def test_bad_rows_are_reported_with_row_numbers() -> None:
    corpora = {"c": "0123456789"}
    questions = [
        {"question": "fine", "corpus_id": "c", "references": [{"content": "012", "start_index": 0, "end_index": 3}]},
        {"question": "past end", "corpus_id": "c", "references": [{"start_index": 5, "end_index": 11}]},
        {"question": "fine", "corpus_id": "c", "references": [{"start_index": 5, "end_index": 6}]},
        {"question": "mismatch", "corpus_id": "c", "references": [{"content": "xyz", "start_index": 3, "end_index": 6}]},
        {"question": "unknown", "corpus_id": "zz", "references": [{"start_index": 0, "end_index": 1}]},
    ]
    with pytest.raises(ValueError) as info:
        Dataset("bad", corpora, questions)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "row 1 (bad:1), reference 0: end_index 11 is past the end of corpus 'c' (length 10)" in message
    assert "row 3 (bad:3), reference 0: content 'xyz' differs from corpus[3:6] '345'" in message
    assert "row 4 (bad:4): unknown corpus_id 'zz'" in message
    assert "row 0" not in message and "row 2" not in message
    assert "Fix the offsets" in message


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"start_index": 4, "end_index": 4}, r"span \[4, 4\) is empty"),
        ({"start_index": -1, "end_index": 2}, r"span \[-1, 2\)"),
        ({"start_index": "a", "end_index": 2}, "must be integers"),
        ("0-2", "not a dict"),
    ],
)
def test_bad_reference_shapes(reference: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dataset("bad", {"c": "0123456789"}, [{"question": "q", "corpus_id": "c", "references": [reference]}])


def test_record_level_problems() -> None:
    corpora = {"c": "abc"}
    ref = [{"start_index": 0, "end_index": 1}]
    with pytest.raises(ValueError, match="row 0 .*no references"):
        Dataset("bad", corpora, [{"question": "q", "corpus_id": "c", "references": []}])
    with pytest.raises(ValueError, match="question_id repeats row 0"):
        Dataset("bad", corpora, [{"question_id": "x", "question": "q", "corpus_id": "c", "references": ref}] * 2)
    with pytest.raises(ValueError, match="'question' is int"):
        Dataset("bad", corpora, [{"question": 3, "corpus_id": "c", "references": ref}])
    with pytest.raises(ValueError, match=r"… and 1 more"):
        Dataset("bad", corpora, [{"question": "q", "corpus_id": "zz", "references": ref}] * 6)


def test_bad_rows_in_files_name_the_file(tmp_path: Path) -> None:
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "c.txt").write_text("0123456789", encoding="utf-8")
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text(
        '{"question": "ok", "corpus_id": "c", "references": [{"start_index": 0, "end_index": 2}]}\n'
        '{"question": "bad", "corpus_id": "c", "references": [{"start_index": 8, "end_index": 12}]}\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"in .*questions\.jsonl:\n  row 1 .*past the end"):
        load(tmp_path)
    qfile.write_text('{"question": "ok", "corpus_id": "c", "references": []}\n{"question": "cut', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 .*truncated last line"):
        read_questions(qfile)
    bad_csv = tmp_path / "q.csv"
    bad_csv.write_text('question,references,corpus_id\nq,"[{oops",c\n', encoding="utf-8")
    with pytest.raises(ValueError, match="row 0: references is not valid JSON"):
        read_questions(bad_csv)


def test_load_directory_and_separate_paths(tmp_path: Path) -> None:
    d = small_dataset()
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "alpha.md").write_text(d.corpora["alpha"], encoding="utf-8")
    (tmp_path / "corpora" / "beta.txt").write_text(d.corpora["beta"], encoding="utf-8")
    (tmp_path / "corpora" / "notes.pdf").write_bytes(b"%PDF")  # ignored: not text
    write_questions(d.questions, tmp_path / "questions.parquet")
    loaded = load(tmp_path)
    assert loaded.name == tmp_path.name
    assert loaded.fingerprint() == d.fingerprint()
    write_questions(d.questions, tmp_path / "questions.jsonl")
    with pytest.raises(ValueError, match="exactly one questions file"):
        load(tmp_path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table_path = tmp_path / "corpora_table.parquet"
    pq.write_table(pa.table({"corpus_id": list(d.corpora), "text": list(d.corpora.values())}), table_path)
    separate = load(corpora=table_path, questions=tmp_path / "questions.jsonl", name="small")
    assert separate.fingerprint() == d.fingerprint() and separate.name == "small"
    jsonl_corpora = tmp_path / "corpora.jsonl"
    jsonl_corpora.write_text(
        "".join(json.dumps({"corpus_id": k, "text": v}) + "\n" for k, v in d.corpora.items()), encoding="utf-8"
    )
    assert load_corpora(jsonl_corpora) == d.corpora


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a bundled benchmark"):
        load(tmp_path / "missing")
    with pytest.raises(ValueError, match="needs both paths"):
        load(corpora=tmp_path)
    with pytest.raises(ValueError, match="exactly one of corpora/"):
        load(tmp_path)
    with pytest.raises(ValueError, match="no .txt or .md files"):
        load_corpora(tmp_path)
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    (tmp_path / "a.md").write_text("y", encoding="utf-8")
    with pytest.raises(ValueError, match="appears twice"):
        load_corpora(tmp_path)
    (tmp_path / "a.md").unlink()
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_corpora(tmp_path)
    with pytest.raises(ValueError, match="unsupported questions file type"):
        write_questions([], tmp_path / "q.xlsx")


def test_corpora_use_universal_newlines(tmp_path: Path) -> None:
    (tmp_path / "crlf.txt").write_bytes("one\r\ntwo\r\n".encode("utf-8"))
    assert load_corpora(tmp_path) == {"crlf": "one\ntwo\n"}


def test_append_question(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    d = small_dataset()
    for record in d.questions:
        append_question(record, path)
    assert read_questions(path) == d.questions
    unterminated = tmp_path / "unterminated.jsonl"
    unterminated.write_text(json.dumps(d.questions[0]), encoding="utf-8")  # no final newline
    append_question(d.questions[1], unterminated)
    assert read_questions(unterminated) == d.questions
    with pytest.raises(ValueError, match="use a .jsonl path"):
        append_question(d.questions[0], tmp_path / "x.csv")
    with pytest.raises(ValueError, match="lacks"):
        append_question({"question": "q"}, path)


def test_references_arrays(bundled: Dataset) -> None:
    d = small_dataset()
    refs = d.references()
    assert refs.offsets.tolist() == [0, 1, 3]
    assert refs.doc.tolist() == [0, 1, 1]
    assert refs.start.tolist() == [0, 0, 12] and refs.end.tolist() == [20, 5, 17]
    assert d.question_doc().tolist() == [0, 1]
    assert d.questions[0]["question_id"] == "small:0" and d.questions[1]["question_id"] == "q-b"
    assert isinstance(bundled.doc_lengths(), np.ndarray) and bundled.doc_lengths().dtype == np.int64
