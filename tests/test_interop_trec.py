"""TREC and ranx export: the qrels and the run of an evaluation, read back from the written files by
the real pytrec_eval (trec_eval's code) and the real ranx, give chunkeval's rank metrics to 1e-12 on
every question the tools evaluate, binary and graded (docs/interop.md, *Exporting to trec_eval and
ranx*). Hand-worked examples pin the files and the tools' conventions (MAP divides by R, ranx's
``ndcg`` gain is the relevance itself); hypothesis draws random batches; the bundled benchmark's
default run checks ``EvaluationResult.to_trec`` / ``to_ranx`` and the results table."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
import pytrec_eval
import ranx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkeval
from chunkeval import RaggedSpans, Spans, span_metrics
from chunkeval.evaluate import evaluate
from chunkeval.export_cli import add_export_parser, run_export
from chunkeval.interop import docno, to_ranx, trec_data, write_trec
from chunkeval.metrics import available_backends
from chunkeval.pipeline import retrieved_spans
from test_evaluate import HashingEmbedder

RANK = ("hit", "mrr", "map", "ndcg", "ndcg_graded")
TOL = 1e-12

# Every backend's rank metrics against the tools (conftest requires all three to be installed).
RANKED_BACKENDS = ["python", *[b for b in available_backends() if b != "python"]]


# ------------------------------------------------------------------------------- the tools' numbers


def _files(tmp_path: Path, qrels: dict, run: dict, tag: str) -> tuple[Path, Path]:
    qrels_path, run_path = tmp_path / f"{tag}.qrels", tmp_path / f"{tag}.run"
    write_trec(qrels_path, run_path, qrels, run)
    return qrels_path, run_path


def pytrec_scores(qrels_path: Path, run_path: Path, ks: list[int]) -> dict[str, dict[str, list[float]]]:
    """``{metric: {qid: [value at each k]}}`` by pytrec_eval on the files, for the questions it evaluates.

    ``recip_rank`` has no cut-off, so mrr@k is ``recip_rank`` of the run cut to its first ``k``
    documents (by score, as trec_eval orders a run), and hit@k is whether that is positive."""
    with open(qrels_path) as f:
        qrels = pytrec_eval.parse_qrel(f)
    with open(run_path) as f:
        run = pytrec_eval.parse_run(f)
    cut = ",".join(map(str, ks))
    deep = pytrec_eval.RelevanceEvaluator(qrels, {f"map_cut.{cut}", f"ndcg_cut.{cut}"}).evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    out: dict[str, dict[str, list[float]]] = {m: {q: [] for q in deep} for m in ("hit", "mrr", "map", "ndcg")}
    for k in ks:
        top = {q: dict(sorted(docs.items(), key=lambda item: -item[1])[:k]) for q, docs in run.items()}
        at_k = rr.evaluate(top)
        assert set(at_k) == set(deep)
        for q, values in deep.items():
            out["map"][q].append(values[f"map_cut_{k}"])
            out["ndcg"][q].append(values[f"ndcg_cut_{k}"])
            out["mrr"][q].append(at_k[q]["recip_rank"])
            out["hit"][q].append(1.0 if at_k[q]["recip_rank"] > 0 else 0.0)
    return out


def ranx_scores(qrels: Any, run: Any, ks: list[int]) -> dict[str, dict[str, list[float]]]:
    """``{metric: {qid: [value at each k]}}`` by ``ranx.evaluate``: hit_rate@k, mrr@k, map@k, ndcg@k."""
    names = {"hit": "hit_rate", "mrr": "mrr", "map": "map", "ndcg": "ndcg"}
    metrics = [f"{names[m]}@{k}" for m in names for k in ks]
    ranx.evaluate(qrels, run, metrics, return_mean=False)
    return {m: {q: [float(run.scores[f"{names[m]}@{k}"][q]) for k in ks] for q in run.scores[f"{names[m]}@{ks[0]}"]}
            for m in names}


def ranx_from_files(qrels_path: Path, run_path: Path) -> tuple[Any, Any]:
    qrels = ranx.Qrels.from_file(str(qrels_path), kind="trec")
    # ranx cannot read an empty run file (no question retrieved anything): start from an empty Run.
    run = ranx.Run.from_file(str(run_path), kind="trec") if run_path.stat().st_size else ranx.Run()
    # A question with no retrieved row has no run line: ranx wants the qrels' questions in the run.
    return qrels, run.make_comparable(qrels)


def engine_rows(metrics: chunkeval.SpanMetrics, qids: list[str]) -> dict[str, dict[str, list[float]]]:
    return {m: {q: getattr(metrics, m)[i].tolist() for i, q in enumerate(qids)} for m in RANK}


def assert_same(tool: dict[str, dict[str, list[float]]], engine: dict[str, dict[str, list[float]]],
                pairs: dict[str, str], questions: set[str], who: str) -> None:
    """The tool's numbers equal the engine's on exactly ``questions``, to 1e-12."""
    for tool_name, engine_name in pairs.items():
        assert set(tool[tool_name]) == questions, f"{who} {tool_name}: evaluated {sorted(tool[tool_name])}"
        for q in questions:
            np.testing.assert_allclose(tool[tool_name][q], engine[engine_name][q], rtol=0, atol=TOL,
                                       err_msg=f"{who} {tool_name} vs chunkeval {engine_name}, question {q}")


BINARY = {"hit": "hit", "mrr": "mrr", "map": "map", "ndcg": "ndcg"}
GRADED = {"hit": "hit", "mrr": "mrr", "map": "map", "ndcg": "ndcg_graded"}


def check_parity(references: RaggedSpans, retrieved: RaggedSpans, chunks: Spans, metrics: chunkeval.SpanMetrics,
                 ks: list[int], qids: list[str], tmp_path: Path) -> None:
    """pytrec_eval and ranx on the written files (binary and graded) equal ``metrics`` per question."""
    engine = engine_rows(metrics, qids)
    for graded, pairs in ((False, BINARY), (True, GRADED)):
        qrels, run = trec_data(references, retrieved, chunks, question_ids=qids, graded=graded)
        # R: one qrels line per evidence chunk (set semantics: n_evidence_chunks), none for R = 0.
        assert {q: len(qrels.get(q, {})) for q in qids} == dict(zip(qids, metrics.n_evidence_chunks.tolist(),
                                                                    strict=True))
        for q in qids:
            if q not in qrels:  # R = 0: every tool skips it, chunkeval scores 0
                assert all(engine[m][q] == [0.0] * len(ks) for m in RANK)
        qrels_path, run_path = _files(tmp_path, qrels, run, "graded" if graded else "binary")
        retrieved_any = {q for q in qids if run[q]}
        assert_same(pytrec_scores(qrels_path, run_path, ks), engine, pairs, set(qrels) & retrieved_any, "pytrec_eval")
        if not qrels:  # no question has a relevant chunk: ranx cannot even read the (empty) qrels file
            with pytest.raises(ValueError, match=r"no question has a relevant chunk"):
                to_ranx(qrels, run)
            continue
        assert_same(ranx_scores(*ranx_from_files(qrels_path, run_path), ks), engine, pairs, set(qrels), "ranx")
        assert_same(ranx_scores(*to_ranx(qrels, run), ks), engine, pairs, set(qrels), "ranx (to_ranx)")


# ------------------------------------------------------------------------------ worked by hand


def _worked() -> tuple[RaggedSpans, RaggedSpans, Spans]:
    # Doc 0: chunks [0,5) [5,10) [5,10) (the same span twice) [10,15); doc 1: [0,8).
    chunks = Spans([0, 0, 0, 0, 1], [0, 5, 5, 10, 0], [5, 10, 10, 15, 8])
    references = RaggedSpans.from_lists([[(0, 3, 7)], [(1, 9, 10)], [(0, 12, 14), (0, 0, 1)]])
    retrieved = RaggedSpans.from_lists([[(0, 5, 10), (0, 5, 10), (0, 0, 5), (0, 10, 15)], [], [(1, 0, 8)]])
    return references, retrieved, chunks


def test_worked_example_qrels_and_run() -> None:
    references, retrieved, chunks = _worked()
    qrels, run = trec_data(references, retrieved, chunks)
    # Question 0: E = [3,7) overlaps [0,5) by 2 and both [5,10) rows by 2 (two evidence chunks, the
    # second named #2); question 1: E = [9,10) of doc 1 overlaps no chunk (R = 0: no qrels entry).
    assert qrels == {"0": {"0:0-5": 1, "0:5-10": 1, "0:5-10#2": 1}, "2": {"0:0-5": 1, "0:10-15": 1}}
    # The repeated [5,10) takes no rank; scores n, n-1, ... keep the order.
    assert run == {"0": {"0:5-10": 3.0, "0:0-5": 2.0, "0:10-15": 1.0}, "1": {}, "2": {"1:0-8": 1.0}}
    graded, _ = trec_data(references, retrieved, chunks, graded=True)
    assert graded == {"0": {"0:0-5": 2, "0:5-10": 2, "0:5-10#2": 2}, "2": {"0:0-5": 1, "0:10-15": 2}}


def test_worked_example_numbers_of_every_tool(tmp_path: Path) -> None:
    """Question 0 ranks gains (1, 1, 0) with R = 3: map@1 = 1/3 (trec_eval and ranx divide by R,
    not by min(k, R)), map@3 = (1/1 + 2/2)/3, ndcg@3 = (1 + 1/log2 3) / (1 + 1/log2 3 + 1/2)."""
    references, retrieved, chunks = _worked()
    ks = [1, 2, 3]
    metrics = span_metrics(references, retrieved, chunks, k=ks, ranked=True, backend="python")
    assert metrics.map[0].tolist() == [1 / 3, 2 / 3, 2 / 3]
    ideal3 = 1 + 1 / math.log2(3) + 1 / 2
    assert metrics.ndcg[0].tolist() == [1.0, 1.0, (1 + 1 / math.log2(3)) / ideal3]
    assert metrics.mrr[0].tolist() == [1.0, 1.0, 1.0]
    qrels, run = trec_data(references, retrieved, chunks)
    q, r = _files(tmp_path, qrels, run, "worked")
    assert pytrec_scores(q, r, ks)["map"]["0"] == pytest.approx([1 / 3, 2 / 3, 2 / 3], abs=TOL)
    assert ranx_scores(*ranx_from_files(q, r), ks)["map"]["0"] == pytest.approx([1 / 3, 2 / 3, 2 / 3], abs=TOL)
    check_parity(references, retrieved, chunks, metrics, ks, ["0", "1", "2"], tmp_path)


def test_ranx_ndcg_takes_the_relevance_as_gain_like_graded_ndcg() -> None:
    """Gain 2 at rank 2 below gain 1 at rank 1: ranx's ``ndcg`` (Järvelin: rel / log2(i+1)) is
    chunkeval's graded nDCG; ``ndcg_burges`` (2**rel - 1) is not."""
    chunks = Spans([0, 0], [0, 10], [10, 20])
    references = RaggedSpans.from_lists([[(0, 9, 12)]])  # |[0,10) ∩ E| = 1, |[10,20) ∩ E| = 2
    retrieved = RaggedSpans.from_lists([[(0, 0, 10), (0, 10, 20)]])
    graded = span_metrics(references, retrieved, chunks, k=2, ranked=True, backend="python").ndcg_graded[0]
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert graded == pytest.approx(expected, abs=TOL)
    qrels, run = to_ranx(*trec_data(references, retrieved, chunks, graded=True))
    assert ranx.evaluate(qrels, run, "ndcg@2") == pytest.approx(expected, abs=TOL)
    burges = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ranx.evaluate(qrels, run, "ndcg_burges@2") == pytest.approx(burges, abs=TOL)
    assert abs(burges - expected) > 0.01


