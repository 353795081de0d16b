"""The generation loop end to end against the replay server: acceptance, rejection, provenance,
filters, budgets, resume and statistics, with exact expected records worked out from the fixtures."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chunkeval.datasets import read_questions
from chunkeval.generate import (
    Budget,
    FilterSettings,
    GenerationSettings,
    OpenAICompatibleBackend,
    generate_questions,
    rejected_path,
    sample_window,
    summarize_file,
)
from chunkeval.generate.runner import repair_partial_last_line
from test_generate_http import CORPORA, REPLIES, ReplayServer, Reply, scripted

NO_FILTERS = FilterSettings(use_embeddings=False)


def backend(server: ReplayServer, **kwargs: Any) -> OpenAICompatibleBackend:
    options: dict[str, Any] = dict(
        model="replay-model", timeout=2.0, max_retries=2, backoff_base=0.01, backoff_max=0.02
    )
    options.update(kwargs)
    return OpenAICompatibleBackend(server.url, **options)


def run(server: ReplayServer, out: Path, corpora: dict[str, str] | None = None, embedder: Any = None,
        budget: Budget | None = None, **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    return generate_questions(corpora or {"lighthouse": CORPORA["lighthouse"]}, out, backend(server, budget=budget),
                              GenerationSettings(**settings), embedder=embedder, show_progress=False)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def span_of(corpus: str, text: str) -> dict[str, Any]:
    start = corpus.index(text)
    return {"content": text, "start_index": start, "end_index": start + len(text)}


def test_replayed_replies_become_exact_records(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    script = ["good_plain", "think_block", "malformed", "orphan_close", "missing_field", "hallucinated",
              "fenced_chatter", "too_many", "unclosed_think", "reasoning_field"]
    with ReplayServer(scripted(*script)) as server:
        report = run(server, out, per_corpus=5)
    text = CORPORA["lighthouse"]
    assert report.stop_reason == "done" and report.accepted == {"lighthouse": 5}
    assert report.rejected == {"malformed_json": 1, "schema": 1, "excerpt_not_found": 1, "too_many_references": 1,
                               "unfinished_reasoning": 1}
    assert report.requests_sent == 10 and len(server.requests) == 10
    records = read_questions(out)
    expected = [
        (
            0,
            "In what year was the Harwick Point Light automated?",
            [
                "The station was automated in 1989, and the last resident keeper, Margaret Oduya, moved to the village "
                "of Sennet."
            ],
        ),
        (
            1,
            "How tall is the Harwick Point Light tower?",
            [
                "The tower is 27 metres tall and was painted with red and white bands in 1904, after two fishing boats "
                "mistook it for the Corran beacon in fog."
            ],
        ),
        (
            3,
            "What changes were made to the Harwick Point Light's power source in the twentieth century?",
            [
                "The original oil lamp was replaced by an electric lamp in 1931.",
                "A diesel generator was added in 1958 so that the light would keep working during storms that cut the "
                "mainland cable.",
            ],
        ),
        (
            6,
            "What can visitors see in the Harwick Point museum?",
            ["The museum displays Vale's logbooks, a fog bell cast in 1880, and the brass lens mechanism."],
        ),
        (
            9,
            "Who was the first keeper of the Harwick Point Light, and how long did he keep a log?",
            ["Its first keeper, Edmund Vale, kept a daily log for thirty-one years."],
        ),
    ]
    assert [(r["provenance"]["attempt"], r["question"], r["references"]) for r in records] == [
        (attempt, question, [span_of(text, ref) for ref in refs]) for attempt, question, refs in expected]
    for record, (attempt, _, refs) in zip(records, expected, strict=True):
        assert record["question_id"] == f"lighthouse:s0:a{attempt}"
        assert record["corpus_id"] == "lighthouse"
        for ref in record["references"]:
            assert text[ref["start_index"]:ref["end_index"]] == ref["content"]
        prov = record["provenance"]
        assert prov["references"] == [{"match": "exact_window", "score": 100.0}] * len(refs)
        assert prov["window"] == {"start": 0, "end": len(text)}
        assert (prov["backend"], prov["model"], prov["reported_model"]) == (
            "openai-http",
            "replay-model",
            "replay-model",
        )
        assert prov["base_url"] == server.url
        assert prov["prompt_version"] == "v1" and prov["mode"] == "exact" and prov["seed"] == 0
        assert prov["usage"] == {
            k: v for k, v in REPLIES[script[attempt]]["usage"].items() if k != "completion_tokens_details"
        } | (
            {"reasoning_tokens": REPLIES[script[attempt]]["usage"]["completion_tokens_details"]["reasoning_tokens"]}
            if "completion_tokens_details" in REPLIES[script[attempt]]["usage"]
            else {}
        )
        assert prov["latency_s"] >= 0 and prov["tries"] == 1 and prov["created_at"].endswith("+00:00")
    rejected = lines(rejected_path(out))
    assert [(r["attempt"], r["reason"]) for r in rejected] == [
        (2, "malformed_json"),
        (4, "schema"),
        (5, "excerpt_not_found"),
        (7, "too_many_references"),
        (8, "unfinished_reasoning"),
    ]
    assert rejected[2]["detail"] == ("reference 0 'A radar station was installed beside the tower in 1962.' "
                                     "is not in corpus 'lighthouse'")
    assert rejected[0]["reply"] == REPLIES["malformed"]["content"]
    # The prompt shows the recent accepted questions, so the model can avoid them.
    later_prompt = server.requests[3]["body"]["messages"][-1]["content"]
    assert (
        "- In what year was the Harwick Point Light automated?\n- How tall is the Harwick Point Light tower?"
        in later_prompt
    )
    assert "(none yet)" in server.requests[0]["body"]["messages"][-1]["content"]
    assert text in later_prompt

    stats = summarize_file(out)
    assert stats["questions"] == 5 and stats["per_corpus"] == {"lighthouse": 5}
    assert stats["match_kinds"] == {"exact_window": 6}
    assert stats["references_per_question"] == {1: 4, 2: 1} and stats["mean_references"] == 1.2
    assert stats["tokens"] == {
        "prompt_tokens": 400 + 410 + 405 + 402 + 398,
        "completion_tokens": 60 + 180 + 150 + 70 + 95,
        "reasoning_tokens": 120 + 90 + 40,
    }
    assert stats["rejected"] == 5 and stats["rejection_reasons"] == {
        "malformed_json": 1, "schema": 1, "excerpt_not_found": 1, "too_many_references": 1, "unfinished_reasoning": 1}
    assert stats["models"] == {"replay-model": 5}


def test_normalized_fuzzy_and_overlapping_excerpts(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    text = CORPORA["bakery"]
    with ReplayServer(scripted("normalized", "fuzzy", "overlapping")) as server:
        report = run(server, out, corpora={"bakery": text}, per_corpus=3)
    assert report.stop_reason == "done" and not report.rejected
    normalized, fuzzy, overlapping = read_questions(out)
    assert normalized["references"] == [
        span_of(text, 'Its sourdough starter, called "Old Jan", has been fed every day since 1996.')
    ]
    assert normalized["provenance"]["references"] == [{"match": "normalized", "score": 100.0}]
    assert fuzzy["references"] == [
        span_of(text, "Every loaf is proofed for eighteen hours in a cold room kept at 6 °C.")
    ]
    (how,) = fuzzy["provenance"]["references"]
    assert how["match"] == "fuzzy" and 90 <= how["score"] < 100
    merged = span_of(
        text,
        "Flour comes from a mill in Kroměříž that stone-grinds the grain. The owners switched suppliers "
        "in 2015 because the previous mill stopped producing whole-grain rye.",
    )
    assert overlapping["references"] == [merged]
    assert overlapping["provenance"]["references"] == [{"match": "exact_window", "score": 100.0, "merged_from": [0, 1]}]


def test_fuzzy_threshold_is_settable(tmp_path: Path) -> None:
    with ReplayServer(scripted("fuzzy")) as server:
        report = run(server, tmp_path / "q.jsonl", corpora={"bakery": CORPORA["bakery"]}, per_corpus=1,
                     fuzzy_threshold=100.0, max_attempts_per_corpus=1)
    assert report.stop_reason == "attempt_limit" and report.rejected == {"excerpt_not_found": 1}


_PIECE = re.compile(r"<p id=(\d+)>(.*?)</p>", re.DOTALL)


def test_approximate_references_are_exactly_the_cited_pieces(tmp_path: Path) -> None:
    """Every reference is the concatenation of the pieces it cites, read back from the prompt the
    server received; the window starts inside the corpus and the second and third references are
    not shifted by the earlier ones (the bug in Chroma's approximate mode)."""
    text = CORPORA["lighthouse"]
    cited: list[str] = []

    def cite(body: dict[str, Any], index: int) -> Reply:
        pieces = {int(i): piece for i, piece in _PIECE.findall(body["messages"][-1]["content"])}
        n = len(pieces)
        ranges = [(n - 1, n - 1), (1, 2), (0, 0)] if n >= 4 else [(0, n - 1)]
        cited.extend(["".join(pieces[i] for i in range(a, b + 1)) for a, b in sorted(ranges)])
        answer = {
            "question": f"Question number {index}?",
            "references": [{"start_piece": a, "end_piece": b} for a, b in ranges],
        }
        return Reply(fixture={"content": json.dumps(answer), "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    out = tmp_path / "q.jsonl"
    with ReplayServer(cite) as server:
        report = run(server, out, per_corpus=4, approximate=True, window_chars=400)
    assert report.stop_reason == "done"
    records = read_questions(out)
    starts = [r["provenance"]["window"]["start"] for r in records]
    assert any(s > 0 for s in starts)
    got = [text[ref["start_index"]:ref["end_index"]] for r in records for ref in r["references"]]
    assert got == cited
    for record in records:
        window = record["provenance"]["window"]
        assert (window["start"], window["end"]) == sample_window(
            text, 400, 0, "lighthouse", record["provenance"]["attempt"]
        )
        for ref, how in zip(record["references"], record["provenance"]["references"], strict=True):
            assert ref["content"] == text[ref["start_index"]:ref["end_index"]]
            assert window["start"] <= ref["start_index"] < ref["end_index"] <= window["end"]
            assert how["match"] == "pieces"


def test_approximate_fixture_on_the_whole_corpus(tmp_path: Path) -> None:
    text = CORPORA["bakery"]
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted("approximate")) as server:
        run(server, out, corpora={"bakery": text}, per_corpus=1, approximate=True)
    prompt = server.requests[0]["body"]["messages"][-1]["content"]
    pieces = {int(i): piece for i, piece in _PIECE.findall(prompt)}
    assert "".join(pieces[i] for i in sorted(pieces)) == text
    (record,) = read_questions(out)
    assert [r["content"] for r in record["references"]] == [pieces[2], pieces[7] + pieces[8]]
    assert record["provenance"]["references"] == [{"match": "pieces", "score": 100.0, "pieces": [[2, 2]]},
                                                  {"match": "pieces", "score": 100.0, "pieces": [[7, 8]]}]


class WordCountEmbedder:
    """A real (if simple) embedder: L2-normalised word counts over a fixed vocabulary."""

    def __init__(self, texts: list[str]) -> None:
        words = sorted({w for t in texts for w in re.findall(r"\w+", t.lower())})
        self.vocabulary = {w: i for i, w in enumerate(words)}
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for row, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                if w in self.vocabulary:
                    out[row, self.vocabulary[w]] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)


def counter_cosine(a: str, b: str) -> float:
    ca, cb = Counter(re.findall(r"\w+", a.lower())), Counter(re.findall(r"\w+", b.lower()))
    dot = sum(ca[w] * cb[w] for w in ca)
    return dot / math.sqrt(sum(v * v for v in ca.values()) * sum(v * v for v in cb.values()))


def test_embedding_filters_drop_near_duplicates_and_poor_excerpts(tmp_path: Path) -> None:
    text = CORPORA["lighthouse"]
    ref_a = "The tower is 27 metres tall"
    ref_b = "Visitors can climb the 142 steps of the spiral staircase on guided tours"
    q_a = "How tall is the tower is 27 metres tall?"  # word overlap with its excerpt is high by design
    q_dup = "How tall is the tower, 27 metres tall?"
    q_poor = "Which beacon was confused in fog?"
    q_b = "How many steps can visitors climb on the spiral staircase tours?"

    def entry(q: str, ref: str) -> dict[str, Any]:
        return {
            "content": json.dumps({"question": q, "references": [ref]}),
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }

    embedder = WordCountEmbedder([text, q_a, q_dup, q_poor, q_b])
    filters = FilterSettings(use_embeddings=True, duplicate_threshold=0.9, excerpt_threshold=0.2)
    out = tmp_path / "q.jsonl"
    script = [Reply(fixture=entry(q_a, ref_a)), Reply(fixture=entry(q_dup, ref_a)), Reply(fixture=entry(q_poor, ref_a)),
              Reply(fixture=entry(q_b, ref_b))]
    with ReplayServer(scripted(*script)) as server:
        report = run(server, out, per_corpus=2, filters=filters, embedder=embedder)
    assert counter_cosine(q_dup, q_a) >= 0.9 and counter_cosine(q_poor, ref_a) < 0.2  # the premises
    assert report.rejected == {"near_duplicate_question": 1, "poor_excerpt": 1}
    first, second = read_questions(out)
    assert (first["question"], second["question"]) == (q_a, q_b)
    assert first["provenance"]["similarity"] == {"min_excerpt": round(counter_cosine(q_a, ref_a), 4)}
    assert second["provenance"]["similarity"] == {"min_excerpt": round(counter_cosine(q_b, ref_b), 4),
                                                  "max_question": round(counter_cosine(q_b, q_a), 4)}
    rejected = lines(rejected_path(out))
    assert [r["reason"] for r in rejected] == ["near_duplicate_question", "poor_excerpt"]
    assert rejected[0]["detail"] == f"cosine {counter_cosine(q_dup, q_a):.3f} >= 0.9 to an accepted question"
    assert rejected[1]["detail"] == f"an excerpt's cosine to the question is {counter_cosine(q_poor, ref_a):.3f} < 0.2"

    q_c, ref_c = "When is the small museum open?", "a small museum that is open from April to October"
    # Resuming embeds the questions already in the file, so a duplicate of them is still caught.
    with ReplayServer(scripted(Reply(fixture=entry(q_dup, ref_a)), Reply(fixture=entry(q_c, ref_c)))) as server:
        report = run(
            server, out, per_corpus=3, filters=filters, embedder=WordCountEmbedder([text, q_a, q_dup, q_b, q_c])
        )
    assert report.rejected == {"near_duplicate_question": 1} and report.accepted == {"lighthouse": 1}


def test_exact_duplicate_questions_are_rejected_without_embeddings(tmp_path: Path) -> None:
    with ReplayServer(scripted("good_plain", "good_plain", "think_block")) as server:
        report = run(server, tmp_path / "q.jsonl", per_corpus=2)
    assert report.rejected == {"duplicate_question": 1} and report.accepted == {"lighthouse": 2}


def sequence(name: str) -> Any:
    items = REPLIES[f"sequence_{name}"]
    counter = {"n": 0}

    def responder(body: dict[str, Any], index: int) -> Reply:
        entry = items[counter["n"] % len(items)]
        counter["n"] += 1
        return Reply(fixture=entry)

    return responder


def test_request_budget_stops_cleanly_and_a_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(sequence("lighthouse")) as server:
        report = run(server, out, per_corpus=5, budget=Budget(max_requests=2), concurrency=3)
        assert report.stop_reason == "budget" and report.requests_sent == 2 and report.accepted == {"lighthouse": 2}
        assert "request budget spent (2 of 2 requests sent)" in report.message
        report = run(server, out, per_corpus=5, concurrency=3)
        assert report.stop_reason == "done" and report.accepted == {"lighthouse": 3}
        assert len(server.requests) == 5
    records = read_questions(out)
    assert sorted(r["provenance"]["attempt"] for r in records) == [0, 1, 2, 3, 4]
    assert len({r["question"] for r in records}) == 5


def test_token_budget(tmp_path: Path) -> None:
    with ReplayServer(sequence("lighthouse")) as server:
        report = run(server, tmp_path / "q.jsonl", per_corpus=5, budget=Budget(max_tokens=800))
    assert report.stop_reason == "budget" and report.tokens_used == 900 and report.accepted == {"lighthouse": 2}


def test_rerun_skips_attempts_already_made(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted("malformed", "good_plain")) as server:
        run(server, out, per_corpus=1)
    with ReplayServer(scripted("think_block")) as server:
        report = run(server, out, per_corpus=2)
        assert len(server.requests) == 1
    assert report.accepted == {"lighthouse": 1}
    assert [r["provenance"]["attempt"] for r in read_questions(out)] == [1, 2]
    # Same target again: nothing to do, no request.
    with ReplayServer(scripted()) as server:
        report = run(server, out, per_corpus=2)
        assert server.requests == [] and report.stop_reason == "done"
    # Another seed is another sequence of windows: its attempts start at 0.
    with ReplayServer(scripted("fenced_chatter")) as server:
        run(server, out, per_corpus=3, seed=7)
    assert read_questions(out)[-1]["question_id"] == "lighthouse:s7:a0"


def test_a_line_cut_short_is_dropped_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted("good_plain")) as server:
        run(server, out, per_corpus=1)
    whole = out.read_bytes()
    partial = b'{"question_id": "lighthouse:s0:a1", "question": "How tall'
    out.write_bytes(whole + partial)
    with ReplayServer(scripted("think_block")) as server:
        report = run(server, out, per_corpus=2)
    assert report.repaired_bytes == len(partial)
    assert [r["provenance"]["attempt"] for r in lines(out)] == [0, 1]


