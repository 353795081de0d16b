"""The warm path: a rerun of ``chunkeval evaluate`` reads its chunk spans and HNSW graph from the
cache, imports neither torch, transformers nor pandas, and prints the rows a cold run prints.

The caches are checked against the code they stand in for: cached spans equal ``chunker.chunk``,
a loaded HNSW graph searches exactly like a fresh single-threaded build, and every kind of damaged
or foreign cache file is ignored and rewritten, never trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from chunkeval import chunk_cache
from chunkeval.chunkers import FixedTokenChunker, RecursiveChunker, SentenceChunker, get_chunker
from chunkeval.chunkers.fixed import DeferredTiktoken
from chunkeval.cli import SUBCOMMAND_HELP, build_parser, command_of
from chunkeval.retrieval import HNSWIndex, build_index, hnsw_defaults
from chunkeval.tokenizers import get_tokenizer

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 6,
    "",
    "Ünïcödé text — with dashes, emoji 🙂 and CJK 漢字 across token boundaries.\n\nA second paragraph.",
    "   \n\n  ",  # whitespace only: no chunk
    "short",
]

# A launcher like the console script, which also records the heavy modules the run imported.
LAUNCH = """
import json, os, sys
from chunkeval.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
with open(os.environ["MODULES_OUT"], "w") as f:
    json.dump(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "pandas")
                     or m.startswith(("chunkeval.generate", "chunkeval.sweep", "chunkeval.report"))), f)
