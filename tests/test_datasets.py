"""Datasets: the bundled benchmark, question file round trips, validation messages, loaders."""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkeval
from chunkeval.datasets import (
    DATASET_LAYOUT_HELP,
    Dataset,
    DatasetError,
    append_question,
    load,
    load_corpora,
    read_questions,
    write_questions,
    write_skipped,
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
    questions: list[dict[str, Any]] = [
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
        for (doc, start, end), ref in zip(references[q], question["references"], strict=True):
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


def write_folder(folder: Path, d: Dataset, questions: list[dict[str, Any]]) -> Path:
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


def exactly(message: str) -> str:
    """A ``match=`` pattern for the whole message and nothing else."""
    return "^" + re.escape(message) + "$"


def test_bad_rows_are_reported_with_row_numbers() -> None:
    corpora = {"c": "0123456789"}
    questions = [
        {"question": "fine", "corpus_id": "c", "references": [{"content": "012", "start_index": 0, "end_index": 3}]},
        {"question": "past end", "corpus_id": "c", "references": [{"start_index": 5, "end_index": 11}]},
        {"question": "fine", "corpus_id": "c", "references": [{"start_index": 5, "end_index": 6}]},
        {"question": "mismatch", "corpus_id": "c",
         "references": [{"content": "xyz", "start_index": 3, "end_index": 6}]},
        {"question": "unknown", "corpus_id": "zz", "references": [{"start_index": 0, "end_index": 1}]},
    ]
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 2, field references: reference 1 ends at 11, past the end of corpus 'c' "
        "(10 chars); fix the offsets (and 2 more questions with problems)"
    )) as info:
        Dataset("bad", corpora, questions)
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.path, error.row, error.column, error.more) == (None, 2, "references", 2)
    assert error.reason == "reference 1 ends at 11, past the end of corpus 'c' (10 chars)"
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 1, field references: reference 1 content 'xyz' differs from corpus 'c'[3:6] '345'; "
        "fix the offsets so that corpus[start_index:end_index] == content (Python str offsets)"
    )):
        Dataset("bad", corpora, questions[3:4])
    with pytest.raises(DatasetError, match=re.escape("content '345' differs from corpus 'c'[0:3] '012' "
                                                     "(that text is at [3, 6));")):
        Dataset("bad", corpora, [{"question": "q", "corpus_id": "c",
                                  "references": [{"content": "345", "start_index": 0, "end_index": 3}]}])


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ({"start_index": 4, "end_index": 4}, "reference 1 spans [4, 4), which is empty"),
        ({"start_index": 5, "end_index": 2}, "reference 1 spans [5, 2), which is reversed"),
        ({"start_index": -1, "end_index": 2}, "reference 1 starts at -1, before the corpus start"),
        ({"start_index": "a", "end_index": 2}, "reference 1 start_index is 'a', not a whole number (ASCII digits)"),
        ({"start_index": "²", "end_index": 2}, "reference 1 start_index is '²', not a whole number (ASCII digits)"),
        ({"start_index": 1.5, "end_index": 2}, "reference 1 start_index is 1.5, not a whole number"),
        ({"start_index": True, "end_index": 2}, "reference 1 start_index is True, not a number"),
        ({"end_index": 2}, "reference 1 has no start_index"),
        ({"start_index": 0, "end_index": [2]}, "reference 1 end_index is a list, not a number"),
        ({"start_index": "1" * 5000, "end_index": 2},
         "reference 1 start_index is a 5000-digit number, past any corpus end"),
        ({"start_index": 0, "end_index": 10**4000},
         "reference 1 end_index is an integer of about 4001 digits, past any corpus end"),
        ({"start_index": 0, "end_index": 2**63}, "reference 1 end_index is 9223372036854775808, past any corpus end"),
        ({"start_index": 0, "end_index": 2, "content": 7}, "reference 1 content is a number, not text"),
        ("0-2", "reference 1 is text, not an object with start_index and end_index"),
    ],
)
def test_bad_reference_shapes(reference: object, reason: str) -> None:
    prefix = "^dataset 'bad' question 1, field references: "
    with pytest.raises(DatasetError, match=f"{prefix}{re.escape(reason)}; ") as info:
        Dataset("bad", {"c": "0123456789"}, [{"question": "q", "corpus_id": "c", "references": [reference]}])
    assert info.value.reason == reason


