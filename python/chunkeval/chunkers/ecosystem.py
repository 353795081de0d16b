"""Chunkers from LangChain, LlamaIndex and chonkie, with verified spans.

:func:`from_langchain`, :func:`from_llamaindex` and :func:`from_chonkie` wrap a splitter object of
those libraries as a :class:`~chunkeval.chunkers.Chunker`. The libraries report where each chunk
starts (LangChain's ``start_index`` with ``add_start_index``, LlamaIndex's ``start_char_idx``,
chonkie's ``start_index``). LangChain and LlamaIndex find it by searching for the chunk's text, and
on documents whose text repeats they report the wrong occurrence (LangChain gives two chunks the same start, or
a start inside the previous chunk; LlamaIndex can match a short chunk inside the previous one).

Each offset is therefore *verified*: it is kept when ``text[start:start + len(chunk)] == chunk`` and
it is in order (at or after the previous chunk's start, ending after its end or, for the overlap-only
tail chunks both libraries emit, exactly at it, with no content skipped in between; without overlap
at or after the previous end). Otherwise the chunk is *relocated* to the first in-order occurrence,
and a backward pass moves a chunk to a later occurrence when the earlier one would leave content in
no chunk. chonkie computes its offsets rather than searching, so an exact, sorted chonkie offset is
kept as it is. Every relocation is counted in :attr:`LibraryChunker.relocated` (and per call in
:attr:`LibraryChunker.last_relocated`) and logged once per :meth:`~chunkeval.chunkers.Chunker.chunk`
call on the ``chunkeval.chunkers`` logger. A chunk that is not a verbatim substring of its document
is a ``ValueError``. Whitespace-only chunks are dropped, as every chunker does. ``docs/interop.md``
has the measured effect.

Spec strings (``get_chunker(c.spec) == c``): ``langchain:RecursiveCharacterTextSplitter:chunk_size=400,
chunk_overlap=50``, ``llamaindex:SentenceSplitter:chunk_size=256``, ``chonkie:TokenChunker:chunk_size=200``:
the library, the class (looked up in ``langchain_text_splitters``, ``llama_index.core.node_parser``
or ``chonkie``) and its constructor's keyword arguments, comma-separated (``true``/``false``,
integers, decimals, JSON for lists and quoted strings, anything else a string).
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

from ..spans import Spans
from .base import Chunker

__all__ = ["LIBRARIES", "LibraryChunker", "from_chonkie", "from_langchain", "from_llamaindex",
           "library_chunker_from_spec", "library_spec"]

logger = logging.getLogger("chunkeval.chunkers")

#: A constructor option as a spec string can write it.
OptionValue: TypeAlias = "int | float | bool | str | None | list[str]"

#: spec prefix -> (the module that holds the classes, the pip package)
LIBRARIES: dict[str, tuple[str, str]] = {
    "langchain": ("langchain_text_splitters", "langchain-text-splitters"),
    "llamaindex": ("llama_index.core.node_parser", "llama-index-core"),
    "chonkie": ("chonkie", "chonkie"),
}

_SPEC_FORM = ("'<library>:<Class>[:key=value,key=value...]' with library langchain, llamaindex or chonkie "
              "(e.g. 'langchain:RecursiveCharacterTextSplitter:chunk_size=400,chunk_overlap=50')")
_INT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT = re.compile(r"[+-]?[0-9]*\.[0-9]+")
_PLAIN = re.compile(r"[A-Za-z0-9_.\-/~+@]+")
_JSON = json.JSONDecoder()
_CONTENT = re.compile(r"\S")


def _json_able(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _format_option(value: OptionValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str) and _PLAIN.fullmatch(value) and _parse_plain(value) == value:
        return value
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _parse_plain(text: str) -> OptionValue:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _parse_options(text: str, spec: str) -> dict[str, OptionValue]:
    """``key=value,key=value`` (values JSON when they start with ``[`` or ``"``)."""
    options: dict[str, OptionValue] = {}
    i = 0
    while i < len(text):
        eq = text.find("=", i)
        key = text[i:eq] if eq != -1 else text[i:]
        if eq == -1 or not key.isidentifier():
            raise ValueError(f"chunker spec {spec!r}: option {key!r} is not key=value (an identifier, '=', a "
                             f"value); valid form: {_SPEC_FORM}")
        j = eq + 1
        value: OptionValue
        if j < len(text) and text[j] in '["':
            try:
                decoded, j = _JSON.raw_decode(text, j)
            except json.JSONDecodeError as exc:
                raise ValueError(f"chunker spec {spec!r}: option {key}= holds malformed JSON ({exc.msg}); "
                                 f"write lists as JSON, e.g. separators=[\"\\n\\n\",\" \"]") from None
            if not _json_able(decoded):
                raise ValueError(f"chunker spec {spec!r}: option {key}= must be a JSON string or list of strings")
            value = list(decoded) if isinstance(decoded, list) else decoded
        else:
            comma = text.find(",", j)
            comma = len(text) if comma == -1 else comma
            value = _parse_plain(text[j:comma])
            j = comma
        if key in options:
            raise ValueError(f"chunker spec {spec!r}: option {key}= is given twice; keep one")
        options[key] = value
        if j < len(text) and text[j] != ",":
            raise ValueError(f"chunker spec {spec!r}: unexpected {text[j:]!r} after option {key}=; separate "
                             "options with ','")
        i = j + 1
    return options


def _import_library(library: str) -> Any:
    module, package = LIBRARIES[library]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the {library} adapter needs {package}: pip install {package} "
                          f"(or pip install 'chunkeval[interop]'); import failed: {exc}") from None


def _constructor_defaults(cls: type) -> dict[str, object]:
    """Keyword parameters of ``cls`` and its bases' ``__init__`` with their defaults (the subclass's first)."""
    defaults: dict[str, object] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in defaults:
                defaults[p.name] = p.default
    return defaults


class LibraryChunker(Chunker):
    """A splitter of another library as a chunker with verified spans (see the module docstring).

    Build one with :func:`from_langchain`, :func:`from_llamaindex` or :func:`from_chonkie`.
    ``splitter`` is the wrapped object; :attr:`options` its settings that a spec can write (the
    ones that differ from the class's defaults); :attr:`unrepresentable` the settings that cannot be
    written (a custom tokenizer or length function), for which :attr:`spec` does not round-trip.
    """

    library: ClassVar[str]
    #: True for libraries that find their offsets by searching for the chunk's text: an exact offset is
    #: then kept only when it is in order (see :meth:`_place`), else it names the wrong occurrence.
    #: False where the library computes offsets (chonkie): an exact, sorted offset is kept as it is.
    strict_order: ClassVar[bool] = True
    #: chunks whose reported offset was wrong or missing, over every call
    relocated: int
    #: the same, for the last :meth:`chunk` call
    last_relocated: int

    def __init__(self, splitter: object, *, name: str | None = None) -> None:
        self.splitter = splitter
        self.class_name = type(splitter).__name__
        self.options, self.unrepresentable = self._read_options(splitter)
        self.relocated = 0
        self.last_relocated = 0
        self._relocated_docs: set[int] = set()
        self.overlapping = self._overlapping(splitter)
        self._default_name = self.spec
        self.name = name if name is not None else self._default_name

    # -- what each library provides -------------------------------------------------------------

    def _pieces(self, text: str) -> list[tuple[str, int | None]]:
        """The chunks of one document as ``(chunk text, reported start or None)``, in order."""
        raise NotImplementedError

    def _settings(self, splitter: object) -> dict[str, object]:
        """The constructor options' current values."""
        defaults = _constructor_defaults(type(splitter))
        state = {}
        for key in defaults:
            for attr in (key, f"_{key}"):
                if attr in getattr(splitter, "__dict__", {}) or hasattr(type(splitter), attr):
                    try:
                        state[key] = getattr(splitter, attr)
                    except AttributeError:
                        continue
                    break
        return state

    def _overlapping(self, splitter: object) -> bool:
        overlap = self._settings(splitter).get("chunk_overlap", 0)
        return isinstance(overlap, (int, float)) and not isinstance(overlap, bool) and overlap > 0

    def _read_options(self, splitter: object) -> tuple[dict[str, OptionValue], list[str]]:
        """The settings that differ from a default-constructed splitter of the same class: the ones a
        spec can write, and the names of those it cannot."""
        current = self._settings(splitter)
        try:
            defaults = self._settings(type(splitter)())
        except Exception:  # noqa: BLE001 - any class that cannot be built bare: fall back to its signature
            defaults = _constructor_defaults(type(splitter))
        options: dict[str, OptionValue] = {}
        odd: list[str] = []
        for key, value in current.items():
            if key in self._ignored:
                continue
            default = defaults.get(key, inspect.Parameter.empty)
            if _json_able(value):
                if not _same(value, default):
                    options[key] = list(value) if isinstance(value, tuple) else value  # type: ignore[assignment]
            elif value is not default and not _equal(value, default):
                odd.append(key)
        return dict(sorted(options.items())), sorted(odd)

    _ignored: ClassVar[frozenset[str]] = frozenset()

    # -- the chunker contract -------------------------------------------------------------------

    @property
    def spec(self) -> str:
        """``<library>:<Class>[:key=value,...]``; round-trips unless :attr:`unrepresentable` is set."""
        return library_spec(self.library, self.class_name, self.options)

    def config(self) -> dict[str, Any]:
        return {"type": self.library, "class": self.class_name, "options": dict(self.options),
                "unrepresentable": list(self.unrepresentable), "name": self.name}

    def _spans(self, text: str) -> list[tuple[int, int]]:
        return self._document_spans(0, text)

    def chunk(self, texts: Sequence[str], *, show_progress: bool | None = None) -> Spans:
        self.last_relocated = 0
        self._relocated_docs = set()
        spans = super().chunk(texts, show_progress=show_progress)
        if self.last_relocated:
            logger.warning("%s: relocated %d chunk(s) whose reported offsets were wrong or missing, in %d of %d "
                           "document(s)", self.name, self.last_relocated, len(self._relocated_docs), len(texts))
        return spans

    def _document_spans(self, doc: int, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        placed: list[tuple[str, int | None, bool]] = []
        prev = (0, 0)
        for number, (piece, hint) in enumerate(self._pieces(text)):
            if not isinstance(piece, str):
                raise TypeError(f"{self.name}: document {doc}, chunk {number} is {type(piece).__name__}, not str")
            if not piece:
                continue
            start, moved = self._place(text, piece, hint, prev)
            if start == -1:
                raise ValueError(f"{self.name}: document {doc}, chunk {number} ({piece[:40]!r}) is not in the "
                                 f"document; the splitter changed the text (e.g. normalised whitespace), so its "
                                 f"chunks have no exact span; use a setting that keeps text verbatim")
            spans.append((start, start + len(piece)))
            placed.append((piece, hint, moved))
            prev = (start, max(prev[1], start + len(piece)))
        if self.strict_order:
            spans = self._close_gaps(text, spans)
        for (start, _), (_, hint, moved) in zip(spans, placed, strict=True):
            if moved or start != hint:
                self.relocated += 1
                self.last_relocated += 1
                self._relocated_docs.add(doc)
        return spans

    @staticmethod
    def _close_gaps(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Backward repair of the in-order placement: a chunk followed by content that no chunk covers
        (before the next chunk's start, or before the end of the text for the last chunk) moves to a
        later occurrence of its text that leaves no such gap, if one keeps the order. On repeated text
        the earliest in-order occurrence is not always the splitter's; a splitter loses no content."""
        out = list(spans)
        for i in range(len(out) - 1, -1, -1):
            start, end = out[i]
            n = end - start
            limit = out[i + 1][0] if i + 1 < len(out) else len(text)
            if _CONTENT.search(text, end, limit) is None:
                continue
            piece = text[start:end]
            later = text.find(piece, start + 1)
            while later != -1 and later <= limit - (0 if i + 1 < len(out) else n):
                if later + n <= len(text) and _CONTENT.search(text, later + n, limit) is None:
                    out[i] = (later, later + n)
                    break
                later = text.find(piece, later + 1)
        return out

    def _place(self, text: str, piece: str, hint: int | None, prev: tuple[int, int]) -> tuple[int, bool]:
        """``(start, relocated)`` of one chunk after the previous chunk's span ``prev``; start -1 when
        the chunk is nowhere in the text.

        In order means: the chunk starts at or after the previous start, ends after the previous
        end and skips no content (no non-whitespace text between the previous end and its start);
        without overlap it starts at or after the previous end. A chunk that no such position fits may
        instead end exactly where the previous one ends (both LangChain and LlamaIndex emit such
        overlap-only tail chunks).
        """
        n = len(piece)
        prev_start, prev_end = prev

        def fits(start: int) -> bool:
            return start >= 0 and text.startswith(piece, start) and (start, start + n) != prev

        def skips(start: int) -> bool:
            return start > prev_end and _CONTENT.search(text, prev_end, start) is not None

        lowest = max(prev_start, prev_end - n + 1) if self.overlapping else prev_end
        if isinstance(hint, int) and fits(hint):
            if not self.strict_order and hint >= prev_start:
                return hint, False
            if hint >= lowest and not skips(hint):
                return hint, False
        candidate = text.find(piece, lowest)
        if (candidate, candidate + n) == prev:
            candidate = text.find(piece, candidate + 1)
        tail = prev_end - n
        if self.overlapping and tail >= prev_start and fits(tail) and \
                (candidate == -1 or skips(candidate)):
            return tail, hint != tail
        if candidate == -1:  # an earlier chunk was placed too late: the first occurrence
            candidate = text.find(piece)
        return candidate, True


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an object whose == raises is not equal
        return False


def _same(a: object, b: object) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return type(a) is type(b) and a == b


class LangChainChunker(LibraryChunker):
    """A ``langchain_text_splitters`` splitter (a ``TextSplitter``): chunks from ``split_text``, offsets
    from ``create_documents`` with ``add_start_index`` on (set on a copy when the splitter lacks it)."""

    library = "langchain"
    _ignored = frozenset({"add_start_index"})

    def _pieces(self, text: str) -> list[tuple[str, int | None]]:
        import copy

        splitter: Any = self.splitter
        if hasattr(splitter, "_add_start_index") and not splitter._add_start_index:
            splitter = copy.copy(splitter)
            splitter._add_start_index = True
        if hasattr(splitter, "create_documents"):
            docs = splitter.create_documents([text])
            out: list[tuple[str, int | None]] = []
            for d in docs:
                hint = d.metadata.get("start_index")
                out.append((d.page_content, hint if isinstance(hint, int) and hint >= 0 else None))
            return out
        return [(c, None) for c in splitter.split_text(text)]


class LlamaIndexChunker(LibraryChunker):
    """A ``llama_index.core`` node parser (``SentenceSplitter``, ``TokenTextSplitter``...): chunks and
    ``start_char_idx`` from ``get_nodes_from_documents`` on one ``Document`` per text."""

    library = "llamaindex"
    _ignored = frozenset({"callback_manager", "id_func", "include_metadata", "include_prev_next_rel",
                          "tokenizer", "chunking_tokenizer_fn", "secondary_chunking_regex"})

    def _settings(self, splitter: object) -> dict[str, object]:
        dump = getattr(splitter, "model_dump", None)
        fields: Mapping[str, Any] = getattr(type(splitter), "model_fields", {})
        if dump is None or not fields:
            return super()._settings(splitter)
        return {k: getattr(splitter, k) for k in fields if k not in ("class_name",)}

    def _pieces(self, text: str) -> list[tuple[str, int | None]]:
        from llama_index.core import Document  # type: ignore[import-not-found,unused-ignore]
        from llama_index.core.schema import MetadataMode  # type: ignore[import-not-found,unused-ignore]

        parser: Any = self.splitter
        nodes = parser.get_nodes_from_documents([Document(text=text)])
        out: list[tuple[str, int | None]] = []
        for node in nodes:
            hint = getattr(node, "start_char_idx", None)
            out.append((node.get_content(metadata_mode=MetadataMode.NONE), hint if isinstance(hint, int) else None))
        return out


class ChonkieChunker(LibraryChunker):
    """A chonkie chunker (``TokenChunker``, ``SentenceChunker``, ``RecursiveChunker``...): chunks and
    ``start_index`` from ``chunk(text)``. Its tokenizer is written by name (``character``, ``word``,
    ``byte``); any other tokenizer object is :attr:`unrepresentable`."""

    library = "chonkie"
    strict_order = False

    def _settings(self, splitter: object) -> dict[str, object]:
        state = super()._settings(splitter)
        inner = getattr(getattr(splitter, "tokenizer", None), "tokenizer", None)
        kind = type(inner).__name__
        if type(inner).__module__.startswith("chonkie") and kind in ("CharacterTokenizer", "WordTokenizer",
                                                                      "ByteTokenizer"):
            state["tokenizer"] = kind.removesuffix("Tokenizer").lower()
        return state

    def _pieces(self, text: str) -> list[tuple[str, int | None]]:
        chunker: Any = self.splitter
        out: list[tuple[str, int | None]] = []
        for c in chunker.chunk(text):
            hint = getattr(c, "start_index", None)
            out.append((c.text, hint if isinstance(hint, int) else None))
        return out


_ADAPTERS: dict[str, type[LibraryChunker]] = {
    "langchain": LangChainChunker, "llamaindex": LlamaIndexChunker, "chonkie": ChonkieChunker,
}


def _check_object(obj: object, library: str, needs: tuple[str, ...], example: str) -> None:
    if isinstance(obj, (str, type)) or not any(callable(getattr(obj, m, None)) for m in needs):
        got = f"the class {obj.__name__} (pass an instance)" if isinstance(obj, type) else type(obj).__name__
        raise TypeError(f"from_{library}() needs a {library} splitter object with {' or '.join(needs)}(), got "
                        f"{got}; e.g. from_{library}({example})")


def from_langchain(splitter: object, *, name: str | None = None) -> LibraryChunker:
    """``splitter``, a ``langchain_text_splitters`` text splitter, as a chunker with verified spans."""
    _check_object(splitter, "langchain", ("split_text",), "RecursiveCharacterTextSplitter(chunk_size=400)")
    return LangChainChunker(splitter, name=name)


def from_llamaindex(parser: object, *, name: str | None = None) -> LibraryChunker:
    """``parser``, a ``llama_index.core.node_parser`` node parser, as a chunker with verified spans."""
    _check_object(parser, "llamaindex", ("get_nodes_from_documents",), "SentenceSplitter(chunk_size=256)")
    return LlamaIndexChunker(parser, name=name)


def from_chonkie(chunker: object, *, name: str | None = None) -> LibraryChunker:
    """``chunker``, a chonkie chunker, as a chunkeval chunker with verified spans."""
    _check_object(chunker, "chonkie", ("chunk",), "TokenChunker(chunk_size=200)")
    return ChonkieChunker(chunker, name=name)


def library_spec(library: str, class_name: str, options: Mapping[str, OptionValue]) -> str:
    """The spec string ``<library>:<Class>[:key=value,...]``."""
    if not options:
        return f"{library}:{class_name}"
    return f"{library}:{class_name}:" + ",".join(f"{k}={_format_option(v)}" for k, v in options.items())


def library_chunker_from_spec(spec: str) -> LibraryChunker:
    """The chunker of a ``<library>:<Class>[:key=value,...]`` spec (see the module docstring)."""
    library, _, rest = spec.strip().partition(":")
    library = library.lower()
    if library not in LIBRARIES:
        raise ValueError(f"chunker spec {spec!r}: {library!r} is not langchain, llamaindex or chonkie; "
                         f"valid form: {_SPEC_FORM}")
    class_name, _, option_text = rest.partition(":")
    if not class_name.isidentifier():
        raise ValueError(f"chunker spec {spec!r} lacks a class name after '{library}:'; valid form: {_SPEC_FORM}")
    options = _parse_options(option_text, spec) if option_text else {}
    module = _import_library(library)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"chunker spec {spec!r}: {LIBRARIES[library][0]} has no class {class_name!r}; "
                         "check the spelling (e.g. RecursiveCharacterTextSplitter, SentenceSplitter, TokenChunker)")
    kwargs: dict[str, Any] = dict(options)
    if library == "langchain" and "add_start_index" in _constructor_defaults(cls):
        kwargs["add_start_index"] = True
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"chunker spec {spec!r}: {class_name}({_format_kwargs(options)}) failed: {first}; "
                         f"valid form: {_SPEC_FORM}") from None
    return _ADAPTERS[library](obj)


def _format_kwargs(options: Mapping[str, OptionValue]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())