def test_write_trec_writes_the_standard_formats(tmp_path: Path) -> None:
    references, retrieved, chunks = _worked()
    qrels, run = trec_data(references, retrieved, chunks, question_ids=["q-a", "q-b", "q-c"], graded=True,
                           doc_names=["alpha", "beta"])
    write_trec(tmp_path / "q.txt", tmp_path / "r.txt", qrels, run, run_name="mine")
    assert (tmp_path / "q.txt").read_text() == (
        "q-a 0 alpha:0-5 2\n"
        "q-a 0 alpha:5-10 2\n"
        "q-a 0 alpha:5-10#2 2\n"
        "q-c 0 alpha:0-5 1\n"
        "q-c 0 alpha:10-15 2\n")
    assert (tmp_path / "r.txt").read_text() == (
        "q-a Q0 alpha:5-10 1 3.0 mine\n"
        "q-a Q0 alpha:0-5 2 2.0 mine\n"
        "q-a Q0 alpha:10-15 3 1.0 mine\n"
        "q-c Q0 beta:0-8 1 1.0 mine\n")
    assert docno(1, 0, 8, ["alpha", "beta"]) == "beta:0-8"


def test_write_trec_ranks_a_run_by_decreasing_score(tmp_path: Path) -> None:
    write_trec(tmp_path / "q.txt", tmp_path / "r.txt", {"a": {"x": 1}}, {"a": {"x": 0.5, "y": 2.0, "z": 1.0}})
    assert (tmp_path / "r.txt").read_text() == ("a Q0 y 1 2.0 chunkeval\n" "a Q0 z 2 1.0 chunkeval\n"
                                                "a Q0 x 3 0.5 chunkeval\n")


