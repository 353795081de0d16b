"""Sweeps: many chunker × size × overlap × embedder × k × units × semantics configurations, one table.

Work is shared wherever the configurations allow: each chunking is made once, each embedder embeds
the questions once and each chunking's texts once (and its on-disk cache means a rerun embeds
nothing), each (chunking, embedder) pair builds one index and searches once for the largest cut-off,
and every cut-off of ``k`` comes from one pass of the metrics engine.

A configuration is one (chunker, embedder, units, semantics, k): ``config_id`` hashes it with the
dataset's fingerprint, the retrieval and the embedding settings, so each row of the results names
exactly one configuration (what :mod:`chunkeval.report` compares). ``k = -1`` in the table stands
for ``auto``; ``chunker`` is the chunker without its size and overlap (``fixed``, ``sentence``), so
a report draws one line per chunker against ``chunk_size``, and ``chunker_name`` the full name. Results are written per configuration as ``parts/<config_id>.parquet`` (atomically)
the moment its chunking is scored, and ``results.parquet`` concatenates them at the end. A rerun of
the same sweep skips every configuration whose part exists, so an interrupted sweep loses at most
the (chunking, embedder) pair in flight.

A sweep file (YAML or TOML)::

    dataset: chroma-general          # or a folder; optional corpora: [finance, pubmed], max_questions: 100
    chunkers:                        # explicit specs ...
      - fixed:200:0
      - {type: recursive, size: 400, overlap: 50}
    grid:                            # ... and/or a product of types, sizes and overlaps
      type: [fixed, sentence]
      size: [5, 10, 15, 20]          # sentences for `sentence`, tokens for `fixed`
      overlap: [0]
    embedders: [all-MiniLM-L6-v2]
    k: [1, 3, 5, 10]                 # or auto
    units: [chars, tokens]           # tokens of unit_tokenizer (default cl100k_base)
    semantics: [set]
    retrieval: {method: hnsw, scope: global, M: 16, ef_construction: 200, ef_search: 100, seed: 0}
    embed: {device: auto, precision: auto, batch_size: 64}

Unknown keys, at the top level and inside ``retrieval`` and ``embed``, are errors.
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
from .retrieval import hnsw_defaults

__all__ = ["SweepConfig", "load_sweep_config", "sweep_config_from_dict", "run_sweep", "add_subparser",
           "chunk_size_info", "chunker_label"]

RESULT_METRICS = ("recall", "precision", "iou", "precision_omega", "coverage", "n_evidence_chunks")


@dataclass
class SweepConfig:
    """What a sweep varies. Every field is a list of alternatives (the sweep takes their product)."""

    dataset: str = "chroma-general"
    corpora: list[str] | None = None
    max_questions: int | None = None
    chunkers: list[Any] = field(default_factory=lambda: ["fixed:200:0"])
    # Model names or paths; from Python also objects with ``embed(texts)`` (labelled by their
    # ``name`` attribute, identified by ``config()`` when they have one, as evaluate() accepts them).
    embedders: list[Any] = field(default_factory=lambda: ["all-MiniLM-L6-v2"])
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
_EMBED_KEYS = {"device", "precision", "batch_size"}  # make_embedder's model options


def _grid_chunkers(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    types = _as_list(grid.get("type", ["fixed"]), "grid.type")
    sizes = _as_list(grid.get("size"), "grid.size")
    overlaps = _as_list(grid.get("overlap", [0]), "grid.overlap")
    for name, values in (("grid.type", types), ("grid.size", sizes), ("grid.overlap", overlaps)):
        if not values:
            # An empty list would silently sweep nothing (or fall back to the default chunker).
            raise ValueError(f"sweep config: {name} is empty; give at least one value")
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
    chunkers = list(_as_list(raw["chunkers"], "chunkers")) if "chunkers" in raw else []
    if "grid" in raw:
        if not isinstance(raw["grid"], Mapping):
            raise ValueError(f"{source}: grid must be a mapping of type/size/overlap lists")
        chunkers += _grid_chunkers(raw["grid"])
    if not chunkers:
        chunkers = ["fixed:200:0"]
    k = raw.get("k", [1, 3, 5, 10])
    if k != "auto":
        k = _as_list(k, "k")
        for i, v in enumerate(k):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{source}: k entry {i} is {v!r}; cut-offs are integers >= 1 (or k: auto)")
        k = sorted(set(k))
    retrieval_keys = {"method", "scope", *hnsw_defaults()}
    for name, known in (("retrieval", retrieval_keys), ("embed", _EMBED_KEYS)):
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ValueError(f"{source}: {name} must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{source}: unknown {name} key(s) {unknown}; known: {sorted(known)}")
    corpora = raw.get("corpora")
    cfg = SweepConfig(
        dataset=str(raw.get("dataset", "chroma-general")),
        corpora=[corpora] if isinstance(corpora, str) else corpora,
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
    method = cfg.retrieval.get("method", "hnsw")
    if method not in ("hnsw", "exact"):
        raise ValueError(f"{source}: retrieval.method {method!r} is not 'hnsw' or 'exact'")
    scope = cfg.retrieval.get("scope", "global")
    if scope not in ("global", "corpus"):
        raise ValueError(f"{source}: retrieval.scope {scope!r} is not 'global' or 'corpus'")
    if method == "exact" and set(cfg.retrieval) - {"method", "scope"}:
        raise ValueError(f"{source}: retrieval keys {sorted(set(cfg.retrieval) - {'method', 'scope'})} are HNSW "
                         "parameters; drop them with method: exact")
    for list_name in ("chunkers", "embedders", "units", "semantics"):
        if not getattr(cfg, list_name):
            raise ValueError(f"{source}: {list_name} is empty; give at least one")
    return cfg


def load_sweep_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read a sweep file (``.yaml``/``.yml`` or ``.toml``)."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{path}: no such sweep file")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10 has no tomllib; tomli is the same parser
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ValueError(f"{path}: reading TOML on Python 3.10 needs tomli (pip install tomli), "
                                 "or write the sweep file in YAML") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    elif file.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
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


def chunker_label(chunker: Any) -> str:
    """The chunker without its size and overlap (``fixed``, ``recursive:chars``, ``sentence``), so a
    report can draw one line per chunker against ``chunk_size``; other chunkers keep their name."""
    kind = chunker.config().get("type")
    parts = str(chunker.name).split(":")
    if kind in ("fixed", "recursive") and len(parts) >= 3:
        return ":".join([parts[0]] + parts[3:])  # name is kind:size:overlap[:tokenizer|chars][:...]
    if kind == "sentence":
        return "sentence"
    return str(chunker.name)


def _config_id(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _embedder_label(embedder: Any) -> str:
    if isinstance(embedder, (str, os.PathLike)):
        return os.fspath(embedder)
    return str(getattr(embedder, "name", None) or type(embedder).__name__)


def _embedder_key(embedder: Any) -> Any:
    """What decides an embedder's vectors: the model files' fingerprint where there is one (a model
    updated in place gets new configuration ids), else its config or label."""
    if isinstance(getattr(embedder, "fingerprint", None), str):
        return [_embedder_label(embedder), embedder.fingerprint]
    if hasattr(embedder, "config") and callable(embedder.config):
        return embedder.config()
    return _embedder_label(embedder)


def _chunker_key(chunker: Any) -> str:
    # Names are labels (two custom separator lists share one); the config decides the chunks.
    return json.dumps(chunker.config(), sort_keys=True, default=str)


@dataclass(frozen=True)
class _Run:
    """One configuration of the plan."""

    chunker: Any
    embedder: str
    units: str
    semantics: str
    k: Any  # an int, or "auto"
    config_id: str


def run_sweep(
    config: SweepConfig, out_dir: str | os.PathLike[str], *, cache_dir: Any = "default",
    num_threads: int | None = None, show_progress: bool | None = None,
) -> Path:
    """Run every configuration not already in ``out_dir/parts`` and return ``out_dir/results.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import __version__
    from . import datasets as ds
    from .chunkers import chunk_texts, get_chunker
    from ._io import write_bytes_atomic, write_parquet_atomic
    from .evaluate import make_embedder, score_units, search, search_size, to_units

    out = Path(out_dir)
    parts_dir = out / "parts"
    data = ds.load(config.dataset)
    # `is not None`: max_questions=0 or corpora=[] ask for nothing, not for everything.
    if config.corpora is not None or config.max_questions is not None:
        data = data.subset(corpora=config.corpora, max_questions=config.max_questions)
    if len(data) == 0:
        raise ValueError(f"sweep: no questions to evaluate (corpora={config.corpora!r}, "
                         f"max_questions={config.max_questions!r}); name corpora that have questions")
    texts = list(data.texts)
    refs = data.references()
    question_doc = data.question_doc()
    corpus_ids = np.asarray([q["corpus_id"] for q in data.questions], dtype=object)
    question_ids = [str(q["question_id"]) for q in data.questions]
    fingerprint = data.fingerprint()
    # The same chunking listed twice (a spec and the equal dict) would give duplicate config ids.
    chunkers = list({_chunker_key(c): c for c in (get_chunker(spec) for spec in config.chunker_specs())}.values())
    embedder_specs = {_embedder_label(e): e for e in config.embedders}
    k_values = ["auto"] if config.k == "auto" else sorted(set(config.k))
    retrieval = dict(config.retrieval)
    method = retrieval.pop("method", "hnsw")
    scope = retrieval.pop("scope", "global")

    # Embedder objects are cheap until they embed (the model loads lazily); the plan needs their
    # fingerprints.
    embedders: dict[str, Any] = {label: make_embedder(spec, cache_dir=cache_dir, show_progress=False, **config.embed)
                                 for label, spec in embedder_specs.items()}
    # The fingerprint covers texts and references; the parts also carry the question ids.
    ids_digest = hashlib.sha256("\n".join(question_ids).encode()).hexdigest()[:16]
    plan: list[_Run] = []
    for chunker in chunkers:
        for embedder in embedder_specs:
            for units in config.units:
                for semantics in config.semantics:
                    for k in k_values:
                        # The package version is part of the key: a finished part is reused
                        # only by the code that computed it.
                        key = {"chunkeval": __version__, "dataset": fingerprint, "question_ids": ids_digest,
                               "chunker": chunker.config(),
                               "embedder": _embedder_key(embedders[embedder]),
                               "units": units, "unit_tokenizer": config.unit_tokenizer if units == "tokens" else None,
                               "semantics": semantics, "k": k, "retrieval": [method, scope, retrieval],
                               "embed": config.embed}
                        plan.append(_Run(chunker, embedder, units, semantics, k, _config_id(key)))
    parts_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "sweep.json", json.dumps({
        "chunkeval_version": __version__, "dataset": data.name, "fingerprint": fingerprint,
        "n_questions": len(data), "configurations": [r.config_id for r in plan]}, indent=2).encode())
    todo = [r for r in plan if not (parts_dir / f"{r.config_id}.parquet").exists()]

    chunkings: dict[str, Any] = {}
    question_vectors: dict[str, np.ndarray] = {}
    with progress(show_progress) as bar:
        task = bar.add_task(f"sweep ({len(plan) - len(todo)} of {len(plan)} done before)", total=len(todo))
        # Group the work by (chunker, embedder) so chunking, embedding and search happen once per pair.
        for (chunker, embedder), pair in itertools.groupby(todo, key=lambda r: (r.chunker, r.embedder)):
            pair = list(pair)
            key = _chunker_key(chunker)
            if key not in chunkings:
                chunkings[key] = chunker.chunk(texts, show_progress=False)  # the sweep's bar is on screen
            chunks = chunkings[key]
            # Chunks before questions, as evaluate() does: precision="auto" calibrates on the first
            # texts it sees (the longest of them), so both pick the same precision and vectors.
            chunk_vectors = embedders[embedder].embed(chunk_texts(chunks, texts))
            if embedder not in question_vectors:
                question_vectors[embedder] = embedders[embedder].embed([q["question"] for q in data.questions])
            unit_spans = {units: to_units(refs, chunks, texts, units, config.unit_tokenizer)
                          for units in dict.fromkeys(r.units for r in pair)}
            # One search serves every k: the largest cut-off, or Chroma's auto rule in each scored
            # units and semantics (the evidence chunks are counted there).
            k_search = max(search_size(config.k, unit_spans[u].references, unit_spans[u].chunks, s)
                           for u, s in {(r.units, r.semantics) for r in pair})
            ids, _, _, _ = search(chunk_vectors, question_vectors[embedder], k_search, method=method,
                                  scope=scope, chunk_doc=chunks.doc, question_doc=question_doc,
                                  hnsw=retrieval, check_recall=False)
            size, size_unit, overlap = chunk_size_info(chunker.config())
            for (units, semantics), runs in itertools.groupby(pair, key=lambda r: (r.units, r.semantics)):
                runs = list(runs)
                ks = [r.k for r in runs]
                # Every missing cut-off of this scoring in one pass of the metrics engine.
                result = score_units(unit_spans[units], ids, k="auto" if ks == ["auto"] else ks,
                                     semantics=semantics, num_threads=num_threads)
                for run in runs:
                    table = _result_table(result if run.k == "auto" else result.at(run.k), question_ids,
                                          corpus_ids, run.k, config_id=run.config_id,
                                          chunker=chunker_label(chunker), chunker_name=chunker.name,
                                          chunk_size=size, size_unit=size_unit, chunk_overlap=overlap,
                                          embedder=embedder, semantics=semantics, units=units,
                                          n_chunks=len(chunks))
                    write_parquet_atomic(parts_dir / f"{run.config_id}.parquet", table)
                    bar.advance(task)
    tables = [pq.read_table(parts_dir / f"{r.config_id}.parquet") for r in plan]
    results = out / "results.parquet"
    write_parquet_atomic(results, pa.concat_tables(tables))
    return results


