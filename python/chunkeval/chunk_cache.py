"""The chunk-span cache: a built-in chunker's spans of a document, kept on disk between runs.

Chunking the bundled benchmark with the default 200-token cl100k chunker takes about 0.6 s (load
the encoding, tokenize every corpus), more than the rest of a run whose vectors are all cached.
The spans of a document depend only on the chunker's configuration, the code that computes them
and the document's text, so they are stored per (chunker, text) pair and read back:

- **what is cached**: only chunkers whose spans are a pure function of ``config()`` and the text:
  :class:`~chunkeval.chunkers.FixedTokenChunker` and :class:`~chunkeval.chunkers.RecursiveChunker`
  (exactly those classes, not subclasses) measuring in characters, a tiktoken encoding or a Hugging
  Face tokenizer (whose name carries a digest of its ``tokenizer.json``). Any other chunker
  (semantic, library adapters, user objects) is run every time.
- **the key**: sha256 of the cache format, the chunkeval version, a digest of the source files
  that compute the spans (the chunker's module, ``chunkers/base.py``, ``tokenizers.py``), the
  chunker's class and ``config()``, the tokenizer's name and library version, and the sha256 of
  the document's UTF-8 bytes. A change to any of them is another key: nothing is ever reused for
  a text or a chunker it was not computed for.
- **the file**: ``<cache>/chunks/<key[:2]>/<key>.spans``: a header line with the format, the key
  and the sha256 of the payload, then the spans as little-endian int64 ``(start, end)`` pairs.
  Written atomically (:func:`chunkeval._io.write_bytes_atomic`). A file that does not parse,
  holds another key, fails its checksum or holds spans that are not valid for the text
  (``0 <= start < end <= len(text)``, sorted) is ignored with a log message and rewritten.

``<cache>`` is :func:`chunkeval.evaluate.default_cache_dir` for ``cache_dir="default"``, else the
folder given; ``None`` switches the cache off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .spans import Spans

if TYPE_CHECKING:
    from .chunkers.base import Chunker

__all__ = ["CACHE_FORMAT", "cache_folder", "chunk_cached", "chunker_key", "decode_span_file", "encode_span_file",
           "span_file"]

logger = logging.getLogger("chunkeval.chunk_cache")

#: Bumped when the file layout or the key's recipe changes.
CACHE_FORMAT = 1
_MAGIC = b"chunkeval-spans"
CacheDir = str | os.PathLike[str] | None


def cache_folder(cache_dir: CacheDir, name: str = "chunks") -> Path | None:
    """The folder of one kind of cached file (``"chunks"``, ``"hnsw"``): ``<default cache dir>/<name>``
    for ``"default"`` (:func:`chunkeval.evaluate.default_cache_dir`), ``<cache_dir>/<name>`` for a
    folder, ``None`` (no cache) for ``None``."""
    if cache_dir is None:
        return None
    if isinstance(cache_dir, str) and cache_dir == "default":
        from .evaluate import default_cache_dir

        return default_cache_dir() / name
    return Path(cache_dir).expanduser() / name


def _source_digest(modules: Sequence[str]) -> str:
    """sha256 over the source files of ``modules``: an edit to the code that computes spans is a new key."""
    import importlib

    digest = hashlib.sha256()
    for name in modules:
        path = getattr(importlib.import_module(name), "__file__", None)
        try:
            digest.update(Path(path).read_bytes() if path else name.encode())
        except OSError:
            digest.update(name.encode())  # no source to read (a frozen build): the version alone decides
    return digest.hexdigest()


def _tokenizer_identity(tokenizer: Any) -> list[str] | None:
    """The tokenizer's name and its library's version, or ``None`` for a tokenizer whose output
    has no stable identity (a user's object)."""
    from .chunkers.fixed import DeferredTiktoken
    from .tokenizers import CharTokenizer, HFTokenizer, TiktokenTokenizer

    if tokenizer is None or isinstance(tokenizer, CharTokenizer):
        return ["chars", ""]
    if isinstance(tokenizer, (DeferredTiktoken, TiktokenTokenizer)):
        import tiktoken

        return [str(tokenizer.name), str(getattr(tiktoken, "__version__", ""))]
    if isinstance(tokenizer, HFTokenizer):  # the name ends in a digest of the serialized tokenizer
        import tokenizers

        return [str(tokenizer.name), str(getattr(tokenizers, "__version__", ""))]
    return None


def chunker_key(chunker: Chunker) -> str | None:
    """The part of the cache key that the chunker decides (hex sha256), or ``None`` when its spans
    are not cached (see the module docstring for which chunkers are)."""
    from . import __version__
    from .chunkers.fixed import FixedTokenChunker
    from .chunkers.recursive import RecursiveChunker

    if type(chunker) not in (FixedTokenChunker, RecursiveChunker):
        return None
    tokenizer = _tokenizer_identity(getattr(chunker, "tokenizer", None))
    if tokenizer is None:
        return None
    source = _source_digest([type(chunker).__module__, "chunkeval.chunkers.base", "chunkeval.tokenizers"])
    key = {"format": CACHE_FORMAT, "chunkeval": __version__, "source": source, "class": type(chunker).__name__,
           "config": chunker.config(), "tokenizer": tokenizer}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def span_file(folder: Path, chunker_digest: str, text: str) -> tuple[Path, str]:
    """The span file of one (chunker, text) pair and the key written in it."""
    key = hashlib.sha256(f"{chunker_digest}:{_text_digest(text)}".encode()).hexdigest()
    return folder / key[:2] / f"{key}.spans", key


def encode_span_file(key: str, start: np.ndarray, end: np.ndarray) -> bytes:
    """The bytes of a span file: header (format, key, payload sha256), then int64 (start, end) pairs."""
    payload = np.stack([start, end], axis=1).astype("<i8").tobytes()
    header = b"%s %d %s %s\n" % (_MAGIC, CACHE_FORMAT, key.encode(), hashlib.sha256(payload).hexdigest().encode())
    return header + payload


def decode_span_file(data: bytes, key: str, text_length: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The spans a file holds, or ``None`` when it is not a valid file for this key and text."""
    header, newline, payload = data.partition(b"\n")
    fields = header.split(b" ")
    if (not newline or len(fields) != 4 or fields[0] != _MAGIC or fields[1] != str(CACHE_FORMAT).encode()
            or fields[2] != key.encode() or fields[3] != hashlib.sha256(payload).hexdigest().encode()
            or len(payload) % 16):
        return None
    pairs = np.frombuffer(payload, dtype="<i8").reshape(-1, 2).astype(np.int64)
    start, end = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
    if ((start < 0) | (end <= start) | (end > text_length)).any():
        return None
    if len(start) > 1 and not ((start[1:] > start[:-1]) | ((start[1:] == start[:-1]) & (end[1:] >= end[:-1]))).all():
        return None  # the chunker contract sorts spans by (start, end)
    return start, end


def _read(path: Path, key: str, text_length: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("chunk cache: ignoring unreadable span file %s (%s)", path, exc)
        return None
    spans = decode_span_file(data, key, text_length)
    if spans is None:
        logger.warning("chunk cache: ignoring span file %s with unexpected contents; it is rewritten", path)
    return spans


def _write(path: Path, key: str, start: np.ndarray, end: np.ndarray) -> None:
    from ._io import write_bytes_atomic

    try:
        write_bytes_atomic(path, encode_span_file(key, start, end))
    except OSError as exc:  # a read-only or full cache costs the next run the chunking, nothing more
        logger.warning("chunk cache: could not write %s (%s)", path, exc)


def chunk_cached(chunker: Chunker, texts: Sequence[str], *, cache_dir: CacheDir = "default",
                 show_progress: bool | None = None) -> Spans:
    """``chunker.chunk(texts)``, with each document's spans read from the cache when they are there
    and written to it when they are not. Same spans, same order, as the chunker gives."""
    folder = cache_folder(cache_dir)
    digest = chunker_key(chunker) if folder is not None else None
    if folder is None or digest is None:
        return chunker.chunk(texts, show_progress=show_progress)
    from .chunkers.base import check_texts

    texts = check_texts(texts)
    found: list[tuple[np.ndarray, np.ndarray] | None] = []
    files: list[tuple[Path, str]] = []
    for text in texts:
        path, key = span_file(folder, digest, text)
        files.append((path, key))
        found.append(_read(path, key, len(text)))
    missing = [i for i, spans in enumerate(found) if spans is None]
    if missing:
        fresh = chunker.chunk([texts[i] for i in missing], show_progress=show_progress)
        bounds = np.searchsorted(fresh.doc, np.arange(len(missing) + 1))
        for j, i in enumerate(missing):
            start = np.ascontiguousarray(fresh.start[bounds[j]:bounds[j + 1]])
            end = np.ascontiguousarray(fresh.end[bounds[j]:bounds[j + 1]])
            found[i] = (start, end)
            _write(files[i][0], files[i][1], start, end)
    if not texts:
        return Spans([], [], [])
    docs = [np.full(len(s[0]), d, dtype=np.int64) for d, s in enumerate(found) if s is not None]
    starts = [s[0] for s in found if s is not None]
    ends = [s[1] for s in found if s is not None]
    return Spans(np.concatenate(docs), np.concatenate(starts), np.concatenate(ends), name=f"{chunker.name} chunks")