@pytest.mark.parametrize(("qrels", "run", "message"), [
    ({"a b": {"x": 1}}, {}, r"question id 'a b' is empty or holds whitespace"),
    ({"a": {"x\t": 1}}, {}, r"question 'a': docno 'x\\t' is empty or holds whitespace"),
    ({"a": {"x": 1}}, {"": {"x": 1.0}}, r"question id '' is empty"),
    ({"a": {"x": 1}}, {"a": {"x": math.nan}}, r"run: question 'a', docno 'x': score nan is not finite"),
])
def test_write_trec_rejects_what_the_formats_cannot_hold_and_writes_nothing(tmp_path: Path, qrels: dict, run: dict,
                                                                          message: str) -> None:
    (tmp_path / "q.txt").write_text("old qrels\n")
    with pytest.raises(ValueError, match=message):
        write_trec(tmp_path / "q.txt", tmp_path / "r.txt", qrels, run)
    assert (tmp_path / "q.txt").read_text() == "old qrels\n"
    assert not (tmp_path / "r.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.txt"]


def test_write_trec_rejects_a_non_integer_relevance(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"qrels: question 'a', docno 'x': relevance 0.5 is not an integer"):
        write_trec(tmp_path / "q.txt", tmp_path / "r.txt", {"a": {"x": 0.5}}, {})  # type: ignore[dict-item]


