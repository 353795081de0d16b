"""Typed stub for the compiled core ``chunkeval._core`` (python/bindings/*.cpp).

Every array argument must already be a 1-D C-contiguous ``int64`` numpy array: nothing is cast or
copied, and anything else raises ``TypeError``/``ValueError`` saying how to fix it
(``np.ascontiguousarray(x, dtype=np.int64)``). The algorithm is docs/engine.md.
"""

import numpy as np
import numpy.typing as npt

__version__: str
"""The package version from pyproject.toml, compiled in by CMakeLists.txt (equals ``chunkeval.__version__``)."""

class ChunkIndex:
    """Immutable index over a chunking; copies its input. Reuse it across ``span_metrics`` calls."""

    def __init__(self, doc: npt.NDArray[np.int64], start: npt.NDArray[np.int64], end: npt.NDArray[np.int64]) -> None:
        """Index chunk spans ``[start, end)`` of document ``doc``.

        ``ValueError`` unless ``0 <= start < end <= 2**32``."""
    @property
    def size(self) -> int:
        """Number of chunk rows."""
    @property
    def n_docs(self) -> int:
        """Number of distinct doc ids."""
    def __len__(self) -> int: ...
    def docs(self) -> npt.NDArray[np.int64]:
        """Sorted distinct doc ids (a new array)."""

def span_metrics(
    ref_offsets: npt.NDArray[np.int64],
    ref_doc: npt.NDArray[np.int64],
    ref_start: npt.NDArray[np.int64],
    ref_end: npt.NDArray[np.int64],
    ret_offsets: npt.NDArray[np.int64],
    ret_doc: npt.NDArray[np.int64],
    ret_start: npt.NDArray[np.int64],
    ret_end: npt.NDArray[np.int64],
    chunk_index: ChunkIndex | None,
    ks: npt.NDArray[np.int64],
    k_mode: int,
    semantics: int,
    num_threads: int,
    ranked: bool = False,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64] | None,
]:
    """Score every question; returns ``(recall, precision, iou, precision_omega, coverage, n_evidence_chunks, rank)``.

    ``recall``, ``precision``, ``iou``: float64 ``(n_questions, n_cols)``, ``n_cols = len(ks)`` when
    ``k_mode == 0`` (list) and 1 for ``k_mode`` 1 (each question's whole list) and 2 (auto: its first
    ``min(n_evidence_chunks, len)`` rows; needs ``chunk_index``). The other three hold one value per
    question: ``precision_omega`` and ``coverage`` are NaN and ``n_evidence_chunks`` is -1 without
    ``chunk_index``. ``rank`` is ``None``, or with ``ranked=True`` (needs ``chunk_index``) the rank
    metrics (docs/engine.md §4) as one float64 array ``(5, n_questions, n_cols)``: hit, mrr, map,
    ndcg, ndcg_graded. ``semantics``: 0 = set, 1 = chroma. ``num_threads``: 0 = every hardware thread;
    batches under 2048 questions run on one. The GIL is released while scoring. Bad shapes, offsets,
    spans (need ``0 <= start < end <= 2**32``), questions over ``2**20`` references or ``2**20`` scored
    retrieved rows, or cut-offs (strictly increasing, ``>= 1``) raise ``ValueError``
    naming the array and row; unknown doc ids match no chunk.
    """

def hardware_concurrency() -> int:
    """Number of hardware threads (at least 1)."""
