"""Chunkers that return exact character spans (:class:`~chunkeval.spans.Spans`).

Every chunker has ``chunk(texts) -> Spans`` (``doc`` = index into ``texts``; rows sorted by doc,
then start; no empty span; deterministic), a short :attr:`~Chunker.name` and ``config()`` for
provenance. See :func:`get_chunker` for the spec syntax used by the CLI and sweeps.
"""

from __future__ import annotations

from typing import Any, Mapping

from .adapters import OffsetChunker, TextChunker
from .base import Chunker, chunk_texts
from .fixed import FixedTokenChunker
from .recursive import DEFAULT_SEPARATORS, RecursiveChunker
from .semantic import ClusterSemanticChunker
from .sentence import SentenceChunker, sentence_spans

__all__ = [
    "Chunker",
    "ClusterSemanticChunker",
    "FixedTokenChunker",
    "RecursiveChunker",
    "SentenceChunker",
    "OffsetChunker",
    "TextChunker",
    "DEFAULT_SEPARATORS",
    "chunk_texts",
    "get_chunker",
    "sentence_spans",
]

_SPEC_HELP = (
    "use 'fixed:<size>[:<overlap>[:<tokenizer>]]', 'recursive:<size>[:<overlap>[:<tokenizer>|chars]]', "
    "'sentence:<n>', or a dict such as {'type': 'recursive', 'size': 400}"
)


def get_chunker(spec: str | Mapping[str, Any] | Chunker) -> Chunker:
    """Build a chunker from a spec string or a config dict.

    String specs (fields separated by ``:``; omitted fields take their defaults):

    - ``fixed:<size>[:<overlap>[:<tokenizer>]]`` → :class:`FixedTokenChunker`; ``tokenizer`` is
      any :func:`~chunkeval.tokenizers.get_tokenizer` spec, default ``cl100k_base``, ``chars`` for
      character windows (``fixed:200:0``, ``fixed:1000:100:chars``, ``fixed:256:0:hf:/models/e5``).
    - ``recursive:<size>[:<overlap>[:<tokenizer>|chars]]`` → :class:`RecursiveChunker` with the
      default separators; ``chars`` measures size in characters (``recursive:400:0``,
      ``recursive:800:0:chars``).
    - ``sentence:<n>`` → :class:`SentenceChunker` with ``n`` sentences per chunk.

    Dict specs hold ``"type"`` plus the constructor's keyword arguments, exactly what
    ``chunker.config()`` returns, so ``get_chunker(c.config()) == c`` for the built-in chunkers:
    ``{"type": "fixed", "size": 200, "overlap": 0, "tokenizer": "cl100k_base"}``,
    ``{"type": "recursive", "size": 400, "separators": ["\\n\\n", " ", ""], "length": "chars"}``,
    ``{"type": "sentence", "sentences_per_chunk": 5}``; ``{"type": "cluster_semantic", ...}``
    builds ``ClusterSemanticChunker`` from :mod:`chunkeval.chunkers.semantic`.
    A :class:`Chunker` instance is returned unchanged.
    """
    if isinstance(spec, Chunker):
        return spec
    if isinstance(spec, str):
        return _from_string(spec)
    if isinstance(spec, Mapping):
        return _from_dict(spec)
    raise TypeError(f"chunker spec must be a str or a dict, got {type(spec).__name__}; {_SPEC_HELP}")


def _int_field(value: str, field: str, spec: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"chunker spec {spec!r}: {field} {value!r} is not an integer; {_SPEC_HELP}") from None


def _from_string(spec: str) -> Chunker:
    kind, _, rest = spec.strip().partition(":")
    fields = rest.split(":") if rest else []
    if kind in ("fixed", "recursive"):
        if not fields or not fields[0]:
            raise ValueError(f"chunker spec {spec!r} lacks a size; e.g. '{kind}:200:0'")
        size = _int_field(fields[0], "size", spec)
        overlap = _int_field(fields[1], "overlap", spec) if len(fields) > 1 and fields[1] else 0
        tokenizer = ":".join(fields[2:]) or "cl100k_base"
        if kind == "fixed":
            return FixedTokenChunker(size=size, overlap=overlap, tokenizer=tokenizer)
        if tokenizer == "chars":
            return RecursiveChunker(size=size, overlap=overlap, length="chars")
        return RecursiveChunker(size=size, overlap=overlap, tokenizer=tokenizer)
    if kind == "sentence":
        if len(fields) != 1 or not fields[0]:
            raise ValueError(f"chunker spec {spec!r}: expected 'sentence:<n>', e.g. 'sentence:5'")
        return SentenceChunker(_int_field(fields[0], "sentences_per_chunk", spec))
    raise ValueError(f"unknown chunker spec {spec!r}; {_SPEC_HELP}")


def _from_dict(spec: Mapping[str, Any]) -> Chunker:
    params = dict(spec)
    kind = params.pop("type", None)
    builders: dict[str, Any] = {
        "fixed": FixedTokenChunker,
        "recursive": RecursiveChunker,
        "sentence": SentenceChunker,
    }
    if kind in ("cluster_semantic", "semantic"):
        from .semantic import ClusterSemanticChunker

        builder = ClusterSemanticChunker
    elif kind in builders:
        builder = builders[kind]
    elif kind in ("offsets", "text"):
        raise ValueError(
            f"chunker spec type {kind!r} wraps a Python function and cannot be rebuilt from a dict; "
            "construct OffsetChunker/TextChunker in code"
        )
    else:
        raise ValueError(f"chunker spec {dict(spec)!r} has unknown or missing 'type' {kind!r}; {_SPEC_HELP}")
    if kind == "recursive" and params.get("tokenizer", "") is None:
        params.pop("tokenizer")  # config() of a character-measured chunker records no tokenizer
    try:
        return builder(**params)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "positional argument" in str(exc):
            raise ValueError(f"chunker spec {dict(spec)!r}: {exc}") from None
        raise
