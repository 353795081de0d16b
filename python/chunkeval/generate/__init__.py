"""Synthetic question generation: questions whose answers are exact, possibly discontinuous, spans.

A model (any OpenAI-compatible server, or a local transformers causal LM) reads a window of a
corpus and answers with a question and up to five verbatim excerpts (or, in approximate mode,
piece-id ranges); each excerpt is located in the corpus as exact ``str`` offsets, filtered, and
appended to a JSONL file of shared question records with full provenance. Runs resume after a
crash or ``kill -9`` without duplicates, and no reply, however malformed, ends a run: it becomes a
counted rejection (see docs/generate.md). Question kinds (single, multi-span, cross-document, unanswerable), a
grounding check, per-document quotas, windows from the user's own chunks and cost estimates are
settings of :class:`GenerationSettings`. The approach follows Chroma's ``chunking_evaluation``
synthetic generator and Jadon et al. (2025, arXiv 2502.15854).

Quick start::

    from chunkeval.datasets import load_corpora
    from chunkeval.generate import OpenAICompatibleBackend, GenerationSettings, generate_questions

    backend = OpenAICompatibleBackend("http://localhost:8000/v1", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B")
    report = generate_questions(load_corpora("corpora/"), "questions.jsonl", backend,
                                GenerationSettings(per_corpus=50))

Importing this package pulls in neither httpx, rapidfuzz, torch nor transformers.
"""

from .backends import (
                       BackendError,
                       Budget,
                       BudgetExhausted,
                       ChatResult,
                       FatalBackendError,
                       OpenAICompatibleBackend,
                       TransformersBackend,
)
from .filters import DEFAULT_DUPLICATE_THRESHOLD, DEFAULT_EXCERPT_THRESHOLD, DEFAULT_MAX_REFERENCES, FilterSettings
from .locate import CorpusIndex, Located, locate_excerpt, pieces_to_span, tag_pieces
from .parsing import AnswerError, ParsedAnswer, parse_answer
from .prompts import PROMPT_VERSION, PromptTemplate, default_template, load_template
from .runner import (
                       GenerationReport,
                       GenerationSettings,
                       agenerate_questions,
                       generate_questions,
                       rejected_path,
                       sample_window,
                       summarize_file,
)

__all__ = [
    "AnswerError",
    "BackendError",
    "Budget",
    "BudgetExhausted",
    "ChatResult",
    "CorpusIndex",
    "DEFAULT_DUPLICATE_THRESHOLD",
    "DEFAULT_EXCERPT_THRESHOLD",
    "DEFAULT_MAX_REFERENCES",
    "FatalBackendError",
    "FilterSettings",
    "GenerationReport",
    "GenerationSettings",
    "KINDS",
    "Located",
    "MalformedReply",
    "OpenAICompatibleBackend",
    "PROMPT_VERSION",
    "ParsedAnswer",
    "PlannedRequest",
    "PromptTemplate",
    "StructuredOutputRefused",
    "TransformersBackend",
    "agenerate_questions",
    "corpus_coverage",
    "estimate_cost",
    "default_template",
    "generate_questions",
    "load_template",
    "locate_excerpt",
    "parse_answer",
    "parse_mix",
    "pieces_to_span",
    "plan_requests",
    "proportional_quotas",
    "read_chunk_windows",
    "rejected_path",
    "sample_window",
    "summarize_file",
    "tag_pieces",
    "unanswerable_path",
]
