"""Sweeps: many chunker × size × overlap × embedder × k × units × semantics configurations, one table.

Work is shared wherever the configurations allow: each chunking is made once, each embedder embeds
the questions once and each chunking's texts once (and its on-disk cache means a rerun embeds
nothing), each (chunking, embedder) pair builds one index and searches once for the largest cut-off,
and every cut-off of ``k`` comes from one pass of the metrics engine.

Results are written per configuration as ``parts/<config_id>.parquet`` (atomically) the moment a
configuration finishes, and ``results.parquet`` concatenates them at the end. A rerun of the same
sweep skips every configuration whose part exists, so an interrupted sweep loses at most the
configuration in flight.

A sweep file (YAML or TOML)::

    dataset: chroma-general          # or a folder; optional corpora: [finance, pubmed]
    chunkers:                        # explicit specs ...
      - fixed:200:0
      - {type: recursive, size: 400, overlap: 50}
    grid:                            # ... and/or a product of types, sizes and overlaps
      type: [fixed, sentence]
      size: [5, 10, 15, 20]          # sentences for `sentence`, tokens for `fixed`
      overlap: [0]
    embedders: [all-MiniLM-L6-v2]
    k: [1, 3, 5, 10]                 # or auto
    units: [chars, tokens]
    semantics: [set]
    retrieval: {method: hnsw, scope: global, M: 16, ef_construction: 200, ef_search: 100, seed: 0}
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ._progress import progress

__all__ = ["SweepConfig", "load_sweep_config", "run_sweep", "add_subparser", "chunk_size_info"]

RESULT_METRICS = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks")


@dataclass
class SweepConfig:
    """What a sweep varies. Every field is a list of alternatives (the sweep takes their product)."""

    dataset: str = "chroma-general"
    corpora: list[str] | None = None
    max_questions: int | None = None
    chunkers: list[Any] = field(default_factory=lambda: ["fixed:200:0"])
    embedders: list[str] = field(default_factory=lambda: ["all-MiniLM-L6-v2"])
    k: Any = field(default_factory=lambda: [1, 3, 5, 10])
    units: list[str] = field(default_factory=lambda: ["chars"])
    semantics: list[str] = field(default_factory=lambda: ["set"])
    retrieval: dict[str, Any] = field(default_factory=lambda: {"method": "hnsw", "scope": "global"})
    unit_tokenizer: str = "cl100k_base"
    embed: dict[str, Any] = field(default_factory=dict)  # device, precision, batch_size

    def chunker_specs(self) -> list[Any]:
        return list(self.chunkers)


_KNOWN_KEYS = {"dataset", "corpora", "max_questions", "chunkers", "grid", "embedders", "k", "units", "semantics",
               "retrieval", "unit_tokenizer", "embed"}


def _grid_chunkers(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    types = _as_list(grid.get("type", ["fixed"]), "grid.type")
    sizes = _as_list(grid.get("size"), "grid.size")
    overlaps = _as_list(grid.get("overlap", [0]), "grid.overlap")
    extra = {k: v for k, v in grid.items() if k not in ("type", "size", "overlap")}
    specs = []
    for kind, size, overlap in itertools.product(types, sizes, overlaps):
        if kind == "sentence":
            if overlap:
                continue  # sentence chunks never overlap; one spec per size
            specs.append({"type": "sentence", "sentences_per_chunk": size})
        else:
            specs.append({"type": kind, "size": size, "overlap": overlap, **extra})
    # The product repeats sentence specs across overlaps: keep the first of each.
    unique: dict[str, dict[str, Any]] = {}
    for s in specs:
        unique.setdefault(json.dumps(s, sort_keys=True), s)
    return list(unique.values())


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        raise ValueError(f"sweep config: {name} is required")
    return list(value) if isinstance(value, (list, tuple)) else [value]


def sweep_config_from_dict(raw: Mapping[str, Any], source: str = "sweep config") -> SweepConfig:
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; known keys are {sorted(_KNOWN_KEYS)}")
    chunkers = list(raw.get("chunkers", []))
    if "grid" in raw:
        if not isinstance(raw["grid"], Mapping):
            raise ValueError(f"{source}: grid must be a mapping of type/size/overlap lists")
        chunkers += _grid_chunkers(raw["grid"])
    if not chunkers:
        chunkers = ["fixed:200:0"]
    k = raw.get("k", [1, 3, 5, 10])
    if k != "auto":
        k = sorted(set(_as_list(k, "k")))
    cfg = SweepConfig(
        dataset=str(raw.get("dataset", "chroma-general")),
        corpora=raw.get("corpora"),
        max_questions=raw.get("max_questions"),
        chunkers=chunkers,
        embedders=_as_list(raw.get("embedders", ["all-MiniLM-L6-v2"]), "embedders"),
        k=k,
        units=_as_list(raw.get("units", ["chars"]), "units"),
        semantics=_as_list(raw.get("semantics", ["set"]), "semantics"),
        retrieval=dict(raw.get("retrieval", {"method": "hnsw", "scope": "global"})),
        unit_tokenizer=str(raw.get("unit_tokenizer", "cl100k_base")),
        embed=dict(raw.get("embed", {})),
    )
    for u in cfg.units:
        if u not in ("chars", "tokens"):
            raise ValueError(f"{source}: units entry {u!r} is not 'chars' or 'tokens'")
    for s in cfg.semantics:
        if s not in ("set", "chroma"):
            raise ValueError(f"{source}: semantics entry {s!r} is not 'set' or 'chroma'")
    return cfg


def load_sweep_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read a sweep file (``.yaml``/``.yml`` or ``.toml``)."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{path}: no such sweep file")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".toml":
        import tomllib

        raw = tomllib.loads(text)
    elif file.suffix.lower() in (".yaml", ".yml"):
        import yaml

        raw = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"{path}: a sweep file is .yaml, .yml or .toml")
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: the sweep file must hold a mapping at the top level")
    return sweep_config_from_dict(raw, str(path))


def chunk_size_info(chunker_config: Mapping[str, Any]) -> tuple[int, str, int]:
    """(chunk_size, size_unit, chunk_overlap) of a chunker's config, for tables and plots."""
    kind = chunker_config.get("type")
    if kind == "sentence":
        return int(chunker_config["sentences_per_chunk"]), "sentences", 0
    size = int(chunker_config.get("size", chunker_config.get("max_size", 0)))
    overlap = int(chunker_config.get("overlap", 0))
    unit = "chars" if chunker_config.get("tokenizer") == "chars" or chunker_config.get("length") == "chars" else "tokens"
    return size, unit, overlap


