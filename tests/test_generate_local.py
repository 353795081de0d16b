"""The local transformers backend, plumbing only: a tiny randomly initialised GPT-2 built here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from chunkeval.generate import (  # noqa: E402
    ChatResult,
    FilterSettings,
    GenerationSettings,
    TransformersBackend,
    generate_questions,
)
from chunkeval.generate.runner import rejected_path  # noqa: E402

WORDS = "the a of and question references { } \" : , [ ] <think> </think> user system assistant lamp tower".split()
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                 "{% if add_generation_prompt %}assistant :{% endif %}")


def build_model(folder: Path, chat_template: bool) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    # No end-of-sequence token: generation always runs to max_new_tokens, so counts are exact.
    config = GPT2Config(vocab_size=len(vocab), n_positions=4096, n_embd=16, n_layer=2, n_head=2,
                        bos_token_id=None, eos_token_id=None, pad_token_id=1)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


MESSAGES = [{"role": "system", "content": "write the question"}, {"role": "user", "content": "the lamp of the tower"}]


@pytest.mark.parametrize("chat_template", [True, False])
def test_generates_off_the_event_loop_with_exact_token_counts(tmp_path: Path, chat_template: bool) -> None:
    folder = build_model(tmp_path / "tiny", chat_template)
    backend = TransformersBackend(folder, device="cpu", max_output_tokens=48)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    async def main() -> tuple[ChatResult, int]:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        result = await backend.complete(MESSAGES, temperature=0.8, seed=3)
        during = ticks - before
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await backend.aclose()
        return result, during

    result, during = asyncio.run(main())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if chat_template:
        prompt = "system : write the question user : the lamp of the tower assistant :"
    else:
        prompt = "write the question\n\nthe lamp of the tower\n\n"
    n_prompt = len(tokenizer(prompt)["input_ids"])
    assert result.usage == {"prompt_tokens": n_prompt, "completion_tokens": 48, "total_tokens": n_prompt + 48}
    assert result.finish_reason == "length" and isinstance(result.text, str) and result.model == "tiny"
    assert during >= 3  # the loop kept running while the model generated
    assert backend.budget.requests_sent == 1 and backend.budget.tokens_used == n_prompt + 48


def test_the_runner_records_what_a_random_model_says(tmp_path: Path) -> None:
    folder = build_model(tmp_path / "tiny", chat_template=True)
    out = tmp_path / "q.jsonl"
    settings = GenerationSettings(per_corpus=1, max_attempts_per_corpus=2, concurrency=2, window_chars=300,
                                  filters=FilterSettings(use_embeddings=False))
    backend = TransformersBackend(folder, device="cpu", max_output_tokens=16)
    report = generate_questions({"c": "the lamp of the tower " * 40}, out, backend, settings, show_progress=False)
    assert report.stop_reason == "attempt_limit" and sum(report.rejected.values()) == 2
    rejected = [json.loads(line) for line in rejected_path(out).read_text(encoding="utf-8").splitlines()]
    assert sorted(r["attempt"] for r in rejected) == [0, 1]
    assert all(r["model"] == "tiny" and r["usage"]["completion_tokens"] == 16 for r in rejected)
    assert not out.exists()


def test_a_missing_or_wrong_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        TransformersBackend(tmp_path / "nope")
    with pytest.raises(ValueError, match="has no config.json"):
        TransformersBackend(tmp_path)
