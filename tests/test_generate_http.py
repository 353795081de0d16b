"""The HTTP backend against a real chat-completions server on loopback that replays recorded replies.

``ReplayServer`` (also used by the runner and CLI tests) speaks the OpenAI chat-completions
protocol on 127.0.0.1:<free port>: each POST gets the next scripted reply (a fixture name from
tests/data/generate/replies.json, or a ``Reply`` with a status, headers, delay or hang).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chunkeval.generate.backends import (
    BackendError,
    Budget,
    BudgetExhausted,
    FatalBackendError,
    MalformedReply,
    OpenAICompatibleBackend,
)

DATA = Path(__file__).parent / "data" / "generate"
REPLIES: dict[str, Any] = json.loads((DATA / "replies.json").read_text(encoding="utf-8"))
CORPORA = {p.stem: p.read_text(encoding="utf-8") for p in sorted((DATA / "corpora").glob("*.md"))}
SECRET = "sk-test-9f8e7d6c5b4a-SECRET"
REFLECT = "%AUTHORIZATION%"  # in a scripted reply, the server puts the request's Authorization header here


@dataclass
class Reply:
    status: int = 200
    fixture: str | dict[str, Any] | None = None  # a replies.json name or an entry {"content", "usage", ...}
    body: str | None = None  # raw body instead of a completion
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: float = 0.0  # seconds to stall before answering (released at shutdown)
    echo_authorization: bool = False


def completion(entry: dict[str, Any], model: str = "replay-model") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": entry["content"]}
    if "reasoning_content" in entry:
        message["reasoning_content"] = entry["reasoning_content"]
    return {
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": entry.get("usage", {}),
    }


class ReplayServer:
    """A threaded chat-completions server; ``responder(body, index) -> Reply`` picks each answer."""

    def __init__(self, responder: Callable[[dict[str, Any], int], Reply]) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw)
                with outer._lock:
                    index = len(outer.requests)
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                           "time": time.monotonic()})
                reply = outer.responder(body, index)
                if reply.hang:
                    outer.release.wait(reply.hang)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.body is not None:
                    payload = reply.body
                elif reply.echo_authorization:
                    payload = json.dumps(
                        {"error": {"message": f"invalid key in header: {self.headers.get('Authorization')}"}}
                    )
                elif reply.fixture is not None:
                    entry = REPLIES[reply.fixture] if isinstance(reply.fixture, str) else reply.fixture
                    payload = json.dumps(completion(entry, body.get("model", "replay-model")))
                else:
                    payload = json.dumps({"error": {"message": f"status {reply.status}"}})
                # A server that reflects the caller's Authorization header wherever the script says.
                payload = payload.replace(REFLECT, self.headers.get("Authorization", ""))
                data = payload.encode("utf-8", "surrogatepass")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a hang

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 256  # the default 5 refuses connections under --concurrency 32

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up mid-reply is expected in these tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def scripted(*items: str | Reply) -> Callable[[dict[str, Any], int], Reply]:
    """Answer request ``i`` with item ``i`` (a fixture name or a Reply); past the end: HTTP 400."""
    replies = [Reply(fixture=i) if isinstance(i, str) else i for i in items]

    def responder(body: dict[str, Any], index: int) -> Reply:
        if index < len(replies):
            return replies[index]
        return Reply(status=400, body=json.dumps({"error": {"message": "replay script exhausted"}}))

    return responder


def backend_for(server: ReplayServer, **kwargs: Any) -> OpenAICompatibleBackend:
    defaults: dict[str, Any] = dict(
        model="replay-model", timeout=2.0, max_retries=3, backoff_base=0.01, backoff_max=0.05
    )
    defaults.update(kwargs)
    return OpenAICompatibleBackend(server.url, **defaults)


MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ask something"}]


async def _complete(backend: OpenAICompatibleBackend, **kwargs: Any) -> Any:
    try:
        return await backend.complete(MESSAGES, temperature=0.3, **kwargs)
    finally:
        await backend.aclose()


def test_reads_content_reasoning_and_usage_and_sends_the_request() -> None:
    with ReplayServer(scripted("reasoning_field")) as server:
        result = asyncio.run(_complete(backend_for(server, api_key=SECRET, max_output_tokens=321)))
    entry = REPLIES["reasoning_field"]
    assert result.text == entry["content"]
    assert result.reasoning == entry["reasoning_content"]
    assert result.usage == {"prompt_tokens": 398, "completion_tokens": 95, "total_tokens": 493, "reasoning_tokens": 40}
    assert result.tries == 1 and result.model == "replay-model" and result.finish_reason == "stop"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert request["body"] == {"model": "replay-model", "messages": MESSAGES, "temperature": 0.3, "max_tokens": 321}


def test_no_authorization_header_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHUNKEVAL_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ReplayServer(scripted("good_plain")) as server:
        asyncio.run(_complete(backend_for(server)))
    assert "Authorization" not in server.requests[0]["headers"]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUNKEVAL_LLM_MODEL", "env-model")
    monkeypatch.delenv("CHUNKEVAL_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ReplayServer(scripted("good_plain")) as server:
        monkeypatch.setenv("CHUNKEVAL_LLM_BASE_URL", server.url + "/")
        backend = OpenAICompatibleBackend(timeout=2.0)
        asyncio.run(_complete(backend))
    assert server.requests[0]["body"]["model"] == "env-model"
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(backend) and SECRET not in json.dumps(backend.describe())
    assert backend.describe() == {"backend": "openai-http", "model": "env-model", "base_url": server.url}


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHUNKEVAL_LLM_BASE_URL", "CHUNKEVAL_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="base_url is not set.*CHUNKEVAL_LLM_BASE_URL"):
        OpenAICompatibleBackend(model="m")
    with pytest.raises(ValueError, match="model is not set.*CHUNKEVAL_LLM_MODEL"):
        OpenAICompatibleBackend("http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="must start with http"):
        OpenAICompatibleBackend("127.0.0.1:8000/v1", "m")


def test_credentials_in_the_url_are_not_described() -> None:
    backend = OpenAICompatibleBackend("https://user:pw@example.invalid:8443/v1?key=abc", "m")
    assert backend.describe()["base_url"] == "https://example.invalid:8443/v1"
    assert "pw" not in repr(backend) and "abc" not in repr(backend)


def test_retry_after_is_honoured_on_429() -> None:
    with ReplayServer(scripted(Reply(status=429, headers={"Retry-After": "0.3"}), "good_plain")) as server:
        result = asyncio.run(_complete(backend_for(server, backoff_base=0.001)))
    assert result.tries == 2
    first, second = server.requests
    assert second["time"] - first["time"] >= 0.3


def test_5xx_are_retried_with_backoff() -> None:
    with ReplayServer(scripted(Reply(status=500), Reply(status=503), "good_plain")) as server:
        result = asyncio.run(_complete(backend_for(server)))
    assert result.tries == 3 and len(server.requests) == 3
    assert json.loads(result.text)["question"] == "In what year was the Harwick Point Light automated?"


def test_a_hung_request_times_out_and_is_retried() -> None:
    with ReplayServer(scripted(Reply(fixture="good_plain", hang=5.0), "good_plain")) as server:
        began = time.perf_counter()
        result = asyncio.run(_complete(backend_for(server, timeout=0.25)))
        took = time.perf_counter() - began
    assert result.tries == 2 and len(server.requests) == 2
    assert 0.25 <= took < 3.0
    assert result.elapsed_s - result.latency_s >= 0.25  # the timed-out try came first


def test_an_unreadable_200_reply_is_not_retried() -> None:
    with ReplayServer(scripted(Reply(body="<html>gateway</html>"), "good_plain")) as server:
        with pytest.raises(
            MalformedReply, match=r"^the reply body is not JSON \(Expecting value at character 0\)$"
        ) as info:
            asyncio.run(_complete(backend_for(server)))
    assert len(server.requests) == 1 and info.value.raw == "<html>gateway</html>"


def test_gives_up_after_max_retries() -> None:
    with ReplayServer(lambda body, i: Reply(status=502)) as server:
        with pytest.raises(BackendError, match=r"gave up after 3 tries; last error: HTTP 502") as info:
            asyncio.run(_complete(backend_for(server, max_retries=2)))
    assert info.value.retryable and len(server.requests) == 3


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    backend = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", "m", timeout=1.0, max_retries=1, backoff_base=0.01)
    with pytest.raises(BackendError, match="gave up after 2 tries; last error: connection error"):
        asyncio.run(_complete(backend))
    assert backend.budget.requests_sent == 2


def test_client_errors_are_fatal_and_the_key_is_scrubbed() -> None:
    with ReplayServer(scripted(Reply(status=401, echo_authorization=True))) as server:
        with pytest.raises(FatalBackendError) as info:
            asyncio.run(_complete(backend_for(server, api_key=SECRET)))
    assert len(server.requests) == 1  # not retried
    message = str(info.value)
    assert info.value.status == 401 and not info.value.retryable
    assert SECRET not in message and "Bearer ***" in message and "check the API key" in message


def test_request_budget_stops_before_sending() -> None:
    budget = Budget(max_requests=2)
    with ReplayServer(lambda body, i: Reply(status=500)) as server:
        with pytest.raises(BudgetExhausted, match="2 of 2 requests"):
            asyncio.run(_complete(backend_for(server, max_retries=5, budget=budget)))
    assert len(server.requests) == 2 and budget.requests_sent == 2


def test_token_budget_counts_usage() -> None:
    budget = Budget(max_tokens=500)
    with ReplayServer(scripted("good_plain", "good_plain")) as server:
        backend = backend_for(server, budget=budget)

        async def three_times() -> None:
            try:
                await backend.complete(MESSAGES, temperature=0.0)
                assert budget.tokens_used == 460
                await backend.complete(MESSAGES, temperature=0.0)  # 460 < 500: still allowed
                await backend.complete(MESSAGES, temperature=0.0)  # 920 >= 500: refused unsent
            finally:
                await backend.aclose()

        with pytest.raises(BudgetExhausted, match="token budget spent"):
            asyncio.run(three_times())
        with pytest.raises(ValueError, match="max_tokens must be a positive integer"):
            Budget(max_tokens=0)
    assert budget.tokens_used == 920 and len(server.requests) == 2