def test_record_level_problems() -> None:
    corpora = {"c": "abc"}
    ref = [{"start_index": 0, "end_index": 1}]
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 1, field references: references is an empty list; "
        "give every question at least one evidence span"
    )):
        Dataset("bad", corpora, [{"question": "q", "corpus_id": "c", "references": []}])
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 2, field question_id: question_id 'x' repeats question 1; give each question its own id"
    )):
        Dataset("bad", corpora, [{"question_id": "x", "question": "q", "corpus_id": "c", "references": ref}] * 2)
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 1, field question: question is a number, not text; give every row its question text"
    )):
        Dataset("bad", corpora, [{"question": 3, "corpus_id": "c", "references": ref}])
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 1: is a list, not a question record (an object with question, corpus_id, references); "
        "write one object per question"
    )):
        Dataset("bad", corpora, [["q", "c"]])  # type: ignore[list-item]
    with pytest.raises(DatasetError, match=r"^dataset 'bad' question 1, field corpus_id: unknown .*"
                                           r"\(and 5 more questions with problems\)$"):
        Dataset("bad", corpora, [{"question": "q", "corpus_id": "zz", "references": ref}] * 6)
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'bad' question 1, field question_id: question_id is an object, not text; "
        "give each question a text id, or none"
    )):
        Dataset("bad", corpora, [{"question_id": {"a": 1}, "question": "q", "corpus_id": "c", "references": ref}])