def _config_id(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_sweep(
    config: SweepConfig, out_dir: str | os.PathLike[str], *, cache_dir: Any = "default",
    num_threads: int | None = None, show_progress: bool | None = None,
) -> Path:
    """Run every configuration not already in ``out_dir/parts`` and return ``out_dir/results.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import datasets as ds
    from .chunkers import chunk_texts, get_chunker
    from .evaluate import make_embedder, score, search, search_size, write_table_atomic

    out = Path(out_dir)
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    data = ds.load(config.dataset)
    if config.corpora or config.max_questions:
        data = data.subset(corpora=config.corpora, max_questions=config.max_questions)
    texts = list(data.texts)
    refs = data.references()
    question_doc = data.question_doc()
    corpus_ids = np.asarray([q["corpus_id"] for q in data.questions], dtype=object)
    question_ids = [str(q["question_id"]) for q in data.questions]
    fingerprint = data.fingerprint()
    chunkers = [get_chunker(spec) for spec in config.chunker_specs()]
    ks = config.k
    k_values = ["auto"] if ks == "auto" else list(ks)
    retrieval = dict(config.retrieval)
    method = retrieval.pop("method", "hnsw")
    scope = retrieval.pop("scope", "global")

    plan = []
    for chunker in chunkers:
        for embedder in config.embedders:
            for units in config.units:
                for semantics in config.semantics:
                    key = {"dataset": fingerprint, "chunker": chunker.config(), "embedder": embedder,
                           "units": units, "unit_tokenizer": config.unit_tokenizer if units == "tokens" else None,
                           "semantics": semantics, "k": k_values, "retrieval": [method, scope, retrieval],
                           "embed": config.embed}
                    plan.append((chunker, embedder, units, semantics, _config_id(key)))
    (out / "sweep.json").write_text(json.dumps({"dataset": data.name, "fingerprint": fingerprint,
                                                "configurations": [p[4] for p in plan]}, indent=2))
    todo = [p for p in plan if not (parts_dir / f"{p[4]}.parquet").exists()]

    chunkings: dict[str, Any] = {}
    embedders: dict[str, Any] = {}
    question_vectors: dict[str, np.ndarray] = {}
    with progress(show_progress) as bar:
        task = bar.add_task(f"sweep ({len(plan) - len(todo)} of {len(plan)} done before)", total=len(todo))
        # Group the work by (chunker, embedder) so chunking, embedding and search happen once per pair.
        for (chunker, embedder), group in itertools.groupby(todo, key=lambda p: (p[0], p[1])):
            group = list(group)
            if chunker.name not in chunkings:
                chunkings[chunker.name] = chunker.chunk(texts)
            chunks = chunkings[chunker.name]
            if embedder not in embedders:
                embedders[embedder] = make_embedder(embedder, cache_dir=cache_dir, show_progress=False,
                                                    **config.embed)
                question_vectors[embedder] = embedders[embedder].embed([q["question"] for q in data.questions])
            chunk_vectors = embedders[embedder].embed(chunk_texts(chunks, texts))
            # Chroma's auto rule depends on the semantics; search once for the largest need.
            k_search = max(search_size(ks, refs, chunks, s) for s in {p[3] for p in group})
            ids, _, hnsw_recall, _ = search(chunk_vectors, question_vectors[embedder], k_search, method=method,
                                            scope=scope, chunk_doc=chunks.doc, question_doc=question_doc,
                                            hnsw=retrieval, check_recall=False)
            size, size_unit, overlap = chunk_size_info(chunker.config())
            for _, _, units, semantics, config_id in group:
                result = score(refs, chunks, ids, texts, k=ks if ks == "auto" else list(ks), semantics=semantics,
                               units=units, unit_tokenizer=config.unit_tokenizer, num_threads=num_threads)
                table = _result_table(result, question_ids, corpus_ids, k_values, config_id=config_id,
                                      chunker=chunker.name, chunk_size=size, size_unit=size_unit,
                                      chunk_overlap=overlap, embedder=embedder, semantics=semantics, units=units,
                                      n_chunks=len(chunks))
                write_table_atomic(table, parts_dir / f"{config_id}.parquet")
                bar.advance(task)
    tables = [pq.read_table(parts_dir / f"{p[4]}.parquet") for p in plan]
    results = out / "results.parquet"
    write_table_atomic(pa.concat_tables(tables), results)
    return results


def _result_table(result: Any, question_ids: list[str], corpus_ids: np.ndarray, k_values: list[Any],
                  **config_columns: Any) -> Any:
    import pyarrow as pa

    nq = len(question_ids)
    nk = len(k_values)
    cols: dict[str, Any] = {
        "question_id": np.tile(np.asarray(question_ids, dtype=object), nk),
        "corpus_id": np.tile(corpus_ids, nk),
    }
    for name, value in config_columns.items():
        cols[name] = [value] * (nq * nk)
    cols["k"] = np.repeat(np.asarray([-1 if v == "auto" else v for v in k_values], dtype=np.int64), nq)
    for name in ("recall", "precision", "iou"):
        values = getattr(result, name)
        cols[name] = values.T.reshape(-1) if values.ndim == 2 else values
    for name in ("precision_omega", "coverage", "n_evidence_chunks"):
        cols[name] = np.tile(getattr(result, name), nk)
    return pa.table({k: pa.array(v.tolist() if isinstance(v, np.ndarray) and v.dtype == object else v)
                     for k, v in cols.items()})


def _split(text: str | None) -> list[str] | None:
    return [s for s in text.split(",") if s] if text else None


def add_subparser(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="evaluate many configurations (chunkers x sizes x embedders x k x units), resumable",
        description="Run a sweep from a YAML/TOML file and/or flags; finished configurations are skipped on "
                    "rerun. Writes OUT/parts/<config_id>.parquet per configuration and OUT/results.parquet.",
    )
    p.add_argument("config", nargs="?", default=None, help="sweep file (.yaml/.toml); flags override its fields")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dataset", default=None)
    p.add_argument("--corpora", default=None, help="comma-separated corpus ids")
    p.add_argument("--max-questions", type=int, default=None)
    p.add_argument("--chunkers", default=None, help="comma-separated chunker specs, e.g. fixed:100:0,fixed:200:0")
    p.add_argument("--sizes", default=None, help="grid sizes, e.g. 5,10,15,20 (with --types)")
    p.add_argument("--types", default=None, help="grid chunker types, e.g. fixed,sentence")
    p.add_argument("--overlaps", default=None, help="grid overlaps, e.g. 0,50")
    p.add_argument("--embedders", default=None, help="comma-separated model names or paths")
    p.add_argument("--k", default=None, help="cut-offs, e.g. 1,3,5,10, or auto")
    p.add_argument("--units", default=None, help="chars,tokens")
    p.add_argument("--semantics", default=None, help="set,chroma")
    p.add_argument("--retrieval", choices=["hnsw", "exact"], default=None)
    p.add_argument("--scope", choices=["global", "corpus"], default=None)
    p.add_argument("--cache-dir", default="default", help="embedding cache folder, or 'none'")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_run_cli)


def _run_cli(args: Any) -> int:
    raw: dict[str, Any] = {}
    if args.config:
        cfg = load_sweep_config(args.config)
        raw = {k: v for k, v in cfg.__dict__.items()}
    if args.dataset:
        raw["dataset"] = args.dataset
    if args.corpora:
        raw["corpora"] = _split(args.corpora)
    if args.max_questions:
        raw["max_questions"] = args.max_questions
    chunkers = list(raw.get("chunkers", [])) if args.config else []
    if args.chunkers:
        chunkers = _split(args.chunkers)
    if args.sizes or args.types:
        grid = {"type": _split(args.types) or ["fixed"], "size": [int(s) for s in _split(args.sizes) or []],
                "overlap": [int(s) for s in _split(args.overlaps) or ["0"]]}
        chunkers = list(chunkers) + _grid_chunkers(grid)
    if chunkers:
        raw["chunkers"] = chunkers
    if args.embedders:
        raw["embedders"] = _split(args.embedders)
    if args.k:
        raw["k"] = "auto" if args.k == "auto" else [int(v) for v in _split(args.k)]
    if args.units:
        raw["units"] = _split(args.units)
    if args.semantics:
        raw["semantics"] = _split(args.semantics)
    retrieval = dict(raw.get("retrieval", {"method": "hnsw", "scope": "global"}))
    if args.retrieval:
        retrieval["method"] = args.retrieval
    if args.scope:
        retrieval["scope"] = args.scope
    raw["retrieval"] = retrieval
    config = sweep_config_from_dict(raw, args.config or "flags")
    results = run_sweep(config, args.out, cache_dir=None if args.cache_dir == "none" else args.cache_dir,
                        num_threads=args.threads, show_progress=False if args.quiet else None)
    print(f"results: {results}")
    return 0
