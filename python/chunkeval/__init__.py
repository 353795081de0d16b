"""chunkeval: exact, fast span-level evaluation of RAG chunking and retrieval.

The engine (``span_metrics``) scores ranked retrieved chunks against reference spans; the
pipeline modules (``datasets``, ``chunkers``, ``tokenizers``, ``embedding``, ``retrieval``,
``evaluate``) produce those inputs from a corpus and its questions. Heavy dependencies (torch,
transformers, hnswlib) are imported only by the stages that need them.
"""

from .metrics import SpanMetrics, available_backends, span_metrics
from .spans import RaggedSpans, Spans
from .units import char_spans_to_token_spans


def _version() -> str:
    """The installed distribution's version (pyproject.toml); from a bare source tree, the extension's."""
    import importlib.metadata

    try:
        return importlib.metadata.version("chunkeval")
    except importlib.metadata.PackageNotFoundError:
        try:
            from . import _core  # compiled with the same pyproject.toml version by CMakeLists.txt
        except ImportError:
            return "0+unknown"  # neither installed nor built: no version to report
        return _core.__version__


__version__: str = _version()

__all__ = [
    "RaggedSpans",
    "SpanMetrics",
    "Spans",
    "__version__",
    "available_backends",
    "char_spans_to_token_spans",
    "span_metrics",
]
