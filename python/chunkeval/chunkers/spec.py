"""The chunker spec grammar: one string names any built-in chunker and every one of its options.

``<type>:<field>:<field>...``: fields are separated by ``:``. Positional fields come in the order
of :data:`CHUNKER_SPEC_HELP`'s forms; a field that is a flag (``strip``) may come anywhere after the
type; ``key=value`` fields set an option by its constructor name. A value that starts with ``[``
or ``"`` is JSON (so it may hold ``:``), anything else runs to the next ``:``. The trailing
positional fields of fixed, recursive and semantic specs are joined back with ``:`` into a
tokenizer spec, so ``fixed:256:0:hf:/models/e5`` keeps working.

:func:`parse_spec` turns a string into a chunker type and its keyword arguments; :func:`format_spec`
is its inverse, used by the chunkers' ``spec`` property.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = ["CHUNKER_SPEC_HELP", "SpecValue", "format_spec", "format_value", "parse_spec", "spec_forms"]

CHUNKER_SPEC_HELP = """\
Chunker specs are <type>:<field>:...; omitted fields take defaults; key=value sets any option.
  fixed:<size>[:<overlap>[:<tokenizer>|chars]]     windows of <size> tokens (cl100k_base) or chars
  recursive:<size>[:<overlap>[:<tokenizer>|chars]][:strip]
                                  separator splitting + greedy merge; strip trims chunk edges
  sentence:<n>                    <n> sentences per chunk
  semantic:<max_size>[:<piece_size>[:<tokenizer>|chars]]
                                  cluster-semantic: embedding-driven DP over pieces (piece_size 50),
                                  with the run's embedder unless embedder=<model> is given
  offsets:<module>:<function>, text:<module>:<function>[:overlapping]
                                  your importable splitter: text -> (start, end) pairs | chunk strings
Options: size= overlap= tokenizer= (fixed, recursive); length=tokens|chars strip=true|false
  separators=<JSON list> (recursive); sentences_per_chunk= (sentence); max_size= piece_size=
  length= tokenizer= embedder= (semantic); name= (offsets, text). JSON strings may hold ':'.
Other libraries: langchain:<Class>[:k=v,...] llamaindex:<Class>[:k=v,...] chonkie:<Class>[:k=v,...]
Examples: fixed:200:0  fixed:200:50:chars  recursive:400:200  recursive:400:200:strip
  recursive:400:0:tokenizer=cl100k_base  recursive:800:0:chars:separators=["\\n\\n","\\n"," ",""]
  sentence:5  semantic:400  semantic:400:50:chars  semantic:400:embedder=all-MiniLM-L6-v2