def test_a_relevant_row_that_is_no_chunk_is_an_error() -> None:
    chunks = Spans([0, 0], [0, 10], [10, 20])
    references = RaggedSpans.from_lists([[(0, 2, 4)]])
    with pytest.raises(ValueError, match=r"question '0', rank 2 \(0:0-4\) overlaps the evidence but is no chunk"):
        trec_data(references, RaggedSpans.from_lists([[(0, 10, 20), (0, 0, 4)]]), chunks)
    # A non-relevant row outside the chunking is judged non-relevant by every tool: allowed.
    _, run = trec_data(references, RaggedSpans.from_lists([[(0, 12, 15)]]), chunks)
    assert run == {"0": {"0:12-15": 1.0}}


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"question_ids": ["a", "b"]}, ValueError, r"question_ids: 2 ids for 3 questions"),
    ({"question_ids": ["a", "b", "a"]}, ValueError, r"question_ids: 'a' names questions 0 and 2"),
    ({"question_ids": "abc"}, TypeError, r"question_ids must be a sequence of ids"),
    ({"doc_names": ["alpha"]}, ValueError, r"doc_names: 1 names, but the spans name doc 1"),
    ({"doc_names": ["alpha", "alpha"]}, ValueError, r"doc_names: 'alpha' names documents 0 and 1"),
    ({"graded": 1}, TypeError, r"graded must be True or False"),
])
def test_trec_data_checks_its_arguments(kwargs: dict, error: type, message: str) -> None:
    references, retrieved, chunks = _worked()
    with pytest.raises(error, match=message):
        trec_data(references, retrieved, chunks, **kwargs)


