"""Sweeps: many chunker × size × overlap × embedder × k × units × semantics configurations, one table.

Work is shared wherever the configurations allow: each chunking is made once, each embedder embeds
the questions once and each chunking's texts once (and its on-disk cache means a rerun embeds
nothing), each (chunking, embedder) pair builds one index and searches once for the largest cut-off,
and every cut-off of ``k`` comes from one pass of the metrics engine.

A configuration is one (chunker, embedder, retrieval, units, semantics, k): ``config_id`` hashes
it with the dataset's fingerprint and the embedding settings exactly as :func:`chunkeval.evaluate`
does, so the same configuration has the same id and rows wherever it ran. The rows are the long
results table of :mod:`chunkeval.results`. Each group of the work runs the stage layer
(:func:`chunkeval.pipeline.run_group`). Results are written per configuration as
``parts/<config_id>.parquet`` (atomically) the moment its chunking is scored, and
``results.parquet`` concatenates them at the end; ``sweep.json`` says which were reused. A rerun of
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

import itertools
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._progress import progress
from .retrieval import hnsw_defaults

__all__ = ["SweepConfig", "load_sweep_config", "sweep_config_from_dict", "run_sweep", "add_subparser"]


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
_EMBED_KEYS = {"device", "precision", "batch_size", "backend"}  # make_embedder's model options


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
        elif kind in ("semantic", "cluster_semantic"):
            if overlap:
                continue  # semantic chunks never overlap; one spec per size
            specs.append({"type": "cluster_semantic", "max_size": size, **extra})
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
    _check_mappings(raw, source)
    corpora = raw.get("corpora")
    cfg = SweepConfig(
        dataset=str(raw.get("dataset", "chroma-general")),
        corpora=[corpora] if isinstance(corpora, str) else corpora,
        max_questions=raw.get("max_questions"),
        chunkers=_chunkers_of(raw, source),
        embedders=_as_list(raw.get("embedders", ["all-MiniLM-L6-v2"]), "embedders"),
        k=_k_of(raw, source),
        units=_as_list(raw.get("units", ["chars"]), "units"),
        semantics=_as_list(raw.get("semantics", ["set"]), "semantics"),
        retrieval=dict(raw.get("retrieval", {"method": "hnsw", "scope": "global"})),
        unit_tokenizer=str(raw.get("unit_tokenizer", "cl100k_base")),
        embed=dict(raw.get("embed", {})),
    )
    _check_config(cfg, source)
    return cfg


def _chunkers_of(raw: Mapping[str, Any], source: str) -> list[Any]:
    chunkers = list(_as_list(raw["chunkers"], "chunkers")) if "chunkers" in raw else []
    if "grid" in raw:
        if not isinstance(raw["grid"], Mapping):
            raise ValueError(f"{source}: grid must be a mapping of type/size/overlap lists")
        chunkers += _grid_chunkers(raw["grid"])
    return chunkers or ["fixed:200:0"]


def _k_of(raw: Mapping[str, Any], source: str) -> Any:
    k = raw.get("k", [1, 3, 5, 10])
    if k == "auto":
        return k
    values = _as_list(k, "k")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{source}: k entry {i} is {v!r}; cut-offs are integers >= 1 (or k: auto)")
    return sorted(set(values))


def _check_mappings(raw: Mapping[str, Any], source: str) -> None:
    from .retrievers import BM25_DEFAULTS, HYBRID_DEFAULTS

    retrieval_keys = {"method", "scope", *hnsw_defaults(), *BM25_DEFAULTS, *HYBRID_DEFAULTS}
    for name, known in (("retrieval", retrieval_keys), ("embed", _EMBED_KEYS)):
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ValueError(f"{source}: {name} must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{source}: unknown {name} key(s) {unknown}; known: {sorted(known)}")


def _check_config(cfg: SweepConfig, source: str) -> None:
    for u in cfg.units:
        if u not in ("chars", "tokens"):
            raise ValueError(f"{source}: units entry {u!r} is not 'chars' or 'tokens'")
    for s in cfg.semantics:
        if s not in ("set", "chroma"):
            raise ValueError(f"{source}: semantics entry {s!r} is not 'set' or 'chroma'")
    method = cfg.retrieval.get("method", "hnsw")
    if method not in ("hnsw", "exact", "bm25", "hybrid"):
        raise ValueError(f"{source}: retrieval.method {method!r} is not 'hnsw', 'exact', 'bm25' or 'hybrid'")
    scope = cfg.retrieval.get("scope", "global")
    if scope not in ("global", "corpus"):
        raise ValueError(f"{source}: retrieval.scope {scope!r} is not 'global' or 'corpus'")
    extra = set(cfg.retrieval) - {"method", "scope"}
    if method == "exact" and extra:
        raise ValueError(f"{source}: retrieval keys {sorted(extra)} are HNSW parameters; drop them with method: exact")
    hnsw_keys = set(hnsw_defaults())
    if method in ("bm25", "hybrid") and extra & hnsw_keys:
        raise ValueError(f"{source}: retrieval keys {sorted(extra & hnsw_keys)} are HNSW parameters; drop them with "
                         f"method: {method}")
    if method == "hnsw" and extra - hnsw_keys:
        raise ValueError(f"{source}: retrieval keys {sorted(extra - hnsw_keys)} are BM25/hybrid parameters; "
                         "drop them with method: hnsw")
    for list_name in ("chunkers", "embedders", "units", "semantics"):
        if not getattr(cfg, list_name):
            raise ValueError(f"{source}: {list_name} is empty; give at least one")


def load_sweep_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read a sweep file (``.yaml``/``.yml`` or ``.toml``)."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{path}: no such sweep file")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10 has no tomllib; tomli is the same parser
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


@dataclass(frozen=True)
class _Plan:
    """One scoring of one (chunker, embedder) pair: every cut-off of ``k``, each a configuration."""

    chunker: Any
    embedder: str
    planned: Any  # evaluate.PlannedScorer

    def missing(self, parts_dir: Path) -> Any:
        """The scorer for the cut-offs whose part is not on disk yet, or ``None``."""
        scorer = self.planned.scorer
        todo = [(c, cid) for c, cid in zip(self.planned.cutoffs, scorer.config_ids, strict=False)
                if not (parts_dir / f"{cid}.parquet").exists()]
        if not todo:
            return None
        if len(todo) == len(scorer.config_ids):
            return scorer
        k = [c for c, _ in todo]
        return replace(scorer, k=k, config_ids=tuple(cid for _, cid in todo))


def run_sweep(
    config: SweepConfig, out_dir: str | os.PathLike[str], *, cache_dir: Any = "default",
    num_threads: int | None = None, show_progress: bool | None = None, engine: str = "local",
    ray_address: str | None = None,
) -> Path:
    """Run every configuration not already in ``out_dir/parts`` and return ``out_dir/results.parquet``.

    ``engine="ray"`` runs each (chunker, embedder) group's stages on a Ray cluster (the one at
    ``ray_address``, or a local one); the rows are the same as the local engine's.

    ``out_dir/sweep.json`` lists the configurations, and which of them this run computed and which
    it reused from an earlier run.
    """
    import pyarrow.parquet as pq

    from . import __version__
    from . import pipeline as pl
    from . import results as rs
    from ._io import write_bytes_atomic
    from .evaluate import (
        ENGINES,
        check_out_dir,
        chunker_key,
        configuration,
        embedder_label,
        group_runner,
        load_dataset,
        make_chunker,
        make_embedder,
        plan_scorer,
    )

    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not one of {list(ENGINES)}")

    out = Path(out_dir)
    check_out_dir(out)
    parts_dir = out / "parts"
    data = load_dataset(config.dataset, corpora=config.corpora, max_questions=config.max_questions)
    retrieval = dict(config.retrieval)
    method = retrieval.pop("method", "hnsw")
    scope = retrieval.pop("scope", "global")
    if method == "hnsw":
        from .evaluate import hnsw_params

        retrieval = hnsw_params(retrieval)
    embed = {"device": "auto", "precision": "auto", "batch_size": 64, "backend": "auto", **config.embed}
    # Embedder objects are cheap until they embed (the model loads lazily); the plan needs their
    # fingerprints.
    embedders: dict[str, Any] = {embedder_label(e): make_embedder(e, cache_dir=cache_dir, show_progress=False, **embed)
                                 for e in config.embedders}
    specs = {embedder_label(e): e for e in config.embedders}
    first_embedder = next(iter(embedders.values()))
    # The same chunking listed twice (a spec and the equal dict) would give duplicate config ids.
    chunkers = list({chunker_key(c): c for c in (make_chunker(spec, first_embedder)
                                                 for spec in config.chunker_specs())}.values())
    k: Any = "auto" if config.k == "auto" else sorted(set(config.k))
    unit_tokenizer = config.unit_tokenizer
    if "tokens" in config.units:
        from .chunkers.fixed import token_spec
        from .tokenizers import get_tokenizer

        unit_tokenizer = token_spec(get_tokenizer(config.unit_tokenizer))
    plans = [_Plan(chunker, label, plan_scorer(data, chunker, embedder, units=units, unit_tokenizer=unit_tokenizer,
                                               semantics=pl.semantics_name(semantics), k=k, retrieval=method,
                                               scope=scope,
                                               hnsw=retrieval, embed=embed))
             for chunker in chunkers for label, embedder in embedders.items()
             for units in config.units for semantics in config.semantics]
    all_ids = [cid for p in plans for cid in p.planned.scorer.config_ids]
    parts_dir.mkdir(parents=True, exist_ok=True)
    todo = [(p, p.missing(parts_dir)) for p in plans]
    todo = [(p, s) for p, s in todo if s is not None]
    computed = {cid for _, s in todo for cid in s.config_ids}
    record = {"chunkeval_version": __version__, "dataset": data.name, "fingerprint": data.fingerprint(),
              "n_questions": len(data), "configurations": all_ids,
              "computed": [c for c in all_ids if c in computed], "reused": [c for c in all_ids if c not in computed]}
    write_bytes_atomic(out / "sweep.json", json.dumps(record, indent=2).encode())

    chunkings: dict[str, Any] = {}
    question_vectors: dict[str, np.ndarray] = {}
    with progress(show_progress) as bar:
        task = bar.add_task(f"sweep ({len(all_ids) - len(computed)} of {len(all_ids)} reused)", total=len(computed))
        # Group the work by (chunker, embedder): chunking, embedding and search happen once per pair.
        for (chunker, label), group in itertools.groupby(todo, key=lambda ps: (ps[0].chunker, ps[0].embedder)):
            scorers = [s for _, s in group]
            embedder = embedders[label]
            runner, group_embedder, extra = group_runner(engine, specs[label], embedder, ray_address=ray_address,
                                                         embed_options=embed, cache_dir=cache_dir)
            output = runner(data, chunker, group_embedder, scorers, configuration(chunker, embedder, method, scope),
                            retrieval=method, scope=scope, hnsw=retrieval if method != "exact" else None,
                            unit_tokenizer=config.unit_tokenizer, num_threads=num_threads, check_recall=False,
                            question_vectors=question_vectors.get(label), chunks=chunkings.get(chunker_key(chunker)),
                            show_progress=False, **extra)
            chunkings[chunker_key(chunker)] = output.chunks
            question_vectors[label] = output.question_vectors
            for cid, table in output.tables.items():
                provenance = {cid: _provenance(data, chunker, embedder, table)}
                rs.write_results(table, parts_dir / f"{cid}.parquet", provenance)
                bar.advance(task)
    tables = [pq.read_table(parts_dir / f"{cid}.parquet") for cid in all_ids]
    merged = rs.read_results(tables)
    results = out / "results.parquet"
    rs.write_results(merged, results)
    return results


def _provenance(data: Any, chunker: Any, embedder: Any, table: Any) -> dict[str, Any]:
    from . import __version__

    row = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    return {"chunkeval_version": __version__,
            "dataset": {"name": data.name, "source": getattr(data, "source", None), "fingerprint": data.fingerprint()},
            "chunker": chunker.config(),
            "embedder": embedder.config() if callable(getattr(embedder, "config", None)) else str(embedder),
            **{name: row.get(name) for name in ("retrieval", "scope", "k", "semantics", "units")}}


def _split(text: str | None) -> list[str] | None:
    return [s for s in text.split(",") if s] if text else None


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in _split(text) or []]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: use comma-separated integers, e.g. 1,3,5") from None


SWEEP_EXAMPLES = """examples:
  chunkeval sweep --out sweep/ --types fixed,recursive --sizes 100,200,400 --k 1,3,5,10
  chunkeval sweep sweep.yaml --out sweep/ --units chars,tokens      # a sweep file, flags override it
  chunkeval report sweep/ --out report/"""


def add_subparser(sub: Any) -> None:
    from ._help import HelpFormatter

    p = sub.add_parser(
        "sweep",
        help="evaluate many configurations (chunkers x sizes x embedders x k x units), resumable",
        description="Run a sweep from a YAML/TOML file and/or flags; finished configurations are skipped on "
                    "rerun. Writes OUT/parts/<config_id>.parquet per configuration and OUT/results.parquet "
                    "(the long results table that chunkeval report reads), then prints the results per "
                    "configuration and which ones were reused. Sweep file keys: "
                    + ", ".join(sorted(_KNOWN_KEYS)) + ".",
        epilog=SWEEP_EXAMPLES, formatter_class=HelpFormatter,
    )
    p.add_argument("config", nargs="?", default=None, help="sweep file (.yaml/.toml); flags override its fields")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dataset", default=None, help="bundled dataset name or a folder (chroma-general when unset)")
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
    p.add_argument("--retrieval", choices=["hnsw", "exact", "bm25", "hybrid"], default=None,
                   help="search method (hnsw when unset)")
    p.add_argument("--scope", choices=["global", "corpus"], default=None,
                   help="search all chunks or only the question's corpus (global when unset)")
    p.add_argument("--cache-dir", default="default", help="embedding cache folder, or 'none'")
    p.add_argument("--threads", type=int, default=None, help="threads for the metrics engine (default: all cores)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="run the stages in this process, or on a Ray cluster (pip install 'chunkeval[distributed]')")
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_cli)


def _run_cli(args: Any) -> int:
    config = sweep_config_from_dict(_raw_from_flags(args), args.config or "flags")
    results = run_sweep(config, args.out, cache_dir=None if args.cache_dir == "none" else args.cache_dir,
                        num_threads=args.threads, show_progress=False if args.quiet else None,
                        engine=args.engine, ray_address=args.ray_address)
    print_sweep(results)
    return 0


def _raw_from_flags(args: Any) -> dict[str, Any]:
    """The sweep file's fields (if any) with the flags laid over them."""
    raw: dict[str, Any] = dict(load_sweep_config(args.config).__dict__) if args.config else {}
    simple = {"dataset": args.dataset, "corpora": _split(args.corpora), "max_questions": args.max_questions,
              "embedders": _split(args.embedders), "units": _split(args.units), "semantics": _split(args.semantics)}
    raw.update({key: value for key, value in simple.items() if value is not None})
    chunkers = list(raw.get("chunkers", [])) if args.config else []
    if args.chunkers:
        chunkers = _split(args.chunkers) or []
    if args.sizes or args.types or args.overlaps:
        if not args.sizes:
            raise ValueError("--types/--overlaps build a grid of chunkers and need --sizes, e.g. --sizes 100,200,400")
        grid = {"type": _split(args.types) or ["fixed"], "size": _ints(args.sizes, "--sizes"),
                "overlap": _ints(args.overlaps or "0", "--overlaps")}
        chunkers = list(chunkers) + _grid_chunkers(grid)
    if chunkers:
        raw["chunkers"] = chunkers
    if args.k:
        raw["k"] = "auto" if args.k == "auto" else _ints(args.k, "--k")
    retrieval = dict(raw.get("retrieval", {"method": "hnsw", "scope": "global"}))
    if args.retrieval:
        if args.retrieval != retrieval.get("method", "hnsw"):  # the file's parameters are another method's
            retrieval = {k: v for k, v in retrieval.items() if k == "scope"}
        retrieval["method"] = args.retrieval
    if args.scope:
        retrieval["scope"] = args.scope
    raw["retrieval"] = retrieval
    return raw


