"""Wrap any splitting function as a chunker.

A function that can be imported by name (a module-level function or a class attribute, not a
lambda or a local function) is reachable from a spec string: ``offsets:<module>:<function>`` and
``text:<module>:<function>[:overlapping]`` (``offsets:mypkg.split:paragraphs``), with
``name=<label>`` for a label other than the default.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from .base import Chunker
from .spec import format_value

__all__ = ["OffsetChunker", "TextChunker", "import_function"]


def _function_parts(fn: Callable[..., Any]) -> tuple[str, str]:
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return module, qualname


def _function_label(fn: Callable[..., Any]) -> str:
    module, qualname = _function_parts(fn)
    return f"{module}.{qualname}" if module else qualname


def _adapter_spec(kind: str, fn: Callable[..., Any], name: str, default_name: str, flags: list[str]) -> str:
    module, qualname = _function_parts(fn)
    parts = [kind, module or "builtins", qualname, *flags]
    if name != default_name:
        parts.append(f"name={format_value(name)}")
    return ":".join(parts)


def import_function(module: str, qualname: str) -> Callable[..., Any]:
    """The callable ``qualname`` (dotted attributes) of the importable ``module``; a ``ValueError``
    says what could not be found and how to fix it."""
    if "<" in qualname:
        raise ValueError(f"function {qualname!r} of {module!r} is a lambda or a local function and cannot be "
                         "imported; define it at module level, or construct the chunker in code")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module!r} ({exc}); put it on PYTHONPATH or install it") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module!r} has no function {qualname!r}; check the name")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{module}:{qualname} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


class OffsetChunker(Chunker):
    """Chunker from a function ``fn(text) -> iterable of (start, end)`` character offsets.

    The result is always read as a sequence of ``(start, end)`` pairs (a tuple of two arrays is two
    spans, not a starts and an ends column). The offsets are used as given (after validation:
    integers, or integral floats, ``0 <= start < end <= len(text)``; a bad pair is an error naming
    the document and the span) and sorted by start; a span of whitespace only is dropped, as for
    every chunker. This is the adapter to prefer: nothing is searched for.
    """

    def __init__(self, fn: Callable[[str], Iterable[tuple[int, int]]], *, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable (text -> iterable of (start, end)), got {type(fn).__name__}")
        self.fn = fn
        self._default_name = f"offsets:{getattr(fn, '__name__', type(fn).__name__)}"
        self.name = name if name is not None else self._default_name

    @property
    def spec(self) -> str:
        """``offsets:<module>:<function>[:name=<label>]`` (parses only for an importable function)."""
        return _adapter_spec("offsets", self.fn, self.name, self._default_name, [])

    def config(self) -> dict[str, Any]:
        return {"type": "offsets", "function": _function_label(self.fn), "name": self.name}

    def _spans(self, text: str) -> Iterable[tuple[int, int]]:
        return self.fn(text)


class TextChunker(Chunker):
    """Chunker from a function ``fn(text) -> list of chunk strings`` (e.g. a LangChain splitter's
    ``split_text``), locating each chunk in the document.

    This is the one place chunkeval searches for text, because such splitters return no offsets.
    Chunks must be verbatim substrings of the document, in document order. Empty strings are
    skipped; whitespace-only strings are located (so the search moves past them) and dropped.
    Each chunk is searched for starting at a position derived from the previous chunk, so text
    that repeats is matched to the right occurrence:

    - ``overlapping=False`` (default): chunks do not overlap, so the search starts where the
      previous chunk *ended*. Right for splitters without overlap, including ones that strip
      whitespace.
    - ``overlapping=True``: neighbouring chunks may share text, so the search starts one character
      after where the previous chunk *began*.

    A chunk that cannot be found there is a ``ValueError`` naming the document, the chunk number
    and its first 40 characters (usually the splitter rewrote the text: prefer
    :class:`OffsetChunker`).
    """

    def __init__(
        self, fn: Callable[[str], Iterable[str]], *, overlapping: bool = False, name: str | None = None
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable (text -> list of chunk strings), got {type(fn).__name__}")
        if not isinstance(overlapping, bool):
            raise TypeError(f"overlapping must be a bool, got {type(overlapping).__name__}")
        self.fn = fn
        self.overlapping = overlapping
        self._default_name = f"text:{getattr(fn, '__name__', type(fn).__name__)}"
        self.name = name if name is not None else self._default_name

    @property
    def spec(self) -> str:
        """``text:<module>:<function>[:overlapping][:name=<label>]`` (parses only for an importable function)."""
        return _adapter_spec("text", self.fn, self.name, self._default_name,
                             ["overlapping"] if self.overlapping else [])

    def config(self) -> dict[str, Any]:
        return {
            "type": "text",
            "function": _function_label(self.fn),
            "overlapping": self.overlapping,
            "name": self.name,
        }

    def _spans(self, text: str) -> list[tuple[int, int]]:
        return self._document_spans(0, text)

    def _document_spans(self, doc: int, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        search_from = 0
        for number, chunk in enumerate(self.fn(text)):
            if not isinstance(chunk, str):
                raise TypeError(
                    f"{self.name}: document {doc}, chunk {number} is {type(chunk).__name__}, not str; "
                    "TextChunker wraps functions that return chunk strings (use OffsetChunker for offsets)"
                )
            if not chunk:
                continue
            start = text.find(chunk, search_from)
            if start == -1:
                where = "anywhere in the document" if text.find(chunk) == -1 else f"at or after position {search_from}"
                hint = (
                    "the chunks overlap: pass overlapping=True"
                    if where != "anywhere in the document" and not self.overlapping
                    else "the splitter changed the text (stripping inside, normalising); use OffsetChunker"
                )
                raise ValueError(
                    f"{self.name}: document {doc}, chunk {number} ({chunk[:40]!r}) not found {where}; "
                    f"chunks must be verbatim substrings in document order ({hint})"
                )
            end = start + len(chunk)
            spans.append((start, end))
            search_from = start + 1 if self.overlapping else end
        return spans