def test_bad_rows_in_files_name_the_file(tmp_path: Path) -> None:
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "c.txt").write_text("0123456789", encoding="utf-8")
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text(
        '{"question": "ok", "corpus_id": "c", "references": [{"start_index": 0, "end_index": 2}]}\n'
        "\n"
        '{"question": "bad", "corpus_id": "c", "references": [{"start_index": 8, "end_index": 12}]}\n',
        encoding="utf-8",
    )
    with pytest.raises(DatasetError, match=exactly(
        f"{qfile} line 3, field references: reference 1 ends at 12, past the end of corpus 'c' (10 chars); "
        "fix the offsets or drop the row (--on-invalid skip)"
    )):
        load(tmp_path)
    qfile.write_text('{"question": "ok", "corpus_id": "c", "references": []}\n{"question": "cut', encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{qfile} line 2: is not valid JSON (Unterminated string starting at character 14), and the file does not "
        "end with a line break: a write was cut short; delete the truncated line or drop the row (--on-invalid skip)"
    )):
        read_questions(qfile)
    bad_csv = tmp_path / "q.csv"
    bad_csv.write_text('question,references,corpus_id\nq,"[{oops",c\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{bad_csv} row 2, column references: references is not valid JSON (Expecting property name enclosed in "
        "double quotes at character 3); fix the JSON or drop the row (--on-invalid skip)"
    )):
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
    (tmp_path / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
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


# --------------------------------------------------------------------------------------------
# Real data: located one-line errors, corpus_id by path, skipping bad rows


def question_row(corpus_id: str, refs: list[dict[str, Any]], question: str = "q") -> dict[str, Any]:
    return {"question": question, "corpus_id": corpus_id, "references": refs}


def make_folder(root: Path, corpora: dict[str, str], suffix: str = ".md") -> Path:
    (root / "corpora").mkdir(parents=True)
    for corpus_id, text in corpora.items():
        (root / "corpora" / f"{corpus_id}{suffix}").write_text(text, encoding="utf-8")
    return root


def write_csv_rows(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("question", "references", "corpus_id"),
                   prefix: bytes = b"") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(prefix + buffer.getvalue().encode("utf-8"))
    return path


def test_reference_past_its_corpus_end_is_located(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench", {"finance": "x" * 5000})
    good = json.dumps([{"start_index": 0, "end_index": 10}])
    past = json.dumps([{"start_index": 0, "end_index": 10}, {"start_index": 5000 - 20, "end_index": 5120}])
    qfile = write_csv_rows(folder / "questions.csv", [["q", good, "finance"]] * 5 + [["bad", past, "finance"]])
    expected = (f"{qfile} row 7, column references: reference 2 ends at 5120, past the end of corpus 'finance' "
                "(5000 chars); fix the offsets or drop the row (--on-invalid skip)")
    with pytest.raises(DatasetError, match=exactly(expected)) as info:
        load(folder)
    error = info.value
    assert (error.path, error.row, error.column, error.fix, error.more) == (
        str(qfile), 7, "references", "fix the offsets", 0)
    assert error.reason == "reference 2 ends at 5120, past the end of corpus 'finance' (5000 chars)"
    # Three more bad rows: the first is the message, and the count is in it.
    write_csv_rows(qfile, [["q", good, "finance"]] * 5 + [["bad", past, "finance"]] * 4)
    with pytest.raises(DatasetError, match=exactly(
        expected + " (and 3 more rows with problems; --on-invalid skip drops them and lists them)"
    )):
        load(folder)


def test_unknown_corpus_id_lists_the_known_ids(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench", {f"corpus{i}": "abcdef" for i in range(8)} | {"finance": "abcdef"})
    qfile = folder / "questions.jsonl"
    write_questions([question_row("annual_report", [{"start_index": 0, "end_index": 2}])], qfile)
    with pytest.raises(DatasetError, match=exactly(
        f"{qfile} line 1, field corpus_id: unknown corpus_id 'annual_report': a corpus_id must name a corpus file by "
        "its stem, file name or a path ending in it (known: 'corpus0', 'corpus1', 'corpus2', 'corpus3', 'corpus4', "
        "'corpus5', … (9 in all)); correct the corpus_id or drop the row (--on-invalid skip)"
    )):
        load(folder)
    write_questions([question_row("data/finanse.md", [{"start_index": 0, "end_index": 2}])], qfile)
    with pytest.raises(DatasetError, match=re.escape(
        "unknown corpus_id 'data/finanse.md': a corpus_id must name a corpus file by its stem, file name or a path "
        "ending in it (did you mean 'finance'? known: 'corpus0',"
    )):
        load(folder)


@pytest.mark.parametrize(
    "corpus_id",
    ["finance", "finance.md", "finance.MD", "finance.txt", "corpora/finance.md", "./finance.md",
     "chunking_evaluation/finance/finance.txt", "/home/user/data/finance.md", "C:\\data\\finance.md"],
)
def test_corpus_id_matches_by_stem_file_name_and_path(corpus_id: str) -> None:
    corpora = {"finance": "0123456789", "pubmed": "abcdefghij"}
    d = Dataset("d", corpora, [question_row(corpus_id, [{"start_index": 1, "end_index": 3}])])
    assert d.questions[0]["corpus_id"] == "finance"  # stored as the corpus id it names
    assert d.question_doc().tolist() == [0]
    assert d.fingerprint() == Dataset("d", corpora, [question_row("finance", [{"start_index": 1, "end_index": 3}])]
                                      ).fingerprint()


def test_corpus_id_paths_on_both_sides_and_ambiguity() -> None:
    corpora = {"a/pubmed.txt": "0123", "b/pubmed.txt": "4567"}
    ref = [{"start_index": 0, "end_index": 1}]
    for value, expected in [("a/pubmed.txt", "a/pubmed.txt"), ("data/b/pubmed.md", "b/pubmed.txt"),
                            ("b\\pubmed", "b/pubmed.txt")]:
        assert Dataset("d", corpora, [question_row(value, ref)]).questions[0]["corpus_id"] == expected
    with pytest.raises(DatasetError, match=exactly(
        "dataset 'd' question 1, field corpus_id: corpus_id 'pubmed' matches 2 corpora: 'a/pubmed.txt' and "
        "'b/pubmed.txt'; write more of the path so that it names one"
    )):
        Dataset("d", corpora, [question_row("pubmed", ref)])
    # Where one corpus has exactly the name asked for, it is the one meant.
    assert Dataset("d", {"pubmed": "0123", "x/pubmed": "4567"}, [question_row("pubmed.txt", ref)]
                   ).questions[0]["corpus_id"] == "pubmed"
    # A suffix of a component is not a path ending: "med" names no corpus.
    with pytest.raises(DatasetError, match="unknown corpus_id 'med'"):
        Dataset("d", corpora, [question_row("med", ref)])


def test_reference_toolkit_paths_load_as_they_are(tmp_path: Path, bundled: Dataset) -> None:
    # The toolkit opens each corpus_id as a path; a folder built from its files loads unchanged.
    folder = tmp_path / "toolkit"
    (folder / "corpora").mkdir(parents=True)
    for corpus in (BUNDLED / "corpora").iterdir():
        (folder / "corpora" / corpus.name).write_bytes(corpus.read_bytes())
    prefix = "chunking_evaluation/evaluation_framework/general_evaluation_data/corpora/"
    rows = [{k: v for k, v in q.items() if k != "question_id"} | {"corpus_id": prefix + q["corpus_id"] + ".md"}
            for q in bundled.questions]
    write_questions(rows, folder / "questions_df.csv")
    loaded = load(folder, name="chroma-general")
    assert loaded.fingerprint() == bundled.fingerprint()
    assert loaded.questions == bundled.questions


def test_csv_with_a_byte_order_mark_loads(tmp_path: Path, bundled: Dataset) -> None:
    path = tmp_path / "questions_df.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (BUNDLED / "questions_df.csv").read_bytes())  # as Excel saves it
    loaded = load(corpora=BUNDLED / "corpora", questions=path, name="chroma-general")
    assert loaded.fingerprint() == bundled.fingerprint()
    jsonl = write_questions(bundled.questions, tmp_path / "q.jsonl")
    jsonl.write_bytes(b"\xef\xbb\xbf" + jsonl.read_bytes())
    assert read_questions(jsonl) == bundled.questions


def test_csv_rows_count_as_a_spreadsheet_shows_them(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench", {"c": "0123456789"})
    ok = '"[{""start_index"": 0, ""end_index"": 2}]"'
    text = ("question,references,corpus_id\n"
            f'"a question\nover two lines",{ok},c\n'  # row 2 (one record, two lines)
            "\n"  # row 3: blank
            f"q,{ok},zz\n")  # row 4
    (folder / "questions.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=r"questions\.csv row 4, column corpus_id: unknown corpus_id 'zz'") as info:
        load(folder)
    assert info.value.row == 4
    # A trailing empty field on every line is harmless; a row with a field too many is not.
    (folder / "questions.csv").write_text(f"question,references,corpus_id\nq,{ok},c,\n", encoding="utf-8")
    assert len(load(folder)) == 1
    (folder / "questions.csv").write_text(f"question,references,corpus_id\nq,{ok},c,d\nq,{ok}\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{folder / 'questions.csv'} row 2: has 4 fields where the header has 3; quote every field that holds a comma "
        '("...") or drop the row (--on-invalid skip) (and 1 more row with problems; --on-invalid skip drops them and '
        "lists them)"
    )):
        load(folder)


def test_csv_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("Question,references,corpus_id\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{path} row 1: missing column(s) ['question']; the header holds ['Question', 'references', 'corpus_id']; "
        "name the columns question, references, corpus_id in the header row"
    )):
        read_questions(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{path} row 1: has no header row; start the file with the header question,references,corpus_id"
    )):
        read_questions(path)
    path.write_text("question,references,corpus_id,question\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape("row 1: column(s) ['question'] appear more than once")):
        read_questions(path)


def test_files_that_are_not_utf8_name_the_row(tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    good = json.dumps(question_row("c", [{"start_index": 0, "end_index": 1}])).encode()
    jsonl.write_bytes(good + b"\n" + b'{"question": "caf\xe9", "corpus_id": "c", "references": []}\n')
    with pytest.raises(DatasetError, match=exactly(
        f"{jsonl} line 2: is not UTF-8 (byte 0xe9 at character 18); save the file as UTF-8 "
        "(for example: iconv -f latin1 -t utf-8) or drop the row (--on-invalid skip)"
    )):
        read_questions(jsonl)
    table = tmp_path / "q.csv"
    table.write_bytes(b'question,references,corpus_id\nq,"[]",c\ncaf\xe9,"[]",c\n')
    with pytest.raises(DatasetError, match=exactly(
        f"{table} row 3, column question: is not UTF-8 (byte 0xe9 at character 4); save the file as UTF-8 "
        "(for example: iconv -f latin1 -t utf-8) or drop the row (--on-invalid skip)"
    )):
        read_questions(table)
    table.write_bytes(b"questi\xf3n,references,corpus_id\n")
    header_error = f"{table} row 1: the header is not UTF-8 (byte 0xf3 at character 7)"
    with pytest.raises(DatasetError, match=re.escape(header_error)):
        read_questions(table)
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = b"caf\xe9"  # Arrow does not validate UTF-8 when it reads a file; the loader must.
    offsets = pa.py_buffer(np.array([0, 1, 1 + len(data)], dtype=np.int32).tobytes())
    question = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"q" + data)])
    parquet = tmp_path / "q.parquet"
    pq.write_table(pa.table({"question": question, "corpus_id": ["c", "c"], "references": ["[]", "[]"]}), parquet)
    with pytest.raises(DatasetError, match=exactly(
        f"{parquet} row 2, column question: is not UTF-8 (bytes that are not UTF-8); save the file as UTF-8 "
        "(for example: iconv -f latin1 -t utf-8) or drop the row (--on-invalid skip)"
    )):
        read_questions(parquet)


def test_deeply_nested_json_is_a_located_error(tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"question": "q"}\n' + "[" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{jsonl} line 2: is nested too deeply to read; flatten it or drop the row (--on-invalid skip)"
    )):
        read_questions(jsonl)
    deep: list[Any] = []
    for _ in range(70):  # parses, but more than chunkeval keeps (it could not be written back)
        deep = [deep]
    folder = make_folder(tmp_path / "bench", {"c": "0123"})
    record = question_row("c", [{"start_index": 0, "end_index": 1}]) | {"provenance": {"trace": deep}}
    write_questions([record], folder / "questions.jsonl")
    with pytest.raises(DatasetError, match=exactly(
        f"{folder / 'questions.jsonl'} line 1, field provenance: provenance is nested more than 64 levels deep; "
        "flatten it or drop the row (--on-invalid skip)"
    )):
        load(folder)
    table = write_csv_rows(tmp_path / "q.csv", [["q", "[" * 100_000, "c"]])
    with pytest.raises(DatasetError, match=exactly(
        f"{table} row 2, column references: references is nested too deeply to read; flatten it or drop the row "
        "(--on-invalid skip)"
    )):
        read_questions(table)