No chunker emits a whitespace-only chunk (chunks may leave whitespace gaps)."""

#: A parsed option value.
SpecValue: TypeAlias = int | bool | str | list[str]

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_INT = re.compile(r"[0-9]{1,18}")
_PLAIN = re.compile(r"[A-Za-z0-9_.\-/~+@]+")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_JSON = json.JSONDecoder()


def _int_value(text: SpecValue, what: str) -> int:
    if not isinstance(text, str) or not _INT.fullmatch(text):
        raise _Bad(f"{what} {_show(text)} is not an integer (digits only, e.g. 200)")
    return int(text)


def _bool_value(text: SpecValue, what: str) -> bool:
    if isinstance(text, str) and text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    raise _Bad(f"{what} {_show(text)} is not a boolean (true or false)")


def _str_value(text: SpecValue, what: str) -> str:
    if not isinstance(text, str) or not text:
        raise _Bad(f"{what} {_show(text)} must be a non-empty string")
    return text


def _length_value(text: SpecValue, what: str) -> str:
    if text not in ("tokens", "chars"):
        raise _Bad(f"{what} {_show(text)} is not 'tokens' or 'chars'")
    assert isinstance(text, str)
    return text


def _list_value(value: SpecValue, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(f'{what} {_show(value)} is not a JSON list of strings, e.g. separators=["\\n\\n"," ",""]')
    return value


_Converter = Callable[[SpecValue, str], SpecValue]


@dataclass(frozen=True)
class _Kind:
    """How one chunker type is written: positional slots, a tokenizer tail, flags and options."""

    form: str
    example: str
    slots: tuple[str, ...]
    required: str
    missing: str
    options: Mapping[str, _Converter]
    tokenizer_tail: bool = True
    flags: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)


_SIZE_OPTIONS: dict[str, _Converter] = {"size": _int_value, "overlap": _int_value, "tokenizer": _str_value}

_KINDS: dict[str, _Kind] = {
    "fixed": _Kind(
        form="fixed:<size>[:<overlap>[:<tokenizer>|chars]]", example="fixed:200:0", slots=("size", "overlap"),
        required="size", missing="a size, e.g. 'fixed:200:0'", options=_SIZE_OPTIONS),
    "recursive": _Kind(
        form="recursive:<size>[:<overlap>[:<tokenizer>|chars]][:strip]", example="recursive:400:200:strip",
        slots=("size", "overlap"), required="size", missing="a size, e.g. 'recursive:400:0'",
        options={**_SIZE_OPTIONS, "length": _length_value, "strip": _bool_value, "separators": _list_value},
        flags={"strip": ("strip", True)}),
    "sentence": _Kind(
        form="sentence:<n>", example="sentence:5", slots=("sentences_per_chunk",), required="sentences_per_chunk",
        missing="<n>, the sentences per chunk, e.g. 'sentence:5'", options={"sentences_per_chunk": _int_value},
        tokenizer_tail=False, aliases={"n": "sentences_per_chunk"}),
    "semantic": _Kind(
        form="semantic:<max_size>[:<piece_size>[:<tokenizer>|chars]]", example="semantic:400",
        slots=("max_size", "piece_size"), required="max_size", missing="a max_size, e.g. 'semantic:400'",
        options={"max_size": _int_value, "piece_size": _int_value, "length": _length_value,
                 "tokenizer": _str_value, "embedder": _str_value},
        aliases={"size": "max_size"}),
    "offsets": _Kind(
        form="offsets:<module>:<function>", example="offsets:mypkg.split:paragraphs", slots=("module", "function"),
        required="function", missing="a module and a function, e.g. 'offsets:mypkg.split:paragraphs'",
        options={"module": _str_value, "function": _str_value, "name": _str_value}, tokenizer_tail=False),
    "text": _Kind(
        form="text:<module>:<function>[:overlapping]", example="text:mypkg.split:sentences",
        slots=("module", "function"), required="function",
        missing="a module and a function, e.g. 'text:mypkg.split:sentences'",
        options={"module": _str_value, "function": _str_value, "name": _str_value, "overlapping": _bool_value},
        tokenizer_tail=False, flags={"overlapping": ("overlapping", True)}),
}
#: Other spellings of a type.
_TYPE_ALIASES = {"cluster_semantic": "semantic", "cluster-semantic": "semantic", "clustersemantic": "semantic"}


class _Bad(ValueError):
    """A problem with one part of a spec; :func:`parse_spec` adds the spec and the valid forms."""


def _show(value: SpecValue) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def spec_forms(kind: str | None = None) -> str:
    """The valid forms, on one line: of ``kind`` when it is a known type, else of every type."""
    kinds = [_KINDS[kind]] if kind in _KINDS else list(_KINDS.values())
    forms = " | ".join(f"'{k.form}' (e.g. '{k.example}')" for k in kinds)
    return f"valid forms: {forms}" + ("" if kind in _KINDS else "; see CHUNKER_SPEC_HELP")


def _fields(rest: str) -> list[tuple[str | None, SpecValue]]:
    """Split the part after ``<type>:`` into ``(key or None, value)`` fields."""
    if not rest:
        return []
    out: list[tuple[str | None, SpecValue]] = []
    i = 0
    while True:
        match = _KEY.match(rest, i)
        value: SpecValue
        if match and match.end() < len(rest) and rest[match.end()] in '["':
            try:
                decoded, j = _JSON.raw_decode(rest, match.end())
            except json.JSONDecodeError as exc:
                raise _Bad(f"option {match.group(1)}= holds malformed JSON ({exc.msg}: "
                           f"{rest[match.end():]!r})") from None
            if j < len(rest) and rest[j] != ":":
                raise _Bad(f"option {match.group(1)}= has text after its JSON value: {rest[j:]!r}")
            if not isinstance(decoded, (str, list)):
                raise _Bad(f"option {match.group(1)}= holds JSON {type(decoded).__name__}, not a string or a list")
            value = decoded
        else:
            j = rest.find(":", i)
            j = len(rest) if j == -1 else j
            value = rest[match.end():j] if match else rest[i:j]
        out.append((match.group(1) if match else None, value))
        if j >= len(rest):
            return out
        i = j + 1


def _assign(kind: _Kind, fields: list[tuple[str | None, SpecValue]]) -> dict[str, SpecValue]:
    """Keyword arguments from the fields, in order: positional slots, the tokenizer tail, flags, options."""
    params: dict[str, SpecValue] = {}
    tail: list[str] = []
    slot = 0
    for key, value in fields:
        if key is not None:
            name = kind.aliases.get(key, key)
            if name not in kind.options:
                valid = ", ".join(f"{k}=" for k in kind.options)
                raise _Bad(f"unknown option {key}= (valid options: {valid})")
            _set(params, name, kind.options[name](value, name), f"option {key}=")
            continue
        assert isinstance(value, str)
        if value == "":
            raise _Bad("a field is empty (two ':' in a row, or a ':' at the end)")
        if value in kind.flags:
            name, flag = kind.flags[value]
            _set(params, name, flag, f"flag {value!r}")
        elif slot < len(kind.slots) and not tail:
            name = kind.slots[slot]
            _set(params, name, kind.options[name](value, name), f"field {value!r}")
            slot += 1
        elif kind.tokenizer_tail:
            tail.append(value)
        else:
            raise _Bad(f"unexpected field {value!r}")
    if tail:
        _set(params, "tokenizer", ":".join(tail), f"field {':'.join(tail)!r}")
    if kind.required not in params:
        raise _Bad(f"lacks {kind.missing}")
    return params


def _set(params: dict[str, SpecValue], name: str, value: SpecValue, source: str) -> None:
    if name in params:
        raise _Bad(f"{name} is given twice (again by {source})")
    params[name] = value


def parse_spec(spec: str) -> tuple[str, dict[str, SpecValue]]:
    """``(type, keyword arguments)`` of a string spec; type is ``fixed``, ``recursive``, ``sentence`` or
    ``semantic`` (or the adapters' ``offsets`` and ``text``). A bad spec is a one-line ``ValueError``
    naming the spec, the bad part and the valid forms."""
    text = spec.strip()
    name, _, rest = text.partition(":")
    kind_name = _TYPE_ALIASES.get(name.lower(), name.lower())
    kind = _KINDS.get(kind_name)
    if kind is None:
        raise ValueError(f"unknown chunker spec {spec!r}: type {name!r} is not one of "
                         f"{sorted(_KINDS) + sorted(_TYPE_ALIASES)}; {spec_forms()}")
    try:
        return kind_name, _assign(kind, _fields(rest))
    except _Bad as exc:
        raise ValueError(f"chunker spec {spec!r}: {exc}; {spec_forms(kind_name)}") from None


def format_value(value: str | Sequence[str]) -> str:
    """A value as a spec writes it: plain when that parses back the same, else JSON."""
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in ("strip", "chars"):
            return value
        return json.dumps(value, ensure_ascii=True)
    return json.dumps(list(value), ensure_ascii=True, separators=(",", ":"))


def format_spec(kind: str, positional: Sequence[int], tokenizer: str | None, default_tokenizer: str,
                *, flags: Sequence[str] = (), options: Mapping[str, str | Sequence[str]] | None = None) -> str:
    """The canonical spec: ``kind``, the integer fields, the tokenizer field (``chars`` for character
    units, omitted when it is ``default_tokenizer``), then flags and ``key=value`` options."""
    parts = [kind, *(str(p) for p in positional)]
    if tokenizer is None:
        parts.append("chars")
    elif tokenizer != default_tokenizer:
        shown = format_value(tokenizer)
        parts.append(shown if shown == tokenizer else f"tokenizer={shown}")
    parts.extend(flags)
    parts.extend(f"{key}={format_value(value)}" for key, value in (options or {}).items())
    return ":".join(parts)