def test_trec_data_checks_the_batch() -> None:
    references, retrieved, chunks = _worked()
    with pytest.raises(ValueError, match=r"retrieved has 1 questions but references has 3"):
        trec_data(references, retrieved.take([0]), chunks)
    with pytest.raises(TypeError, match=r"chunks must be a chunkeval.Spans, got list"):
        trec_data(references, retrieved, [(0, 0, 5)])  # type: ignore[arg-type]


def test_to_ranx_without_ranx_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ranx", None)  # what `import ranx` meets where it is not installed
    with pytest.raises(ImportError, match=r"pip install 'chunkeval\[interop\]'"):
        to_ranx({"a": {"x": 1}}, {"a": {"x": 1.0}})


def test_to_ranx_keeps_the_questions_of_the_qrels() -> None:
    references, retrieved, chunks = _worked()
    qrels, run = to_ranx(*trec_data(references, retrieved, chunks))
    assert sorted(qrels.keys()) == sorted(run.keys()) == ["0", "2"]
    with pytest.raises(ValueError, match=r"no question has a relevant chunk"):
        to_ranx({}, {"a": {}})


# --------------------------------------------------------------------------- random batches


@st.composite
def batches(draw: st.DrawFn) -> tuple[RaggedSpans, RaggedSpans, Spans, list[int]]:
    """Documents with one or two fixed chunkings each (overlapping, nested, the same span twice),
    some chunks dropped (gaps, so some questions have R = 0); references over one or more
    documents; retrieved lists drawn from the chunks with repeats."""
    n_docs = draw(st.integers(1, 3))
    doc_ids = draw(st.lists(st.integers(0, 40), min_size=n_docs, max_size=n_docs, unique=True))
    lengths = {d: draw(st.integers(1, 40)) for d in doc_ids}
    rows: list[tuple[int, int, int]] = []
    for d, length in lengths.items():
        doc_rows = []
        for _ in range(draw(st.integers(1, 2))):
            size = draw(st.integers(1, length))
            step = size - draw(st.integers(0, size - 1))
            start = 0
            while True:
                doc_rows.append((d, start, min(start + size, length)))
                if start + size >= length:
                    break
                start += step
        keep = draw(st.lists(st.booleans(), min_size=len(doc_rows), max_size=len(doc_rows)))
        kept = [r for r, k in zip(doc_rows, keep, strict=True) if k] or doc_rows[:1]
        rows.extend(kept)
    rows = draw(st.permutations(rows))
    chunks = Spans(*zip(*rows, strict=True))

    def reference() -> st.SearchStrategy[tuple[int, int, int]]:
        return st.sampled_from(doc_ids).flatmap(lambda d: st.integers(0, lengths[d] - 1).flatmap(
            lambda s: st.integers(s + 1, lengths[d]).map(lambda e: (d, s, e))))

    n_questions = draw(st.integers(1, 6))
    references = [draw(st.lists(reference(), min_size=1, max_size=3)) for _ in range(n_questions)]
    retrieved = [draw(st.lists(st.sampled_from(rows), max_size=8)) for _ in range(n_questions)]
    ks = sorted(draw(st.sets(st.integers(1, 10), min_size=1, max_size=4)))
    return RaggedSpans.from_lists(references), RaggedSpans.from_lists(retrieved), chunks, ks