@pytest.mark.parametrize(
    ("start_index", "reason"),
    [
        ('"²"', "field references: reference 1 start_index is '²', not a whole number (ASCII digits); "
                "write offsets as whole numbers (Python str indices)"),
        ("1" * 5000, "is not readable JSON (a number with more than 4300 digits); fix the JSON"),
        ('"' + "1" * 5000 + '"', "field references: reference 1 start_index is a 5000-digit number, past any "
                                 "corpus end; fix the offsets"),
        ("1" * 4000, "field references: reference 1 start_index is an integer of about 4000 digits, past any corpus "
                     "end; fix the offsets"),
        ("1e400", "field references: reference 1 start_index is inf, not a whole number; write offsets as whole "
                  "numbers (Python str indices)"),
    ],
)
def test_offsets_that_are_not_offsets(tmp_path: Path, start_index: str, reason: str) -> None:
    folder = make_folder(tmp_path / "bench", {"c": "0123456789"})
    qfile = folder / "questions.jsonl"
    qfile.write_text(
        '{"question": "q", "corpus_id": "c", "references": [{"start_index": ' + start_index + ', "end_index": 3}]}\n',
        encoding="utf-8",
    )
    with pytest.raises(DatasetError, match=exactly(f"{qfile} line 1{',' if reason.startswith('field') else ':'} "
                                                   f"{reason} or drop the row (--on-invalid skip)")):
        load(folder)