def test_repair_keeps_a_complete_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}', encoding="utf-8")
    assert repair_partial_last_line(path) == 0
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"b": 2}\n'
    path.write_text('{"a": 1}\n{"b": ', encoding="utf-8")
    assert repair_partial_last_line(path) == 6
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n'
    path.write_text('{"b": ', encoding="utf-8")
    assert repair_partial_last_line(path) == 6 and path.read_bytes() == b""


def test_backend_failures_stop_the_run_and_are_not_recorded(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(lambda body, i: Reply(status=500)) as server:
        report = run(server, out, per_corpus=3, max_consecutive_failures=2)
    assert report.stop_reason == "backend_error" and report.failed_requests == 2
    assert "2 requests in a row failed" in report.message
    assert len(server.requests) == 2 * 3  # two attempts, three tries each
    assert not out.exists() and not rejected_path(out).exists()


def test_a_fatal_error_stops_at_once(tmp_path: Path) -> None:
    with ReplayServer(lambda body, i: Reply(status=404)) as server:
        report = run(server, tmp_path / "q.jsonl", per_corpus=3, concurrency=1)
    assert report.stop_reason == "backend_error" and "HTTP 404" in report.message and len(server.requests) == 1


def test_concurrency_reaches_the_target_per_corpus_without_overshoot(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    items = {"lighthouse": REPLIES["sequence_lighthouse"], "bakery": REPLIES["sequence_bakery"]}
    counters: Counter[str] = Counter()

    def responder(body: dict[str, Any], index: int) -> Reply:
        corpus = "lighthouse" if "Harwick" in body["messages"][-1]["content"] else "bakery"
        entry = items[corpus][counters[corpus] % 10]
        counters[corpus] += 1
        return Reply(fixture=entry, delay=0.02)

    with ReplayServer(responder) as server:
        report = run(server, out, corpora=CORPORA, per_corpus=4, concurrency=4)
        assert len(server.requests) == 8
    assert report.accepted == {"lighthouse": 4, "bakery": 4}
    records = read_questions(out)
    assert Counter(r["corpus_id"] for r in records) == {"lighthouse": 4, "bakery": 4}
    for r in records:
        corpus = CORPORA[r["corpus_id"]]
        assert all(corpus[x["start_index"]:x["end_index"]] == x["content"] for x in r["references"])


def test_a_custom_prompt_template(tmp_path: Path) -> None:
    from chunkeval.generate import load_template

    template_file = tmp_path / "prompt.txt"
    template_file.write_text(
        "Only JSON. At most {max_references} references.\n=== user ===\nAvoid:\n{previous_questions}\n"
        "TEXT:\n{window}\n",
        encoding="utf-8",
    )
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted("good_plain")) as server:
        run(server, out, per_corpus=1, template=load_template(template_file))
    system, user = server.requests[0]["body"]["messages"]
    assert system == {"role": "system", "content": "Only JSON. At most 5 references."}
    assert user == {"role": "user", "content": "Avoid:\n(none yet)\nTEXT:\n" + CORPORA["lighthouse"] + "\n"}
    prov = read_questions(out)[0]["provenance"]
    assert prov["prompt_version"] == "custom"
    assert prov["prompt_sha256"] == hashlib.sha256(template_file.read_bytes()).hexdigest()


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="per_corpus must be an integer of at least 1, got 0"):
        GenerationSettings(per_corpus=0)
    with pytest.raises(ValueError, match="temperature must be within"):
        GenerationSettings(temperature=3)
    with pytest.raises(ValueError, match="fuzzy_threshold must be within"):
        GenerationSettings(fuzzy_threshold=120)


