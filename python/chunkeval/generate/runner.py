"""The generation loop: sample a window, ask the model, locate the excerpts, filter, append.

Resumability is the design constraint. Attempt ``n`` on corpus ``c`` always sees the same window
(derived from ``(seed, c, n)``), every accepted question is appended to the output JSONL as one
durable line the moment it is accepted, and every rejected attempt is appended to the sidecar
``<out stem>.rejected.jsonl``. A rerun reads both, skips the attempts already made, and continues
to ``per_corpus`` questions per corpus; a last line cut short by ``kill -9`` is dropped first.
Attempts whose request failed (server down, retries spent, budget spent) are recorded nowhere, so
a rerun makes them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._io import append_line_durable
from .backends import (
    BackendError,
    BudgetExhausted,
    ChatBackend,
    ChatResult,
    FatalBackendError,
    MalformedReply,
    StructuredOutputRefused,
)
from .chunks import chunk_pair
from .coverage import corpus_coverage, spread_index
from .filters import (
    FilterSettings,
    has_poor_excerpt,
    is_near_duplicate,
    merge_overlapping,
    question_key,
    too_many_references,
)
from .kinds import (
    DEFAULT_MIX,
    KINDS,
    check_mix,
    cross_partner,
    multi_windows,
    quotas,
    render_documents,
    render_parts,
)
from .locate import MATCH_KINDS, CorpusIndex, Located, pieces_to_span, tag_pieces
from .parsing import AnswerError, ParsedAnswer, parse_answer, parse_verdict
from .prompts import (
    VERIFY_VERSION,
    PromptTemplate,
    answer_response_format,
    default_template,
    kind_template,
    verdict_response_format,
    verify_messages,
)

__all__ = [
    "Embedder",
    "GenerationSettings",
    "GenerationReport",
    "generate_questions",
    "agenerate_questions",
    "sample_window",
    "rejected_path",
    "unanswerable_path",
    "repair_partial_last_line",
    "summarize_file",
    "estimate_cost",
    "plan_requests",
    "PlannedRequest",
]

log = logging.getLogger("chunkeval.generate")

_MATCH_RANK = {kind: rank for rank, kind in enumerate(MATCH_KINDS + ("pieces",))}
_REPLY_KEPT_CHARS = 2000


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that shapes a run except the backend, the corpora and the output path."""

    per_corpus: int = 50
    window_chars: int = 4000
    align_paragraphs: bool = False
    seed: int = 0
    approximate: bool = False
    piece_chars: int = 100
    concurrency: int = 8
    temperature: float = 0.6
    recent_questions: int = 20
    fuzzy_threshold: float = 90.0
    filters: FilterSettings = field(default_factory=FilterSettings)
    template: PromptTemplate | None = None
    max_attempts_per_corpus: int | None = None  # default: 10 * per_corpus + 10
    max_consecutive_failures: int = 3
    structured_output: bool = True  # send response_format (JSON schema) when the backend supports it
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))  # question kind -> share
    verify: bool = False  # a second request per question: do its references answer it?
    quotas: Mapping[str, int] | None = None  # corpus_id -> questions wanted, instead of per_corpus for all
    chunk_windows: Mapping[str, Sequence[tuple[int, int]]] | None = None  # windows = these chunks (--from-chunks)

    def __post_init__(self) -> None:
        minimum = {"per_corpus": 1, "window_chars": 200, "piece_chars": 10, "concurrency": 1,
                   "recent_questions": 0, "max_consecutive_failures": 1}
        for name, least in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"temperature must be within [0, 2], got {self.temperature}")
        if not 0 <= self.fuzzy_threshold <= 100:
            raise ValueError(f"fuzzy_threshold must be within [0, 100] (a rapidfuzz score), got {self.fuzzy_threshold}")
        if self.max_attempts_per_corpus is not None and self.max_attempts_per_corpus < 1:
            raise ValueError(f"max_attempts_per_corpus must be at least 1, got {self.max_attempts_per_corpus}")
        object.__setattr__(self, "mix", check_mix(self.mix))
        if self.quotas is not None:
            for cid, wanted in self.quotas.items():
                if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
                    raise ValueError(f"quotas: corpus {cid!r} wants {wanted!r} questions; give an integer >= 0")
            object.__setattr__(self, "quotas", dict(self.quotas))
        if self.approximate and "multi" in self.mix:
            raise ValueError("mix: multi-span questions quote two parts and need exact mode; drop approximate "
                             "(--approximate) or the multi share")
        if self.approximate and "cross" in self.mix:
            raise ValueError("mix: cross-document questions quote two documents and need exact mode; drop approximate "
                             "(--approximate) or the cross share")

    @property
    def attempt_limit(self) -> int:
        """Attempts allowed to a corpus whose whole target is one kind."""
        return self.attempt_limit_for(self.per_corpus)

    def attempt_limit_for(self, target: int) -> int:
        """Attempts allowed to one kind of one corpus with ``target`` questions to make."""
        return self.max_attempts_per_corpus or 10 * target + 10

    @property
    def kind_targets(self) -> dict[str, int]:
        """Questions wanted per corpus of each kind: ``per_corpus`` split by ``mix``."""
        return quotas(self.per_corpus, self.mix)

    def target_for(self, corpus_id: str) -> int:
        """Questions wanted from one corpus: its quota when ``quotas`` is set, else ``per_corpus``."""
        return self.per_corpus if self.quotas is None else self.quotas.get(corpus_id, 0)

    def kind_targets_for(self, corpus_id: str) -> dict[str, int]:
        return quotas(self.target_for(corpus_id), self.mix)

    def resolved_template(self) -> PromptTemplate:
        return self.template or default_template(self.approximate)


@dataclass
class GenerationReport:
    """What a run did. ``stop_reason``: done, budget, backend_error or attempt_limit (an interrupt
    raises ``KeyboardInterrupt`` instead; everything accepted until then is in the file)."""

    out_path: Path
    accepted: Counter[str] = field(default_factory=Counter)  # new this run, per corpus
    accepted_kinds: Counter[str] = field(default_factory=Counter)  # new this run, per question kind
    total: dict[str, int] = field(default_factory=dict)  # in the file at the end, per corpus
    rejected: Counter[str] = field(default_factory=Counter)  # per reason, this run
    failed_requests: int = 0
    requests_sent: int = 0
    tokens_used: int = 0
    stop_reason: str = "done"
    message: str = ""
    repaired_bytes: int = 0
    elapsed_s: float = 0.0
    coverage: dict[str, Any] = field(default_factory=dict)  # corpus_coverage() of the file at the end
    usage: Counter[str] = field(default_factory=Counter)  # prompt/completion/reasoning tokens of every reply this run

    @property
    def target_reached(self) -> bool:
        return self.stop_reason == "done"