def _result_table(result: Any, question_ids: list[str], corpus_ids: np.ndarray, k: Any,
                  **config_columns: Any) -> Any:
    """One configuration's rows: one per question, metrics of a single cut-off."""
    import pyarrow as pa

    nq = len(question_ids)
    cols: dict[str, Any] = {"question_id": pa.array(question_ids, pa.string()),
                            "corpus_id": pa.array(corpus_ids.tolist(), pa.string())}
    for name, value in config_columns.items():
        cols[name] = pa.array([value] * nq)
    cols["k"] = pa.array(np.full(nq, -1 if k == "auto" else int(k), dtype=np.int64))
    for name in RESULT_METRICS:
        cols[name] = pa.array(getattr(result, name))
    return pa.table(cols)


def _split(text: str | None) -> list[str] | None:
    return [s for s in text.split(",") if s] if text else None


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in _split(text) or []]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: use comma-separated integers, e.g. 1,3,5") from None


def add_subparser(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="evaluate many configurations (chunkers x sizes x embedders x k x units), resumable",
        description="Run a sweep from a YAML/TOML file and/or flags; finished configurations are skipped on "
                    "rerun. Writes OUT/parts/<config_id>.parquet per configuration and OUT/results.parquet.",
    )
    p.add_argument("config", nargs="?", default=None, help="sweep file (.yaml/.toml); flags override its fields")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dataset", default=None, help="bundled dataset name or a folder (default: chroma-general)")
    p.add_argument("--corpora", default=None, help="comma-separated corpus ids")
    p.add_argument("--max-questions", type=int, default=None, help="score only this many questions (seeded sample)")
    p.add_argument("--chunkers", default=None, help="comma-separated chunker specs, e.g. fixed:100:0,fixed:200:0")
    p.add_argument("--sizes", default=None, help="grid sizes, e.g. 5,10,15,20 (with --types)")
    p.add_argument("--types", default=None, help="grid chunker types, e.g. fixed,sentence")
    p.add_argument("--overlaps", default=None, help="grid overlaps, e.g. 0,50")
    p.add_argument("--embedders", default=None, help="comma-separated model names or paths")
    p.add_argument("--k", default=None, help="cut-offs, e.g. 1,3,5,10, or auto")
    p.add_argument("--units", default=None, help="chars,tokens")
    p.add_argument("--semantics", default=None, help="set,chroma")
    p.add_argument("--retrieval", choices=["hnsw", "exact"], default=None, help="search method (default: hnsw)")
    p.add_argument("--scope", choices=["global", "corpus"], default=None,
                   help="search all chunks or only the question's corpus (default: global)")
    p.add_argument("--cache-dir", default="default", help="embedding cache folder, or 'none'")
    p.add_argument("--threads", type=int, default=None, help="threads for the metrics engine (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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
    if args.max_questions is not None:
        raw["max_questions"] = args.max_questions
    chunkers = list(raw.get("chunkers", [])) if args.config else []
    if args.chunkers:
        chunkers = _split(args.chunkers)
    if args.sizes or args.types or args.overlaps:
        if not args.sizes:
            raise ValueError("--types/--overlaps build a grid of chunkers and need --sizes, e.g. --sizes 100,200,400")
        grid = {"type": _split(args.types) or ["fixed"], "size": _ints(args.sizes, "--sizes"),
                "overlap": _ints(args.overlaps or "0", "--overlaps")}
        chunkers = list(chunkers) + _grid_chunkers(grid)
    if chunkers:
        raw["chunkers"] = chunkers
    if args.embedders:
        raw["embedders"] = _split(args.embedders)
    if args.k:
        raw["k"] = "auto" if args.k == "auto" else _ints(args.k, "--k")
    if args.units:
        raw["units"] = _split(args.units)
    if args.semantics:
        raw["semantics"] = _split(args.semantics)
    retrieval = dict(raw.get("retrieval", {"method": "hnsw", "scope": "global"}))
    if args.retrieval:
        if args.retrieval == "exact":  # the file's HNSW parameters do not apply to an exact search
            retrieval = {k: v for k, v in retrieval.items() if k == "scope"}
        retrieval["method"] = args.retrieval
    if args.scope:
        retrieval["scope"] = args.scope
    raw["retrieval"] = retrieval
    config = sweep_config_from_dict(raw, args.config or "flags")
    results = run_sweep(config, args.out, cache_dir=None if args.cache_dir == "none" else args.cache_dir,
                        num_threads=args.threads, show_progress=False if args.quiet else None)
    print(f"results: {results}")
    return 0
