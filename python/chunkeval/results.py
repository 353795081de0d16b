"""The results table: one schema that ``evaluate``, ``sweep`` and ``metrics`` write and ``report`` reads.

A results table is *long*: one row per (configuration, question, cut-off ``k``). A configuration is
everything that decides a row's numbers, ``k`` included, so a ``config_id`` has exactly one row per
question and two tables concatenate into one comparison.

======================  ==========================  ==================================================
column                  type                        meaning
======================  ==========================  ==================================================
``config_id``           string                      hash of the configuration (dataset fingerprint,
                                                    chunker config, embedder, retrieval, units,
                                                    semantics, k, package version)
``config_label``        string                      the same configuration in words
``chunker``             string                      kind: ``fixed``, ``recursive``, ``sentence``, …
``chunker_spec``        string                      the full spec (``recursive:400:200``)
``chunk_size``          int64                       size in ``size_unit``
``size_unit``           string                      ``tokens``, ``chars`` or ``sentences``
``chunk_overlap``       int64                       overlap in ``size_unit``
``embedder``            string                      model name or path
``retrieval``           string                      ``hnsw``, ``exact``, or ``given`` (user's lists)
``scope``               string                      ``global`` or ``corpus``
``k``                   int64                       cut-off; ``-1`` is Chroma's ``auto``; ``0`` means
                                                    every retrieved row (``chunkeval metrics``)
``semantics``           string                      ``set`` or ``chroma``
``units``               string                      ``chars`` or ``tokens``
``question_id``         string
``corpus_id``           string                      the question's corpus (the report's domain)
``recall`` …            float64                     ``recall``, ``precision``, ``iou``,
                                                    ``precision_omega``, ``coverage``
``n_evidence_chunks``   int64                       ``-1`` without a chunking
``hit`` …               float64                     rank metrics ``hit``, ``mrr``, ``map``, ``ndcg``,
                                                    ``ndcg_graded`` (docs/metrics.md); null without a
                                                    chunking
``retrieved_chunk_ids`` list<int64>                 the ranked chunk ids scored at this ``k``
``retrieved_scores``    list<float32>               their similarity scores (null when unknown)
``retrieved_spans``     list<struct<corpus_id,      those chunks' character spans
                        start, end>>
``n_chunks``            int64                       cost: chunks embedded and indexed
``embedded_tokens``     int64                       cost: tokens the embedder read for the chunks
``index_bytes``         int64                       cost: size of the search index
======================  ==========================  ==================================================

Configuration attributes a row has no value for (the chunker of a user's own retrieved lists) are
null. The schema metadata holds ``chunkeval.schema`` (this module's :data:`SCHEMA_VERSION`) and
``chunkeval.provenance``: a JSON object mapping each ``config_id`` to its full configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._io import write_parquet_atomic

__all__ = [
    "SCHEMA_VERSION", "SCHEMA", "CONFIG_COLUMNS", "METRIC_COLUMNS", "RANK_COLUMNS", "Configuration", "config_id",
    "jsonable", "results_table", "read_results", "write_results", "provenance", "K_AUTO", "K_ALL",
]

SCHEMA_VERSION = "2"  # 2: the rank metrics (tables of version 1 read with them null)
PROVENANCE_KEY = b"chunkeval.provenance"
SCHEMA_KEY = b"chunkeval.schema"
#: ``k`` of Chroma's ``retrieve=-1`` rule and of "every retrieved row".
K_AUTO, K_ALL = -1, 0

_SPAN = pa.struct([("corpus_id", pa.string()), ("start", pa.int64()), ("end", pa.int64())])
CONFIG_COLUMNS = ("config_id", "config_label", "chunker", "chunker_spec", "chunk_size", "size_unit",
                  "chunk_overlap", "embedder", "retrieval", "scope", "k", "semantics", "units")
METRIC_COLUMNS = ("recall", "precision", "iou", "precision_omega", "coverage")
#: The rank metrics (``span_metrics(..., ranked=True)``): null where no chunking was given.
RANK_COLUMNS = ("hit", "mrr", "map", "ndcg", "ndcg_graded")
SCHEMA = pa.schema([
    ("config_id", pa.string()), ("config_label", pa.string()),
    ("chunker", pa.string()), ("chunker_spec", pa.string()), ("chunk_size", pa.int64()), ("size_unit", pa.string()),
    ("chunk_overlap", pa.int64()), ("embedder", pa.string()), ("retrieval", pa.string()), ("scope", pa.string()),
    ("k", pa.int64()), ("semantics", pa.string()), ("units", pa.string()),
    ("question_id", pa.string()), ("corpus_id", pa.string()),
    *[(name, pa.float64()) for name in METRIC_COLUMNS],
    ("n_evidence_chunks", pa.int64()),
    *[(name, pa.float64()) for name in RANK_COLUMNS],
    ("retrieved_chunk_ids", pa.list_(pa.int64())), ("retrieved_scores", pa.list_(pa.float32())),
    ("retrieved_spans", pa.list_(_SPAN)),
    ("n_chunks", pa.int64()), ("embedded_tokens", pa.int64()), ("index_bytes", pa.int64()),
])
_REQUIRED = ("config_id", "question_id", "corpus_id", "k", *METRIC_COLUMNS)


def jsonable(x: Any) -> Any:
    """Plain JSON values: NaN and infinities (JSON has no literal for them) become null, numpy
    scalars and arrays become Python numbers and lists, paths become strings."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def config_id(key: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit id of a configuration key (any JSON-able mapping)."""
    return hashlib.sha256(json.dumps(jsonable(key), sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Configuration:
    """The attributes every row of one configuration shares (``None`` where one does not apply)."""

    chunker: str | None = None
    chunker_spec: str | None = None
    chunk_size: int | None = None
    size_unit: str | None = None
    chunk_overlap: int | None = None
    embedder: str | None = None
    retrieval: str | None = None
    scope: str | None = None
    k: int = K_ALL
    semantics: str = "set"
    units: str = "chars"

    def at_k(self, k: int) -> Configuration:
        return replace(self, k=int(k))

    def label(self) -> str:
        """``fixed 200 tokens, overlap 0 · all-MiniLM-L6-v2 · hnsw · k=5``; parts that are unknown
        are left out, and non-default semantics/units are named."""
        parts: list[str] = []
        chunking = " ".join(str(v) for v in (self.chunker, self.chunk_size, self.size_unit) if v is not None)
        if chunking and self.chunk_overlap is not None:
            chunking += f", overlap {self.chunk_overlap}"
        if chunking:
            parts.append(chunking)
        if self.embedder:
            parts.append(os.path.basename(self.embedder.rstrip("/")) or self.embedder)
        if self.retrieval:
            parts.append(self.retrieval if self.scope in (None, "global") else f"{self.retrieval} ({self.scope} scope)")
        parts.append({K_AUTO: "k=auto", K_ALL: "k=all"}.get(self.k, f"k={self.k}"))
        if self.semantics != "set":
            parts.append(f"{self.semantics} semantics")
        if self.units != "chars":
            parts.append(f"in {self.units}")
        return " · ".join(parts)


def results_table(
    configuration: Configuration,
    config_id: str,
    *,
    question_ids: Sequence[str],
    corpus_ids: Sequence[str],
    metrics: Mapping[str, np.ndarray],
    retrieved_ids: Sequence[Sequence[int]] | None,
    retrieved_scores: Sequence[Sequence[float]] | None = None,
    retrieved_spans: Sequence[Sequence[tuple[str, int, int]]] | None = None,
    cost: Mapping[str, int | None] | None = None,
) -> pa.Table:
    """The rows of one configuration at one cut-off: one per question, in :data:`SCHEMA`.

    ``metrics`` maps every name of :data:`METRIC_COLUMNS` and ``n_evidence_chunks`` to a
    per-question array, and the names of :data:`RANK_COLUMNS` where they were computed (else
    null); ``retrieved_*`` hold each question's scored rows in rank order (``None``: unknown, e.g.
    chunk ids of a user's own retrieved spans).
    """
    n = len(question_ids)
    if len(corpus_ids) != n or (retrieved_ids is not None and len(retrieved_ids) != n):
        raise ValueError(f"results: {n} question ids, {len(corpus_ids)} corpus ids and "
                         f"{n if retrieved_ids is None else len(retrieved_ids)} retrieved lists; pass one of each "
                         "per question")
    label = configuration.label()
    columns: dict[str, pa.Array] = {
        "config_id": pa.array([config_id] * n, pa.string()),
        "config_label": pa.array([label] * n, pa.string()),
    }
    for name in CONFIG_COLUMNS[2:]:
        columns[name] = pa.array([getattr(configuration, name)] * n, SCHEMA.field(name).type)
    columns["question_id"] = pa.array([str(q) for q in question_ids], pa.string())
    columns["corpus_id"] = pa.array([str(c) for c in corpus_ids], pa.string())
    for name in METRIC_COLUMNS:
        columns[name] = pa.array(np.asarray(metrics[name], dtype=np.float64))
    columns["n_evidence_chunks"] = pa.array(np.asarray(metrics["n_evidence_chunks"], dtype=np.int64))
    for name in RANK_COLUMNS:
        ranks = metrics.get(name)
        columns[name] = (pa.nulls(n, pa.float64()) if ranks is None
                         else pa.array(np.asarray(ranks, dtype=np.float64)))
    columns["retrieved_chunk_ids"] = pa.array(
        [list(map(int, r)) for r in retrieved_ids] if retrieved_ids is not None else [None] * n, pa.list_(pa.int64()))
    columns["retrieved_scores"] = pa.array(
        [list(map(float, s)) for s in retrieved_scores] if retrieved_scores is not None else [None] * n,
        pa.list_(pa.float32()))
    columns["retrieved_spans"] = pa.array(
        [[{"corpus_id": c, "start": int(s), "end": int(e)} for c, s, e in row] for row in retrieved_spans]
        if retrieved_spans is not None else [None] * n, pa.list_(_SPAN))
    for name in ("n_chunks", "embedded_tokens", "index_bytes"):
        value = (cost or {}).get(name)
        columns[name] = pa.array([value] * n, pa.int64())
    return pa.table(columns, schema=SCHEMA)


def provenance(table: pa.Table) -> dict[str, Any]:
    """``{config_id: configuration}`` from a results table's metadata (empty when it has none)."""
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    if not raw:
        return {}
    value = json.loads(raw)
    return dict(value) if isinstance(value, dict) else {}


def with_provenance(table: pa.Table, configs: Mapping[str, Any]) -> pa.Table:
    """``table`` with its metadata naming the schema version and each configuration in full."""
    meta = {SCHEMA_KEY: SCHEMA_VERSION.encode(), PROVENANCE_KEY: json.dumps(jsonable(dict(configs))).encode()}
    return table.replace_schema_metadata(meta)


def write_results(table: pa.Table, path: str | os.PathLike[str], configs: Mapping[str, Any] | None = None) -> Path:
    """Write a results table atomically as Parquet (or CSV for a ``.csv`` path, without the list
    columns, which CSV cannot hold), with its provenance."""
    out = Path(path)
    merged = {**provenance(table), **(configs or {})}
    table = with_provenance(table, merged)
    if out.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        from ._io import write_bytes_atomic

        flat = table.drop_columns([f.name for f in table.schema if pa.types.is_list(f.type)])
        buffer = pa.BufferOutputStream()
        pcsv.write_csv(flat, buffer)
        write_bytes_atomic(out, buffer.getvalue().to_pybytes())
    else:
        write_parquet_atomic(out, table)
    return out


def _files(source: str | os.PathLike[str]) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        if (path / "results.parquet").is_file():
            return [path / "results.parquet"]
        found = sorted(path.glob("*.parquet")) or sorted((path / "parts").glob("*.parquet"))
        if not found:
            raise ValueError(f"results: folder {path} holds no results.parquet and no *.parquet files; "
                             "pass the --out folder of evaluate, sweep or metrics")
        return found
    if not path.is_file():
        raise ValueError(f"results: {path} does not exist; pass a results .parquet file or the folder holding it")
    return [path]


def conform(table: pa.Table, source: str = "results") -> pa.Table:
    """``table`` in :data:`SCHEMA`: missing optional columns become nulls, types are cast; a missing
    required column or an uncastable one is a ``ValueError`` naming the source."""
    missing = [c for c in _REQUIRED if c not in table.column_names]
    if missing:
        hint = ""
        if any("@" in c for c in table.column_names):
            hint = " (this looks like a wide table of an older chunkeval; rerun the evaluation to write the long table)"
        raise ValueError(f"{source}: the table lacks column(s) {missing}, so it is not a chunkeval results "
                         f"table{hint}; results tables have {list(_REQUIRED)}")
    columns = []
    for field in SCHEMA:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(f"{source}: column {field.name} has type {column.type}, expected {field.type}") from None
    return pa.Table.from_arrays(columns, schema=SCHEMA.with_metadata(table.schema.metadata))


def _check_disjoint(tables: list[pa.Table], names: list[str]) -> None:
    """No (configuration, question) in two sources. Configurations are few and questions many, so
    only the questions of a configuration that two sources share are compared, in Arrow."""
    import pyarrow.compute as pc

    seen: dict[str, list[tuple[int, pa.Array]]] = {}  # config_id -> (source, its question ids)
    for index, table in enumerate(tables):
        for cid in table.column("config_id").unique().to_pylist():
            questions = table.filter(pc.equal(table["config_id"], cid)).column("question_id").combine_chunks()
            for first, earlier in seen.get(cid, []):
                both = pc.is_in(questions, value_set=earlier.unique())
                if pc.any(both).as_py():
                    question = questions.filter(both)[0].as_py()
                    raise ValueError(f"results: configuration {cid} scores question {question!r} in both "
                                     f"{names[first]} and {names[index]}; pass each run once")
            seen.setdefault(cid, []).append((index, questions))


def read_results(*sources: str | os.PathLike[str] | pa.Table | Iterable[str | os.PathLike[str] | pa.Table]) -> pa.Table:
    """One results table from Parquet files, folders (their ``results.parquet``, else every
    ``*.parquet`` in them, else ``parts/*.parquet``) and tables, concatenated in order.

    The same (``config_id``, ``question_id``) twice is an error naming both sources: each run is
    passed once. The provenance of every source is merged.
    """
    flat: list[str | os.PathLike[str] | pa.Table] = []
    for source in sources:
        if isinstance(source, (str, os.PathLike, pa.Table)):
            flat.append(source)
        else:
            flat.extend(source)
    if not flat:
        raise ValueError("results: no input; pass one or more results files or folders")
    tables: list[pa.Table] = []
    names: list[str] = []
    configs: dict[str, Any] = {}
    for source in flat:
        if isinstance(source, pa.Table):
            tables.append(conform(source))
            names.append("a table")
            configs.update(provenance(source))
            continue
        for file in _files(source):
            try:
                raw = pq.read_table(file)
            except (pa.ArrowInvalid, OSError) as exc:
                reason = " ".join(str(exc).split())
                raise ValueError(f"results: {file} is not a readable Parquet file ({reason})") from None
            tables.append(conform(raw, str(file)))
            names.append(str(file))
            configs.update(provenance(raw))
    _check_disjoint(tables, names)
    merged = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    return with_provenance(merged, configs)
