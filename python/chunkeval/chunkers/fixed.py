"""Fixed-size windows of tokens (or characters)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..tokenizers import Tokenizer, get_tokenizer
from .base import Chunker, SpanColumns, check_size
from .spec import format_spec

__all__ = ["DeferredTiktoken", "FixedTokenChunker", "chunker_tokenizer"]

_DEFAULT_TOKENIZER = "cl100k_base"


def token_spec(tokenizer: Tokenizer) -> str:
    """The string :func:`~chunkeval.tokenizers.get_tokenizer` rebuilds ``tokenizer`` from."""
    return str(getattr(tokenizer, "spec", tokenizer.name))


class DeferredTiktoken:
    """A tiktoken encoding, known by name now and loaded on first use.

    Loading ``cl100k_base`` decodes 100k base64 ranks (about 0.3 s); a chunker whose spans come
    from :mod:`chunkeval.chunk_cache` never tokenizes, so it should not pay that. ``name`` and
    ``spec`` are those of the :class:`~chunkeval.tokenizers.TiktokenTokenizer` it stands for.
    """

    def __init__(self, encoding: str, source: str | None = None) -> None:
        self.encoding = encoding
        self.name = f"tiktoken:{encoding}"
        self.spec = encoding
        self._source = source or encoding  # the spec get_tokenizer caches it under
        self._loaded: Tokenizer | None = None

    def __repr__(self) -> str:
        return f"DeferredTiktoken({self.encoding!r})"

    def loaded(self) -> Tokenizer:
        """The real tokenizer (loaded once; :func:`get_tokenizer` shares it per encoding)."""
        if self._loaded is None:
            self._loaded = get_tokenizer(self._source)
        return self._loaded

    def encode(self, text: str) -> list[int]:
        return self.loaded().encode(text)

    def offsets(self, text: str) -> np.ndarray:
        return self.loaded().offsets(text)

    def count(self, text: str) -> int:
        return self.loaded().count(text)

    def __getstate__(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "source": self._source}  # the loaded one holds a lock: reload

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.encoding, self._source, self._loaded = str(state["encoding"]), str(state["source"]), None
        self.name, self.spec = f"tiktoken:{self.encoding}", self.encoding


def chunker_tokenizer(spec: str | Tokenizer) -> Tokenizer:
    """The tokenizer a chunker measures with: a tiktoken encoding named by a string is
    :class:`DeferredTiktoken` (checked to exist now, loaded when first used); anything else is
    :func:`~chunkeval.tokenizers.get_tokenizer`'s, built now."""
    if isinstance(spec, str):
        encoding = spec[len("tiktoken:"):] if spec.startswith("tiktoken:") else spec
        named = spec.startswith("tiktoken:") or not os.path.isdir(os.path.expanduser(spec))  # a folder is an HF one
        if named and _is_tiktoken_name(encoding):
            return DeferredTiktoken(encoding, spec)
    return get_tokenizer(spec)


def _is_tiktoken_name(encoding: str) -> bool:
    try:
        import tiktoken
    except ImportError:
        return False  # get_tokenizer says how to install it
    return encoding in tiktoken.list_encoding_names()


class FixedTokenChunker(Chunker):
    """Windows of ``size`` tokens; neighbours share ``overlap`` tokens.

    The document is tokenized once; window ``i`` holds tokens ``[i*step, i*step + size)`` with
    ``step = size - overlap``, and the last window ends at the last token (it may be shorter).
    A window's span runs from its first token's start to its last token's end (the tokenizer's
    character offsets, see :mod:`chunkeval.tokenizers`), so with a tiktoken tokenizer and
    ``overlap=0`` the windows tile the document exactly.

    This is the reference toolkit's (Chroma's) ``FixedTokenChunker`` / LangChain's
    ``TokenTextSplitter`` windowing, except that Chroma decodes each window back to text and then
    searches the corpus for it; here the span comes straight from the offsets. A window whose
    tokens hold no characters of their own (possible only for tiny ``size`` inside a multi-byte
    character) is dropped, as is a window whose span equals the previous window's.

    ``tokenizer="chars"`` makes the windows ``size`` characters with ``overlap`` characters shared.
    A window of whitespace only (a run of blank lines longer than ``size``) is dropped, like every
    whitespace-only chunk (see :class:`~chunkeval.chunkers.Chunker`).
    """

    def __init__(self, size: int = 200, overlap: int = 0, tokenizer: str | Tokenizer = _DEFAULT_TOKENIZER) -> None:
        self.size = check_size(size, "size")
        self.overlap = check_size(overlap, "overlap", minimum=0)
        if self.overlap >= self.size:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than size ({self.size}); "
                "windows advance by size - overlap tokens"
            )
        self.tokenizer = chunker_tokenizer(tokenizer)
        spec = token_spec(self.tokenizer)
        suffix = "" if spec == _DEFAULT_TOKENIZER else f":{spec}"
        self.name = f"fixed:{self.size}:{self.overlap}{suffix}"

    @property
    def spec(self) -> str:
        """``fixed:<size>:<overlap>[:<tokenizer>|:chars]``."""
        tokenizer = token_spec(self.tokenizer)
        return format_spec("fixed", [self.size, self.overlap], None if tokenizer == "chars" else tokenizer,
                           _DEFAULT_TOKENIZER)

    def config(self) -> dict[str, Any]:
        return {"type": "fixed", "size": self.size, "overlap": self.overlap, "tokenizer": token_spec(self.tokenizer)}

    def _spans(self, text: str) -> SpanColumns:
        offsets = self.tokenizer.offsets(text)
        n_tokens = len(offsets)
        if n_tokens == 0:
            return SpanColumns(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        step = self.size - self.overlap
        # Window starts 0, step, 2*step, ... up to and including the first window that reaches the end.
        n_windows = 1 + max(0, -(-(n_tokens - self.size) // step))
        first = np.arange(n_windows, dtype=np.int64) * step
        last = np.minimum(first + self.size, n_tokens) - 1
        starts = offsets[first, 0]
        ends = offsets[last, 1]
        keep = ends > starts
        if len(starts) > 1:
            repeated = np.zeros(len(starts), dtype=bool)
            repeated[1:] = (starts[1:] == starts[:-1]) & (ends[1:] == ends[:-1])
            keep &= ~repeated
        return SpanColumns(np.ascontiguousarray(starts[keep]), np.ascontiguousarray(ends[keep]))
