"""The span-metrics engine: ``span_metrics`` and its result type (see docs/metrics.md)."""

from .api import METRIC_NAMES, RANK_METRIC_NAMES, SpanMetrics, available_backends, span_metrics

__all__ = ["METRIC_NAMES", "RANK_METRIC_NAMES", "SpanMetrics", "available_backends", "span_metrics"]
