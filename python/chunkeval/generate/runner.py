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
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from .._io import append_line_durable
from .backends import BackendError, BudgetExhausted, ChatBackend, ChatResult, FatalBackendError
from .filters import FilterSettings, has_poor_excerpt, is_near_duplicate, merge_overlapping, question_key, too_many_references
from .locate import MATCH_KINDS, CorpusIndex, Located, pieces_to_span, tag_pieces
from .parsing import AnswerError, ParsedAnswer, parse_answer
from .prompts import PromptTemplate, default_template

__all__ = [
    "Embedder",
    "GenerationSettings",
    "GenerationReport",
    "generate_questions",
    "agenerate_questions",
    "sample_window",
    "rejected_path",
    "repair_partial_last_line",
    "summarize_file",
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

    @property
    def attempt_limit(self) -> int:
        return self.max_attempts_per_corpus or 10 * self.per_corpus + 10

    def resolved_template(self) -> PromptTemplate:
        return self.template or default_template(self.approximate)


@dataclass
class GenerationReport:
    """What a run did. ``stop_reason``: done, budget, backend_error or attempt_limit (an interrupt
    raises ``KeyboardInterrupt`` instead; everything accepted until then is in the file)."""

    out_path: Path
    accepted: Counter = field(default_factory=Counter)  # new this run, per corpus
    total: dict[str, int] = field(default_factory=dict)  # in the file at the end, per corpus
    rejected: Counter = field(default_factory=Counter)  # per reason, this run
    failed_requests: int = 0
    requests_sent: int = 0
    tokens_used: int = 0
    stop_reason: str = "done"
    message: str = ""
    repaired_bytes: int = 0
    elapsed_s: float = 0.0

    @property
    def target_reached(self) -> bool:
        return self.stop_reason == "done"


def sample_window(
    text: str, window_chars: int, seed: int, corpus_id: str, attempt: int, align_paragraphs: bool = False
) -> tuple[int, int]:
    """Offsets ``[start, end)`` of attempt ``attempt``'s window: a pure function of its arguments.

    The start is uniform over the corpus, drawn from sha256 of ``(seed, corpus_id, attempt)`` so it
    does not depend on the process, the Python hash seed or what other attempts did. With
    ``align_paragraphs`` the start moves back to the paragraph it falls in (at most a quarter
    window) and the end back to the last paragraph break after the window's middle.
    """
    length = len(text)
    if length <= window_chars:
        return 0, length
    digest = hashlib.sha256(f"chunkeval-window\0{seed}\0{corpus_id}\0{attempt}".encode("utf-8")).digest()
    start = int.from_bytes(digest[:8], "little") % (length - window_chars + 1)
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


def _attempt_seed(seed: int, corpus_id: str, attempt: int) -> int:
    digest = hashlib.sha256(f"chunkeval-sample\0{seed}\0{corpus_id}\0{attempt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rejected_path(out_path: str | os.PathLike[str]) -> Path:
    """The sidecar of rejected attempts: ``questions.jsonl`` → ``questions.rejected.jsonl``."""
    out = Path(out_path)
    return out.with_name(out.stem + ".rejected.jsonl")


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _CorpusState:
    def __init__(self, corpus_id: str, text: str, settings: GenerationSettings) -> None:
        self.corpus_id = corpus_id
        self.text = text
        self.index = CorpusIndex(text)
        self.target = settings.per_corpus
        self.limit = settings.attempt_limit
        self.questions: list[str] = []
        self.keys: set[str] = set()
        self.vectors: list[np.ndarray] = []
        self.done_attempts: set[int] = set()
        self.next_candidate = 0
        self.in_flight = 0

    def needed(self) -> int:
        return self.target - len(self.questions) - self.in_flight

    def next_attempt(self) -> int | None:
        while self.next_candidate in self.done_attempts:
            self.next_candidate += 1
        if self.next_candidate >= self.limit:
            return None
        attempt = self.next_candidate
        self.next_candidate += 1
        return attempt


@dataclass
class _Outcome:
    kind: str  # accepted, rejected, failed, fatal, budget
    corpus_id: str
    reason: str = ""
    detail: str = ""


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
        self.backend = backend
        self.settings = settings
        self.template = settings.resolved_template()
        self.embedder = embedder
        self.show_progress = show_progress
        self.states = {cid: _CorpusState(cid, text, settings) for cid, text in corpora.items()}
        self.report = GenerationReport(out_path=out_path)
        self.accept_lock = asyncio.Lock()
        self.embed_lock = threading.Lock()
        self.consecutive_failures = 0
        self.description = backend.describe()

    # -- resume ---------------------------------------------------------------------------------

    def load_existing(self) -> None:
        from ..datasets import read_questions

        self.report.repaired_bytes = repair_partial_last_line(self.out_path) + repair_partial_last_line(self.sidecar)
        if self.report.repaired_bytes:
            log.warning("dropped %d bytes of a line cut short by an interrupted write", self.report.repaired_bytes)
        existing = read_questions(self.out_path) if self.out_path.is_file() else []
        seed = self.settings.seed
        for record in existing:
            state = self.states.get(record.get("corpus_id"))
            if state is None or not isinstance(record.get("question"), str):
                continue
            state.questions.append(record["question"])
            state.keys.add(question_key(record["question"]))
            provenance = record.get("provenance")
            if isinstance(provenance, dict) and provenance.get("seed") == seed and isinstance(provenance.get("attempt"), int):
                state.done_attempts.add(provenance["attempt"])
        for record in _read_sidecar(self.sidecar):
            state = self.states.get(record.get("corpus_id"))
            if state is not None and record.get("seed") == seed and isinstance(record.get("attempt"), int):
                state.done_attempts.add(record["attempt"])

    def embed(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        with self.embed_lock:
            vectors = np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise TypeError(f"embedder.embed returned shape {vectors.shape} for {len(texts)} texts; "
                            "it must return one row per text")
        return vectors

    # -- one attempt ----------------------------------------------------------------------------

    def _locate(self, state: _CorpusState, answer: ParsedAnswer, window: tuple[int, int], bounds: list[int] | None) -> list[Located]:
        settings = self.settings
        if too_many_references(answer.n_references, settings.filters.max_references):
            raise AnswerError("too_many_references",
                              f"{answer.n_references} references, more than {settings.filters.max_references}")
        located: list[Located] = []
        if settings.approximate:
            assert bounds is not None
            for first, last in answer.piece_ranges:
                start, end = pieces_to_span(bounds, window[0], first, last)
                located.append(Located(start, end, "pieces", 100.0))
            return located
        for i, excerpt in enumerate(answer.excerpts):
            found = state.index.locate(excerpt, window[0], window[1], fuzzy_threshold=settings.fuzzy_threshold)
            if found is None:
                preview = " ".join(excerpt.split())
                preview = preview if len(preview) <= 80 else preview[:79] + "…"
                raise AnswerError("excerpt_not_found", f"reference {i} {preview!r} is not in corpus {state.corpus_id!r}")
            located.append(found)
        return located

    def _references(self, state: _CorpusState, located: list[Located], answer: ParsedAnswer) -> tuple[list[dict], list[dict]]:
        merged, members = merge_overlapping([(loc.start, loc.end) for loc in located])
        references, how = [], []
        for (start, end), parts in zip(merged, members):
            references.append({"content": state.text[start:end], "start_index": start, "end_index": end})
            worst = max(parts, key=lambda i: (_MATCH_RANK[located[i].match], -located[i].score))
            entry: dict[str, Any] = {"match": located[worst].match, "score": round(min(located[i].score for i in parts), 2)}
            if self.settings.approximate:
                entry["pieces"] = [list(answer.piece_ranges[i]) for i in parts]
            if len(parts) > 1:
                entry["merged_from"] = parts
            how.append(entry)
        return references, how

    def _provenance(self, attempt: int, window: tuple[int, int], result: ChatResult, how: list[dict], similarity: dict) -> dict:
        usage = {k: v for k, v in result.usage.items() if k in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "total_tokens")}
        provenance = {
            "generator": "chunkeval.generate",
            **self.description,
            "reported_model": result.model,
            "prompt_version": self.template.version,
            "prompt_sha256": self.template.sha256,
            "mode": "approximate" if self.settings.approximate else "exact",
            "seed": self.settings.seed,
            "attempt": attempt,
            "window": {"start": window[0], "end": window[1]},
            "temperature": self.settings.temperature,
            "references": how,
            "latency_s": round(result.latency_s, 4),
            "tries": result.tries,
            "usage": usage,
            "finish_reason": result.finish_reason,
            "created_at": _now(),
        }
        if similarity:
            provenance["similarity"] = similarity
        return provenance

    def _reject(self, state: _CorpusState, attempt: int, window: tuple[int, int], reason: str, detail: str,
                result: ChatResult | None) -> _Outcome:
        reply = result.text if result is not None else ""
        record = {
            "corpus_id": state.corpus_id,
            "seed": self.settings.seed,
            "attempt": attempt,
            "reason": reason,
            "detail": detail,
            "window": {"start": window[0], "end": window[1]},
            "model": self.description.get("model"),
            "latency_s": round(result.latency_s, 4) if result else None,
            "usage": dict(result.usage) if result else {},
            "reply": reply if len(reply) <= _REPLY_KEPT_CHARS else reply[:_REPLY_KEPT_CHARS] + "…",
            "created_at": _now(),
        }
        _append_line(self.sidecar, record)
        state.done_attempts.add(attempt)
        log.debug("rejected %s attempt %d: %s (%s)", state.corpus_id, attempt, reason, detail)
        return _Outcome("rejected", state.corpus_id, reason, detail)

    async def attempt(self, state: _CorpusState, attempt: int) -> _Outcome:
        from ..datasets import append_question

        settings = self.settings
        window = sample_window(state.text, settings.window_chars, settings.seed, state.corpus_id, attempt, settings.align_paragraphs)
        shown = state.text[window[0]:window[1]]
        bounds: list[int] | None = None
        if settings.approximate:
            shown, bounds = tag_pieces(shown, settings.piece_chars)
        recent = state.questions[-settings.recent_questions:] if settings.recent_questions else []
        messages = self.template.render(shown, recent, settings.filters.max_references)
        try:
            result = await self.backend.complete(messages, temperature=settings.temperature,
                                                 seed=_attempt_seed(settings.seed, state.corpus_id, attempt))
        except BudgetExhausted as exc:
            return _Outcome("budget", state.corpus_id, detail=str(exc))
        except FatalBackendError as exc:
            return _Outcome("fatal", state.corpus_id, detail=str(exc))
        except BackendError as exc:
            return _Outcome("failed", state.corpus_id, detail=str(exc))
        reply = result.text
        if not reply.strip() and result.reasoning:
            # A server-side reasoning parser moved everything into the reasoning field.
            reply = "<think>" + result.reasoning
        try:
            answer = parse_answer(reply, approximate=settings.approximate)
            located = self._locate(state, answer, window, bounds)
            references, how = self._references(state, located, answer)
        except AnswerError as exc:
            return self._reject(state, attempt, window, exc.reason, exc.detail, result)

        similarity: dict[str, Any] = {}
        vectors = None
        if settings.filters.use_embeddings:
            vectors = await asyncio.to_thread(self.embed, [answer.question] + [r["content"] for r in references])
            poor, worst = has_poor_excerpt(vectors[0], vectors[1:], settings.filters.excerpt_threshold)
            similarity["min_excerpt"] = round(worst, 4)
            if poor:
                return self._reject(state, attempt, window, "poor_excerpt",
                                    f"an excerpt's cosine to the question is {worst:.3f} < {settings.filters.excerpt_threshold}", result)
        async with self.accept_lock:
            key = question_key(answer.question)
            if key in state.keys:
                return self._reject(state, attempt, window, "duplicate_question", f"{answer.question!r} was already accepted", result)
            if vectors is not None:
                accepted = np.vstack(state.vectors) if state.vectors else np.zeros((0, vectors.shape[1]), np.float32)
                duplicate, best = is_near_duplicate(vectors[0], accepted, settings.filters.duplicate_threshold)
                if best is not None:
                    similarity["max_question"] = round(best, 4)
                if duplicate:
                    return self._reject(state, attempt, window, "near_duplicate_question",
                                        f"cosine {best:.3f} >= {settings.filters.duplicate_threshold} to an accepted question", result)
            record = {
                "question_id": f"{state.corpus_id}:s{settings.seed}:a{attempt}",
                "question": answer.question,
                "corpus_id": state.corpus_id,
                "references": references,
                "provenance": self._provenance(attempt, window, result, how, similarity),
            }
            append_question(record, self.out_path)
            state.questions.append(answer.question)
            state.keys.add(key)
            if vectors is not None:
                state.vectors.append(vectors[0])
            state.done_attempts.add(attempt)
        return _Outcome("accepted", state.corpus_id)

    # -- scheduling -----------------------------------------------------------------------------

    async def run(self) -> GenerationReport:
        from .._progress import progress

        began = time.perf_counter()
        report = self.report
        if self.embedder is not None:
            for state in self.states.values():
                if state.questions:
                    vectors = await asyncio.to_thread(self.embed, state.questions)
                    state.vectors = list(vectors)
        total_target = sum(s.target for s in self.states.values())
        in_flight: dict[asyncio.Task, str] = {}
        stopping = False
        exhausted: set[str] = set()
        with progress(self.show_progress) as bar:
            task_id = bar.add_task("generate", total=total_target)

            def refresh() -> None:
                done = sum(min(len(s.questions), s.target) for s in self.states.values())
                accepted = sum(report.accepted.values())
                rejected = sum(report.rejected.values())
                minutes = max(time.perf_counter() - began, 1e-9) / 60
                bar.update(task_id, completed=done,
                           description=f"generate: {accepted} new, {rejected} rejected, {accepted / minutes:.1f}/min")

            refresh()
            try:
                while True:
                    while not stopping and len(in_flight) < self.settings.concurrency:
                        launched = False
                        for state in self.states.values():
                            if len(in_flight) >= self.settings.concurrency:
                                break
                            if state.needed() <= 0 or state.corpus_id in exhausted:
                                continue
                            attempt = state.next_attempt()
                            if attempt is None:
                                exhausted.add(state.corpus_id)
                                continue
                            state.in_flight += 1
                            in_flight[asyncio.create_task(self.attempt(state, attempt))] = state.corpus_id
                            launched = True
                        if not launched:
                            break
                    if not in_flight:
                        break
                    finished, _ = await asyncio.wait(set(in_flight), return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        self.states[in_flight.pop(task)].in_flight -= 1
                        outcome = task.result()
                        if outcome.kind == "accepted":
                            report.accepted[outcome.corpus_id] += 1
                            self.consecutive_failures = 0
                        elif outcome.kind == "rejected":
                            report.rejected[outcome.reason] += 1
                            self.consecutive_failures = 0
                        elif outcome.kind == "failed":
                            report.failed_requests += 1
                            self.consecutive_failures += 1
                            log.warning("request failed (%s): %s", outcome.corpus_id, outcome.detail)
                            if self.consecutive_failures >= self.settings.max_consecutive_failures and not stopping:
                                stopping = True
                                report.stop_reason = "backend_error"
                                report.message = f"{self.consecutive_failures} requests in a row failed; last: {outcome.detail}"
                        elif outcome.kind == "fatal" and report.stop_reason != "backend_error":
                            stopping = True
                            report.stop_reason = "backend_error"
                            report.message = outcome.detail
                        elif outcome.kind == "budget" and not stopping:
                            stopping = True
                            report.stop_reason = "budget"
                            report.message = outcome.detail
                    refresh()
            finally:
                for task in in_flight:
                    task.cancel()
                if in_flight:
                    await asyncio.gather(*in_flight, return_exceptions=True)
                await self.backend.aclose()
                report.elapsed_s = time.perf_counter() - began
                budget = getattr(self.backend, "budget", None)
                if budget is not None:
                    report.requests_sent, report.tokens_used = budget.requests_sent, budget.tokens_used
                report.total = {cid: len(s.questions) for cid, s in self.states.items()}
        if report.stop_reason == "done":
            short = [cid for cid, s in self.states.items() if len(s.questions) < s.target]
            if short:
                report.stop_reason = "attempt_limit"
                report.message = (f"corpora {short} used all {self.settings.attempt_limit} attempts without reaching "
                                  f"{self.settings.per_corpus} questions; see the rejection reasons (--stats)")
        return report


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
    return asyncio.run(agenerate_questions(corpora, out_path, backend, settings, embedder=embedder, show_progress=show_progress))


# -- statistics -----------------------------------------------------------------------------------


def summarize_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts and means over a generated questions file and its rejection sidecar.

    Keys: questions, per_corpus, match_kinds (per reference), references_per_question (histogram),
    mean_references, mean_latency_s, tokens (prompt/completion/reasoning sums over questions),
    models, rejected (total), rejection_reasons, rejected_per_corpus.
    """
    from ..datasets import read_questions

    path = Path(path)
    questions = read_questions(path)
    per_corpus: Counter = Counter()
    kinds: Counter = Counter()
    n_refs: Counter = Counter()
    models: Counter = Counter()
    latencies: list[float] = []
    tokens: Counter = Counter()
    for record in questions:
        per_corpus[record.get("corpus_id")] += 1
        refs = record.get("references") or []
        n_refs[len(refs)] += 1
        provenance = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
        how = provenance.get("references") or []
        for entry in how:
            if isinstance(entry, dict):
                kinds[entry.get("match", "unknown")] += 1
        kinds["unknown"] += max(0, len(refs) - len(how))
        if isinstance(provenance.get("latency_s"), (int, float)):
            latencies.append(float(provenance["latency_s"]))
        if provenance.get("model"):
            models[provenance["model"]] += 1
        for key, value in (provenance.get("usage") or {}).items():
            if key in ("prompt_tokens", "completion_tokens", "reasoning_tokens") and isinstance(value, int):
                tokens[key] += value
    if not kinds["unknown"]:
        del kinds["unknown"]
    rejected = _read_sidecar(rejected_path(path))
    reasons = Counter(r.get("reason", "unknown") for r in rejected)
    rejected_per_corpus = Counter(r.get("corpus_id") for r in rejected)
    n = len(questions)
    return {
        "path": str(path),
        "questions": n,
        "per_corpus": dict(sorted(per_corpus.items())),
        "match_kinds": dict(kinds.most_common()),
        "references_per_question": dict(sorted(n_refs.items())),
        "mean_references": (sum(k * v for k, v in n_refs.items()) / n) if n else None,
        "mean_latency_s": (sum(latencies) / len(latencies)) if latencies else None,
        "tokens": {k: tokens[k] for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens") if k in tokens},
        "models": dict(models.most_common()),
        "rejected": len(rejected),
        "rejection_reasons": dict(reasons.most_common()),
        "rejected_per_corpus": dict(sorted(rejected_per_corpus.items())),
    }
