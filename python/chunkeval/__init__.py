"""chunkeval: exact, fast span-level evaluation of RAG chunking and retrieval.

The engine (``span_metrics``) scores ranked retrieved chunks against reference spans; the
pipeline modules (``datasets``, ``chunkers``, ``tokenizers``, ``embedding``, ``retrieval``,
``evaluate``) produce those inputs from a corpus and its questions. Heavy dependencies (torch,
transformers, hnswlib) are imported only by the stages that need them.
"""

from .metrics import SpanMetrics, available_backends, span_metrics
from .spans import RaggedSpans, Spans
from .units import char_spans_to_token_spans

__version__ = "0.1.0"

__all__ = [
    "RaggedSpans",
    "SpanMetrics",
    "Spans",
    "__version__",
    "available_backends",
    "char_spans_to_token_spans",
    "span_metrics",
]