def test_offsets_as_text_round_trip_from_the_toolkit_csv(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench", {"c": "0123456789"})
    refs = '[{"start_index": " 2 ", "end_index": "4", "content": "23"}, {"start_index": 5.0, "end_index": 7}]'
    write_csv_rows(folder / "questions.csv", [["q", refs, "c"]])
    assert load(folder).questions[0]["references"] == [
        {"start_index": 2, "end_index": 4, "content": "23"}, {"start_index": 5, "end_index": 7}]


def parquet_questions(path: Path, **columns: object) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base: dict[str, object] = {"question": ["q"], "corpus_id": ["c"],
                               "references": ['[{"start_index": 0, "end_index": 2}]']}
    pq.write_table(pa.table(base | columns), path)
    return path


def test_parquet_references_of_the_wrong_type(tmp_path: Path) -> None:
    import pyarrow as pa

    path = tmp_path / "q.parquet"
    expected_type = ("store references as list<struct<content: string, start_index: int64, end_index: int64>> "
                     "(or the CSV's JSON text)")
    for values, arrow_type in [([5], "int64"), ([["0-2"]], "list<element: string>"),
                               ([{"start_index": 0, "end_index": 2}], "struct<start_index: int64, end_index: int64>")]:
        parquet_questions(path, references=pa.array(values))
        with pytest.raises(DatasetError, match=exactly(
            f"{path}, column references: the column has type {arrow_type}; {expected_type}"
        )) as info:
            read_questions(path)
        assert (info.value.column, info.value.row, info.value.skippable) == ("references", None, False)
    # A struct whose offsets are text still reads; the row with a bad one is located.
    parquet_questions(path, question=["a", "b"], corpus_id=["c", "c"], references=pa.array(
        [[{"start_index": "0", "end_index": "2"}], [{"start_index": "x", "end_index": "2"}]]))
    with pytest.raises(DatasetError, match=exactly(
        f"{path} row 2, column references: reference 1 start_index is 'x', not a whole number (ASCII digits); "
        "write offsets as whole numbers (Python str indices) or drop the row (--on-invalid skip)"
    )):
        load(corpora=make_folder(tmp_path / "b", {"c": "0123"}) / "corpora", questions=path)


def test_parquet_references_as_json_text_load_like_the_csv(tmp_path: Path, bundled: Dataset) -> None:
    # What pandas.read_csv(...).to_parquet() makes of the toolkit's CSV: references stay JSON text.
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = read_questions(BUNDLED / "questions_df.csv")
    table = pa.table({"question": [r["question"] for r in rows],
                      "references": [json.dumps(r["references"]) for r in rows],
                      "corpus_id": [r["corpus_id"] for r in rows]})
    pq.write_table(table, tmp_path / "questions.parquet")
    loaded = load(corpora=BUNDLED / "corpora", questions=tmp_path / "questions.parquet", name="chroma-general")
    assert loaded.fingerprint() == bundled.fingerprint()


def test_parquet_extra_that_is_not_an_object(tmp_path: Path) -> None:
    import pyarrow as pa

    path = tmp_path / "q.parquet"
    for extra, shown in [("[1, 2]", "a JSON array"), ("3", "a JSON number"), ('"text"', "a JSON string")]:
        parquet_questions(path, extra=[extra])
        with pytest.raises(DatasetError, match=exactly(
            f"{path} row 1, column extra: extra is {shown}, not a JSON object; make extra a JSON object of further "
            'fields ({"source": "web"}) or drop the row (--on-invalid skip)'
        )):
            read_questions(path)
    parquet_questions(path, extra=['{"question": "other"}'])
    with pytest.raises(DatasetError, match=re.escape("column extra: extra holds the core field(s) ['question']")):
        read_questions(path)
    parquet_questions(path, extra=pa.array([3]))
    with pytest.raises(DatasetError, match=exactly(
        f"{path}, column extra: the column has type int64; store extra as a string column of JSON objects"
    )):
        read_questions(path)
    parquet_questions(path, extra=pa.array([{"source": "web", "score": None}]))  # a struct column is an object
    assert read_questions(path)[0]["source"] == "web" and "score" not in read_questions(path)[0]


def test_files_that_are_not_what_they_say(tmp_path: Path) -> None:
    path = tmp_path / "q.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: is not a readable Parquet file (")) as info:
        read_questions(path)
    assert str(info.value).endswith("; write it again with pyarrow or pandas (DataFrame.to_parquet), or use CSV/JSONL")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["q"], "corpus_id": ["c"], "references": ["[]"], "zzzzzzzz": [1]}), path,
                   store_schema=False)
    path.write_bytes(path.read_bytes().replace(b"zzzzzzzz", b"zzzz\xd1zzz"))  # a column name that is not UTF-8
    with pytest.raises(DatasetError, match=exactly(
        f"{path}: is not a readable Parquet file (its schema holds column names that are not UTF-8); write it again "
        "with pyarrow or pandas (DataFrame.to_parquet)"
    )):
        read_questions(path)
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('[1, 2]\n"text"\nnull\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{jsonl} line 1: is a JSON array, not an object; write one JSON object per question per line or drop the "
        "row (--on-invalid skip) (and 2 more rows with problems; --on-invalid skip drops them and lists them)"
    )):
        read_questions(jsonl)
    with pytest.raises(DatasetError, match=exactly(
        f"questions file {str(tmp_path / 'none.csv')!r} does not exist; "
        "pass a .csv, .jsonl or .parquet file of questions"
    )):
        read_questions(tmp_path / "none.csv")
    (tmp_path / "folder.csv").mkdir()
    not_a_file = f"questions file {str(tmp_path / 'folder.csv')!r} is not a file;"
    with pytest.raises(DatasetError, match=re.escape(not_a_file)):
        read_questions(tmp_path / "folder.csv")
    # Python's json reads NaN, which JSON has not and which could not be written back.
    jsonl.write_text('{"question": "q", "corpus_id": "c", "references": [], "score": NaN}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=exactly(
        f"{jsonl} line 1: is not valid JSON (NaN is not a JSON value); write a number or null or drop the row "
        "(--on-invalid skip)"
    )):
        read_questions(jsonl)