def print_sweep(results: Path) -> None:
    """The sweep's configurations with their mean metrics over all questions, and what was reused."""
    from rich.console import Console
    from rich.table import Table

    from .results import read_results

    table = read_results(results)
    record = json.loads((results.parent / "sweep.json").read_text())
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))
    # Means per configuration in Arrow; the rank metrics where the rows have them.
    names = [m for m in ("recall", "precision", "iou", "precision_omega", "mrr", "ndcg")
             if table.column(m).null_count < table.num_rows]
    means = table.group_by(["config_id", "config_label"]).aggregate(
        [("question_id", "count")] + [(m, "mean") for m in names]).to_pylist()
    rows = {r["config_id"]: r for r in means}
    reused = set(record.get("reused", []))
    view = Table(title="sweep results (means over all questions)")
    labels = {"precision_omega": "precision Ω", "mrr": "MRR", "ndcg": "nDCG"}
    for name in ("configuration", *[labels.get(m, m) for m in names], "questions", "id"):
        view.add_column(name, justify="left" if name in ("configuration", "id") else "right")
    for cid, row in sorted(rows.items(), key=lambda item: item[1]["config_label"]):
        view.add_row(row["config_label"], *[f"{row[f'{m}_mean']:.4f}" for m in names], str(row["question_id_count"]),
                     cid + (" (reused)" if cid in reused else ""))
    console.print(view)
    print(f"{len(rows)} configuration(s): {len(record.get('computed', []))} computed, {len(reused)} reused "
          f"from {results.parent / 'parts'}")
    print(f"results: {results}")