def test_output_must_be_jsonl(tmp_path: Path) -> None:
    with ReplayServer(scripted()) as server:
        with pytest.raises(ValueError, match=r"must be a \.jsonl file.*--convert"):
            run(server, tmp_path / "q.csv", per_corpus=1)


def test_windows_are_deterministic_and_cover_the_corpus() -> None:
    text = "".join(f"Paragraph {i} " + "word " * 30 + "\n\n" for i in range(200))
    windows = [sample_window(text, 1000, 3, "c", a) for a in range(200)]
    assert windows == [sample_window(text, 1000, 3, "c", a) for a in range(200)]
    assert windows != [sample_window(text, 1000, 4, "c", a) for a in range(200)]
    assert all(e - s == 1000 and 0 <= s and e <= len(text) for s, e in windows)
    assert min(s for s, _ in windows) < len(text) * 0.1 and max(e for _, e in windows) > len(text) * 0.9
    for a in range(50):
        s, e = sample_window(text, 1000, 3, "c", a, align_paragraphs=True)
        assert s == 0 or text[s - 2:s] == "\n\n"
        assert e == len(text) or text[e:e + 2] == "\n\n"
        assert e - s <= 1000
    assert sample_window("short", 1000, 0, "c", 5) == (0, 5)


@pytest.mark.slow
def test_default_embedder_filters_a_paraphrase(tmp_path: Path) -> None:
    """With the default embedder (all-MiniLM-L6-v2) and default thresholds: a paraphrase of an
    accepted question is a near duplicate (cosine 0.985), a different question is not (0.80)."""
    pytest.importorskip("torch")
    built = "The Harwick Point Light was built in 1872 on a granite ledge at the mouth of the Tamsin estuary."

    def entry(q: str, ref: str) -> Reply:
        return Reply(fixture={"content": json.dumps({"question": q, "references": [ref]}), "usage": {}})

    script = [
        entry("When was the Harwick Point Light built?", built),
        entry("In what year was the Harwick Point Light built?", built),
        entry(
            "Who was the first keeper of Harwick Point Light?",
            "Its first keeper, Edmund Vale, kept a daily log for thirty-one years.",
        ),
    ]
    out = tmp_path / "q.jsonl"
    with ReplayServer(scripted(*script)) as server:
        report = run(server, out, per_corpus=2, filters=FilterSettings())
    assert report.rejected == {"near_duplicate_question": 1} and report.accepted == {"lighthouse": 2}
    first, second = read_questions(out)
    assert first["provenance"]["similarity"]["min_excerpt"] > 0.5
    assert 0.7 < second["provenance"]["similarity"]["max_question"] < 0.92