def test_corpora_tables_name_the_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "corpora.parquet"
    pq.write_table(pa.table({"corpus_id": ["a", "b", "a"], "text": ["x", "y", "z"]}), path)
    with pytest.raises(DatasetError, match=exactly(
        f"{path} row 3, column corpus_id: corpus_id 'a' repeats row 1; ids must be unique; rename or merge the rows"
    )):
        load_corpora(path)
    pq.write_table(pa.table({"corpus_id": ["a"], "text": [7]}), path)
    with pytest.raises(DatasetError, match=exactly(
        f"{path} row 1, column text: text is a number, not text; give every corpus its text"
    )):
        load_corpora(path)
    pq.write_table(pa.table({"corpus_id": ["a"]}), path)
    with pytest.raises(DatasetError, match=exactly(
        f"{path}: missing column(s) ['text']; a corpora table needs the columns corpus_id and text"
    )):
        load_corpora(path)
    jsonl = tmp_path / "corpora.jsonl"
    jsonl.write_text('{"corpus_id": "a", "text": "x"}\n{"corpus_id": "b", "text": "y"\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{jsonl} line 2: is not valid JSON (Expecting ',' delimiter")):
        load_corpora(jsonl)


def test_skip_drops_bad_rows_and_lists_them(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench", {"c": "0123456789", "d": "abcdef"})
    lines = [
        json.dumps(question_row("c", [{"start_index": 0, "end_index": 2}], "first")),
        '{"question": "broken", ',
        json.dumps(question_row("c", [{"start_index": 5, "end_index": 11}], "past the end")),
        json.dumps(question_row("d.md", [{"content": "bc", "start_index": 1, "end_index": 3}], "fourth")),
        json.dumps(question_row("zz", [{"start_index": 0, "end_index": 1}], "unknown")),
    ]
    qfile = folder / "questions.jsonl"
    qfile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2: is not valid JSON .*\(and 2 more rows with problems; "
                                           r"--on-invalid skip drops them and lists them\)$"):
        load(folder)
    d = load(folder, on_invalid="skip")
    # Generated ids count every row, so skipping one does not rename the questions after it.
    assert [(q["question_id"], q["question"], q["corpus_id"]) for q in d.questions] == [
        ("bench:0", "first", "c"), ("bench:3", "fourth", "d")]
    assert d.corpus_ids == ["c", "d"]
    assert d.skipped == [
        {"path": str(qfile), "row": 2, "column": None,
         "reason": "is not valid JSON (Expecting property name enclosed in double quotes at character 24)"},
        {"path": str(qfile), "row": 3, "column": "references",
         "reason": "reference 1 ends at 11, past the end of corpus 'c' (10 chars)"},
        {"path": str(qfile), "row": 5, "column": "corpus_id",
         "reason": "unknown corpus_id 'zz': a corpus_id must name a corpus file by its stem, file name or a path "
                   "ending in it (known: 'c', 'd')"},
    ]
    assert repr(d) == "Dataset('bench', corpora=2, questions=2, references=2, skipped=3)"
    written = write_skipped(d, tmp_path / "out" / "skipped.jsonl")
    assert [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()] == d.skipped
    assert d.subset(max_questions=1).skipped == d.skipped
    # The skipped rows do not count in the data: the same good rows written alone load the same.
    clean = make_folder(tmp_path / "clean", {"c": "0123456789", "d": "abcdef"})
    write_questions(d.questions, clean / "questions.jsonl")
    assert load(clean).fingerprint() == d.fingerprint() and load(clean).skipped == []
    assert write_skipped(load(clean), tmp_path / "none.jsonl").read_bytes() == b""


def test_skip_with_nothing_left_and_bad_arguments(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "bench", {"c": "0123"})
    qfile = write_csv_rows(folder / "questions.csv", [["q", "[]", "c"], ["q", "[]", "c"]])
    with pytest.raises(DatasetError, match=exactly(
        f"{qfile}: all 2 question rows have problems, so skipping leaves none; the first, row 2, column references: "
        "references is an empty list; give every question at least one evidence span"
    )):
        load(folder, on_invalid="skip")
    write_csv_rows(qfile, [])
    with pytest.raises(DatasetError, match=exactly(
        f"{qfile}: holds no questions; write one question per row (see docs/datasets.md)"
    )):
        load(folder)
    with pytest.raises(ValueError, match=exactly("on_invalid must be 'error' or 'skip', got 'ignore'")):
        load(folder, on_invalid="ignore")  # type: ignore[arg-type]
    # Problems with a whole file are not rows to skip.
    (folder / "questions.csv").write_text("question,corpus_id\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="missing column"):
        load(folder, on_invalid="skip")


def test_subset_keeps_only_the_corpora_its_questions_reference(bundled: Dataset) -> None:
    few = bundled.subset(max_questions=3, seed=1)
    referenced = {q["corpus_id"] for q in few.questions}
    assert few.corpus_ids == [c for c in bundled.corpus_ids if c in referenced]
    assert len(few.corpus_ids) < len(bundled.corpus_ids)
    # Doc ids index the smaller dataset's corpora, and its fingerprint is that of the same data built directly.
    refs = few.references()
    for q, question in enumerate(few.questions):
        for (doc, start, end), ref in zip(refs[q], question["references"], strict=True):
            assert few.corpus_ids[doc] == question["corpus_id"]
            assert few.texts[doc][start:end] == ref["content"]
    direct = Dataset("other", {c: bundled.corpora[c] for c in few.corpus_ids}, few.questions)
    assert direct.fingerprint() == few.fingerprint()
    assert few.question_doc().tolist() == [few.corpus_ids.index(q["corpus_id"]) for q in few.questions]
    assert bundled.subset(max_questions=0).corpus_ids == []
    # Corpora are named as a question's corpus_id may name them.
    assert bundled.subset(["pubmed.md", "data/chatlogs.txt"]).corpus_ids == ["chatlogs", "pubmed"]
    assert bundled.subset().fingerprint() == bundled.fingerprint()
    with pytest.raises(ValueError, match=re.escape("subset: unknown corpus id(s) ['atlantis']; known: ['chatlogs',")):
        bundled.subset(["atlantis"])
    both = Dataset("d", {"a/x": "0123", "b/x": "0123"},
                   [question_row("a/x", [{"start_index": 0, "end_index": 1}])])
    with pytest.raises(ValueError, match=re.escape("subset: corpus 'x' matches 2 corpora ['a/x', 'b/x']; name one")):
        both.subset(["x"])
    # A named corpus without questions has nothing to embed for: it is left out.
    assert both.subset(["a/x", "b/x"]).corpus_ids == ["a/x"]


def test_dataset_error_is_one_line_and_pickles() -> None:
    error = DatasetError("content 'a\nb' differs", path="dir\nname/q.csv", row=3, column="references",
                         fix="fix the offsets", skippable=True, more=2)
    assert "\n" not in str(error)
    assert str(error) == ("dir\\nname/q.csv row 3, column references: content 'a\\nb' differs; fix the offsets or "
                          "drop the row (--on-invalid skip) (and 2 more rows with problems; --on-invalid skip drops "
                          "them and lists them)")
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, DatasetError) and str(again) == str(error)
    assert (again.path, again.row, again.column, again.reason, again.more) == (
        error.path, 3, "references", error.reason, 2)
    assert error.location == "dir\nname/q.csv row 3, column references"
    assert error.as_skipped() == {"path": "dir\nname/q.csv", "row": 3, "column": "references",
                                  "reason": "content 'a\nb' differs"}


def test_layout_help_is_short_and_names_every_file() -> None:
    lines = DATASET_LAYOUT_HELP.splitlines()
    assert len(lines) <= 25 and max(len(line) for line in lines) <= 100
    for name in ("corpora/*.txt", "corpora/*.md", "corpora.parquet", "corpora.jsonl", "questions.jsonl",
                 "questions.parquet", "questions.csv", "questions_df.csv", "corpus_id", "references",
                 "start_index", "end_index", "question_id", "extra", "row 2", "--on-invalid skip",
                 "docs/datasets.md"):
        assert name in DATASET_LAYOUT_HELP, name


# Byte-level damage to each format: loading either succeeds or raises one located DatasetError.

_DAMAGE = [b'"', b",", b"\n", b"{", b"}", b"[", b"]", b"\xff", b"\xef\xbb\xbf", b"\\", b"0", b"-1", b"9" * 30,
           b"\xc2\xb2", b"null", b"true", b"1e400", b"NaN", b"\r", b"\x00", b'"extra"', b"start_index"]


@pytest.fixture(scope="module")
def damage_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bytes]]:
    folders = {}
    d = small_dataset()
    for suffix in (".csv", ".jsonl", ".parquet"):
        folder = make_folder(tmp_path_factory.mktemp("damage") / suffix[1:], d.corpora, suffix=".txt")
        qfile = write_questions(d.questions, folder / f"questions{suffix}")
        folders[suffix] = (folder, qfile.read_bytes())
    return folders


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
       edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2), st.sampled_from(_DAMAGE)), min_size=1, max_size=4),
       on_invalid=st.sampled_from(["error", "skip"]))
def test_damaged_files_fail_only_with_located_errors(
    damage_folders: dict[str, tuple[Path, bytes]], suffix: str, edits: list[tuple[float, int, bytes]], on_invalid: str
) -> None:
    folder, original = damage_folders[suffix]
    data = bytearray(original)
    for where, action, token in edits:
        at = int(where * len(data))
        if action == 0:
            data[at:at] = token  # insert
        elif action == 1:
            del data[at:at + len(token)]  # delete
        else:
            data = data[:at]  # truncate
    qfile = folder / f"questions{suffix}"
    qfile.write_bytes(bytes(data))
    try:
        loaded = load(folder, on_invalid=on_invalid)  # type: ignore[arg-type]
    except DatasetError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(str(qfile))
        assert error.reason and (error.row is None or error.row >= 1)
        return
    # What loads is usable end to end.
    loaded.fingerprint()
    loaded.references().spans.check_within(loaded.doc_lengths(), "references")
    assert all(isinstance(q["question"], str) for q in loaded.questions)
