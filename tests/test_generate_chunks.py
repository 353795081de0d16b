"""``--from-chunks``: windows that are the user's own chunks, read from a span file, with the
references still exact corpus spans. Against the loopback server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chunkeval.datasets import read_questions
from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.chunks import chunk_pair, read_chunk_windows
from chunkeval.generate.coverage import spread_index
from test_generate_cli import cli
from test_generate_http import CORPORA, ReplayServer, Reply

NO_FILTERS = FilterSettings(use_embeddings=False)
LIGHTHOUSE = CORPORA["lighthouse"]


def paragraphs(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for part in text.split("\n\n"):
        spans.append((start, start + len(part)))
        start += len(part) + 2
    return [(a, b) for a, b in spans if b > a]


PARAGRAPHS = paragraphs(LIGHTHOUSE)


def write_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_offsets_and_texts_become_windows(tmp_path: Path) -> None:
    rows = PARAGRAPHS[:3]
    assert list(CORPORA) == ["bakery", "lighthouse"]
    by_offsets = write_parquet(
        tmp_path / "c.parquet",
        {
            "doc": ["lighthouse"] * 3 + ["bakery"],
            "start": [a for a, _ in rows] + [0],
            "end": [b for _, b in rows] + [5],
        },
    )
    assert read_chunk_windows(by_offsets, CORPORA) == {"lighthouse": rows, "bakery": [(0, 5)]}
    texts = tmp_path / "t.jsonl"
    repeated = "abc. abc. abc."
    texts.write_text("\n".join(json.dumps({"doc": "r", "text": t}) for t in ("abc.", "abc.", "abc.")) + "\n")
    assert read_chunk_windows(texts, {"r": repeated}) == {"r": [(0, 4), (5, 9), (10, 14)]}  # in order, not all at 0


def test_integer_docs_are_positions_among_the_corpora(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "c.parquet", {"doc": [0, 1], "start": [0, 0], "end": [3, 4]})
    assert read_chunk_windows(path, CORPORA) == {"bakery": [(0, 3)], "lighthouse": [(0, 4)]}


@pytest.mark.parametrize(
    "columns, message",
    [
        (
            {"doc": ["lighthouse"], "start": [0]},
            r"c.parquet: needs columns doc, start, end \(or doc, text\); found \['doc', 'start'\]",
        ),
        ({"doc": ["nope"], "start": [0], "end": [4]}, r"c.parquet row 1: doc 'nope' is not a corpus id or a position"),
        ({"doc": ["lighthouse"], "start": [5], "end": [5]}, r"c.parquet row 1: chunk \[5, 5\) is not a non-empty span"),
        (
            {"doc": ["lighthouse", "lighthouse"], "start": [0, 0], "end": [4, 10_000]},
            r"row 2: chunk \[0, 10000\) is not",
        ),
        (
            {"doc": ["lighthouse"], "start": [0], "end": [4], "text": ["nope"]},
            r"row 1: text differs from corpus 'lighthouse'\[0:4\]",
        ),
        (
            {"doc": ["lighthouse"], "text": ["not in the corpus"]},
            r"row 1: the chunk's text is not in corpus 'lighthouse' verbatim",
        ),
        ({"doc": ["lighthouse"], "start": [0.5], "end": [4.0]}, r"row 1: start is 0.5, not a whole number"),
    ],
)
def test_bad_chunk_files_are_named(columns: dict[str, list[Any]], message: str, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "c.parquet", columns)
    with pytest.raises(ValueError, match=message):
        read_chunk_windows(path, CORPORA)


def test_chunk_pair_is_a_third_of_the_chunks_away() -> None:
    for n in range(3, 40):
        for first in range(n):
            for pick in range(5):
                other = chunk_pair(n, first, pick)
                distance = min((other - first) % n, (first - other) % n)
                assert distance >= n / 3
    with pytest.raises(ValueError, match="needs at least 3 chunks in the document, got 2"):
        chunk_pair(2, 0, 0)


def first_sentences(request: dict[str, Any], index: int) -> Reply:
    """Quote the first sentence of each shown part (or of the document)."""
    prompt = request["messages"][-1]["content"]
    shown = re.findall(r'<part n="\d">\n(.*?)\n</part>', prompt, re.DOTALL) or \
        [re.search(r"<document>\n(.*)\n</document>", prompt, re.DOTALL).group(1)]  # type: ignore[union-attr]
    evidence = [re.split(r"(?<=\.)\s", part.strip())[0] for part in shown]
    return Reply(
        fixture={"content": json.dumps({"question": f"Question {index}?", "references": evidence}), "usage": {}}
    )


def run(server: ReplayServer, out: Path, **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1)
    return generate_questions(
        {"lighthouse": LIGHTHOUSE}, out, backend, GenerationSettings(**settings), show_progress=False
    )


def test_questions_from_the_users_chunks(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(first_sentences) as server:
        report = run(server, out, per_corpus=4, chunk_windows={"lighthouse": PARAGRAPHS})
    assert report.stop_reason == "done" and not report.rejected
    for record in read_questions(out):
        provenance = record["provenance"]
        (chunk,) = provenance["chunks"]
        assert chunk == spread_index("chunkeval-chunk\x000\x00lighthouse", provenance["attempt"], len(PARAGRAPHS))
        start, end = PARAGRAPHS[chunk]
        assert provenance["window"] == {"start": start, "end": end}
        (ref,) = record["references"]
        assert start <= ref["start_index"] < ref["end_index"] <= end
        assert LIGHTHOUSE[ref["start_index"]:ref["end_index"]] == ref["content"]
    # The prompt shows exactly the chunk.
    start, end = PARAGRAPHS[read_questions(out)[0]["provenance"]["chunks"][0]]
    assert f"<document>\n{LIGHTHOUSE[start:end]}\n</document>" in server.requests[0]["body"]["messages"][-1]["content"]


def test_multi_span_questions_from_two_distant_chunks(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(first_sentences) as server:
        report = run(server, out, per_corpus=3, mix={"multi": 1.0}, chunk_windows={"lighthouse": PARAGRAPHS})
    assert report.stop_reason == "done" and not report.rejected
    n = len(PARAGRAPHS)
    for record in read_questions(out):
        first, second = record["provenance"]["chunks"]
        assert min((second - first) % n, (first - second) % n) >= n / 3
        assert record["provenance"]["windows"] == [
            {"start": PARAGRAPHS[i][0], "end": PARAGRAPHS[i][1]} for i in (first, second)
        ]
        assert len(record["references"]) == 2


def test_a_corpus_without_chunks_is_named(tmp_path: Path) -> None:
    backend = OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m")
    with pytest.raises(ValueError, match=r"chunk_windows: corpus 'bakery' has no chunks"):
        generate_questions(dict(CORPORA), tmp_path / "q.jsonl", backend,
                           GenerationSettings(chunk_windows={"lighthouse": PARAGRAPHS}, filters=NO_FILTERS),
                           show_progress=False)


def test_the_cli_uses_only_the_documents_the_chunks_name(tmp_path: Path) -> None:
    chunks = tmp_path / "chunks.csv"
    chunks.write_text("doc,start,end\n" + "".join(f"lighthouse,{a},{b}\n" for a, b in PARAGRAPHS), encoding="utf-8")
    out = tmp_path / "q.jsonl"
    with ReplayServer(first_sentences) as server:
        assert cli(server, out, "--per-corpus", "2", "--from-chunks", str(chunks)) == 0
    records = read_questions(out)
    assert [r["corpus_id"] for r in records] == ["lighthouse", "lighthouse"]
    assert all(len(r["provenance"]["chunks"]) == 1 for r in records)
