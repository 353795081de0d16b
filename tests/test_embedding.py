"""Embedding: vectors equal sentence-transformers' (mean and cls pooling, normalised or not,
truncation), reduced precision stays within its calibration bound, the on-disk cache is hit on a
rerun and ignores damaged shards, device selection and argument errors."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from chunkeval.embedding import (
    CALIBRATION_MIN_COSINE,
    Embedder,
    bundled_model_dir,
    cpu_supports_bf16,
    read_model_spec,
    resolve_device,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_DIR = bundled_model_dir()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Questions, corpus slices from 40 to 3,000 characters (some beyond 256 tokens) and odd cases."""
    from chunkeval.datasets import load

    data = load()
    corpus = data.texts[2]
    slices = [corpus[start:start + size] for start, size in
              [(0, 40), (500, 150), (1000, 400), (3000, 800), (6000, 1200), (9000, 1000), (20000, 3000), (40000, 2500)]]
    questions = [q["question"] for q in data.questions[::40]]
    odd = ["", "a", "   leading and trailing spaces   ", "UPPER case Ünïcödé naïve café", "tabs\tand\nnew\nlines",
           "emoji 🙂 and 中文字符", "x" * 700, "The the THE tHe."]
    return questions + slices + odd


@pytest.fixture(scope="module")
def sentence_transformer() -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MODEL_DIR), device="cpu")


@pytest.fixture(scope="module")
def reference(sentence_transformer: SentenceTransformer, texts: list[str]) -> np.ndarray:
    return np.asarray(sentence_transformer.encode(texts, batch_size=8, convert_to_numpy=True))


def n_longer_than(tokenizer: object, texts: list[str], limit: int) -> int:
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]  # type: ignore[operator]
    return sum(n > limit for n in lengths)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


# ---------------------------------------------------------------------------------------------
# Equality with sentence-transformers


def test_fp32_equals_sentence_transformers(texts: list[str], reference: np.ndarray,
                                           sentence_transformer: object) -> None:
    embedder = Embedder(device="cpu", precision="fp32", batch_size=8, show_progress=False)
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384) and vectors.flags.c_contiguous
    assert min_cosine(vectors, reference) >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected_truncated = n_longer_than(sentence_transformer.tokenizer, texts, 256)  # type: ignore[attr-defined]
    assert expected_truncated >= 2
    stats = embedder.stats
    assert (stats["truncated"], stats["embedded"], stats["precision"]) == (expected_truncated, len(texts), "fp32")
    assert stats["batches"] == -(-len(texts) // 8)
    # duplicates are embedded once and every copy gets the same row
    again = embedder.embed([texts[5], texts[0], texts[5]])
    assert embedder.stats["embedded"] == len(texts) + 2
    assert np.array_equal(again[0], again[2])
    np.testing.assert_allclose(again, vectors[[5, 0, 5]], atol=1e-5)


def test_auto_precision_stays_within_the_calibration_bound(texts: list[str], reference: np.ndarray,
                                                           tmp_path: Path) -> None:
    # The calibration batch is the 8 longest texts; the bound is checked on every text.
    embedder = Embedder(device="cpu", precision="auto", batch_size=8, cache_dir=tmp_path, show_progress=False)
    vectors = embedder.embed(texts)
    stats = embedder.stats
    if cpu_supports_bf16():
        assert stats["precision"] in ("bf16", "fp32")
        assert stats["calibration_min_cosine"] is not None
        assert (stats["precision"] == "bf16") == (stats["calibration_min_cosine"] >= CALIBRATION_MIN_COSINE)
    else:
        assert (stats["precision"], stats["calibration_min_cosine"]) == ("fp32", None)
    assert min_cosine(vectors, reference) >= CALIBRATION_MIN_COSINE
    config = embedder.config()
    assert config["precision"] == stats["precision"] and config["precision_requested"] == "auto"
    assert stats["embedded"] == len(texts) and stats["batches"] == -(-len(texts) // 8)
    # a rerun takes the precision decision and the vectors from the cache without a forward pass
    rerun = Embedder(device="cpu", precision="auto", batch_size=8, cache_dir=tmp_path, show_progress=False)
    assert np.array_equal(rerun.embed(texts), vectors)
    assert rerun.stats["embedded"] == 0
    assert (rerun.stats["precision"], rerun.stats["calibration_min_cosine"]) == (
        stats["precision"], stats["calibration_min_cosine"])


def test_max_length_argument_truncates_like_sentence_transformers(texts: list[str],
                                                                  sentence_transformer: object) -> None:
    st = sentence_transformer
    saved = st.max_seq_length  # type: ignore[attr-defined]
    st.max_seq_length = 24  # type: ignore[attr-defined]
    try:
        reference = st.encode(texts, convert_to_numpy=True)  # type: ignore[attr-defined]
    finally:
        st.max_seq_length = saved  # type: ignore[attr-defined]
    embedder = Embedder(device="cpu", precision="fp32", max_length=24, show_progress=False)
    vectors = embedder.embed(texts)
    assert min_cosine(vectors, reference) >= 0.99999
    assert embedder.stats["truncated"] == n_longer_than(st.tokenizer, texts, 24)  # type: ignore[attr-defined]


def make_variant(root: Path, *, pooling: dict[str, object], normalize: bool,
                 max_seq_length: int | None = None, extra_module: str | None = None) -> Path:
    """A copy of the bundled model's configuration (weights linked, not copied) with other settings."""
    root.mkdir()
    for item in MODEL_DIR.iterdir():
        if item.is_file() and item.name not in ("modules.json", "sentence_bert_config.json"):
            (root / item.name).symlink_to(item)
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384, **pooling}))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    if extra_module:
        modules.append({"idx": 3, "name": "3", "path": "3", "type": f"sentence_transformers.models.{extra_module}"})
    (root / "modules.json").write_text(json.dumps(modules))
    sbert = {"do_lower_case": False} | ({"max_seq_length": max_seq_length} if max_seq_length else {})
    (root / "sentence_bert_config.json").write_text(json.dumps(sbert))
    return root


