"""The results table: one schema, read from any mix of files, folders and tables, with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chunkeval import results as rs


def _rows(config_id: str, k: int, questions: list[str], recall: list[float]) -> pa.Table:
    n = len(questions)
    metrics = {"recall": np.array(recall), "precision": np.full(n, 0.5), "iou": np.full(n, 0.25),
               "precision_omega": np.full(n, 0.75), "coverage": np.ones(n), "n_evidence_chunks": np.full(n, 2)}
    config = rs.Configuration(chunker="fixed", chunker_spec="fixed:200:0", chunk_size=200, size_unit="tokens",
                              chunk_overlap=0, embedder="/models/all-MiniLM-L6-v2", retrieval="hnsw", scope="global",
                              k=k)
    return rs.results_table(config, config_id, question_ids=questions, corpus_ids=["finance"] * n, metrics=metrics,
                            retrieved_ids=[[3, 1]] * n, retrieved_scores=[[0.5, 0.25]] * n,
                            retrieved_spans=[[("finance", 0, 10), ("finance", 20, 30)]] * n,
                            cost={"n_chunks": 40, "embedded_tokens": None, "index_bytes": 1024})


def test_a_table_has_the_schema_and_a_readable_label() -> None:
    table = _rows("a" * 16, 5, ["q1", "q2"], [1.0, 0.5])
    assert table.schema.equals(rs.SCHEMA)
    row = table.to_pylist()[0]
    assert row["config_label"] == "fixed 200 tokens, overlap 0 · all-MiniLM-L6-v2 · hnsw · k=5"
    assert row["retrieved_spans"] == [{"corpus_id": "finance", "start": 0, "end": 10},
                                      {"corpus_id": "finance", "start": 20, "end": 30}]
    assert row["retrieved_scores"] == [0.5, 0.25] and row["embedded_tokens"] is None and row["index_bytes"] == 1024


@pytest.mark.parametrize(("k", "label"), [(rs.K_AUTO, "k=auto"), (rs.K_ALL, "k=all"), (10, "k=10")])
def test_labels_name_auto_and_all(k: int, label: str) -> None:
    config = rs.Configuration(retrieval="given", k=k, semantics="chroma", units="tokens")
    assert config.label() == f"given · {label} · chroma semantics · in tokens"


def test_read_results_concatenates_files_folders_and_tables_and_merges_provenance(tmp_path: Path) -> None:
    a = rs.write_results(_rows("a" * 16, 1, ["q1", "q2"], [1.0, 0.0]), tmp_path / "a" / "results.parquet",
                         {"a" * 16: {"k": 1}})
    parts = tmp_path / "sweep" / "parts"
    rs.write_results(_rows("b" * 16, 3, ["q1", "q2"], [1.0, 1.0]), parts / "b.parquet", {"b" * 16: {"k": 3}})
    table = rs.read_results(a, tmp_path / "sweep", _rows("c" * 16, 5, ["q1"], [0.5]))
    assert table.column("config_id").to_pylist() == ["a" * 16] * 2 + ["b" * 16] * 2 + ["c" * 16]
    assert table.column("recall").to_pylist() == [1.0, 0.0, 1.0, 1.0, 0.5]
    assert rs.provenance(table) == {"a" * 16: {"k": 1}, "b" * 16: {"k": 3}}
    assert json.loads(table.schema.metadata[b"chunkeval.schema"]) == 2


def test_a_folder_with_results_parquet_reads_only_that_file(tmp_path: Path) -> None:
    rs.write_results(_rows("a" * 16, 1, ["q1"], [1.0]), tmp_path / "results.parquet")
    rs.write_results(_rows("a" * 16, 1, ["q1"], [1.0]), tmp_path / "parts" / "a.parquet")
    assert rs.read_results(tmp_path).num_rows == 1


def test_missing_optional_columns_become_nulls() -> None:
    full = _rows("a" * 16, 5, ["q1"], [1.0])
    slim = full.select(["config_id", "question_id", "corpus_id", "k", *rs.METRIC_COLUMNS])
    table = rs.read_results(slim)
    assert table.schema.equals(rs.SCHEMA, check_metadata=False)
    assert table.column("chunker").to_pylist() == [None] and table.column("n_evidence_chunks").to_pylist() == [None]


def test_the_same_configuration_and_question_twice_is_an_error(tmp_path: Path) -> None:
    one = rs.write_results(_rows("a" * 16, 1, ["q1"], [1.0]), tmp_path / "one.parquet")
    two = rs.write_results(_rows("a" * 16, 1, ["q1"], [1.0]), tmp_path / "two.parquet")
    with pytest.raises(ValueError, match=rf"configuration a{{16}} scores question 'q1' in both {one} and {two}"):
        rs.read_results(one, two)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no input; pass one or more results files"):
        rs.read_results()
    with pytest.raises(ValueError, match="does not exist; pass a results .parquet file"):
        rs.read_results(tmp_path / "nope.parquet")
    with pytest.raises(ValueError, match="holds no results.parquet and no \\*.parquet files"):
        rs.read_results(tmp_path)
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"question_id": ["q"], "corpus_id": ["c"], "recall@1": [1.0]}), wide)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['config_id', 'k', 'recall'.*wide table of an older"):
        rs.read_results(wide)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="junk.parquet is not a readable Parquet file"):
        rs.read_results(tmp_path / "junk.parquet")
    bad = _rows("a" * 16, 1, ["q1"], [1.0]).set_column(15, "recall", pa.array(["high"]))
    with pytest.raises(ValueError, match="column recall has type string, expected double"):
        rs.read_results(bad)


def test_csv_results_drop_the_list_columns(tmp_path: Path) -> None:
    import pyarrow.csv as pcsv

    path = rs.write_results(_rows("a" * 16, 5, ["q1", "q2"], [1.0, 0.5]), tmp_path / "r.csv")
    table = pcsv.read_csv(path)
    assert "retrieved_chunk_ids" not in table.column_names and table.column("recall").to_pylist() == [1.0, 0.5]


def test_jsonable_turns_nan_into_null() -> None:
    value = {"a": np.float64("nan"), "b": [np.float32("inf"), 1.5, np.int64(3)], 5: (float("-inf"),),
             "c": np.array([1.0, np.nan]), "d": Path("/x")}
    assert json.loads(json.dumps(rs.jsonable(value), allow_nan=False)) == {
        "a": None, "b": [None, 1.5, 3], "5": [None], "c": [1.0, None], "d": "/x"}


def test_a_table_without_rank_metrics_reads_with_them_null(tmp_path: Path) -> None:
    # Schema 1 had no rank metrics: such a table (or a user's own) conforms with null columns.
    old = _rows("a" * 16, 1, ["q1", "q2"], [1.0, 0.0]).drop_columns(list(rs.RANK_COLUMNS))
    pq.write_table(old, tmp_path / "old.parquet")
    table = rs.read_results(tmp_path / "old.parquet")
    for name in rs.RANK_COLUMNS:
        assert table.column(name).null_count == 2
    assert table.column("recall").to_pylist() == [1.0, 0.0]
