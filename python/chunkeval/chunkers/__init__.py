"""Chunkers that return exact character spans (:class:`~chunkeval.spans.Spans`).

Every chunker has ``chunk(texts) -> Spans`` (``doc`` = index into ``texts``; rows sorted by doc,
then start; no empty or whitespace-only span; deterministic), a short :attr:`~Chunker.name`, a
:attr:`~Chunker.spec` string that :func:`get_chunker` rebuilds it from, and ``config()`` for
provenance. :data:`CHUNKER_SPEC_HELP` summarises the spec grammar.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .adapters import OffsetChunker, TextChunker, import_function
from .base import Chunker, chunk_texts
from .ecosystem import (
    LIBRARIES,
    LibraryChunker,
    from_chonkie,
    from_langchain,
    from_llamaindex,
    library_chunker_from_spec,
    library_spec,
)
from .fixed import FixedTokenChunker
from .recursive import DEFAULT_SEPARATORS, RecursiveChunker
from .semantic import ClusterSemanticChunker, EmbedderLike, embedder_label
from .sentence import SentenceChunker, sentence_spans
from .spec import CHUNKER_SPEC_HELP, SpecValue, parse_spec, spec_forms

__all__ = [
    "CHUNKER_SPEC_HELP",
    "Chunker",
    "ClusterSemanticChunker",
    "EmbedderLike",
    "FixedTokenChunker",
    "LibraryChunker",
    "RecursiveChunker",
    "SentenceChunker",
    "OffsetChunker",
    "TextChunker",
    "DEFAULT_SEPARATORS",
    "chunk_texts",
    "from_chonkie",
    "from_langchain",
    "from_llamaindex",
    "get_chunker",
    "sentence_spans",
]


def get_chunker(spec: str | Mapping[str, Any] | Chunker, *,
                embedder: EmbedderLike | str | os.PathLike[str] | None = None) -> Chunker:
    """Build a chunker from a spec string, a config dict or a chunker.

    String specs follow :data:`CHUNKER_SPEC_HELP` (:mod:`chunkeval.chunkers.spec` has the grammar):
    ``fixed:200:0``, ``fixed:200:50:chars``, ``fixed:256:0:hf:/models/e5``, ``recursive:400:200``,
    ``recursive:400:200:strip``, ``recursive:400:0:tokenizer=cl100k_base``, ``sentence:5``,
    ``semantic:400``, ``semantic:400:50:chars:embedder=all-MiniLM-L6-v2``
    (``cluster_semantic:`` is the same type), ``offsets:mypkg.split:paragraphs`` and
    ``text:mypkg.split:sentences:overlapping`` for an importable splitting function,
    ``langchain:RecursiveCharacterTextSplitter:chunk_size=400,chunk_overlap=50``,
    ``llamaindex:SentenceSplitter:chunk_size=256`` and ``chonkie:TokenChunker:chunk_size=200`` for
    another library's splitter (:mod:`chunkeval.chunkers.ecosystem`). Every
    chunker's ``get_chunker(chunker.spec)`` is equal to it (for the adapters: when their function
    can be imported by name).

    Dict specs hold ``"type"`` plus the constructor's keyword arguments, exactly what
    ``chunker.config()`` returns, so ``get_chunker(c.config()) == c`` for the built-in chunkers:
    ``{"type": "fixed", "size": 200, "overlap": 0, "tokenizer": "cl100k_base"}``,
    ``{"type": "recursive", "size": 400, "separators": ["\\n\\n", " ", ""], "length": "chars"}``,
    ``{"type": "sentence", "sentences_per_chunk": 5}``, ``{"type": "cluster_semantic", "max_size": 400}``
    (``"semantic"`` is accepted too, and ``size`` for ``max_size`` with ``overlap`` 0, the keys a
    sweep grid writes). A :class:`Chunker` instance is returned unchanged.

    ``embedder`` is the embedder the run uses (an object with ``embed(list[str])``, or a model
    name or path). The semantic chunker embeds its pieces with it unless the spec names its own
    ``embedder``; a semantic spec with neither is a ``ValueError``. Other chunkers ignore it, so a
    pipeline can always pass its embedder.
    """
    if isinstance(spec, Chunker):
        return spec
    if isinstance(embedder, os.PathLike):
        embedder = os.fspath(embedder)
    if isinstance(spec, str):
        return _from_string(spec, embedder)
    if isinstance(spec, Mapping):
        return _from_dict(spec, embedder)
    raise TypeError(f"chunker spec must be a str or a dict, got {type(spec).__name__}; {spec_forms()}")


def _semantic_embedder(named: object, given: EmbedderLike | str | None, where: str, example: str
                       ) -> EmbedderLike | str:
    """The embedder a semantic chunker gets: the one the spec names (the run's own object when it is
    that model), else the run's."""
    if named is not None:
        if not isinstance(named, str):
            raise ValueError(f"{where}: embedder must be a model name or path, got {type(named).__name__}")
        if given is not None and not isinstance(given, str) and embedder_label(given) == named:
            return given
        return named
    if given is None:
        raise ValueError(f"{where}: the semantic chunker embeds its pieces and needs an embedder; pass "
                         f"get_chunker(spec, embedder=...) or name one in the spec, e.g. {example!r}; "
                         f"{spec_forms('semantic')}")
    return given