def test_cls_pooling_without_normalisation_equals_sentence_transformers(tmp_path: Path, texts: list[str]) -> None:
    from sentence_transformers import SentenceTransformer

    variant = make_variant(tmp_path / "cls", pooling={"pooling_mode_cls_token": True,
                                                      "pooling_mode_mean_tokens": False},
                           normalize=False, max_seq_length=64)
    sample = texts[:4] + texts[-8:]
    st = SentenceTransformer(str(variant), device="cpu")
    reference = st.encode(sample, convert_to_numpy=True)
    embedder = Embedder(variant, device="cpu", precision="fp32", show_progress=False)
    assert (embedder.pooling, embedder.normalize, embedder.max_length) == ("cls", False, 64)
    vectors = embedder.embed(sample)
    assert min_cosine(vectors, reference) >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), np.linalg.norm(reference, axis=1), rtol=1e-4)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)  # really not normalised
    assert embedder.fingerprint != Embedder(device="cpu").fingerprint


def test_unsupported_model_layouts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"modules \['Transformer', 'Pooling', 'Normalize', 'Dense'\]"):
        read_model_spec(make_variant(tmp_path / "dense", pooling={}, normalize=True, extra_module="Dense"))
    with pytest.raises(ValueError, match="pooling 'weightedmean'"):
        read_model_spec(make_variant(tmp_path / "wm", pooling={"pooling_mode": "weightedmean"}, normalize=True))
    with pytest.raises(ValueError, match=r"combines pooling modes \['cls', 'mean'\]"):
        read_model_spec(make_variant(tmp_path / "two", normalize=True, pooling={
            "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}))
    spec = read_model_spec(MODEL_DIR)
    assert (spec.pooling, spec.normalize, spec.max_seq_length, spec.dim) == ("mean", True, 256, 384)


# ---------------------------------------------------------------------------------------------
# Cache


def shards(cache: Path) -> list[Path]:
    return sorted(cache.glob("vectors/*/shard-*.npz"))


def test_cache_is_hit_on_rerun(tmp_path: Path, texts: list[str]) -> None:
    first_batch, second_batch = texts[:6], texts[6:9]
    first = Embedder(device="cpu", precision="fp32", cache_dir=tmp_path, show_progress=False)
    vectors = first.embed(first_batch)
    assert (first.stats["cache_misses"], first.stats["embedded"]) == (6, 6)
    assert len(shards(tmp_path)) == 1

    rerun = Embedder(device="cpu", precision="fp32", cache_dir=tmp_path, show_progress=True)
    again = rerun.embed(first_batch + second_batch)
    assert (rerun.stats["cache_hits"], rerun.stats["cache_misses"], rerun.stats["embedded"]) == (6, 3, 3)
    assert np.array_equal(again[:6], vectors)  # served from disk, bit for bit
    rerun.embed(second_batch + first_batch)
    assert rerun.stats["embedded"] == 3  # nothing new was embedded the second time

    cached_only = Embedder(device="cpu", precision="fp32", cache_dir=tmp_path, show_progress=False)
    out = cached_only.embed(first_batch + second_batch)
    assert np.array_equal(out, again)
    assert (cached_only.stats["embedded"], cached_only.stats["cache_hits"]) == (0, 9)
    assert cached_only.config()["fingerprint"] == first.fingerprint
    # another precision or truncation length is another cache namespace
    other = Embedder(device="cpu", precision="fp32", max_length=32, cache_dir=tmp_path, show_progress=False)
    other.embed(first_batch[:1])
    assert other.stats["embedded"] == 1


def test_damaged_shards_are_ignored(tmp_path: Path, texts: list[str], caplog: pytest.LogCaptureFixture) -> None:
    kept, damaged = texts[:4], texts[4:7]
    writer = Embedder(device="cpu", precision="fp32", cache_dir=tmp_path, show_progress=False)
    writer.embed(kept)
    reference = writer.embed(damaged)
    first, second = shards(tmp_path)
    folder = first.parent
    data = second.read_bytes()
    second.write_bytes(data[: len(data) // 2])  # a truncated shard (e.g. a partial copy)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (folder / "shard-99999999999999999999-flipped.npz").write_bytes(bytes(flipped))  # bad CRC
    (folder / "shard-99999999999999999999-garbage.npz").write_bytes(b"not a zip file")
    (folder / ".tmp-half-written.npz").write_bytes(data[:100])  # what a crash mid-write leaves
    caplog.set_level(logging.WARNING, logger="chunkeval.embedding")

    reader = Embedder(device="cpu", precision="fp32", cache_dir=tmp_path, show_progress=False)
    vectors = reader.embed(kept + damaged)
    assert (reader.stats["cache_hits"], reader.stats["embedded"]) == (4, 3)
    np.testing.assert_allclose(vectors[4:], reference, atol=1e-5)
    ignored = [r.getMessage() for r in caplog.records if "ignoring unreadable shard" in r.getMessage()]
    assert len(ignored) == 3


# ---------------------------------------------------------------------------------------------
# Device and arguments


def test_device_selection() -> None:
    import torch

    has_cuda = torch.cuda.is_available()
    has_mps = torch.backends.mps.is_available()
    assert resolve_device("auto") == ("cuda" if has_cuda else "mps" if has_mps else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not has_cuda:
        with pytest.raises(ValueError, match=r"device='cuda' but CUDA is not available"):
            Embedder(device="cuda")
        with pytest.raises(ValueError, match=r"device='cuda:1' but CUDA is not available"):
            resolve_device("cuda:1")
    if not has_mps:
        with pytest.raises(ValueError, match="MPS is not available"):
            resolve_device("mps")
    with pytest.raises(ValueError, match="device='gpu' is not one of"):
        resolve_device("gpu")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision='int8'"):
        Embedder(device="cpu", precision="int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Embedder(device="cpu", batch_size=0)
    with pytest.raises(ValueError, match="exceeds the model's 512 position embeddings"):
        Embedder(device="cpu", max_length=1000)
    with pytest.raises(ValueError, match="never downloads"):
        Embedder("sentence-transformers/all-mpnet-base-v2", device="cpu")
    shutil.copytree(MODEL_DIR, tmp_path / "no-config", ignore=shutil.ignore_patterns("*.safetensors"))
    (tmp_path / "no-config" / "config.json").unlink()
    with pytest.raises(ValueError, match="has no config.json"):
        Embedder(tmp_path / "no-config", device="cpu")
    embedder = Embedder(device="cpu", show_progress=False)
    with pytest.raises(TypeError, match="not a single string"):
        embedder.embed("one text")  # a str is a Sequence[str] to the type checker; the call rejects it
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        embedder.embed(["a", 3])  # type: ignore[list-item]
    assert embedder.embed([]).shape == (0, 384)