def sample_window(
    text: str, window_chars: int, seed: int, corpus_id: str, attempt: int, align_paragraphs: bool = False,
    kind: str = "single",
) -> tuple[int, int]:
    """Offsets ``[start, end)`` of attempt ``attempt``'s window: a pure function of its arguments.

    The centres of successive attempts spread evenly over the corpus (:func:`.coverage.spread_index`,
    a golden-ratio sequence whose offset is drawn from sha256 of ``(seed, corpus_id)``, and
    ``kind`` when it is not ``single``: each kind has its own windows), so they depend neither on
    the process, the Python hash seed nor what other attempts did, and a few attempts already reach
    every part of the corpus. With
    ``align_paragraphs`` the start moves back to the paragraph it falls in (at most a quarter
    window) and the end back to the last paragraph break after the window's middle.
    """
    length = len(text)
    if length <= window_chars:
        return 0, length
    key = f"chunkeval-window\0{seed}\0{corpus_id}" + ("" if kind == "single" else f"\0{kind}")
    # The window's centre spreads over the whole text (then the window is clamped inside it): a
    # spread start would show the first and last characters only to windows starting right there.
    centre = spread_index(key, attempt, length)
    start = min(max(0, centre - window_chars // 2), length - window_chars)
    end = start + window_chars
    if align_paragraphs:
        reach = max(0, start - window_chars // 4)
        brk = text.rfind("\n\n", reach, start)
        if brk != -1:
            start = brk + 2
        elif reach == 0:
            start = 0
        end = min(start + window_chars, length)
        if end < length:
            brk = text.rfind("\n\n", start + window_chars // 2, end)
            if brk != -1:
                end = brk
    return start, end


def _attempt_seed(seed: int, corpus_id: str, attempt: int, kind: str = "single") -> int:
    key = f"{corpus_id}\0{attempt}" if kind == "single" else f"{corpus_id}\0{kind}\0{attempt}"
    digest = hashlib.sha256(f"chunkeval-sample\0{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rejected_path(out_path: str | os.PathLike[str]) -> Path:
    """The sidecar of rejected attempts: ``questions.jsonl`` → ``questions.rejected.jsonl``."""
    out = Path(out_path)
    return out.with_name(out.stem + ".rejected.jsonl")


def unanswerable_path(out_path: str | os.PathLike[str]) -> Path:
    """Where unanswerable questions go (no references, so never scored with the span metrics):
    ``questions.jsonl`` → ``questions.unanswerable.jsonl``."""
    out = Path(out_path)
    return out.with_name(out.stem + ".unanswerable.jsonl")


def repair_partial_last_line(path: str | os.PathLike[str]) -> int:
    """Drop a last line cut short by a crash (no final newline, not valid JSON); return bytes dropped.

    A complete JSON last line that merely lacks its newline gets the newline instead.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        block, position, tail_start = 65536, size, 0
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline != -1:
                tail_start = position + newline + 1
                break
        handle.seek(tail_start)
        tail = handle.read()
        try:
            complete = isinstance(json.loads(tail.decode("utf-8")), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            complete = False
        if complete:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
            dropped = 0
        else:
            handle.truncate(tail_start)
            dropped = size - tail_start
        handle.flush()
        os.fsync(handle.fileno())
    return dropped


def _append_line(path: Path, record: Mapping[str, Any]) -> None:
    """One sidecar record: a single write of a whole line, flushed and fsynced."""
    append_line_durable(path, json.dumps(record, ensure_ascii=False, allow_nan=False))


def _read_sidecar(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: line %d is not valid JSON; ignored", path, number)
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def _no_scrub(text: str) -> str:
    return text


def _scrub_value(value: Any, scrub: Callable[[str], str]) -> Any:
    """Every string in a JSON-like value (keys included) passed through ``scrub``."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(k) if isinstance(k, str) else k: _scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v, scrub) for v in value]
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _KindState:
    """One question kind of one corpus: its quota, what it accepted and the attempts it made."""

    def __init__(self, target: int, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.accepted = 0
        self.done_attempts: set[int] = set()
        self.next_candidate = 0
        self.in_flight = 0
        self.exhausted = False

    def needed(self) -> int:
        return self.target - self.accepted - self.in_flight

    def next_attempt(self) -> int | None:
        while self.next_candidate in self.done_attempts:
            self.next_candidate += 1
        if self.next_candidate >= self.limit:
            return None
        attempt = self.next_candidate
        self.next_candidate += 1
        return attempt


class _CorpusState:
    def __init__(self, corpus_id: str, text: str, settings: GenerationSettings) -> None:
        self.corpus_id = corpus_id
        self.text = text
        self.index = CorpusIndex(text)
        self.kinds = {kind: _KindState(target, settings.attempt_limit_for(target))
                      for kind, target in settings.kind_targets_for(corpus_id).items() if target > 0}
        self.questions: list[str] = []
        self.keys: set[str] = set()
        self.vectors: list[np.ndarray] = []

    @property
    def target(self) -> int:
        return sum(k.target for k in self.kinds.values())

    @property
    def accepted(self) -> int:
        return sum(min(k.accepted, k.target) for k in self.kinds.values())

    def short_kinds(self) -> list[str]:
        return [kind for kind, k in self.kinds.items() if k.accepted < k.target]

    def next_attempt(self) -> tuple[str, int] | None:
        """The kind furthest from its quota (ties in :data:`KINDS` order) and its next attempt."""
        for kind in sorted(self.kinds, key=lambda kind: (-self.kinds[kind].needed(), KINDS.index(kind))):
            state = self.kinds[kind]
            if state.exhausted or state.needed() <= 0:
                continue
            attempt = state.next_attempt()
            if attempt is None:
                state.exhausted = True
                continue
            state.in_flight += 1
            return kind, attempt
        return None


@dataclass
class _Outcome:
    kind: str  # accepted, rejected, failed, fatal, budget
    corpus_id: str
    reason: str = ""
    detail: str = ""
    question_kind: str = "single"


@dataclass
class _Plan:
    """What attempt ``attempt`` of kind ``kind`` shows the model."""

    kind: str
    attempt: int
    windows: tuple[tuple[int, int], ...]
    messages: list[dict[str, str]]
    template: PromptTemplate
    bounds: list[int] | None = None
    chunks: tuple[int, ...] = ()  # with --from-chunks: the chunks shown, by position in the corpus's chunk list
    documents: tuple[str, ...] = ()  # cross-document: the corpus of each window (else all the question's corpus)

    @property
    def span(self) -> tuple[int, int]:
        """From the first window's start to the last one's end: where excerpts are searched first
        (cross-document: the first document's window)."""
        return self.windows[0][0], (self.windows[0] if self.documents else self.windows[-1])[1]

    def window_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"window": {"start": self.span[0], "end": self.span[1]}}
        if self.documents:
            record["documents"] = [{"corpus_id": c, "start": a, "end": b}
                                   for c, (a, b) in zip(self.documents, self.windows, strict=True)]
        elif len(self.windows) > 1:
            record["windows"] = [{"start": a, "end": b} for a, b in self.windows]
        if self.chunks:
            record["chunks"] = list(self.chunks)
        return record


class _Run:
    def __init__(
        self,
        corpora: Mapping[str, str],
        out_path: Path,
        backend: ChatBackend,
        settings: GenerationSettings,
        embedder: Embedder | None,
        show_progress: bool | None,
    ) -> None:
        self.corpora = corpora
        self.out_path = out_path
        self.sidecar = rejected_path(out_path)
        self.unanswerable = unanswerable_path(out_path)
        self.backend = backend
        self.settings = settings
        self.template = settings.resolved_template()
        self.templates = {kind: self.template if kind == "single" else kind_template(kind) for kind in settings.mix}
        self.embedder = embedder
        self.show_progress = show_progress
        self.states = {cid: _CorpusState(cid, text, settings) for cid, text in corpora.items()}
        self.report = GenerationReport(out_path=out_path)
        self.accept_lock = asyncio.Lock()
        self.embed_lock = threading.Lock()
        self.consecutive_failures = 0
        self.description = backend.describe()
        scrub: Callable[[str], str] | None = getattr(backend, "scrub", None)
        self.scrub: Callable[[str], str] = scrub if callable(scrub) else _no_scrub
        # Structured output until the server refuses it once (then free text for the rest of the run).
        self.structured = settings.structured_output and bool(getattr(backend, "supports_response_format", False))
        self.chunk_windows = {cid: list(w) for cid, w in (settings.chunk_windows or {}).items()}
        for cid, state in self.states.items():
            if settings.chunk_windows is not None and not self.chunk_windows.get(cid):
                raise ValueError(f"chunk_windows: corpus {cid!r} has no chunks; add its chunks to the chunks file "
                                 "or leave the corpus out (--corpora)")
            if "multi" in state.kinds and cid in self.chunk_windows:
                chunk_pair(len(self.chunk_windows[cid]), 0, 0)  # raises when too few chunks
            elif "multi" in state.kinds:
                multi_windows(len(state.text), settings.window_chars, settings.seed, cid, 0)  # raises when too short
            if "cross" in state.kinds:
                cross_partner(list(corpora), cid, settings.seed, 0)  # raises when there is no second document

    # -- resume ---------------------------------------------------------------------------------

    def _count_existing(self, record: dict[str, Any], seed: int) -> None:
        state = self.states.get(record.get("corpus_id"))  # type: ignore[arg-type]
        if state is None or not isinstance(record.get("question"), str):
            return
        state.questions.append(record["question"])
        state.keys.add(question_key(record["question"]))
        provenance = record.get("provenance")
        provenance = provenance if isinstance(provenance, dict) else {}
        kind = _record_kind(provenance)
        if kind in state.kinds:
            state.kinds[kind].accepted += 1
            if provenance.get("seed") == seed and isinstance(provenance.get("attempt"), int):
                state.kinds[kind].done_attempts.add(provenance["attempt"])

    def load_existing(self, repair: bool = True) -> None:
        from ..datasets import read_questions

        if repair:
            self.report.repaired_bytes = sum(repair_partial_last_line(p) for p in (self.out_path, self.sidecar,
                                                                                   self.unanswerable))
        if self.report.repaired_bytes:
            log.warning("dropped %d bytes of a line cut short by an interrupted write", self.report.repaired_bytes)
        seed = self.settings.seed
        for record in read_questions(self.out_path) if self.out_path.is_file() else []:
            self._count_existing(record, seed)
        for record in _read_sidecar(self.unanswerable):
            self._count_existing(record, seed)
        for record in _read_sidecar(self.sidecar):
            state = self.states.get(record.get("corpus_id"))  # type: ignore[arg-type]
            kind = _record_kind(record)
            if state is not None and kind in state.kinds and record.get("seed") == seed \
                    and isinstance(record.get("attempt"), int):
                state.kinds[kind].done_attempts.add(record["attempt"])

    def embed(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        with self.embed_lock:
            vectors = np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise TypeError(f"embedder.embed returned shape {vectors.shape} for {len(texts)} texts; "
                            "it must return one row per text")
        return vectors

    # -- one attempt ----------------------------------------------------------------------------

    def _chunk_plan(self, state: _CorpusState, kind: str, attempt: int) -> tuple[tuple[tuple[int, int], ...],
                                                                               tuple[int, ...]]:
        """Windows that are the user's chunks: spread over the document's chunks like text windows."""
        chunks = self.chunk_windows[state.corpus_id]
        key = f"chunkeval-chunk\0{self.settings.seed}\0{state.corpus_id}" + ("" if kind == "single" else f"\0{kind}")
        first = spread_index(key, attempt, len(chunks))
        if kind == "cross":  # one chunk of each document; ``ids`` are positions in each one's own chunk list
            partner = cross_partner(list(self.states), state.corpus_id, self.settings.seed, attempt)
            theirs = self.chunk_windows[partner]
            second = spread_index(f"{key}\0{partner}", attempt, len(theirs))
            return (chunks[first], theirs[second]), (first, second)
        if kind != "multi":
            return (chunks[first],), (first,)
        pick = _attempt_seed(self.settings.seed, state.corpus_id, attempt, "multi-chunk")
        ids = tuple(sorted((first, chunk_pair(len(chunks), first, pick)), key=lambda i: chunks[i]))
        return tuple(chunks[i] for i in ids), ids

    def _plan(self, state: _CorpusState, kind: str, attempt: int) -> _Plan:
        settings = self.settings
        template = self.templates[kind]
        recent = state.questions[-settings.recent_questions:] if settings.recent_questions else []
        max_refs = settings.filters.max_references
        if kind == "cross":
            return self._cross_plan(state, attempt, template, recent, max_refs)
        if state.corpus_id in self.chunk_windows:
            windows, ids = self._chunk_plan(state, kind, attempt)
            bounds: list[int] | None = None
            if kind == "multi":
                shown = render_parts(state.text, windows)
            else:
                shown = state.text[windows[0][0]:windows[0][1]]
                if settings.approximate and kind == "single":
                    shown, bounds = tag_pieces(shown, settings.piece_chars)
            return _Plan(kind, attempt, windows, template.render(shown, recent, max_refs), template, bounds, ids)
        if kind == "multi":
            windows = multi_windows(len(state.text), settings.window_chars, settings.seed, state.corpus_id, attempt)
            return _Plan(kind, attempt, windows, template.render(render_parts(state.text, windows), recent, max_refs),
                         template)
        window = sample_window(state.text, settings.window_chars, settings.seed, state.corpus_id, attempt,
                               settings.align_paragraphs, kind=kind)
        shown = state.text[window[0]:window[1]]
        bounds = None
        if settings.approximate and kind == "single":
            shown, bounds = tag_pieces(shown, settings.piece_chars)
        return _Plan(kind, attempt, (window,), template.render(shown, recent, max_refs), template, bounds)

    def _cross_plan(self, state: _CorpusState, attempt: int, template: PromptTemplate, recent: list[str],
                    max_refs: int) -> _Plan:
        """One window of the question's document and one of its partner, half a window each."""
        settings = self.settings
        partner = cross_partner(list(self.states), state.corpus_id, settings.seed, attempt)
        ids: tuple[int, ...] = ()
        if state.corpus_id in self.chunk_windows:
            windows, ids = self._chunk_plan(state, "cross", attempt)
        else:
            part = max(settings.window_chars // 2, 1)
            windows = (
                sample_window(state.text, part, settings.seed, state.corpus_id, attempt, settings.align_paragraphs,
                              kind="cross"),
                sample_window(self.states[partner].text, part, settings.seed, partner, attempt,
                              settings.align_paragraphs, kind=f"cross\0{state.corpus_id}"),
            )
        documents = (state.corpus_id, partner)
        shown = render_documents(tuple(self.states[c].text[a:b] for c, (a, b) in zip(documents, windows, strict=True)))
        return _Plan("cross", attempt, windows, template.render(shown, recent, max_refs), template, None, ids,
                     documents)

    def _locate(self, state: _CorpusState, answer: ParsedAnswer, plan: _Plan) -> tuple[list[Located], list[int]]:
        """Each excerpt's span and the document it lies in (its index in ``plan.documents``; 0 when
        there is one document)."""
        settings = self.settings
        if too_many_references(answer.n_references, settings.filters.max_references):
            raise AnswerError("too_many_references",
                              f"{answer.n_references} references, more than {settings.filters.max_references}")
        located: list[Located] = []
        lo, hi = plan.span
        if plan.bounds is not None:
            for first, last in answer.piece_ranges:
                start, end = pieces_to_span(plan.bounds, lo, first, last)
                located.append(Located(start, end, "pieces", 100.0))
            return located, [0] * len(located)
        if plan.documents:
            return self._locate_cross(answer, plan)
        for i, excerpt in enumerate(answer.excerpts):
            found = state.index.locate(excerpt, lo, hi, fuzzy_threshold=settings.fuzzy_threshold)
            if found is None:
                raise AnswerError(
                    "excerpt_not_found", f"reference {i} {_preview(excerpt)!r} is not in corpus {state.corpus_id!r}"
                )
            located.append(found)
        if plan.kind == "multi":
            _check_both_parts(located, plan.windows)
        return located, [0] * len(located)

    def _locate_cross(self, answer: ParsedAnswer, plan: _Plan) -> tuple[list[Located], list[int]]:
        """Each excerpt in each document (its window first); the better match wins, the first
        document on a tie. Both documents must hold at least one reference."""
        located: list[Located] = []
        docs: list[int] = []
        for i, excerpt in enumerate(answer.excerpts):
            best: tuple[tuple[int, float], int, Located] | None = None
            for doc, (corpus_id, (lo, hi)) in enumerate(zip(plan.documents, plan.windows, strict=True)):
                found = self.states[corpus_id].index.locate(excerpt, lo, hi,
                                                            fuzzy_threshold=self.settings.fuzzy_threshold)
                rank = (_MATCH_RANK[found.match], -found.score) if found is not None else None
                if found is not None and rank is not None and (best is None or rank < best[0]):
                    best = (rank, doc, found)
            if best is None:
                names = " or ".join(repr(c) for c in plan.documents)
                raise AnswerError("excerpt_not_found", f"reference {i} {_preview(excerpt)!r} is in neither corpus "
                                                       f"{names}")
            docs.append(best[1])
            located.append(best[2])
        for doc, corpus_id in enumerate(plan.documents):
            if doc not in docs:
                raise AnswerError("not_cross_document", f"no reference lies in document {doc + 1} ({corpus_id!r}); a "
                                                        "cross-document question needs evidence from both documents")
        return located, docs

    def _references(self, state: _CorpusState, located: list[Located], docs: list[int], answer: ParsedAnswer,
                    plan: _Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The reference records, merged where they overlap within a document, the question's
        document first; a reference in another document carries that document's ``corpus_id``."""
        references, how = [], []
        for doc, corpus_id in enumerate(plan.documents or (state.corpus_id,)):
            text = self.states[corpus_id].text
            mine = [i for i, d in enumerate(docs) if d == doc]
            merged, members = merge_overlapping([(located[i].start, located[i].end) for i in mine])
            for (start, end), local in zip(merged, members, strict=True):
                parts = [mine[j] for j in local]
                reference: dict[str, Any] = {"content": text[start:end], "start_index": start, "end_index": end}
                if corpus_id != state.corpus_id:
                    reference["corpus_id"] = corpus_id
                references.append(reference)
                worst = max(parts, key=lambda i: (_MATCH_RANK[located[i].match], -located[i].score))
                entry: dict[str, Any] = {
                    "match": located[worst].match,
                    "score": round(min(located[i].score for i in parts), 2),
                }
                if answer.piece_ranges:
                    entry["pieces"] = [list(answer.piece_ranges[i]) for i in parts]
                if len(parts) > 1:
                    entry["merged_from"] = parts
                how.append(entry)
        return references, how

    def _provenance(self, plan: _Plan, result: ChatResult, how: list[dict[str, Any]],
                    similarity: dict[str, Any], output_path: str) -> dict[str, Any]:
        usage = {
            k: v
            for k, v in result.usage.items()
            if k in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens")
        }
        provenance = {
            "generator": "chunkeval.generate",
            **self.description,
            "reported_model": result.model,
            "kind": plan.kind,
            "prompt_version": plan.template.version,
            "prompt_sha256": plan.template.sha256,
            "mode": "approximate" if plan.bounds is not None else "exact",
            "seed": self.settings.seed,
            "attempt": plan.attempt,
            **plan.window_record(),
            "temperature": self.settings.temperature,
            "references": how,
            "latency_s": round(result.latency_s, 4),
            "tries": result.tries,
            "usage": usage,
            "finish_reason": result.finish_reason,
            "output_path": output_path,
            "created_at": _now(),
        }
        similarity = dict(similarity)
        verification = similarity.pop("verification", None)
        if similarity:
            provenance["similarity"] = similarity
        if verification is not None:
            provenance["verification"] = verification
        return provenance

    async def _reject(self, state: _CorpusState, plan: _Plan, reason: str, detail: str, result: ChatResult | None,
                reply: str | None = None, output_path: str | None = None,
                extra: dict[str, Any] | None = None) -> _Outcome:
        if reply is None:
            reply = result.text if result is not None else ""
        reply = self.scrub(reply)  # before it is cut: a key straddling the cut would leave half behind
        record: dict[str, Any] = {
            "corpus_id": state.corpus_id,
            "seed": self.settings.seed,
            "attempt": plan.attempt,
            "reason": reason,
            "detail": detail,
            **plan.window_record(),
            "model": self.description.get("model"),
            "latency_s": round(result.latency_s, 4) if result else None,
            "usage": dict(result.usage) if result else {},
            "reply": reply if len(reply) <= _REPLY_KEPT_CHARS else reply[:_REPLY_KEPT_CHARS] + "…",
            "created_at": _now(),
        }
        if plan.kind != "single":  # a record without "kind" is a single-passage attempt (older files)
            record["kind"] = plan.kind
        if output_path is not None:
            record["output_path"] = output_path
        record.update(extra or {})
        record = _scrub_value(record, self.scrub)
        # In a worker thread: an fsync takes milliseconds, and the event loop keeps the other requests moving.
        await asyncio.to_thread(_append_line, self.sidecar, record)
        state.kinds[plan.kind].done_attempts.add(plan.attempt)
        log.debug(
            "rejected %s %s attempt %d: %s (%s)", state.corpus_id, plan.kind, plan.attempt, reason, record["detail"]
        )
        return _Outcome("rejected", state.corpus_id, reason, record["detail"], plan.kind)

    async def _ask(self, messages: list[dict[str, str]], seed: int,
                   response_format: dict[str, Any]) -> tuple[ChatResult, str]:
        """One request; structured output while the server takes it, free text once it refuses."""
        temperature = self.settings.temperature
        if self.structured:
            try:
                result = await self.backend.complete(  # type: ignore[call-arg]
                    messages, temperature=temperature, seed=seed, response_format=response_format)
                _usage_counts(getattr(result, "usage", None), self.report.usage)
                return result, "structured"
            except StructuredOutputRefused as exc:
                if self.structured:
                    self.structured = False
                    log.warning("the server refused structured output; asking for free text from now on (%s)",
                                self.scrub(str(exc)))
        result = await self.backend.complete(messages, temperature=temperature, seed=seed)
        _usage_counts(getattr(result, "usage", None), self.report.usage)
        return result, "free_text"

    def _read_answer(self, state: _CorpusState, reply: str,
                     plan: _Plan) -> tuple[ParsedAnswer, list[dict[str, Any]], list[dict[str, Any]]]:
        """Parse, locate and check one reply; every failure is an :class:`AnswerError`."""
        try:
            answer = parse_answer(reply, approximate=plan.bounds is not None, question_only=plan.kind == "unanswerable")
            if self.scrub(answer.question) != answer.question:
                raise AnswerError("reflected_secret", "the question holds the API key (the server reflected it)")
            if plan.kind == "unanswerable":
                return answer, [], []
            located, docs = self._locate(state, answer, plan)
            references, how = self._references(state, located, docs, answer, plan)
        except AnswerError:
            raise
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError) as exc:
            # A reply no check above foresaw: reject it and keep going rather than end the run.
            log.warning("unexpected %s while reading a reply for %s: %s", type(exc).__name__, state.corpus_id,
                        self.scrub(str(exc))[:200])
            raise AnswerError("unprocessable_reply", f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return answer, references, how

    async def _request(self, state: _CorpusState, plan: _Plan, messages: list[dict[str, str]],
                       response_format: dict[str, Any], seed: int,
                       malformed: str = "malformed_reply") -> tuple[ChatResult, str] | _Outcome:
        """Send one request of ``plan``; what cannot become a reply becomes the attempt's outcome."""
        try:
            return await self._ask(messages, seed, response_format)
        except BudgetExhausted as exc:
            return _Outcome("budget", state.corpus_id, detail=str(exc), question_kind=plan.kind)
        except MalformedReply as exc:
            return await self._reject(state, plan, malformed, exc.detail, None, reply=exc.raw)
        except FatalBackendError as exc:
            return _Outcome("fatal", state.corpus_id, detail=self.scrub(str(exc)), question_kind=plan.kind)
        except BackendError as exc:
            return _Outcome("failed", state.corpus_id, detail=self.scrub(str(exc)), question_kind=plan.kind)

    async def _verify(self, state: _CorpusState, plan: _Plan, answer: ParsedAnswer, references: list[dict[str, Any]],
                      result: ChatResult, output_path: str) -> dict[str, Any] | _Outcome:
        """The grounding check: do the references (an unanswerable question: the window) answer it?"""
        passages = [r["content"] for r in references] or [state.text[a:b] for a, b in plan.windows]
        seed = _attempt_seed(self.settings.seed, state.corpus_id, plan.attempt, plan.kind + "-verify")
        asked = await self._request(state, plan, verify_messages(answer.question, passages), verdict_response_format(),
                                    seed, malformed="verify_malformed_reply")
        if isinstance(asked, _Outcome):
            return asked
        checked, path = asked
        wrong = _result_problem(checked)
        if wrong is not None:
            return await self._reject(state, plan, "verify_malformed_reply", wrong, result, reply="",
                                      output_path=output_path)
        reply = checked.text if checked.text.strip() or not checked.reasoning else "<think>" + checked.reasoning
        spent = {"prompt_version": VERIFY_VERSION, "usage": dict(checked.usage),
                 "latency_s": round(checked.latency_s, 4), "output_path": path}
        try:
            verdict, reason = parse_verdict(reply)
        except AnswerError as exc:
            return await self._reject(
                state,
                plan,
                exc.reason,
                exc.detail,
                result,
                reply=checked.text,
                output_path=output_path,
                extra={"verification": spent},
            )
        verification = {"verdict": verdict, "reason": reason, **spent}
        wanted = "no" if plan.kind == "unanswerable" else "yes"
        if verdict != wanted:
            return await self._reject(
                state,
                plan,
                "not_grounded",
                f"the grounding check answered {verdict!r} (a question is kept on {wanted!r}): {reason}",
                result,
                output_path=output_path,
                extra={"verification": verification},
            )
        return verification

    async def attempt(self, state: _CorpusState, kind: str, attempt: int) -> _Outcome:
        plan = self._plan(state, kind, attempt)
        response_format = answer_response_format(plan.bounds is not None, self.settings.filters.max_references,
                                                 question_only=plan.kind == "unanswerable")
        asked = await self._request(state, plan, plan.messages, response_format,
                                    _attempt_seed(self.settings.seed, state.corpus_id, plan.attempt, plan.kind))
        if isinstance(asked, _Outcome):
            return asked
        result, output_path = asked
        wrong = _result_problem(result)
        if wrong is not None:  # a third-party backend's reply of the wrong types: as malformed as a server's
            return await self._reject(state, plan, "malformed_reply", wrong, None, reply="", output_path=output_path)
        reply = result.text
        if not reply.strip() and result.reasoning:
            # A server-side reasoning parser moved everything into the reasoning field.
            reply = "<think>" + result.reasoning
        try:
            answer, references, how = self._read_answer(state, reply, plan)
        except AnswerError as exc:
            return await self._reject(state, plan, exc.reason, exc.detail, result, output_path=output_path)
        similarity: dict[str, Any] = {}
        vectors = None
        if self.settings.filters.use_embeddings:
            vectors = await asyncio.to_thread(self.embed, [answer.question] + [r["content"] for r in references])
            if references:
                poor, worst = has_poor_excerpt(vectors[0], vectors[1:], self.settings.filters.excerpt_threshold)
                similarity["min_excerpt"] = round(worst, 4)
                if poor:
                    return await self._reject(
                        state,
                        plan,
                        "poor_excerpt",
                        f"an excerpt's cosine to the question is {worst:.3f} "
                        f"< {self.settings.filters.excerpt_threshold}",
                        result,
                        output_path=output_path,
                    )
        if self.settings.verify:
            if question_key(answer.question) in state.keys:  # no check request for a question already accepted
                return await self._reject(
                    state,
                    plan,
                    "duplicate_question",
                    f"{answer.question!r} was already accepted",
                    result,
                    output_path=output_path,
                )
            verified = await self._verify(state, plan, answer, references, result, output_path)
            if isinstance(verified, _Outcome):
                return verified
            similarity = {**similarity, "verification": verified}
        async with self.accept_lock:
            return await self._accept(state, plan, result, answer, references, how, similarity, vectors, output_path)

    async def _accept(self, state: _CorpusState, plan: _Plan, result: ChatResult, answer: ParsedAnswer,
                references: list[dict[str, Any]], how: list[dict[str, Any]], similarity: dict[str, Any],
                vectors: np.ndarray | None, output_path: str) -> _Outcome:
        from ..datasets import append_question

        settings = self.settings
        key = question_key(answer.question)
        if key in state.keys:
            return await self._reject(
                state,
                plan,
                "duplicate_question",
                f"{answer.question!r} was already accepted",
                result,
                output_path=output_path,
            )
        if vectors is not None:
            accepted = np.vstack(state.vectors) if state.vectors else np.zeros((0, vectors.shape[1]), np.float32)
            duplicate, best = is_near_duplicate(vectors[0], accepted, settings.filters.duplicate_threshold)
            if best is not None:
                similarity["max_question"] = round(best, 4)
            if duplicate:
                return await self._reject(
                    state,
                    plan,
                    "near_duplicate_question",
                    f"cosine {best:.3f} >= {settings.filters.duplicate_threshold} to an accepted question",
                    result,
                    output_path=output_path,
                )
        tag = "" if plan.kind == "single" else f"{plan.kind}:"
        record = {
            "question_id": f"{state.corpus_id}:s{settings.seed}:{tag}a{plan.attempt}",
            "question": answer.question,
            "corpus_id": state.corpus_id,
            "references": references,
            "provenance": _scrub_value(self._provenance(plan, result, how, similarity, output_path), self.scrub),
        }
        await asyncio.to_thread(
            append_question, record, self.unanswerable if plan.kind == "unanswerable" else self.out_path
        )
        state.questions.append(answer.question)
        state.keys.add(key)
        if vectors is not None:
            state.vectors.append(vectors[0])
        kind_state = state.kinds[plan.kind]
        kind_state.accepted += 1
        kind_state.done_attempts.add(plan.attempt)
        return _Outcome("accepted", state.corpus_id, question_kind=plan.kind)

    # -- scheduling -----------------------------------------------------------------------------

    def coverage(self) -> dict[str, Any]:
        from ..datasets import read_questions

        records = read_questions(self.out_path) if self.out_path.is_file() else []
        return corpus_coverage(records, {cid: len(text) for cid, text in self.corpora.items()})

    def _record(self, outcome: _Outcome, stopping: bool) -> bool:
        """Count one finished attempt; returns whether the run must stop launching new ones."""
        report = self.report
        if outcome.kind == "accepted":
            report.accepted[outcome.corpus_id] += 1
            report.accepted_kinds[outcome.question_kind] += 1
            self.consecutive_failures = 0
        elif outcome.kind == "rejected":
            report.rejected[outcome.reason] += 1
            self.consecutive_failures = 0
        elif outcome.kind == "failed":
            report.failed_requests += 1
            self.consecutive_failures += 1
            log.warning("request failed (%s): %s", outcome.corpus_id, self.scrub(outcome.detail))
            if self.consecutive_failures >= self.settings.max_consecutive_failures and not stopping:
                report.stop_reason = "backend_error"
                report.message = f"{self.consecutive_failures} requests in a row failed; last: {outcome.detail}"
                return True
        elif outcome.kind == "fatal" and report.stop_reason != "backend_error":
            report.stop_reason = "backend_error"
            report.message = outcome.detail
            return True
        elif outcome.kind == "budget" and not stopping:
            report.stop_reason = "budget"
            report.message = outcome.detail
            return True
        return stopping

    def _launch(self, in_flight: dict[asyncio.Task[_Outcome], tuple[str, str]]) -> None:
        """Start attempts, corpus by corpus in turn, until ``concurrency`` are in flight or none is wanted."""
        while len(in_flight) < self.settings.concurrency:
            launched = False
            for state in self.states.values():
                if len(in_flight) >= self.settings.concurrency:
                    break
                picked = state.next_attempt()
                if picked is None:
                    continue
                kind, attempt = picked
                in_flight[asyncio.create_task(self.attempt(state, kind, attempt))] = (state.corpus_id, kind)
                launched = True
            if not launched:
                break

    async def _embed_existing(self) -> None:
        if self.embedder is not None:
            for state in self.states.values():
                if state.questions:
                    vectors = await asyncio.to_thread(self.embed, state.questions)
                    state.vectors = list(vectors)

    def _finish(self, began: float) -> None:
        report = self.report
        report.elapsed_s = time.perf_counter() - began
        budget = getattr(self.backend, "budget", None)
        if budget is not None:
            report.requests_sent, report.tokens_used = budget.requests_sent, budget.tokens_used
        report.total = {cid: len(s.questions) for cid, s in self.states.items()}

    def _check_quotas(self) -> None:
        report = self.report
        if report.stop_reason == "done":
            short = {cid: s.short_kinds() for cid, s in self.states.items() if s.short_kinds()}
            if short:
                report.stop_reason = "attempt_limit"
                report.message = (f"corpora {list(short)} used all their attempts without reaching their quotas "
                                  f"(short: {short}); see the rejection reasons (--stats)")

    async def run(self) -> GenerationReport:
        from .._progress import progress

        began = time.perf_counter()
        report = self.report
        await self._embed_existing()
        in_flight: dict[asyncio.Task[_Outcome], tuple[str, str]] = {}
        stopping = False
        with progress(self.show_progress) as bar:
            task_id = bar.add_task("generate", total=sum(s.target for s in self.states.values()))

            def refresh() -> None:
                done = sum(s.accepted for s in self.states.values())
                accepted = sum(report.accepted.values())
                rejected = sum(report.rejected.values())
                minutes = max(time.perf_counter() - began, 1e-9) / 60
                bar.update(task_id, completed=done,
                           description=f"generate: {accepted} new, {rejected} rejected, {accepted / minutes:.1f}/min")

            refresh()
            try:
                while True:
                    if not stopping:
                        self._launch(in_flight)
                    if not in_flight:
                        break
                    finished, _ = await asyncio.wait(set(in_flight), return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        corpus_id, kind = in_flight.pop(task)
                        self.states[corpus_id].kinds[kind].in_flight -= 1
                        stopping = self._record(task.result(), stopping)
                    refresh()
            finally:
                for task in in_flight:
                    task.cancel()
                if in_flight:
                    await asyncio.gather(*in_flight, return_exceptions=True)
                await self.backend.aclose()
                self._finish(began)
        report.coverage = self.coverage()
        self._check_quotas()
        return report


def _result_problem(result: object) -> str | None:
    """Why a backend's return value is not a usable :class:`ChatResult` (``None`` when it is)."""
    if not isinstance(result, ChatResult):
        return f"the backend returned {type(result).__name__}, not a ChatResult"
    if not isinstance(result.text, str):
        return f"the backend's reply text is {type(result.text).__name__}, not a string"
    if result.reasoning is not None and not isinstance(result.reasoning, str):
        return f"the backend's reasoning is {type(result.reasoning).__name__}, not a string or None"
    if not isinstance(result.usage, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in result.usage.items()):
        return "the backend's usage is not a mapping of token counts"
    return None


def _record_kind(record: Mapping[str, Any]) -> str:
    """The kind a question or rejection record was made as (records written before kinds: single)."""
    kind = record.get("kind", "single")
    return kind if isinstance(kind, str) else "single"


def _preview(excerpt: str) -> str:
    preview = " ".join(excerpt.split())
    return preview if len(preview) <= 80 else preview[:79] + "…"


def _check_both_parts(located: list[Located], windows: tuple[tuple[int, int], ...]) -> None:
    """A multi-span answer needs at least one reference inside each part it was shown."""
    for number, (start, end) in enumerate(windows, start=1):
        if not any(start <= loc.start and loc.end <= end for loc in located):
            raise AnswerError("not_multi_span", f"no reference lies in part {number} [{start}, {end}); a multi-span "
                                                "question needs evidence from both parts")


def _default_embedder() -> Embedder:
    try:
        from ..embedding import Embedder as DefaultEmbedder
    except ImportError as exc:
        raise ValueError(f"the embedding filters need chunkeval.embedding ({exc}); install chunkeval[embed] "
                         "or turn the filters off (--no-filters)") from None
    # One small batch per attempt: a progress bar per call would only flicker under the run's own bar.
    return DefaultEmbedder(show_progress=False)


async def agenerate_questions(
    corpora: Mapping[str, str],
    out_path: str | os.PathLike[str],
    backend: ChatBackend,
    settings: GenerationSettings | None = None,
    *,
    embedder: Embedder | None = None,
    show_progress: bool | None = None,
) -> GenerationReport:
    """Async :func:`generate_questions`."""
    settings = settings or GenerationSettings()
    out = Path(out_path)
    if out.suffix.lower() != ".jsonl":
        raise ValueError(f"out: {str(out)!r} must be a .jsonl file (appended as questions are made, so a run can "
                         "resume); convert it afterwards with `chunkeval generate --convert IN OUT`")
    if not corpora:
        raise ValueError("corpora is empty; pass at least one corpus_id -> text")
    empty = [cid for cid, text in corpora.items() if not text.strip()]
    if empty:
        raise ValueError(f"corpora {empty} are empty; remove them or add text")
    unknown = sorted(set(settings.quotas or {}) - set(corpora))
    if unknown:
        raise ValueError(f"quotas: corpora {unknown} are not among the corpora given; known: {sorted(corpora)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if settings.filters.use_embeddings and embedder is None:
        embedder = await asyncio.to_thread(_default_embedder)
    run = _Run(corpora, out, backend, settings, embedder if settings.filters.use_embeddings else None, show_progress)
    try:
        run.load_existing()
    except BaseException:
        await backend.aclose()
        raise
    return await run.run()


def generate_questions(
    corpora: Mapping[str, str],
    out_path: str | os.PathLike[str],
    backend: ChatBackend,
    settings: GenerationSettings | None = None,
    *,
    embedder: Embedder | None = None,
    show_progress: bool | None = None,
) -> GenerationReport:
    """Generate questions into ``out_path`` (JSONL) until each corpus has ``settings.per_corpus``.

    Resumes what the file and its ``.rejected.jsonl`` sidecar already hold (see the module
    docstring). ``embedder`` (``.embed(list[str]) -> (n, d)`` float array) drives the duplicate and
    excerpt filters; ``None`` means :class:`chunkeval.embedding.Embedder` when filters are on.
    Returns a :class:`GenerationReport`; it raises only for bad arguments.
    """
    return asyncio.run(
        agenerate_questions(corpora, out_path, backend, settings, embedder=embedder, show_progress=show_progress)
    )


# -- statistics -----------------------------------------------------------------------------------


def _verification_usage(record: Mapping[str, Any]) -> object:
    verification = record.get("verification")
    return verification.get("usage") if isinstance(verification, dict) else None


def _usage_counts(usage: object, into: Counter[str]) -> None:
    if isinstance(usage, dict):
        for key in _TOKEN_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                into[key] += value


_TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "reasoning_tokens")


class _Tally:
    """What :func:`summarize_file` counts over question records."""

    def __init__(self) -> None:
        self.per_corpus: Counter[str] = Counter()
        self.match_kinds: Counter[str] = Counter()
        self.n_refs: Counter[int] = Counter()
        self.models: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.output_paths: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.tokens: Counter[str] = Counter()

    def add(self, record: Mapping[str, Any]) -> None:
        self.per_corpus[str(record.get("corpus_id"))] += 1
        refs = record.get("references") or []
        provenance = record.get("provenance")
        provenance = provenance if isinstance(provenance, dict) else {}
        kind = _record_kind(provenance)
        self.kinds[kind] += 1
        if kind != "unanswerable":
            self.n_refs[len(refs)] += 1
            how = provenance.get("references") or []
            for entry in how:
                if isinstance(entry, dict):
                    self.match_kinds[str(entry.get("match", "unknown"))] += 1
            self.match_kinds["unknown"] += max(0, len(refs) - len(how))
        if isinstance(provenance.get("output_path"), str):
            self.output_paths[provenance["output_path"]] += 1
        if isinstance(provenance.get("latency_s"), (int, float)):
            self.latencies.append(float(provenance["latency_s"]))
        if provenance.get("model"):
            self.models[str(provenance["model"])] += 1
        _usage_counts(provenance.get("usage"), self.tokens)
        _usage_counts(_verification_usage(provenance), self.tokens)


def summarize_file(path: str | os.PathLike[str], corpora: Mapping[str, str] | None = None, *,
                   price_in: float | None = None, price_out: float | None = None) -> dict[str, Any]:
    """Counts and means over a generated questions file, its unanswerable and rejection sidecars.

    Keys: questions (in the file), per_corpus, kinds (questions per kind, the unanswerable sidecar
    included), unanswerable, output_paths (structured / free_text), match_kinds (per reference),
    references_per_question (histogram), mean_references, mean_latency_s, tokens
    (prompt/completion/reasoning sums over accepted questions, grounding checks included),
    tokens_rejected (the same over rejected attempts: they cost too), models, rejected (total), rejection_reasons,
    rejected_per_corpus.
    """
    from ..datasets import read_questions

    path = Path(path)
    questions = read_questions(path)
    tally = _Tally()
    for record in questions:
        tally.add(record)
    unanswerable = _read_sidecar(unanswerable_path(path))
    for record in unanswerable:
        tally.add(record)
    del tally.match_kinds["unknown"]  # a Counter: no error when absent
    rejected = _read_sidecar(rejected_path(path))
    tokens_rejected: Counter[str] = Counter()
    for record in rejected:
        _usage_counts(record.get("usage"), tokens_rejected)
        _usage_counts(_verification_usage(record), tokens_rejected)
    reasons = Counter(str(r.get("reason", "unknown")) for r in rejected)
    rejected_per_corpus = Counter(str(r.get("corpus_id")) for r in rejected)
    n = len(questions)
    n_refs = tally.n_refs
    return {
        "path": str(path),
        "questions": n,
        "per_corpus": dict(sorted(Counter(str(r.get("corpus_id")) for r in questions).items())),
        "kinds": {kind: tally.kinds[kind] for kind in KINDS if tally.kinds[kind]},
        "unanswerable": len(unanswerable),
        "output_paths": dict(tally.output_paths.most_common()),
        "match_kinds": dict(tally.match_kinds.most_common()),
        "references_per_question": dict(sorted(n_refs.items())),
        "mean_references": (sum(k * v for k, v in n_refs.items()) / n) if n else None,
        "mean_latency_s": (sum(tally.latencies) / len(tally.latencies)) if tally.latencies else None,
        "tokens": {k: tally.tokens[k] for k in _TOKEN_KEYS if k in tally.tokens},
        "tokens_rejected": {k: tokens_rejected[k] for k in _TOKEN_KEYS if k in tokens_rejected},
        "models": dict(tally.models.most_common()),
        "rejected": len(rejected),
        "rejection_reasons": dict(reasons.most_common()),
        "rejected_per_corpus": dict(sorted(rejected_per_corpus.items())),
        **({"coverage": corpus_coverage(questions, {cid: len(t) for cid, t in corpora.items()})} if corpora else {}),
        **(
            {
                "cost": _cost_summary(
                    tally.tokens, tokens_rejected, n + len(unanswerable), price_in or 0.0, price_out or 0.0
                )
            }
            if price_in is not None or price_out is not None
            else {}
        ),
    }


def estimate_cost(prompt_tokens: int, completion_tokens: int, price_in: float, price_out: float) -> float:
    """Cost of the tokens at ``price_in`` / ``price_out`` per million prompt / completion tokens
    (reasoning tokens are completion tokens: OpenAI-compatible servers count them there)."""
    for name, price in (("price_in", price_in), ("price_out", price_out)):
        if not (
            isinstance(price, (int, float)) and not isinstance(price, bool) and math.isfinite(price) and price >= 0
        ):
            raise ValueError(f"{name} must be a price >= 0 per million tokens, got {price!r}")
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


def _cost_summary(accepted: Counter[str], rejected: Counter[str], kept: int, price_in: float,
                  price_out: float) -> dict[str, Any]:
    costs = {name: estimate_cost(tokens["prompt_tokens"], tokens["completion_tokens"], price_in, price_out)
             for name, tokens in (("accepted", accepted), ("rejected", rejected))}
    total = costs["accepted"] + costs["rejected"]
    return {"price_in": price_in, "price_out": price_out, **costs, "total": total,
            "per_question": total / kept if kept else None}


# -- planning (--dry-run) -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRequest:
    """One generation request a run would send first, if every attempt were accepted."""

    corpus_id: str
    kind: str
    attempt: int
    windows: tuple[tuple[int, int], ...]
    messages: list[dict[str, str]]
    documents: tuple[str, ...] = ()  # cross-document: the corpus of each window

    @property
    def prompt_chars(self) -> int:
        return sum(len(m["content"]) for m in self.messages)


class _Unsent:
    """The backend of a dry run: it describes nothing and sends nothing."""

    name = "dry-run"

    async def complete(self, messages: Any, *, temperature: float, seed: int | None = None) -> ChatResult:
        raise RuntimeError("a dry run sends no request")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}

    async def aclose(self) -> None:
        return None


def plan_requests(corpora: Mapping[str, str], out_path: str | os.PathLike[str],
                  settings: GenerationSettings | None = None) -> list[PlannedRequest]:
    """The requests a run would make, in order, if every attempt were accepted: one per question
    still missing (what ``out_path`` and its sidecars already hold is skipped, as a rerun would).
    Windows are those the run will use (they depend only on the seed); prompts show no previous
    questions beyond those already in the file. Nothing is sent and no file is written."""
    settings = settings or GenerationSettings()
    run = _Run(corpora, Path(out_path), _Unsent(), settings, None, False)
    run.load_existing(repair=False)
    planned: list[PlannedRequest] = []
    for state in run.states.values():
        while (picked := state.next_attempt()) is not None:
            kind, attempt = picked
            plan = run._plan(state, kind, attempt)
            planned.append(PlannedRequest(state.corpus_id, kind, attempt, plan.windows, plan.messages,
                                          plan.documents))
    return planned
