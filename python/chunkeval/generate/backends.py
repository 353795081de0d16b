"""Chat backends: any OpenAI-compatible server over HTTP, or a local transformers causal LM.

Both expose ``async complete(messages, temperature=..., seed=...) -> ChatResult``, ``describe()``
(what provenance records: never the API key) and ``async aclose()``. A shared :class:`Budget`
caps requests sent and tokens used; when it is spent, ``complete`` raises :class:`BudgetExhausted`
before sending anything.

The HTTP backend (``httpx``, imported lazily) retries 429, 5xx, timeouts and connection errors
with exponential backoff and full jitter (``uniform(0, min(backoff_max,
backoff_base * 2**retry))``), or waits exactly what a ``Retry-After`` header asks (capped by
``max_retry_after``). Other 4xx answers are :class:`FatalBackendError`: a wrong key, model name or
URL does not get better by retrying. A 200 reply is the server's answer and is never retried: one
that cannot be read (not JSON, nested too deep, a number too long to convert, a ``choices``,
``message``, ``content`` or ``usage`` of the wrong type) raises :class:`MalformedReply`, which the
runner records as a rejected attempt and moves on.

The API key is read from the argument or the environment, sent only in the ``Authorization``
header and scrubbed (:meth:`OpenAICompatibleBackend.scrub`) from every error message and, by the
runner, from every field it writes or logs; ``repr`` and ``describe`` never show it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, only a lone surrogate is one

__all__ = [
    "ENV_BASE_URL",
    "ENV_MODEL",
    "ENV_API_KEY",
    "Budget",
    "BudgetExhausted",
    "BackendError",
    "FatalBackendError",
    "MalformedReply",
    "StructuredOutputRefused",
    "ChatResult",
    "ChatBackend",
    "OpenAICompatibleBackend",
    "TransformersBackend",
    "read_completion",
    "scrub_secret",
]

ENV_BASE_URL = "CHUNKEVAL_LLM_BASE_URL"
ENV_MODEL = "CHUNKEVAL_LLM_MODEL"
ENV_API_KEY = "CHUNKEVAL_LLM_API_KEY"
_ENV_OPENAI_KEY = "OPENAI_API_KEY"

Message = dict[str, str]

#: Connections the HTTP client keeps open at most (and idle): more than any sensible --concurrency.
_MAX_CONNECTIONS = 256

#: Bytes of an unreadable reply body kept (scrubbed) for the rejection record.
_RAW_KEPT_BYTES = 2000


def scrub_secret(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (secrets under 4 characters
    are left alone: replacing them would shred ordinary text)."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


class BudgetExhausted(RuntimeError):
    """The request or token budget is spent; nothing was sent."""


class BackendError(RuntimeError):
    """A request that failed after its retries (``retryable``: the server might recover later)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class FatalBackendError(BackendError):
    """A failure no retry will fix (bad key, unknown model, bad URL, model that cannot load)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=False)


class StructuredOutputRefused(FatalBackendError):
    """The server answered a request carrying ``response_format`` with HTTP 400/422: it does not
    support structured output (or this schema); the caller falls back to free text."""


class MalformedReply(ValueError):
    """A 200 reply that cannot be read as a chat completion. ``detail`` says why; ``raw`` holds the
    start of the body (both already scrubbed of the API key)."""

    reason = "malformed_reply"

    def __init__(self, detail: str, raw: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.raw = raw


class Budget:
    """Caps on requests sent (each HTTP try counts) and on tokens used (``usage.total_tokens``).

    The token cap is checked before each request, so concurrent requests in flight can overshoot
    it by at most their own usage.
    """

    def __init__(self, max_requests: int | None = None, max_tokens: int | None = None) -> None:
        for name, value in (("max_requests", max_requests), ("max_tokens", max_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.requests_sent = 0
        self.tokens_used = 0
        self._lock = threading.Lock()

    @property
    def exhausted_reason(self) -> str | None:
        if self.max_requests is not None and self.requests_sent >= self.max_requests:
            return f"request budget spent ({self.requests_sent} of {self.max_requests} requests sent)"
        if self.max_tokens is not None and self.tokens_used >= self.max_tokens:
            return f"token budget spent ({self.tokens_used} of {self.max_tokens} tokens used)"
        return None

    def reserve_request(self) -> None:
        """Count one request about to be sent, or raise :class:`BudgetExhausted`."""
        with self._lock:
            reason = self.exhausted_reason
            if reason is not None:
                raise BudgetExhausted(reason)
            self.requests_sent += 1

    def record_tokens(self, tokens: int) -> None:
        with self._lock:
            self.tokens_used += max(0, int(tokens))


@dataclass
class ChatResult:
    """One completed chat request."""

    text: str
    reasoning: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, reasoning_tokens
    latency_s: float = 0.0  # the successful request alone
    elapsed_s: float = 0.0  # including retries and backoff
    tries: int = 1
    finish_reason: str | None = None
    model: str | None = None  # as reported by the server

    @property
    def total_tokens(self) -> int:
        """``usage.total_tokens``, else prompt + completion tokens, else 0."""
        if "total_tokens" in self.usage:
            return self.usage["total_tokens"]
        return self.usage.get("prompt_tokens", 0) + self.usage.get("completion_tokens", 0)


class ChatBackend(Protocol):
    """What the runner needs of a backend. Optional extras it looks for with ``getattr``:
    ``scrub(text) -> str`` (remove secrets before anything is written), ``supports_response_format``
    (``complete`` then takes ``response_format=``) and ``budget`` (a :class:`Budget`)."""

    name: str

    async def complete(
        self, messages: Sequence[Message], *, temperature: float, seed: int | None = None
    ) -> ChatResult: ...

    def describe(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds, fractional accepted, or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None


def _public_url(url: str) -> str:
    """The URL without user info, query or fragment (they can carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class OpenAICompatibleBackend:
    """Chat completions over HTTP: vLLM, Ollama, LM Studio, llama.cpp server, DeepSeek, OpenAI.

    ``base_url`` is the API root as the openai client takes it (``http://localhost:8000/v1``,
    ``https://api.deepseek.com``); requests go to ``{base_url}/chat/completions``. Arguments left
    ``None`` come from ``CHUNKEVAL_LLM_BASE_URL``, ``CHUNKEVAL_LLM_MODEL`` and
    ``CHUNKEVAL_LLM_API_KEY`` (then ``OPENAI_API_KEY``); local servers need no key.
    """

    name = "openai-http"
    supports_response_format = True

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_retry_after: float = 300.0,
        max_output_tokens: int | None = 4096,
        budget: Budget | None = None,
        extra_body: dict[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        base_url = base_url or os.environ.get(ENV_BASE_URL)
        model = model or os.environ.get(ENV_MODEL)
        if not base_url:
            raise ValueError(
                f"base_url is not set; pass it (--base-url http://localhost:8000/v1) or set {ENV_BASE_URL}"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {_public_url(base_url)!r}")
        if not model:
            raise ValueError(f"model is not set; pass it (--model NAME, as the server lists it) or set {ENV_MODEL}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get(_ENV_OPENAI_KEY) or None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.max_retry_after = float(max_retry_after)
        self.max_output_tokens = max_output_tokens
        self.budget = budget or Budget()
        self.extra_body = dict(extra_body or {})
        self._rng = rng or random.Random()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(base_url={_public_url(self.base_url)!r}, model={self.model!r})"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "base_url": _public_url(self.base_url)}

    def scrub(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``: every string this backend's callers write
        to disk or a log goes through here."""
        return scrub_secret(text, self._api_key)

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return self._rng.uniform(0.0, min(self.backoff_max, self.backoff_base * (2.0 ** retry)))

    def _get_client(self) -> Any:
        if self._client is None:
            import httpx

            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            # httpx keeps 20 idle connections by default: above that, a high --concurrency would open
            # and close a connection per request.
            limits = httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), headers=headers, limits=limits)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> OpenAICompatibleBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def complete(self, messages: Sequence[Message], *, temperature: float, seed: int | None = None,
                       response_format: dict[str, Any] | None = None) -> ChatResult:
        """Send one chat request, retrying transient failures (see the module docstring).

        ``response_format`` (an OpenAI ``response_format`` object) is sent as is; a server that
        answers it with HTTP 400/422 raises :class:`StructuredOutputRefused` so the caller can
        fall back to free text. A 200 reply that cannot be read raises :class:`MalformedReply`.
        """
        client = self._get_client()
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), "temperature": temperature}
        if self.max_output_tokens is not None:
            body["max_tokens"] = self.max_output_tokens
        body.update(self.extra_body)
        if response_format is not None:
            body["response_format"] = response_format
        url = f"{self.base_url}/chat/completions"
        began = time.perf_counter()
        last_error = "no request sent"
        for retry in range(self.max_retries + 1):
            self.budget.reserve_request()
            sent = time.perf_counter()
            outcome = await self._post_once(client, url, body, structured=response_format is not None)
            if isinstance(outcome, ChatResult):
                outcome.latency_s = time.perf_counter() - sent
                outcome.elapsed_s = time.perf_counter() - began
                outcome.tries = retry + 1
                self.budget.record_tokens(outcome.total_tokens)
                return outcome
            last_error, retry_after = outcome
            if retry < self.max_retries:
                await asyncio.sleep(self._backoff(retry, retry_after))
        raise BackendError(f"{_public_url(url)}: gave up after {self.max_retries + 1} tries; last error: {last_error}")

    async def _post_once(self, client: Any, url: str, body: dict[str, Any],
                         structured: bool) -> ChatResult | tuple[str, float | None]:
        """One try: a result, or ``(error, retry_after)`` to retry; raises what retrying cannot fix."""
        import httpx

        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException:
            return f"no reply within {self.timeout:g} s", None
        except httpx.TransportError as exc:
            return f"connection error ({type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'})", None
        status = response.status_code
        if status == 200:
            return read_completion(response.content, self.scrub)
        if status == 429 or status >= 500:
            return f"HTTP {status}: {self.scrub(response.text)[:200]}", _parse_retry_after(
                response.headers.get("retry-after")
            )
        detail = self.scrub(response.text)[:300]
        if structured and status in (400, 422):
            raise StructuredOutputRefused(f"{_public_url(url)} refused response_format (HTTP {status}): {detail}",
                                          status=status)
        raise FatalBackendError(
            f"{_public_url(url)} answered HTTP {status}: {detail}"
            + (" (check the API key)" if status in (401, 403) else "")
            + (" (check --base-url and --model)" if status == 404 else ""),
            status=status,
        )


def _clean(text: str) -> str:
    """A decoded JSON string made writable: lone surrogates (``"\\ud800"``) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _optional_str(value: object) -> str | None:
    return _clean(value) if isinstance(value, str) else None


def _reply_content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return _clean(content)
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        texts: list[str] = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("text", ""), str):
                raise MalformedReply(f"message.content[{i}] must be a text part {{'text': str}}, "
                                     f"got {_kind(part)}")
            texts.append(part.get("text", ""))
        return _clean("".join(texts))
    raise MalformedReply(f"message.content must be a string or a list of text parts, got {_kind(content)}")


def _reply_usage(data: dict[str, Any]) -> dict[str, int]:
    usage_in = data.get("usage")
    if usage_in is None:
        return {}
    if not isinstance(usage_in, dict):
        raise MalformedReply(f"'usage' must be an object of token counts, got {_kind(usage_in)}")
    usage: dict[str, int] = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if _is_count(usage_in.get(key)):
            usage[key] = usage_in[key]
    details = usage_in.get("completion_tokens_details")
    if isinstance(details, dict) and _is_count(details.get("reasoning_tokens")):
        usage["reasoning_tokens"] = details["reasoning_tokens"]
    return usage


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _kind(value: object) -> str:
    """What a JSON value is, for a rejection detail: its type and a short preview."""
    name = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
    try:
        preview = repr(value)
    except (ValueError, RecursionError):  # ints past the str-conversion limit, very deep structures
        preview = "…"
    return f"{name} {preview[:60] + '…' if len(preview) > 60 else preview}"


def read_completion(raw: bytes, scrub: Callable[[str], str] = lambda text: text) -> ChatResult:
    """Read a chat-completions response body, checking every type on the way.

    Raises :class:`MalformedReply` (its ``detail`` and ``raw`` passed through ``scrub``) for a body
    that is not JSON, nests deeper than Python can decode, holds a number too long to convert, or
    has the wrong shape: ``choices`` not a non-empty array of objects, ``message`` not an object,
    ``content`` neither a string, ``null`` nor text parts, ``usage`` not an object.
    """
    # Scrubbed before it is cut, so a key straddling the cut cannot leave its first half behind.
    preview = scrub(raw.decode("utf-8", "replace"))[:_RAW_KEPT_BYTES]
    try:
        try:
            data = json.loads(raw)
        except RecursionError:
            raise MalformedReply("the reply body nests deeper than Python's recursion limit") from None
        except UnicodeDecodeError:
            raise MalformedReply("the reply body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise MalformedReply(f"the reply body is not JSON ({exc.msg} at character {exc.pos})") from None
        except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
            raise MalformedReply(f"the reply body cannot be decoded ({str(exc).split(':')[0].strip()[:120]})") from None
        if not isinstance(data, dict):
            raise MalformedReply(f"the reply must be a JSON object, got {_kind(data)}")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MalformedReply(f"'choices' must be a non-empty array, got {_kind(choices)}")
        choice = choices[0]
        if not isinstance(choice, dict):
            raise MalformedReply(f"choices[0] must be an object, got {_kind(choice)}")
        message = choice.get("message")
        if not isinstance(message, dict):
            raise MalformedReply(f"choices[0].message must be an object, got {_kind(message)}")
        text = _reply_content(message)
        usage = _reply_usage(data)
    except MalformedReply as exc:
        exc.detail = scrub(exc.detail)
        exc.args = (exc.detail,)
        exc.raw = preview
        raise
    reasoning = message.get("reasoning_content") or message.get("reasoning") or message.get("thinking")
    return ChatResult(
        text=text,
        reasoning=_optional_str(reasoning),
        usage=usage,
        finish_reason=_optional_str(choice.get("finish_reason")),
        model=_optional_str(data.get("model")),
    )


class TransformersBackend:
    """Any causal LM saved in a local folder, run with transformers (GPU when present).

    The tokenizer's chat template is used when it has one; otherwise the messages are joined as
    plain text. Generation runs in a worker thread (one at a time) so the async runner stays
    responsive. Nothing is fetched from a model hub (``HF_HUB_OFFLINE=1``, ``local_files_only``).
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        device: str | None = None,
        max_output_tokens: int = 1024,
        budget: Budget | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        path = os.fspath(model_path)
        if not os.path.isdir(path):
            raise ValueError(f"local_model: {path!r} is not a folder; pass a folder holding config.json, the weights "
                             "and the tokenizer (e.g. what save_pretrained writes)")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"local_model: {path!r} has no config.json; pass a transformers model folder")
        if max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be at least 1, got {max_output_tokens}")
        self.model_path = path
        self.device = device
        self.max_output_tokens = max_output_tokens
        self.budget = budget or Budget()
        self.trust_remote_code = trust_remote_code
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return f"TransformersBackend(model_path={self.model_path!r})"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": os.path.basename(os.path.normpath(self.model_path)),
                "model_path": self.model_path, "device": self.device}

    async def aclose(self) -> None:
        self._model = None

    def _load(self) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float32
        if self.device.startswith("cuda") and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        major_minor = tuple(int(p) for p in transformers.__version__.split(".")[:2])
        dtype_kw = "dtype" if major_minor >= (4, 56) else "torch_dtype"
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True,
                                                            trust_remote_code=self.trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(self.model_path, local_files_only=True,
                                                         trust_remote_code=self.trust_remote_code, **{dtype_kw: dtype})
        except (OSError, ValueError) as exc:
            raise FatalBackendError(f"local_model {self.model_path!r} cannot be loaded: {exc}") from None
        self._model = model.to(self.device).eval()

    def _prompt(self, messages: Sequence[Message]) -> str:
        if getattr(self._tokenizer, "chat_template", None):
            prompt: str = self._tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=False
            )
            return prompt
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def _generate(self, messages: Sequence[Message], temperature: float, seed: int | None) -> ChatResult:
        with self._lock:
            self._load()
            import torch

            began = time.perf_counter()
            prompt = self._prompt(messages)
            # The chat template already holds any special tokens the model expects.
            encoded = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=not self._tokenizer.chat_template)
            encoded = {k: v.to(self.device) for k, v in encoded.items()}
            n_prompt = int(encoded["input_ids"].shape[1])
            kwargs: dict[str, Any] = {"max_new_tokens": self.max_output_tokens}
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature)
                if seed is not None:
                    torch.manual_seed(seed)
            else:
                kwargs.update(do_sample=False)
            if self._tokenizer.pad_token_id is None and self._tokenizer.eos_token_id is not None:
                kwargs["pad_token_id"] = self._tokenizer.eos_token_id
            try:
                with torch.inference_mode():
                    output = self._model.generate(**encoded, **kwargs)
            except (RuntimeError, ValueError, IndexError) as exc:
                raise FatalBackendError(f"local_model {self.model_path!r} failed to generate: {exc}") from None
            new_tokens = output[0, n_prompt:]
            text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
            elapsed = time.perf_counter() - began
            usage = {"prompt_tokens": n_prompt, "completion_tokens": int(new_tokens.shape[0])}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            finish = "length" if usage["completion_tokens"] >= self.max_output_tokens else "stop"
            return ChatResult(text=text, usage=usage, latency_s=elapsed, elapsed_s=elapsed,
                              finish_reason=finish, model=self.describe()["model"])

    async def complete(self, messages: Sequence[Message], *, temperature: float, seed: int | None = None) -> ChatResult:
        """Generate one reply in a worker thread."""
        self.budget.reserve_request()
        result = await asyncio.to_thread(self._generate, messages, temperature, seed)
        self.budget.record_tokens(result.usage["total_tokens"])
        return result
