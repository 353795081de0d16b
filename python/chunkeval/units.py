"""Units: map character spans to token spans so that every metric can be computed in tokens.

The contract (docs/metrics.md, *Units*): a span covers every token whose character range overlaps
it with positive length; tokens with an empty character range are ignored. Empty-range tokens are
dropped before numbering, so token index ``i`` is the ``i``-th non-empty token of its document and
a span of tokens ``[a, b)`` holds exactly the tokens the rule selects. Applying the same mapping to
references, retrieved chunks and chunks makes a metric in tokens the same formula over token
positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .spans import Spans, as_int64_column

__all__ = ["char_spans_to_token_spans", "token_bounds", "TokenTable"]


class TokenTable:
    """The non-empty token character ranges of every document, ready for vectorised lookups."""

    def __init__(self, token_offsets: Sequence[Any] | Mapping[int, Any]) -> None:
        items = token_offsets.items() if isinstance(token_offsets, Mapping) else enumerate(token_offsets)
        self.starts: dict[int, np.ndarray] = {}
        self.ends: dict[int, np.ndarray] = {}
        for doc, offsets in items:
            arr = np.asarray(offsets)
            if arr.size == 0:
                arr = arr.reshape(0, 2)
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise ValueError(
                    f"token_offsets[{doc}]: expected an (n_tokens, 2) array of character ranges, got shape {arr.shape}"
                )
            start = as_int64_column(arr[:, 0], f"token_offsets[{doc}] start")
            end = as_int64_column(arr[:, 1], f"token_offsets[{doc}] end")
            keep = end > start
            start, end = start[keep], end[keep]
            for col, what in ((start, "start"), (end, "end")):
                if len(col) > 1 and (np.diff(col) < 0).any():
                    row = int(np.argmax(np.diff(col) < 0)) + 1
                    raise ValueError(
                        f"token_offsets[{doc}]: token {row} ({what}) goes backwards; "
                        "pass the tokenizer's offsets in token order"
                    )
            self.starts[int(doc)] = start
            self.ends[int(doc)] = end

    def n_tokens(self, doc: int) -> int:
        return len(self.starts[doc])


def token_bounds(spans: Spans, table: TokenTable, name: str = "spans") -> tuple[np.ndarray, np.ndarray]:
    """Token index bounds ``[a, b)`` of every span; ``b <= a`` where a span covers no token."""
    out_start = np.empty(len(spans), dtype=np.int64)
    out_end = np.empty(len(spans), dtype=np.int64)
    for doc in np.unique(spans.doc).tolist():
        rows = np.flatnonzero(spans.doc == doc)
        if doc not in table.starts:
            raise ValueError(
                f"{name}: row {int(rows[0])} names doc {doc}, which has no token offsets; tokenize every document"
            )
        # First token ending after start; one past the last token starting before end.
        out_start[rows] = np.searchsorted(table.ends[doc], spans.start[rows], side="right")
        out_end[rows] = np.searchsorted(table.starts[doc], spans.end[rows], side="left")
    return out_start, out_end


def char_spans_to_token_spans(
    spans: Spans, token_offsets: Sequence[Any] | Mapping[int, Any] | TokenTable, *, name: str = "spans",
    on_empty: str = "raise", doc_lengths: Any = None,
) -> Spans:
    """Map character spans to token-index spans (vectorised per document).

    ``token_offsets[doc]`` is the ``(n_tokens, 2)`` array of each token's character range in
    document ``doc`` (a tokenizer's offset mapping), in token order. A character span ``[s, e)``
    becomes ``[a, b)`` where ``a`` is the first non-empty token with ``end > s`` and ``b - 1`` the
    last with ``start < e``.

    A span that overlaps no token (e.g. pure whitespace under a tokenizer that skips it) raises a
    ``ValueError`` naming the row; with ``on_empty="drop"`` such rows are dropped instead (useful for
    chunkings), and the returned ``Spans`` has fewer rows.

    Token offsets do not say where a document ends: pass ``doc_lengths`` (characters per document)
    to reject spans past the end instead of mapping them to the last token.
    """
    if doc_lengths is not None:
        spans.check_within(doc_lengths, name)
    if on_empty not in ("raise", "drop"):
        raise ValueError(f"on_empty: {on_empty!r} is not 'raise' or 'drop'")
    table = token_offsets if isinstance(token_offsets, TokenTable) else TokenTable(token_offsets)
    out_start, out_end = token_bounds(spans, table, name)
    empty = out_end <= out_start
    if empty.any():
        if on_empty == "raise":
            row = int(np.argmax(empty))
            raise ValueError(
                f"{name}: row {row} (doc {int(spans.doc[row])}, "
                f"chars [{int(spans.start[row])}, {int(spans.end[row])})) "
                "covers no token; drop it or pass on_empty='drop'"
            )
        keep = ~empty
        return Spans(spans.doc[keep], out_start[keep], out_end[keep], name=name)
    return Spans(spans.doc, out_start, out_end, name=name)