sys.exit(code)
"""


def launch(args: list[str], tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    modules_out = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=600,
                          env={**env, "MODULES_OUT": str(modules_out)})
    assert done.returncode == 0, done.stderr
    return done, json.loads(modules_out.read_text())


def reference_spans(chunker, texts: list[str]) -> list[tuple[int, int, int]]:
    spans = chunker.chunk(texts)
    return list(zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True))


def as_rows(spans) -> list[tuple[int, int, int]]:
    return list(zip(spans.doc.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True))


def span_files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((root / "chunks").rglob("*.spans"))}


CHUNKERS = [
    FixedTokenChunker(20, 5),
    FixedTokenChunker(7, 0, tokenizer="chars"),
    RecursiveChunker(40, 10, length="chars"),
    RecursiveChunker(12, 4),
]


# ---------------------------------------------------------------------------------- chunk cache


def test_hand_worked_character_windows_are_cached_and_read_back(tmp_path: Path) -> None:
    chunker = FixedTokenChunker(4, 0, tokenizer="chars")
    first = chunk_cache.chunk_cached(chunker, ["abcdefghij"], cache_dir=tmp_path)
    assert as_rows(first) == [(0, 0, 4), (0, 4, 8), (0, 8, 10)]
    (path, data), = span_files(tmp_path).items()
    assert path.parent.parent == tmp_path / "chunks"
    # A valid file for this key is what the next run returns: the cache is read, not recomputed.
    key = chunk_cache.span_file(tmp_path / "chunks", chunk_cache.chunker_key(chunker) or "", "abcdefghij")[1]
    path.write_bytes(chunk_cache.encode_span_file(key, np.array([0, 5]), np.array([5, 10])))
    assert as_rows(chunk_cache.chunk_cached(chunker, ["abcdefghij"], cache_dir=tmp_path)) == [(0, 0, 5), (0, 5, 10)]


@pytest.mark.parametrize("chunker", CHUNKERS, ids=lambda c: c.name)
def test_cached_spans_equal_the_chunker(chunker, tmp_path: Path) -> None:
    expected = reference_spans(chunker, TEXTS)
    assert as_rows(chunk_cache.chunk_cached(chunker, TEXTS, cache_dir=tmp_path)) == expected
    written = span_files(tmp_path)
    assert len(written) == len(TEXTS)  # one file per document, the empty ones included
    assert as_rows(chunk_cache.chunk_cached(chunker, TEXTS, cache_dir=tmp_path)) == expected
    assert span_files(tmp_path) == written  # read back, nothing rewritten


def test_a_changed_text_is_a_new_key_and_gets_its_own_spans(tmp_path: Path) -> None:
    chunker = FixedTokenChunker(5, 0)
    chunk_cache.chunk_cached(chunker, TEXTS, cache_dir=tmp_path)
    before = span_files(tmp_path)
    edited = [TEXTS[0].replace("lazy", "sleepy"), *TEXTS[1:]]
    assert as_rows(chunk_cache.chunk_cached(chunker, edited, cache_dir=tmp_path)) == reference_spans(chunker, edited)
    after = span_files(tmp_path)
    assert len(after) == len(before) + 1 and all(after[p] == data for p, data in before.items())


@pytest.mark.parametrize("changed", [FixedTokenChunker(6, 0), FixedTokenChunker(5, 1),
                                     FixedTokenChunker(5, 0, tokenizer="chars"),
                                     RecursiveChunker(5, 0, separators=[" ", ""])])
def test_a_changed_chunker_config_is_a_new_key(changed, tmp_path: Path) -> None:
    base = FixedTokenChunker(5, 0)
    chunk_cache.chunk_cached(base, TEXTS, cache_dir=tmp_path)
    assert chunk_cache.chunker_key(changed) != chunk_cache.chunker_key(base)
    assert as_rows(chunk_cache.chunk_cached(changed, TEXTS, cache_dir=tmp_path)) == reference_spans(changed, TEXTS)
    assert len(span_files(tmp_path)) == 2 * len(TEXTS)


def _damage(path: Path, how: str, key: str) -> None:
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a span file at all")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[:-3])
    elif how == "flipped-byte":  # the payload no longer matches its checksum
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    elif how == "other-key":  # a well-formed file written for another key
        path.write_bytes(chunk_cache.encode_span_file("0" * 64, np.array([0]), np.array([3])))
    elif how == "past-the-end":  # checksum fine, but spans that cannot belong to this text
        path.write_bytes(chunk_cache.encode_span_file(key, np.array([0]), np.array([10_000])))
    elif how == "unsorted":
        path.write_bytes(chunk_cache.encode_span_file(key, np.array([5, 0]), np.array([9, 5])))


@pytest.mark.parametrize("how", ["garbage", "empty", "truncated", "flipped-byte", "other-key", "past-the-end",
                                 "unsorted"])
def test_a_damaged_span_file_is_ignored_and_rewritten(how: str, tmp_path: Path) -> None:
    chunker = FixedTokenChunker(5, 0)
    texts = [TEXTS[0]]
    expected = reference_spans(chunker, texts)
    chunk_cache.chunk_cached(chunker, texts, cache_dir=tmp_path)
    (path, good), = span_files(tmp_path).items()
    key = chunk_cache.span_file(tmp_path / "chunks", chunk_cache.chunker_key(chunker) or "", texts[0])[1]
    _damage(path, how, key)
    assert as_rows(chunk_cache.chunk_cached(chunker, texts, cache_dir=tmp_path)) == expected
    assert path.read_bytes() == good


def test_an_unreadable_cache_entry_never_fails_the_run(tmp_path: Path) -> None:
    chunker = FixedTokenChunker(5, 0)
    path = chunk_cache.span_file(tmp_path / "chunks", chunk_cache.chunker_key(chunker) or "", TEXTS[0])[0]
    path.mkdir(parents=True)  # a folder where the file should be: neither readable nor replaceable
    assert as_rows(chunk_cache.chunk_cached(chunker, [TEXTS[0]], cache_dir=tmp_path)) == \
        reference_spans(chunker, [TEXTS[0]])


class _Shifted(FixedTokenChunker):
    """A subclass may compute other spans under the same config: never cached."""


@pytest.mark.parametrize("chunker", [SentenceChunker(2), _Shifted(5, 0)], ids=["sentence", "subclass"])
def test_only_the_builtin_pure_chunkers_are_cached(chunker, tmp_path: Path) -> None:
    assert chunk_cache.chunker_key(chunker) is None
    assert as_rows(chunk_cache.chunk_cached(chunker, TEXTS, cache_dir=tmp_path)) == reference_spans(chunker, TEXTS)
    assert not (tmp_path / "chunks").exists()


def test_no_cache_dir_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUNKEVAL_CACHE_DIR", str(tmp_path / "default"))
    chunker = FixedTokenChunker(5, 0)
    assert as_rows(chunk_cache.chunk_cached(chunker, TEXTS, cache_dir=None)) == reference_spans(chunker, TEXTS)
    assert not (tmp_path / "default").exists()
    chunk_cache.chunk_cached(chunker, TEXTS)  # "default": CHUNKEVAL_CACHE_DIR/chunks
    assert len(span_files(tmp_path / "default")) == len(TEXTS)


def test_a_tiktoken_chunker_loads_its_encoding_only_to_tokenize() -> None:
    chunker = get_chunker("fixed:20:5")
    assert isinstance(chunker.tokenizer, DeferredTiktoken)  # type: ignore[attr-defined]
    assert chunker.tokenizer.name == "tiktoken:cl100k_base"  # type: ignore[attr-defined]
    eager = FixedTokenChunker(20, 5, tokenizer=get_tokenizer("cl100k_base"))
    assert chunker == eager and chunker.config() == eager.config()
    assert reference_spans(chunker, TEXTS) == reference_spans(eager, TEXTS)
    copy = pickle.loads(pickle.dumps(chunker))
    assert reference_spans(copy, TEXTS) == reference_spans(eager, TEXTS)
    with pytest.raises(ValueError, match="unknown tokenizer 'cl99k_base'"):
        get_chunker("fixed:20:5:cl99k_base")


# ----------------------------------------------------------------------------------- HNSW cache


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


HNSW = {"M": 8, "ef_construction": 40, "ef_search": 12, "seed": 3}


def _graph_files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_loaded_hnsw_graph_searches_exactly_like_a_fresh_build(tmp_path: Path) -> None:
    vectors, queries = _vectors(400, 16, 0), _vectors(50, 16, 1)
    built_ids, built_scores = HNSWIndex(vectors, **HNSW).search(queries, 10)
    first = HNSWIndex(vectors, cache_folder=tmp_path, **HNSW)
    files = _graph_files(tmp_path)
    assert sorted(p.suffix for p in files) == [".hnsw", ".json"]
    second = HNSWIndex(vectors, cache_folder=tmp_path, **HNSW)
    assert _graph_files(tmp_path) == files  # loaded: a rebuild would have saved again
    for index in (first, second):
        ids, scores = index.search(queries, 10)
        assert np.array_equal(ids, built_ids) and np.array_equal(scores, built_scores)
    assert second._index.element_count == 400


@pytest.mark.parametrize("how", ["truncated-graph", "garbage-graph", "garbage-record", "record-for-another-file"])
def test_a_damaged_hnsw_cache_is_rebuilt_and_rewritten(how: str, tmp_path: Path) -> None:
    vectors, queries = _vectors(300, 8, 2), _vectors(20, 8, 3)
    expected = HNSWIndex(vectors, **HNSW).search(queries, 5)
    HNSWIndex(vectors, cache_folder=tmp_path, **HNSW)
    good = _graph_files(tmp_path)
    graph = next(p for p in good if p.suffix == ".hnsw")
    record = graph.with_suffix(".json")
    if how == "truncated-graph":
        graph.write_bytes(good[graph][: len(good[graph]) // 2])
    elif how == "garbage-graph":
        graph.write_bytes(b"\x00" * 64)
    elif how == "garbage-record":
        record.write_text("{not json")
    else:
        record.write_text(json.dumps({"key": json.loads(good[record])["key"], "sha256": "0" * 64}))
    rebuilt = HNSWIndex(vectors, cache_folder=tmp_path, **HNSW)
    ids, scores = rebuilt.search(queries, 5)
    assert np.array_equal(ids, expected[0]) and np.array_equal(scores, expected[1])
    assert _graph_files(tmp_path) == good


def test_other_vectors_or_parameters_are_other_graphs(tmp_path: Path) -> None:
    vectors = _vectors(200, 8, 4)
    HNSWIndex(vectors, cache_folder=tmp_path, **HNSW)
    HNSWIndex(vectors, cache_folder=tmp_path, **{**HNSW, "seed": 4})
    HNSWIndex(vectors, cache_folder=tmp_path, **{**HNSW, "M": 12})
    HNSWIndex(vectors[:-1], cache_folder=tmp_path, **HNSW)
    HNSWIndex(vectors, cache_folder=tmp_path, **{**HNSW, "ef_search": 50})  # a search setting: same graph
    assert len(list(tmp_path.rglob("*.hnsw"))) == 4


def test_multithreaded_builds_are_not_cached_and_the_cache_is_no_setting(tmp_path: Path) -> None:
    HNSWIndex(_vectors(200, 8, 5), cache_folder=tmp_path, num_threads=2, **HNSW)
    assert list(tmp_path.rglob("*")) == []
    assert sorted(hnsw_defaults()) == ["M", "ef_construction", "ef_search", "num_threads", "seed"]
    with pytest.raises(TypeError, match=r"unknown HNSW parameters \['cache_folder'\]"):
        build_index(_vectors(10, 4, 6), cache_folder=tmp_path)
    groups = np.array(["a", "b"] * 100)
    retriever = build_index(_vectors(200, 8, 7), groups, cache_dir=tmp_path, **HNSW)
    assert retriever.config()["n_indexes"] == 2 and len(list((tmp_path / "hnsw").rglob("*.hnsw"))) == 2


# ----------------------------------------------------------------------------------------- CLI


def test_the_parser_lists_every_subcommand_with_the_help_its_module_gives() -> None:
    def helps(parser: argparse.ArgumentParser) -> dict[str, str | None]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return {choice.dest: choice.help for choice in sub._choices_actions}

    full = helps(build_parser("all"))
    assert {name: text for name, (_, text) in SUBCOMMAND_HELP.items()} == {name: full[name] for name in SUBCOMMAND_HELP}
    assert helps(build_parser(None)) == full == helps(build_parser("evaluate"))
    assert [command_of(a) for a in (["evaluate", "--k", "5"], ["--help"], ["--version"], [], ["-h", "sweep"])] == \
        ["evaluate", None, None, None, None]


@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"], ["metrics", "--help"]])
def test_running_one_command_imports_no_other_subcommand(argv: list[str], tmp_path: Path) -> None:
    done, modules = launch(argv, tmp_path, dict(os.environ))
    assert modules == []
    assert "usage: chunkeval" in done.stdout


def test_a_warm_evaluate_imports_no_torch_transformers_or_pandas_and_prints_the_cold_rows(
        embedding_cache: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CHUNKEVAL_PROGRESS": "0", "CHUNKEVAL_CACHE_DIR": str(tmp_path / "c")}
    args = ["evaluate", "--corpora", "chatlogs", "--max-questions", "12", "--k", "1,3", "--cache-dir",
            str(embedding_cache)]
    cold, _ = launch([*args, "--out", str(tmp_path / "cold")], tmp_path, env)
    # --cache-dir holds every cache: embeddings, chunk spans and HNSW graphs.
    def span_and_graph_files() -> dict[Path, bytes]:
        return {**_graph_files(embedding_cache / "chunks"), **_graph_files(embedding_cache / "hnsw")}

    cached = span_and_graph_files()
    assert sorted({p.suffix for p in cached}) == [".hnsw", ".json", ".spans"]
    assert not _graph_files(tmp_path / "c")
    warm, modules = launch([*args, "--out", str(tmp_path / "warm")], tmp_path, env)
    assert modules == []
    assert span_and_graph_files() == cached  # spans and graph read, nothing rebuilt

    def table_rows(stdout: str) -> list[str]:
        return [line for line in stdout.splitlines() if line.startswith("│")]

    assert len(table_rows(cold.stdout)) == 2 * 2  # chatlogs and all, at k=1 and k=3
    assert table_rows(warm.stdout) == table_rows(cold.stdout)
    cold_table, warm_table = (pq.read_table(tmp_path / run / "results.parquet") for run in ("cold", "warm"))
    assert warm_table.to_pylist() == cold_table.to_pylist()
    assert warm_table.schema.metadata == cold_table.schema.metadata
