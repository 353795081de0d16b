"""Cross-document questions end to end: the record format (a reference with its own corpus_id),
its validation, the engine's doc ids, corpus-scoped search over the union of a question's corpora,
generation of the ``cross`` kind against the loopback server, evaluation and the report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chunkeval import datasets
from chunkeval.datasets import Dataset, DatasetError, read_questions, write_questions
from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions
from chunkeval.generate.coverage import corpus_coverage
from chunkeval.generate.kinds import cross_partner
from chunkeval.generate.runner import plan_requests, rejected_path, sample_window, summarize_file
from chunkeval.pipeline import search_stage
from test_generate_http import CORPORA, ReplayServer, Reply

NO_FILTERS = FilterSettings(use_embeddings=False)
TEXTS = {"alpha": "Alpha one. Alpha two is here.", "beta": "Beta first line. Beta second.", "gamma": "Gamma."}


def cross_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "question_id": "q1", "question": "How do alpha and beta compare?", "corpus_id": "alpha",
        "references": [{"content": "Alpha two", "start_index": 11, "end_index": 20},
                       {"content": "Beta second.", "start_index": 17, "end_index": 29, "corpus_id": "beta.md"}],
    }
    record.update(changes)
    return record


# ------------------------------------------------------------------------------------------ format


def test_a_reference_names_its_own_corpus() -> None:
    single = {"question": "What is gamma?", "corpus_id": "gamma", "references": [{"start_index": 0, "end_index": 6}]}
    data = Dataset("x", TEXTS, [cross_record(), single])
    stored = data.questions[0]
    # Resolved (beta.md -> beta) and kept only where it differs from the question's corpus.
    assert stored["corpus_id"] == "alpha"
    assert stored["references"] == [{"content": "Alpha two", "start_index": 11, "end_index": 20},
                                    {"content": "Beta second.", "start_index": 17, "end_index": 29,
                                     "corpus_id": "beta"}]
    refs = data.references()
    assert refs.offsets.tolist() == [0, 2, 3]
    assert refs.doc.tolist() == [0, 1, 2] and refs.start.tolist() == [11, 17, 0] and refs.end.tolist() == [20, 29, 6]
    assert data.question_doc().tolist() == [0, 2]  # the grouping label's doc
    assert data.reference_corpora() == [("alpha", "beta"), ("gamma",)]
    assert data.search_groups().tolist() == [("alpha", "beta"), "gamma"]


def test_the_label_comes_from_the_first_reference_and_spellings_share_a_fingerprint() -> None:
    implicit = cross_record(corpus_id=None)
    implicit["references"][0]["corpus_id"] = "data/alpha.txt"
    same_corpus = cross_record()
    same_corpus["references"][0]["corpus_id"] = "alpha"
    built = [Dataset("a", TEXTS, [r]) for r in (cross_record(), implicit, same_corpus)]
    assert [d.questions[0]["corpus_id"] for d in built] == ["alpha"] * 3
    assert len({d.fingerprint() for d in built}) == 1
    # The label is the question's own corpus when it names one, even if no reference lies there.
    elsewhere = cross_record(corpus_id="gamma")
    elsewhere["references"][0]["corpus_id"] = "alpha"
    data = Dataset("b", TEXTS, [elsewhere])
    assert data.questions[0]["corpus_id"] == "gamma"
    assert [r["corpus_id"] for r in data.questions[0]["references"]] == ["alpha", "beta"]
    assert data.reference_corpora() == [("alpha", "beta")] and data.question_doc().tolist() == [2]
    assert data.references().doc.tolist() == [0, 1]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_cross_records_round_trip(tmp_path: Path, suffix: str) -> None:
    data = Dataset("x", TEXTS, [cross_record(), {"question": "g?", "corpus_id": "gamma",
                                                 "references": [{"start_index": 0, "end_index": 6}]}])
    path = write_questions(data.questions, tmp_path / f"q{suffix}")
    assert read_questions(path) == data.questions
    (tmp_path / "corpora").mkdir()
    for cid, text in TEXTS.items():
        (tmp_path / "corpora" / f"{cid}.txt").write_text(text, encoding="utf-8")
    loaded = datasets.load(corpora=tmp_path / "corpora", questions=path)
    assert loaded.fingerprint() == data.fingerprint()


def test_a_one_corpus_parquet_file_keeps_its_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = write_questions([{"question": "g?", "corpus_id": "gamma", "references": [{"start_index": 0,
                                                                                      "end_index": 6}]}],
                           tmp_path / "q.parquet")
    assert [f.name for f in pq.read_schema(path).field("references").type.value_type] == [
        "content", "start_index", "end_index"]


def jsonl_error(tmp_path: Path, record: dict[str, Any]) -> str:
    (tmp_path / "corpora").mkdir(exist_ok=True)
    for cid, text in TEXTS.items():
        (tmp_path / "corpora" / f"{cid}.txt").write_text(text, encoding="utf-8")
    good = {"question": "g?", "corpus_id": "gamma", "references": [{"start_index": 0, "end_index": 6}]}
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        datasets.load(tmp_path)
    return str(caught.value)


def test_unknown_reference_corpus_is_one_line_with_row_and_fix(tmp_path: Path) -> None:
    record = cross_record()
    record["references"][1]["corpus_id"] = "betta"
    message = jsonl_error(tmp_path, record)
    assert message == (
        f"{tmp_path / 'questions.jsonl'} line 2, field references: unknown reference 2 corpus_id 'betta': a "
        "corpus_id must name a corpus file by its stem, file name or a path ending in it (did you mean 'beta'? "
        "known: 'alpha', 'beta', 'gamma'); correct the reference 2 corpus_id or drop the row (--on-invalid skip)")


def test_content_is_checked_against_the_reference_s_own_corpus(tmp_path: Path) -> None:
    record = cross_record()
    record["references"][1].update(start_index=0, end_index=12)  # beta[0:12] is "Beta first l"
    message = jsonl_error(tmp_path, record)
    assert message == (
        f"{tmp_path / 'questions.jsonl'} line 2, field references: reference 2 content 'Beta second.' differs from "
        "corpus 'beta'[0:12] 'Beta first l' (that text is at [17, 29)); fix the offsets so that "
        "corpus[start_index:end_index] == content (Python str offsets) or drop the row (--on-invalid skip)")


@pytest.mark.parametrize(("change", "reason"), [
    ({"end_index": 40, "content": None},
     "reference 2 ends at 40, past the end of corpus 'beta' (29 chars); fix the offsets"),
    ({"corpus_id": 7}, "reference 2 corpus_id is a number, not text; name the reference's corpus file"),
    ({"corpus_id": ""}, "reference 2 corpus_id is missing; name the reference's corpus file"),
])
def test_other_reference_corpus_problems(change: dict[str, Any], reason: str) -> None:
    record = cross_record()
    record["references"][1].update(change)
    record["references"][1] = {k: v for k, v in record["references"][1].items() if v is not None}
    with pytest.raises(DatasetError, match=re.escape(f"dataset 'x' question 1, field references: {reason}")):
        Dataset("x", TEXTS, [record])


def test_ambiguous_reference_corpus_and_missing_label() -> None:
    corpora = {"a/pubmed": "one text", "b/pubmed": "two text", "c": "three"}
    record = {"question": "?", "corpus_id": "c", "references": [{"start_index": 0, "end_index": 3,
                                                                 "corpus_id": "pubmed"}]}
    with pytest.raises(DatasetError, match=re.escape("reference 1 corpus_id 'pubmed' matches 2 corpora: 'a/pubmed' "
                                                     "and 'b/pubmed'; write more of the path")):
        Dataset("x", corpora, [record])
    no_label = {"question": "?", "references": [{"start_index": 0, "end_index": 3}]}
    with pytest.raises(DatasetError, match=r"question 1, field corpus_id: corpus_id is missing"):
        Dataset("x", corpora, [no_label])


def test_subset_keeps_the_partner_corpus() -> None:
    data = Dataset("x", TEXTS, [cross_record(), {"question": "g?", "corpus_id": "gamma",
                                                 "references": [{"start_index": 0, "end_index": 6}]}])
    small = data.subset(corpora=["alpha"])
    assert small.corpus_ids == ["alpha", "beta"] and [q["question_id"] for q in small.questions] == ["q1"]
    assert small.references().doc.tolist() == [0, 1]
    assert small.fingerprint() == Dataset("x", {c: TEXTS[c] for c in ("alpha", "beta")}, [cross_record()]).fingerprint()


# ------------------------------------------------------------------------------------------ search


def brute_force(chunks: np.ndarray, queries: np.ndarray, allowed: list[list[int]], k: int) -> list[list[int]]:
    """Top-k by cosine over the allowed chunk rows, ties by the lower row: an independent reference."""
    out = []
    for q, rows in zip(queries, allowed, strict=True):
        scored = sorted(rows, key=lambda r: (-float(chunks[r] @ q), r))
        out.append(scored[:k] + [-1] * (k - len(scored[:k])))
    return out


def test_corpus_scope_searches_the_union_of_a_cross_question_s_corpora() -> None:
    rng = np.random.default_rng(3)
    chunks = rng.normal(size=(12, 8)).astype(np.float32)
    chunks /= np.linalg.norm(chunks, axis=1, keepdims=True)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    chunk_corpus = np.asarray(["a"] * 5 + ["b"] * 4 + ["c"] * 3, dtype=object)
    labels = np.empty(4, dtype=object)
    labels[:] = [("a", "c"), "b", ("b", "c"), "a"]
    out = search_stage(chunks, queries, 6, method="exact", scope="corpus", chunk_corpus=chunk_corpus,
                       question_corpus=labels)
    allowed = [[0, 1, 2, 3, 4, 9, 10, 11], [5, 6, 7, 8], [5, 6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4]]
    assert out.ids.tolist() == brute_force(chunks, queries, allowed, 6)
    expected_scores = [[float(chunks[i] @ q) if i >= 0 else -np.inf for i in row]
                       for row, q in zip(out.ids.tolist(), queries, strict=True)]
    np.testing.assert_allclose(out.scores, expected_scores, rtol=1e-6)
    # Without tuples, corpus scope is as before: one corpus per question.
    plain = search_stage(chunks, queries, 6, method="exact", scope="corpus", chunk_corpus=chunk_corpus,
                         question_corpus=np.asarray(["a", "b", "b", "a"], dtype=object))
    assert plain.ids.tolist() == brute_force(chunks, queries, [allowed[3], allowed[1], allowed[1], allowed[3]], 6)
    text_corpus = np.asarray(["a", "a", "a", "b", "b", "b", "c"], dtype=object)
    bm25 = search_stage(None, None, 3, method="bm25", scope="corpus", chunk_corpus=text_corpus,
                        question_corpus=labels[:2],
                        chunk_texts=["lamp tower", "bread", "rye", "fog", "lamp", "bell", "lamp lamp"],
                        question_texts=["lamp", "lamp"])
    first, second = bm25.ids.tolist()
    assert second[0] == 4 and set(second) <= {3, 4, 5, -1}  # corpus b alone: its one "lamp" first
    assert first[:2] == [6, 0] and set(first) <= {0, 1, 2, 6, -1}  # a and c: both chunks that hold "lamp"


# -------------------------------------------------------------------------------------- generation

SENTENCE = re.compile(r"[A-Z][^.\n]*\.")


def sentences_in(window: str) -> list[str]:
    return [s for s in SENTENCE.findall(window) if len(s) > 20]


def cross_server(one_document: bool = False) -> Any:
    def responder(request: dict[str, Any], index: int) -> Reply:
        prompt = "\n".join(m["content"] for m in request["messages"])
        if prompt.startswith("You check evaluation questions"):
            return Reply(fixture={"content": json.dumps({"verdict": "yes", "reason": "both"}), "usage": {}})
        first, second = re.findall(r'<document n="\d">\n(.*?)\n</document>', prompt, re.DOTALL)
        evidence = sentences_in(first)[:2] if one_document else [sentences_in(first)[0], sentences_in(second)[0]]
        answer = {"question": f"How do the two places compare ({index})?", "references": evidence}
        return Reply(fixture={"content": json.dumps(answer), "usage": {"prompt_tokens": 90, "completion_tokens": 30}})
    return responder


def run(server: ReplayServer, out: Path, **settings: Any) -> Any:
    settings.setdefault("concurrency", 1)
    settings.setdefault("filters", NO_FILTERS)
    settings.setdefault("window_chars", 800)
    backend = OpenAICompatibleBackend(server.url, "replay-model", timeout=2.0, max_retries=1, backoff_base=0.01)
    return generate_questions(CORPORA, out, backend, GenerationSettings(**settings), show_progress=False)


def test_cross_questions_quote_both_documents_exactly(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(cross_server()) as server:
        report = run(server, out, per_corpus=2, mix={"cross": 1.0}, verify=True)
    assert report.stop_reason == "done" and not report.rejected
    assert report.accepted_kinds == {"cross": 4} and len(server.requests) == 8
    records = read_questions(out)
    assert sorted(r["question_id"] for r in records) == [
        "bakery:s0:cross:a0", "bakery:s0:cross:a1", "lighthouse:s0:cross:a0", "lighthouse:s0:cross:a1"]
    for record in records:
        own = record["corpus_id"]
        partner = "bakery" if own == "lighthouse" else "lighthouse"
        attempt = record["provenance"]["attempt"]
        assert cross_partner(list(CORPORA), own, 0, attempt) == partner
        windows = (sample_window(CORPORA[own], 400, 0, own, attempt, kind="cross"),
                   sample_window(CORPORA[partner], 400, 0, partner, attempt, kind=f"cross\0{own}"))
        assert record["provenance"]["kind"] == "cross"
        assert record["provenance"]["documents"] == [{"corpus_id": c, "start": a, "end": b}
                                                     for c, (a, b) in zip((own, partner), windows, strict=True)]
        assert record["provenance"]["verification"]["verdict"] == "yes"
        mine, theirs = record["references"]
        assert "corpus_id" not in mine and theirs["corpus_id"] == partner
        assert CORPORA[own][mine["start_index"]:mine["end_index"]] == mine["content"] == sentences_in(
            CORPORA[own][windows[0][0]:windows[0][1]])[0]
        assert CORPORA[partner][theirs["start_index"]:theirs["end_index"]] == theirs["content"] == sentences_in(
            CORPORA[partner][windows[1][0]:windows[1][1]])[0]
    # The file loads as a dataset whose engine spans sit in both documents.
    (tmp_path / "corpora").mkdir()
    for cid, text in CORPORA.items():
        (tmp_path / "corpora" / f"{cid}.md").write_text(text, encoding="utf-8")
    data = datasets.load(corpora=tmp_path / "corpora", questions=out)
    assert data.references().doc.tolist() == [d for q in data.questions for d in
                                              ([0, 1] if q["corpus_id"] == "bakery" else [1, 0])]
    stats = summarize_file(out, CORPORA)
    assert stats["kinds"] == {"cross": 4} and stats["per_corpus"] == {"bakery": 2, "lighthouse": 2}
    expected = corpus_coverage([{"corpus_id": cid, "references": [{k: r[k] for k in ("start_index", "end_index")}
                                                                  for q in records for r in q["references"]
                                                                  if r.get("corpus_id", q["corpus_id"]) == cid]}
                                for cid in CORPORA], {cid: len(t) for cid, t in CORPORA.items()})
    assert stats["coverage"] == expected == report.coverage
    spans = sorted((r.get("corpus_id", q["corpus_id"]), r["start_index"]) for q in records for r in q["references"])
    assert len(spans) == 8


def test_a_cross_answer_from_one_document_is_rejected(tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    with ReplayServer(cross_server(one_document=True)) as server:
        report = run(server, out, per_corpus=1, mix={"cross": 1.0}, max_attempts_per_corpus=1)
    assert report.stop_reason == "attempt_limit" and report.rejected == {"not_cross_document": 2}
    rejected = [json.loads(line) for line in rejected_path(out).read_text(encoding="utf-8").splitlines()]
    by_corpus = {r["corpus_id"]: r for r in rejected}
    assert by_corpus["bakery"]["kind"] == "cross" and by_corpus["bakery"]["documents"][1]["corpus_id"] == "lighthouse"
    assert by_corpus["bakery"]["detail"] == ("no reference lies in document 2 ('lighthouse'); a cross-document "
                                             "question needs evidence from both documents")
    # A rerun resumes: the rejected attempts are not made again.
    with ReplayServer(cross_server()) as server:
        again = run(server, out, per_corpus=1, mix={"cross": 1.0}, max_attempts_per_corpus=2)
    assert again.accepted_kinds == {"cross": 2} and len(server.requests) == 2
    assert sorted(r["provenance"]["attempt"] for r in read_questions(out)) == [1, 1]


def test_the_dry_run_plans_cross_requests(tmp_path: Path) -> None:
    planned = plan_requests(CORPORA, tmp_path / "q.jsonl",
                            GenerationSettings(per_corpus=2, mix={"single": 0.5, "cross": 0.5}, filters=NO_FILTERS))
    assert [(p.corpus_id, p.kind, p.attempt, p.documents) for p in planned] == [
        ("bakery", "single", 0, ()), ("bakery", "cross", 0, ("bakery", "lighthouse")),
        ("lighthouse", "single", 0, ()), ("lighthouse", "cross", 0, ("lighthouse", "bakery"))]
    cross = planned[1]
    assert '<document n="1">' in cross.messages[-1]["content"] and '<document n="2">' in cross.messages[-1]["content"]


def test_cross_questions_from_chunks(tmp_path: Path) -> None:
    bounds = {cid: [(i, min(i + 300, len(t))) for i in range(0, len(t), 300)] for cid, t in CORPORA.items()}
    out = tmp_path / "q.jsonl"
    with ReplayServer(cross_server()) as server:
        report = run(server, out, per_corpus=1, mix={"cross": 1.0}, chunk_windows=bounds)
    assert report.stop_reason == "done" and report.accepted_kinds == {"cross": 2}
    for record in read_questions(out):
        (a, b), (c, d) = [(w["start"], w["end"]) for w in record["provenance"]["documents"]]
        assert (a, b) in bounds[record["corpus_id"]] and record["provenance"]["chunks"] == [
            bounds[record["corpus_id"]].index((a, b)), bounds[record["references"][1]["corpus_id"]].index((c, d))]


# ------------------------------------------------------------------------------- evaluation, report


def char_recall(refs: list[tuple[str, int, int]], retrieved: list[tuple[str, int, int]]) -> float:
    """|E ∩ R| / |E| over (corpus, position) pairs: an independent reference for set recall."""
    evidence = {(c, i) for c, s, e in refs for i in range(s, e)}
    found = {(c, i) for c, s, e in retrieved for i in range(s, e)}
    return len(evidence & found) / len(evidence)


def test_evaluation_scores_both_documents_and_groups_once(tmp_path: Path) -> None:
    from chunkeval.evaluate import evaluate
    from chunkeval.report import write_report
    from test_evaluate import HashingEmbedder

    lighthouse, bakery = CORPORA["lighthouse"], CORPORA["bakery"]
    def ref(corpus: str, text: str, **extra: Any) -> dict[str, Any]:
        start = CORPORA[corpus].index(text)
        return {"content": text, "start_index": start, "end_index": start + len(text), **extra}
    questions = [
        {"question_id": "cross", "question": "Which is older, the lighthouse or the bakery starter?",
         "corpus_id": "lighthouse",
         "references": [ref("lighthouse", "built in 1872"), ref("bakery", "fed every day since 1996",
                                                                corpus_id="bakery")]},
        {"question_id": "one", "question": "How tall is the tower?", "corpus_id": "lighthouse",
         "references": [ref("lighthouse", "The tower is 27 metres tall")]},
    ]
    data = Dataset("mixed", CORPORA, questions)
    assert len(lighthouse) and len(bakery)
    for scope in ("global", "corpus"):
        result = evaluate(data, chunker="fixed:120:0", embedder=HashingEmbedder(), retrieval="exact", k=4,
                          scope=scope, show_progress=False)
        table = result.table.to_pylist()
        assert [(r["question_id"], r["corpus_id"]) for r in table] == [("cross", "lighthouse"), ("one", "lighthouse")]
        for row, q in zip(table, data.questions, strict=True):
            spans = [(s["corpus_id"], s["start"], s["end"]) for s in row["retrieved_spans"]]
            refs = [(r.get("corpus_id", q["corpus_id"]), r["start_index"], r["end_index"]) for r in q["references"]]
            assert row["recall"] == pytest.approx(char_recall(refs, spans), abs=1e-12)
        # Both scopes search the bakery for the cross-document question (corpus scope: the union).
        assert "bakery" in {s["corpus_id"] for s in table[0]["retrieved_spans"]}, scope
        assert {s["corpus_id"] for s in table[1]["retrieved_spans"]} <= {"lighthouse"} or scope == "global"
        if scope == "global":
            report = write_report(result.table, tmp_path / "report", dataset=data, n_resamples=50,
                                  n_permutations=50, plots=False, show_progress=False)
            assert report["markdown"].is_file()
