"""Throughput of `chunkeval generate` against a loopback replay server with a fixed reply latency.

The server runs in its own process (so it does not share the generator's GIL) and answers every
chat request after `--latency` seconds (default 0.2) with a valid answer quoting one whole
sentence of the window it was shown, so every request becomes an accepted question: the run
measures the generator (prompting, HTTP, parsing, locating, durable appends), not rejections.
The corpus is synthetic and seeded: `--docs` documents of `--sentences` unique sentences each.

For each concurrency in `--concurrency` (default 1,8,32) it makes `--rounds` (default 20) times
that many questions into a fresh output file and prints questions/s (start-up included: a new
HTTP client and its TLS context, the corpus index; imports are paid by a warm-up run first), the
ratio to the first concurrency, the ideal ratio (every request slot busy all the time) and the
ceiling the server's latency allows (concurrency / latency questions/s).

    python bench/bench_generate.py
    python bench/bench_generate.py --latency 0.5 --concurrency 1,4,16,64 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ("keeper tower lamp harbour ledge storm cable beacon fog village museum log bell lens stair guide "
         "bakery rye starter flour mill oven loaf crust market baker class dough").split()


def corpus(docs: int, sentences: int, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    texts = {}
    for d in range(docs):
        parts = []
        for s in range(sentences):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 20)))
            parts.append(f"Fact {d}-{s}: the {words}.")
        texts[f"doc{d}"] = "\n\n".join(" ".join(parts[i:i + 4]) for i in range(0, len(parts), 4))
    return texts


def serve(port_box: Any, latency: float) -> None:
    """The replay server (child process): a whole sentence of the shown window, after ``latency``."""
    counter = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            prompt = body["messages"][-1]["content"]
            window = prompt.split("<document>\n", 1)[1].rsplit("\n</document>", 1)[0]
            sentences = re.findall(r"Fact \d+-\d+: [^.]*\.", window)
            with lock:
                counter[0] += 1
                n = counter[0]
            answer = {"question": f"What does fact {n} state?", "references": [sentences[n % len(sentences)]]}
            time.sleep(latency)
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": json.dumps(answer)},
                                            "finish_reason": "stop"}], "model": "replay",
                               "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 40}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), Handler)
    port_box.value = server.server_address[1]
    server.serve_forever(poll_interval=0.05)


def measure(url: str, corpora: dict[str, str], concurrency: int, questions: int, window: int) -> tuple[int, float]:
    """``(questions made, seconds)`` of one run."""
    from chunkeval.generate import FilterSettings, GenerationSettings, OpenAICompatibleBackend, generate_questions

    per_corpus = -(-questions // len(corpora))
    settings = GenerationSettings(per_corpus=per_corpus, concurrency=concurrency, window_chars=window,
                                  filters=FilterSettings(use_embeddings=False), recent_questions=5)
    with tempfile.TemporaryDirectory() as folder:
        backend = OpenAICompatibleBackend(url, "replay", timeout=30.0, max_retries=0)
        began = time.perf_counter()
        report = generate_questions(corpora, Path(folder) / "q.jsonl", backend, settings, show_progress=False)
        took = time.perf_counter() - began
    made = sum(report.accepted.values())
    if report.stop_reason != "done" or report.rejected:
        raise SystemExit(f"the benchmark run did not go as planned: {report.stop_reason} {dict(report.rejected)}")
    return made, took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per reply")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrencies; the first is the baseline")
    p.add_argument("--rounds", type=int, default=20, help="questions per run = rounds x concurrency")
    p.add_argument("--docs", type=int, default=4)
    p.add_argument("--sentences", type=int, default=400)
    p.add_argument("--window", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    corpora = corpus(args.docs, args.sentences, args.seed)
    port = multiprocessing.Value("i", 0)
    child = multiprocessing.Process(target=serve, args=(port, args.latency), daemon=True)
    child.start()
    while port.value == 0:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port.value}/v1"
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"replay server: {args.latency * 1000:.0f} ms per reply; {args.docs} documents, "
          f"{sum(len(t) for t in corpora.values()):,} characters; {os.cpu_count()} CPUs")
    print(f"{'concurrency':>11} {'questions':>9} {'q/s':>8} {'ratio':>7} {'ideal':>6} {'ceiling':>8}")
    base = None
    try:
        measure(url, corpora, 1, 2, args.window)  # imports and first-use costs, outside every figure
        for level in levels:
            made, took = measure(url, corpora, level, args.rounds * level, args.window)
            rate = made / took
            base = base or rate
            print(f"{level:>11} {made:>9} {rate:>8.2f} {rate / base:>6.2f}x {level / levels[0]:>5.0f}x "
                  f"{level / args.latency:>8.1f}")
    finally:
        child.terminate()
        child.join(5)


if __name__ == "__main__":
    main()
