"""``evaluate()``: one chunking + embedding + retrieval configuration on a dataset.

It plans one group of the pipeline (:func:`chunkeval.pipeline.run_group`: chunk → embed → search →
score every cut-off) and returns the long results table (:mod:`chunkeval.results`), the Chroma-style
summary and the configuration. With ``out_dir`` it writes ``results.parquet`` and ``summary.json``
(and ``skipped.jsonl`` when bad rows were skipped), each carrying the full configuration, the
package version and the dataset's fingerprint. A sweep of the same configuration produces the same
rows (same ``config_id``, same numbers), because both run the same stages.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from . import pipeline as pl
from . import results as rs
from ._io import write_bytes_atomic
from .metrics import SpanMetrics
from .spans import RaggedSpans, Spans

__all__ = ["evaluate", "EvaluationResult", "UnitSpans", "default_cache_dir", "make_embedder", "retrieved_spans",
           "score", "check_out_dir"]

SEMANTICS = ("set", "chroma")
UNITS = ("chars", "tokens")
RETRIEVAL_METHODS = ("hnsw", "exact", "bm25", "hybrid")
SCOPES = ("global", "corpus")
ON_INVALID = ("error", "skip")
ENGINES = ("local", "ray")

# The stage layer's types, under the names this module has always exported.
UnitSpans = pl.UnitSpans
retrieved_spans = pl.retrieved_spans
_jsonable = rs.jsonable


def default_cache_dir() -> Path:
    """``$CHUNKEVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/chunkeval``, else ``~/.cache/chunkeval``."""
    if os.environ.get("CHUNKEVAL_CACHE_DIR"):
        return Path(os.environ["CHUNKEVAL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chunkeval"


@dataclass
class EvaluationResult:
    """What one evaluation produced.

    ``table`` is the long results table (one row per question and cut-off, :data:`results.SCHEMA`),
    ``summary`` the Chroma-style aggregates (``iou_mean``, …, ``corpora_scores``; for several
    cut-offs ``{"k": [...], "at_k": {k: ...}}``), ``metrics`` the engine's per-question arrays and
    ``retrieved`` the whole ranked list the retriever returned per question (``retrieved_chunk_ids``,
    ``retrieved_scores``; the table holds each cut-off's part of it). ``unit_spans`` holds the
    references and chunks in the units the metrics were computed in, and ``ranked_ids`` each
    question's ranked character chunk ids (``-1`` padding): with them the evaluation can be
    exported (:meth:`to_trec`, :meth:`to_ranx`).
    """

    table: pa.Table
    summary: dict[str, Any]
    config: dict[str, Any]
    metrics: SpanMetrics
    chunks: Spans
    retrieved: pa.Table
    timings: dict[str, float] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    unit_spans: pl.UnitSpans | None = None
    ranked_ids: np.ndarray | None = None

    def to_trec(self, qrels_path: str | os.PathLike[str], run_path: str | os.PathLike[str], *,
                graded: bool = False) -> None:
        """Write the evidence-chunk qrels and the run in the TREC formats (:mod:`chunkeval.interop`):
        trec_eval, pytrec_eval and ranx on them give the rank metrics of this evaluation."""
        from . import interop

        qrels, run = interop.evaluation_trec_data(self, graded=graded)
        interop.write_trec(qrels_path, run_path, qrels, run)

    def to_ranx(self, *, graded: bool = False) -> tuple[Any, Any]:
        """``(ranx.Qrels, ranx.Run)`` of this evaluation (:func:`chunkeval.interop.to_ranx`)."""
        from . import interop

        return interop.to_ranx(*interop.evaluation_trec_data(self, graded=graded))


EmbedBackend = Literal["auto", "torch", "openvino", "onnx"]


def make_embedder(
    embedder: Any, *, device: str = "auto", precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
    batch_size: int = 64, cache_dir: Any = "default", show_progress: bool | None = None,
    backend: EmbedBackend = "auto",
) -> Any:
    """An embedder object: ``embedder`` itself if it has ``embed``, else an ``Embedder`` for that model
    (``backend``: torch, a compiled CPU backend, or ``"auto"``, see :class:`chunkeval.embedding.Embedder`)."""
    if hasattr(embedder, "embed"):
        return embedder
    if not isinstance(embedder, (str, os.PathLike)):
        raise TypeError(f"embedder must be a model name, a local model path or an object with .embed(texts), "
                        f"got {type(embedder).__name__}")
    from .embedding import Embedder

    cache = default_cache_dir() / "embeddings" if cache_dir == "default" else cache_dir
    return Embedder(str(embedder), device=device, precision=precision, batch_size=batch_size,
                    cache_dir=cache, show_progress=show_progress, backend=backend)


def score(
    refs: RaggedSpans, chunks: Spans, ids: np.ndarray, texts: list[str], *, k: Any, semantics: str = "set",
    units: str = "chars", unit_tokenizer: Any = "cl100k_base", groups: Any = None, num_threads: int | None = None,
) -> SpanMetrics:
    """Span metrics of ranked chunk ids (rows of ``chunks``), in characters or tokens."""
    spans = pl.unit_stage(refs, chunks, texts, units, unit_tokenizer)
    return pl.score_stage(spans, ids, k=k, semantics=pl.semantics_name(semantics), groups=groups,
                          num_threads=num_threads).metrics


def hnsw_params(hnsw: dict[str, Any] | None) -> dict[str, Any]:
    """The HNSW parameters a search uses: ``hnsw`` over the index's defaults (for provenance)."""
    from .retrieval import hnsw_defaults

    defaults = hnsw_defaults()
    unknown = sorted(set(hnsw or {}) - set(defaults))
    if unknown:
        raise ValueError(f"hnsw: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **(hnsw or {})}


def check_options(*, k: Any, semantics: str, units: str, retrieval: str, scope: str, on_invalid: str = "error") -> None:
    """Reject a bad option before any work: a typo must not cost a corpus' worth of embedding."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics: {semantics!r} is not one of {list(SEMANTICS)}")
    if units not in UNITS:
        raise ValueError(f"units: {units!r} is not one of {list(UNITS)}")
    if retrieval not in RETRIEVAL_METHODS:
        raise ValueError(f"retrieval: {retrieval!r} is not one of {list(RETRIEVAL_METHODS)}")
    if scope not in SCOPES:
        raise ValueError(f"scope: {scope!r} is not one of {list(SCOPES)}")
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid: {on_invalid!r} is not one of {list(ON_INVALID)}")
    if k is None:
        raise ValueError("k: None would score every retrieved chunk, but the retriever needs a number of results; "
                         "pass a cut-off (5), an increasing list ([1, 3, 5, 10]) or 'auto'")
    pl.parse_k(k)


def check_out_dir(out_dir: str | os.PathLike[str] | None, name: str = "out_dir") -> None:
    """Fail now, not after an hour of embedding, when results cannot be written to ``out_dir``."""
    if out_dir is None:
        return
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path}: is a file; pass a folder for the results (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".chunkeval-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{name} {path}: cannot write there ({exc.strerror or exc}); pass a writable folder") from None


def load_dataset(dataset: Any, *, corpora: list[str] | None, max_questions: int | None,
                 on_invalid: Literal["error", "skip"] = "error") -> Any:
    """The dataset to evaluate: loaded (bad rows skipped with ``on_invalid="skip"``) and subset to
    ``corpora`` / ``max_questions``, keeping only the corpora its questions use."""
    from . import datasets as ds

    if isinstance(dataset, ds.Dataset):
        data = dataset
    elif on_invalid == "error":
        data = ds.load(dataset)
    else:
        data = ds.load(dataset, on_invalid=on_invalid)
    if corpora is not None or max_questions is not None:
        data = data.subset(corpora=corpora, max_questions=max_questions)
    if len(data) == 0:
        raise ValueError(f"dataset: no questions to evaluate (corpora={corpora!r}, max_questions={max_questions!r}); "
                         "name corpora that have questions and ask for at least one question")
    return data


def evaluate(
    dataset: Any = "chroma-general",
    *,
    chunker: Any = "fixed:200:0",
    embedder: Any = "all-MiniLM-L6-v2",
    k: int | list[int] | Literal["auto"] = 5,
    semantics: Literal["set", "chroma"] = "set",
    units: Literal["chars", "tokens"] = "chars",
    unit_tokenizer: Any = "cl100k_base",
    retrieval: Literal["hnsw", "exact", "bm25", "hybrid"] = "hnsw",
    scope: Literal["global", "corpus"] = "global",
    hnsw: dict[str, Any] | None = None,
    retrieval_params: dict[str, Any] | None = None,
    device: str = "auto",
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
    batch_size: int = 64,
    embed_backend: EmbedBackend = "auto",
    cache_dir: str | os.PathLike[str] | None = "default",
    out_dir: str | os.PathLike[str] | None = None,
    corpora: list[str] | None = None,
    max_questions: int | None = None,
    on_invalid: Literal["error", "skip"] = "error",
    num_threads: int | None = None,
    show_progress: bool | None = None,
    check_hnsw_recall: bool = True,
    engine: Literal["local", "ray"] = "local",
    ray_address: str | None = None,
) -> EvaluationResult:
    """Evaluate one chunking + embedding + retrieval configuration on a dataset.

    Parameters
    ----------
    dataset:
        A :class:`chunkeval.datasets.Dataset`, the name of a bundled one (``"chroma-general"``),
        or a folder that :func:`chunkeval.datasets.load` reads (layout in docs/datasets.md).
    chunker:
        A chunker object or a spec for :func:`chunkeval.chunkers.get_chunker`
        (default ``"fixed:200:0"``: 200 cl100k tokens, no overlap, the reference toolkit's default).
    embedder:
        An object with ``embed(texts) -> ndarray`` (L2-normalised rows), or a model name/path for
        :class:`chunkeval.embedding.Embedder`.
    k:
        Cut-off(s) for the metrics; ``"auto"`` is Chroma's ``retrieve=-1`` (each question scored on
        as many results as it has evidence chunks, at most 20 retrieved).
    units:
        ``"chars"`` or ``"tokens"`` (spans mapped with ``unit_tokenizer``'s offsets).
    retrieval, scope, hnsw, retrieval_params:
        ``"hnsw"`` (hnswlib, parameters in ``hnsw``: ``M``, ``ef_construction``, ``ef_search``,
        ``seed``), ``"exact"``, ``"bm25"`` (bm25s over the chunk texts, no embedding) or
        ``"hybrid"`` (reciprocal-rank fusion of exact dense search and BM25); the last two take
        ``retrieval_params`` (:data:`chunkeval.retrievers.BM25_DEFAULTS`, ``rrf_k``, ``depth``).
        ``scope="global"`` searches all chunks of all corpora (like the reference toolkit),
        ``"corpus"`` only the question's own corpus.
    embed_backend:
        ``"auto"`` (default): on a CPU the fastest installed compiled backend (OpenVINO, then ONNX
        Runtime) whose calibration batch stays within cosine 0.9999 of torch fp32, else torch;
        or ``"torch"``, ``"openvino"``, ``"onnx"``.
    cache_dir:
        Embedding cache; ``"default"`` is :func:`default_cache_dir`, ``None`` disables it.
    out_dir:
        When given (checked before any work), ``results.parquet`` and ``summary.json`` are written
        there atomically.
    corpora, max_questions:
        Evaluate only these corpora / a seeded sample of this many questions; only the corpora the
        kept questions use are chunked and embedded.
    on_invalid:
        ``"error"`` (default): a bad question row stops the load with its file, row and reason;
        ``"skip"``: such rows are dropped and listed in :attr:`EvaluationResult.skipped` (and in
        ``skipped.jsonl`` next to the results).
    engine, ray_address:
        ``"local"`` (default) runs the stages in this process; ``"ray"`` runs the same stages on a
        Ray cluster (``pip install 'chunkeval[distributed]'``): the one at ``ray_address``, or a
        local one sized to the machine. Both give the same rows.
    """
    from . import __version__

    check_options(k=k, semantics=semantics, units=units, retrieval=retrieval, scope=scope, on_invalid=on_invalid)
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not one of {list(ENGINES)}")
    if not isinstance(k, (str, int)):
        k = [int(v) for v in k]  # a range or an array of cut-offs: plain ints for the engine and the JSON
    if retrieval == "hnsw":
        hnsw = hnsw_params(hnsw)
    elif hnsw:
        raise ValueError(f"hnsw: parameters {sorted(hnsw)} apply to retrieval='hnsw', not {retrieval!r}; drop them")
    if retrieval in ("bm25", "hybrid"):
        hnsw = dict(retrieval_params or {})  # the search stage's parameters for a text retriever
    elif retrieval_params:
        raise ValueError(f"retrieval_params: {sorted(retrieval_params)} apply to retrieval='bm25' or 'hybrid', "
                         f"not {retrieval!r}; drop them")
    unit_tokenizer_name = None
    if units == "tokens":
        from .chunkers.fixed import token_spec
        from .tokenizers import get_tokenizer

        # An unknown tokenizer fails now, not after the embedding; provenance records its spec.
        unit_tokenizer_name = token_spec(get_tokenizer(unit_tokenizer))
    check_out_dir(out_dir)

    t_start = time.perf_counter()
    data = load_dataset(dataset, corpora=corpora, max_questions=max_questions, on_invalid=on_invalid)
    load_time = time.perf_counter() - t_start
    embed_options = {"device": device, "precision": precision, "batch_size": batch_size, "backend": embed_backend}
    embedder_obj = make_embedder(embedder, device=device, precision=precision, batch_size=batch_size,
                                 cache_dir=cache_dir, show_progress=show_progress, backend=embed_backend)
    chunker_obj = make_chunker(chunker, embedder_obj)
    plan = plan_scorer(data, chunker_obj, embedder_obj, units=units, unit_tokenizer=unit_tokenizer_name,
                       semantics=semantics, k=k, retrieval=retrieval, scope=scope, hnsw=hnsw or {}, embed=embed_options)
    attributes = configuration(chunker_obj, embedder_obj, retrieval, scope)
    runner, group_embedder, extra = group_runner(engine, embedder, embedder_obj, ray_address=ray_address,
                                                 embed_options=embed_options, cache_dir=cache_dir)
    group = runner(data, chunker_obj, group_embedder, [plan.scorer], attributes, retrieval=retrieval, scope=scope,
                   hnsw=hnsw, unit_tokenizer=unit_tokenizer, num_threads=num_threads,
                   check_recall=check_hnsw_recall, show_progress=show_progress, **extra)
    table = pa.concat_tables([group.tables[cid] for cid in plan.scorer.config_ids])
    scoring = group.scorings[(units, semantics)]
    result = scoring.metrics

    embed_config = embedder_obj.config() if hasattr(embedder_obj, "config") else {"name": type(embedder_obj).__name__}
    config = {
        "chunkeval_version": __version__,
        "dataset": {"name": data.name, "source": getattr(data, "source", None), "fingerprint": data.fingerprint(),
                    "n_questions": len(data), "corpora": list(data.corpus_ids)},
        "chunker": chunker_obj.config(),
        "n_chunks": len(group.chunks),
        "embedder": embed_config,
        "retrieval": {"method": retrieval, "scope": scope, "k_search": group.k_search, **(hnsw or {}),
                      **({"retriever": group.search.params} if group.search.params else {})},
        "k": k,
        "semantics": semantics,
        "units": units,
        "unit_tokenizer": unit_tokenizer_name,
        "backend": result.backend,
        "config_ids": list(plan.scorer.config_ids),
    }
    summary = result.summary()
    summary["hnsw_recall_vs_exact"] = group.search.hnsw_recall
    timings = {"load": load_time, **group.timings, "total": time.perf_counter() - t_start}
    summary["timings_s"] = dict(timings)
    if hasattr(embedder_obj, "stats"):
        summary["embedding_stats"] = dict(embedder_obj.stats)
    skipped = list(getattr(data, "skipped", []) or [])
    if skipped:
        summary["skipped_rows"] = len(skipped)
    provenance = {cid: {**config, "k": cutoff}
                  for cid, cutoff in zip(plan.scorer.config_ids, plan.cutoffs, strict=True)}
    table = rs.with_provenance(table, provenance)

    out = EvaluationResult(table, summary, config, result, pl.chunk_spans(group.chunks), group.search.table(), timings,
                           skipped=skipped, unit_spans=group.unit_spans.get(units), ranked_ids=group.search.ids)
    if out_dir is not None:
        out.paths = write_evaluation(Path(out_dir), table, config, summary, data)
    return out


def group_runner(engine: str, spec: Any, embedder: Any, *, ray_address: str | None, embed_options: dict[str, Any],
                 cache_dir: Any) -> tuple[Any, Any, dict[str, Any]]:
    """The function that runs a group's stages: :func:`pipeline.run_group` in this process, or the
    Ray executor of :mod:`chunkeval.distributed` (which builds the embedder in its actors from the
    model name, so the spec travels rather than the loaded model)."""
    if engine == "local":
        return pl.run_group, embedder, {"cache_dir": cache_dir}
    from .distributed import run_group_ray

    travelling = spec if isinstance(spec, (str, os.PathLike)) else embedder
    return run_group_ray, travelling, {"ray_address": ray_address, "embed_options": embed_options,
                                       "cache_dir": cache_dir}


def write_evaluation(out: Path, table: pa.Table, config: dict[str, Any], summary: dict[str, Any],
                     data: Any) -> dict[str, str]:
    """``summary.json`` (and ``skipped.jsonl``) first, ``results.parquet`` last: its presence means the
    run finished and the files belong together."""
    from .datasets import write_skipped

    paths: dict[str, str] = {}
    if getattr(data, "skipped", None):
        paths["skipped"] = str(write_skipped(data, out / "skipped.jsonl"))
    write_bytes_atomic(out / "summary.json",
                       json.dumps(rs.jsonable({"config": config, "summary": summary}), indent=2).encode())
    rs.write_results(table, out / "results.parquet")
    return {"results": str(out / "results.parquet"), "summary": str(out / "summary.json"), **paths}


# ------------------------------------------------------------------------- configurations


def make_chunker(spec: Any, embedder: Any) -> Any:
    """A chunker from a spec; chunkers that embed (semantic ones) get the pipeline's embedder."""
    from .chunkers import get_chunker

    return get_chunker(spec, embedder=embedder)


def chunk_size_info(chunker_config: dict[str, Any]) -> tuple[int | None, str | None, int | None]:
    """(chunk_size, size_unit, chunk_overlap) of a chunker's config, for tables and plots."""
    kind = chunker_config.get("type")
    if kind == "sentence":
        return int(chunker_config["sentences_per_chunk"]), "sentences", 0
    if "size" not in chunker_config and "max_size" not in chunker_config:
        return None, None, None
    size = int(chunker_config.get("size", chunker_config.get("max_size", 0)))
    overlap = int(chunker_config.get("overlap", 0))
    in_chars = chunker_config.get("tokenizer") == "chars" or chunker_config.get("length") == "chars"
    unit = "chars" if in_chars else "tokens"
    return size, unit, overlap


def embedder_label(embedder: Any) -> str:
    if isinstance(embedder, (str, os.PathLike)):
        return os.fspath(embedder)
    return str(getattr(embedder, "model_name", None) or getattr(embedder, "name", None) or type(embedder).__name__)


def embedder_key(embedder: Any) -> Any:
    """What decides an embedder's vectors: the model files' fingerprint where there is one (a model
    updated in place gets new configuration ids), else its config or label."""
    if isinstance(getattr(embedder, "fingerprint", None), str):
        return [embedder_label(embedder), embedder.fingerprint]
    if hasattr(embedder, "config") and callable(embedder.config):
        return embedder.config()
    return embedder_label(embedder)


def chunker_key(chunker: Any) -> str:
    # Names are labels (two custom separator lists share one); the config decides the chunks.
    return json.dumps(chunker.config(), sort_keys=True, default=str)


def configuration(chunker: Any, embedder: Any, retrieval: str, scope: str) -> rs.Configuration:
    """The attributes a group's rows share."""
    config = chunker.config()
    size, unit, overlap = chunk_size_info(config)
    return rs.Configuration(chunker=str(config.get("type", type(chunker).__name__)),
                            chunker_spec=str(getattr(chunker, "spec", None) or chunker.name),
                            chunk_size=size, size_unit=unit, chunk_overlap=overlap, embedder=embedder_label(embedder),
                            retrieval=retrieval, scope=scope)


@dataclass(frozen=True)
class PlannedScorer:
    scorer: pl.Scorer
    cutoffs: tuple[int, ...]


def plan_scorer(data: Any, chunker: Any, embedder: Any, *, units: str, unit_tokenizer: str | None,
                semantics: Literal["set", "chroma"],
                k: int | list[int] | str, retrieval: str, scope: str, hnsw: dict[str, Any],
                embed: dict[str, Any]) -> PlannedScorer:
    """One scoring of a (chunker, embedder) pair with a ``config_id`` per cut-off.

    The key covers everything that decides a row: the package version (a finished part is reused
    only by the code that computed it), the dataset's fingerprint and question ids, the chunker's
    config, the embedder's fingerprint and options, retrieval, units, semantics and the cut-off.
    """
    import hashlib

    from . import __version__

    ids_digest = hashlib.sha256("\n".join(str(q["question_id"]) for q in data.questions).encode()).hexdigest()[:16]
    if isinstance(k, str):
        cutoffs: tuple[int, ...] = (rs.K_AUTO,)
    else:
        cutoffs = (int(k),) if isinstance(k, int) else tuple(int(v) for v in k)
    ids = []
    for cutoff in cutoffs:
        key = {"chunkeval": __version__, "dataset": data.fingerprint(), "question_ids": ids_digest,
               "chunker": chunker.config(), "embedder": embedder_key(embedder), "embed": embed,
               "units": units, "unit_tokenizer": unit_tokenizer if units == "tokens" else None,
               "semantics": semantics, "k": cutoff, "retrieval": [retrieval, scope, hnsw]}
        ids.append(rs.config_id(key))
    scorer = pl.Scorer(units, semantics, k if isinstance(k, (str, int)) else list(cutoffs), tuple(ids))
    return PlannedScorer(scorer, cutoffs)
