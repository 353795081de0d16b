"""Windows from the user's own chunks (``--from-chunks chunks.parquet``).

The chunks file is a span file as ``chunkeval metrics --chunks`` reads it (Parquet, CSV or JSONL,
one row per chunk): ``doc`` (the corpus id, or its 0-based position among the corpora) with
``start`` and ``end`` (half-open character offsets), or ``doc`` with ``text`` when the chunker
kept no offsets; each text is then found verbatim in its corpus, searching from the end of the
previous chunk of the same document (then from its start), so repeated passages map in order.
Either way a window is an exact corpus span, so the references located in it are too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["read_chunk_windows", "chunk_pair"]


def _doc_id(value: Any, ids: list[str], where: str) -> str:
    if isinstance(value, str) and value in ids:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(ids):
        return ids[value]
    raise ValueError(f"{where}: doc {value!r} is not a corpus id or a position among the {len(ids)} corpora "
                     f"({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''}); name the chunk's corpus")


def _offset(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {name} is {value!r}, not a whole number; give character offsets")
    return value


def read_chunk_windows(path: str | os.PathLike[str], corpora: Mapping[str, str]) -> dict[str, list[tuple[int, int]]]:
    """Chunk spans per corpus, in file order, each checked against the corpus text."""
    from ..span_files import display_row, read_table

    name = os.fspath(path)
    table = read_table(name)
    columns = table.column_names
    if "doc" not in columns or not ({"start", "end"} <= set(columns) or "text" in columns):
        raise ValueError(f"{name}: needs columns doc, start, end (or doc, text); found {columns}")
    ids = list(corpora)
    rows = table.to_pylist()
    windows: dict[str, list[tuple[int, int]]] = {}
    reach: dict[str, int] = {}
    use_offsets = {"start", "end"} <= set(columns)
    for index, row in enumerate(rows):
        where = f"{name} row {display_row(name, index)}"
        cid = _doc_id(row["doc"], ids, where)
        text = corpora[cid]
        if use_offsets:
            start, end = _offset(row["start"], "start", where), _offset(row["end"], "end", where)
            if not 0 <= start < end <= len(text):
                raise ValueError(f"{where}: chunk [{start}, {end}) is not a non-empty span of corpus {cid!r} "
                                 f"(length {len(text)}); check the offsets are characters of that corpus")
            chunk = row.get("text")
            if isinstance(chunk, str) and chunk != text[start:end]:
                raise ValueError(f"{where}: text differs from corpus {cid!r}[{start}:{end}]; the offsets and the text "
                                 "must agree (drop the text column to trust the offsets)")
        else:
            chunk = row["text"]
            if not isinstance(chunk, str) or not chunk:
                raise ValueError(f"{where}: text is {chunk!r}, not the chunk's text")
            start = text.find(chunk, reach.get(cid, 0))
            if start == -1:
                start = text.find(chunk)
            if start == -1:
                raise ValueError(f"{where}: the chunk's text is not in corpus {cid!r} verbatim; give start and end "
                                 "offsets instead")
            end = start + len(chunk)
        reach[cid] = end
        windows.setdefault(cid, []).append((start, end))
    if not windows:
        raise ValueError(f"{name}: holds no chunks")
    return windows


def chunk_pair(n_chunks: int, first: int, pick: int) -> int:
    """The chunk shown with chunk ``first`` in a multi-span attempt: at least a third of the
    document's chunks away from it in either direction (cyclically), chosen by ``pick``."""
    if n_chunks < 3:
        raise ValueError(f"a multi-span question from chunks needs at least 3 chunks in the document, got {n_chunks}")
    gap = -(-n_chunks // 3)  # ceil(n / 3)
    return (first + gap + pick % (n_chunks - 2 * gap + 1)) % n_chunks