def _from_string(spec: str, embedder: EmbedderLike | str | None) -> Chunker:
    if spec.strip().partition(":")[0].lower() in LIBRARIES:
        return library_chunker_from_spec(spec)
    kind, params = parse_spec(spec)
    if kind in ("offsets", "text"):
        return _adapter(kind, params, spec)
    kwargs: dict[str, SpecValue | EmbedderLike] = dict(params)
    if kind == "semantic":
        kwargs["embedder"] = _semantic_embedder(params.get("embedder"), embedder, f"chunker spec {spec!r}",
                                                f"{spec.strip()}:embedder=all-MiniLM-L6-v2")
    builder: Any = {"fixed": FixedTokenChunker, "recursive": RecursiveChunker, "sentence": SentenceChunker,
                    "semantic": ClusterSemanticChunker}[kind]
    try:
        chunker: Chunker = builder(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"chunker spec {spec!r}: {exc}; {spec_forms(kind)}") from None
    return chunker


def _adapter(kind: str, params: dict[str, SpecValue], spec: str) -> Chunker:
    module, function = str(params.get("module", "")), str(params["function"])
    try:
        fn = import_function(module, function)
    except ValueError as exc:
        raise ValueError(f"chunker spec {spec!r}: {exc}; {spec_forms(kind)}") from None
    name = params.get("name")
    label = None if name is None else str(name)
    if kind == "offsets":
        return OffsetChunker(fn, name=label)
    return TextChunker(fn, overlapping=bool(params.get("overlapping", False)), name=label)


def _from_dict(spec: Mapping[str, Any], embedder: EmbedderLike | str | None) -> Chunker:
    params = dict(spec)
    kind = params.pop("type", None)
    builders: dict[str, Any] = {
        "fixed": FixedTokenChunker,
        "recursive": RecursiveChunker,
        "sentence": SentenceChunker,
    }
    if kind in ("cluster_semantic", "semantic"):
        builder: Any = ClusterSemanticChunker
        if "size" in params:
            if "max_size" in params:
                raise ValueError(f"chunker spec {dict(spec)!r}: give max_size or size, not both")
            params["max_size"] = params.pop("size")
        if params.get("overlap", 0) != 0:
            raise ValueError(f"chunker spec {dict(spec)!r}: the semantic chunker has no overlap "
                             f"(got {params['overlap']!r}); drop overlap or set it to 0")
        params.pop("overlap", None)
        params["embedder"] = _semantic_embedder(params.get("embedder"), embedder, f"chunker spec {dict(spec)!r}",
                                                "{'type': 'semantic', 'max_size': 400, "
                                                "'embedder': 'all-MiniLM-L6-v2'}")
    elif kind in builders:
        builder = builders[kind]
    elif kind in LIBRARIES:
        return _library_from_dict(spec)
    elif kind in ("offsets", "text"):
        raise ValueError(
            f"chunker spec type {kind!r} wraps a Python function and cannot be rebuilt from a dict; "
            "construct OffsetChunker/TextChunker in code"
        )
    else:
        raise ValueError(f"chunker spec {dict(spec)!r} has unknown or missing 'type' {kind!r}; {spec_forms()}")
    if kind in ("recursive", "cluster_semantic", "semantic") and params.get("tokenizer", "") is None:
        params.pop("tokenizer")  # config() of a character-measured chunker records no tokenizer
    try:
        chunker: Chunker = builder(**params)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "positional argument" in str(exc):
            raise ValueError(f"chunker spec {dict(spec)!r}: {exc}") from None
        raise
    return chunker


def _library_from_dict(spec: Mapping[str, Any]) -> Chunker:
    """A library chunker from its ``config()``: ``{"type": "langchain", "class": ..., "options": {...}}``."""
    params = dict(spec)
    options = params.get("options", {})
    if not isinstance(params.get("class"), str) or not isinstance(options, Mapping):
        raise ValueError(f"chunker spec {params!r}: a {params['type']} spec dict needs 'class' (a str) and "
                         "'options' (a dict), as LibraryChunker.config() writes")
    chunker = library_chunker_from_spec(library_spec(params["type"], params["class"], options))
    name = params.get("name")
    if isinstance(name, str):
        chunker.name = name
    return chunker