@pytest.mark.parametrize("backend", RANKED_BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
def test_random_batches_equal_pytrec_eval_and_ranx(backend: str, batch: tuple, tmp_path: Path) -> None:
    references, retrieved, chunks, ks = batch
    metrics = span_metrics(references, retrieved, chunks, k=ks, ranked=True, backend=backend)
    qids = [f"q{i}" for i in range(references.n_questions)]
    check_parity(references, retrieved, chunks, metrics, ks, qids, tmp_path)


# ----------------------------------------------------------------------- the bundled benchmark

BENCH_K = [1, 3, 5, 10]


@pytest.fixture(scope="module")
def default_run() -> Any:
    """The bundled benchmark with the default chunker and retrieval, 40 questions, cut-offs 1,3,5,10."""
    return evaluate(max_questions=40, embedder=HashingEmbedder(), k=BENCH_K, cache_dir=None,
                                       show_progress=False)


def _question_ids(result: Any) -> list[str]:
    at = result.table.filter(pc.equal(result.table["k"], BENCH_K[0]))
    return [str(q) for q in at.column("question_id").to_pylist()]


def test_benchmark_to_trec_equals_the_engine(default_run: Any, tmp_path: Path) -> None:
    spans = default_run.unit_spans
    retrieved = retrieved_spans(spans.ranked_ids(default_run.ranked_ids), spans.chunks)
    metrics = span_metrics(spans.references, retrieved, spans.chunks, k=BENCH_K, ranked=True, backend="python")
    qids = _question_ids(default_run)
    assert len(qids) == 40
    assert int((metrics.hit[:, -1] > 0).sum()) > 5  # retrieval finds evidence: the comparison is not all zeros
    check_parity(spans.references, retrieved, spans.chunks, metrics, BENCH_K, qids, tmp_path)
    engine = engine_rows(metrics, qids)
    for graded, pairs in ((False, BINARY), (True, GRADED)):
        qrels_path, run_path = tmp_path / "bench.qrels", tmp_path / "bench.run"
        default_run.to_trec(qrels_path, run_path, graded=graded)
        judged = {line.split()[0] for line in qrels_path.read_text().splitlines()}
        assert_same(pytrec_scores(qrels_path, run_path, BENCH_K), engine, pairs, judged, "pytrec_eval (to_trec)")
        assert_same(ranx_scores(*ranx_from_files(qrels_path, run_path), BENCH_K), engine, pairs, judged,
                    "ranx (to_trec files)")
        assert_same(ranx_scores(*default_run.to_ranx(graded=graded), BENCH_K), engine, pairs, judged,
                    "ranx (to_ranx)")


def test_export_cli_writes_what_trec_data_gives(tmp_path: Path) -> None:
    (tmp_path / "refs.csv").write_text("question_id,doc,start,end\nqa,alpha,3,7\nqb,beta,9,10\nqc,alpha,12,14\n"
                                       "qc,alpha,0,1\n")
    (tmp_path / "ret.csv").write_text("question_id,doc,start,end,rank\nqa,alpha,0,5,3\nqa,alpha,5,10,1\n"
                                      "qa,alpha,5,10,2\nqa,alpha,10,15,4\nqc,beta,0,8,1\n")
    (tmp_path / "chunks.csv").write_text("doc,start,end\nalpha,0,5\nalpha,5,10\nalpha,5,10\nalpha,10,15\n"
                                         "beta,0,8\n")
    parser = argparse.ArgumentParser(prog="chunkeval")
    add_export_parser(parser.add_subparsers(dest="command"))
    common = ["export", "--references", str(tmp_path / "refs.csv"), "--retrieved", str(tmp_path / "ret.csv"),
              "--chunks", str(tmp_path / "chunks.csv"), "--qrels", str(tmp_path / "q.txt"), "--run",
              str(tmp_path / "r.txt")]
    args = parser.parse_args([*common, "--trec", "--graded", "--on-missing", "zero"])
    assert args.handler is run_export
    assert run_export(args) == 0
    # The worked example of test_worked_example_qrels_and_run, under the files' names.
    assert (tmp_path / "q.txt").read_text() == (
        "qa 0 alpha:0-5 2\nqa 0 alpha:5-10 2\nqa 0 alpha:5-10#2 2\nqc 0 alpha:0-5 1\nqc 0 alpha:10-15 2\n")
    assert (tmp_path / "r.txt").read_text() == (
        "qa Q0 alpha:5-10 1 3.0 chunkeval\nqa Q0 alpha:0-5 2 2.0 chunkeval\nqa Q0 alpha:10-15 3 1.0 chunkeval\n"
        "qc Q0 beta:0-8 1 1.0 chunkeval\n")
    with pytest.raises(ValueError, match=r"choose the format to write: --trec"):
        run_export(parser.parse_args(common))
    with pytest.raises(ValueError, match=r"question 'qb' of .*refs.csv has no retrieved row"):
        run_export(parser.parse_args([*common, "--trec"]))


def test_token_units_keep_the_rank_of_a_chunk_without_tokens(tmp_path: Path) -> None:
    """Under MiniLM's tokenizer the whitespace chunks hold no token: the pipeline keeps their
    (irrelevant) ranks, and so does the exported run, as documents no qrels line names."""
    from chunkeval import pipeline as pl
    from chunkeval.interop import NO_TOKENS, unit_trec_data
    from chunkeval.tokenizers import HFTokenizer

    text = "aaaa    bbbb    cccc"
    chunks = Spans([0] * 5, [0, 4, 8, 12, 16], [4, 8, 12, 16, 20])
    refs = RaggedSpans([0, 1, 2], [0, 0], [8, 0], [12, 20])
    spans = pl.unit_stage(refs, chunks, [text], "tokens", HFTokenizer("all-MiniLM-L6-v2"))
    assert spans.chunk_id is not None and spans.chunk_id.tolist() == [0, -1, 1, -1, 2]
    ids = np.array([[1, 2, 3, 4, 0], [4, 3, 2, -1, -1]])
    ks = [1, 2, 3, 5]
    scoring = pl.score_stage(spans, ids, k=ks)
    qrels, run = unit_trec_data(spans, ids, question_ids=["a", "b"])
    token = [docno(d, s, e) for d, s, e in zip(spans.chunks.doc.tolist(), spans.chunks.start.tolist(),
                                               spans.chunks.end.tolist(), strict=True)]
    assert list(run["a"]) == [NO_TOKENS.format(1), token[1], NO_TOKENS.format(3), token[2], token[0]]
    assert list(run["b"]) == [token[2], NO_TOKENS.format(3), token[1]]
    assert qrels == {"a": {token[1]: 1}, "b": {token[0]: 1, token[1]: 1, token[2]: 1}}
    engine = engine_rows(scoring.metrics, ["a", "b"])
    q, r = _files(tmp_path, qrels, run, "tokens")
    assert_same(pytrec_scores(q, r, ks), engine, BINARY, {"a", "b"}, "pytrec_eval (tokens)")
    assert_same(ranx_scores(*to_ranx(qrels, run), ks), engine, BINARY, {"a", "b"}, "ranx (tokens)")


# Last: this part needs the pipeline to compute the rank metrics (evaluate's results table with
# hit/mrr/map/ndcg/ndcg_graded columns). It fails, not skips, while they are missing.
def test_benchmark_results_table_equals_pytrec_eval_and_ranx(default_run: Any, tmp_path: Path) -> None:
    table = default_run.table
    missing = [c for c in RANK if c not in table.column_names]
    if missing:
        pytest.fail(f"the results table has no {missing} columns: evaluate() must compute the rank metrics "
                    f"(issue 12) for the table-vs-trec_eval parity")
    qids = _question_ids(default_run)
    engine: dict[str, dict[str, list[float]]] = {m: {q: [] for q in qids} for m in RANK}
    for k in BENCH_K:
        at = table.filter(pc.equal(table["k"], k))
        assert [str(q) for q in at.column("question_id").to_pylist()] == qids
        for m in RANK:
            for q, v in zip(qids, at.column(m).to_pylist(), strict=True):
                engine[m][q].append(v)
    for graded, pairs in ((False, BINARY), (True, GRADED)):
        qrels_path, run_path = tmp_path / "table.qrels", tmp_path / "table.run"
        default_run.to_trec(qrels_path, run_path, graded=graded)
        judged = {line.split()[0] for line in qrels_path.read_text().splitlines()}
        for name in qids:
            if name not in judged:
                assert all(engine[m][name] == [0.0] * len(BENCH_K) for m in RANK)
        assert_same(pytrec_scores(qrels_path, run_path, BENCH_K), engine, pairs, judged, "pytrec_eval vs table")
        assert_same(ranx_scores(*ranx_from_files(qrels_path, run_path), BENCH_K), engine, pairs, judged,
                    "ranx vs table")
