"""Compiled embedding backends (OpenVINO, ONNX Runtime): vectors within cosine 0.9999 of torch fp32
on a few hundred bundled-benchmark texts, the export written once and reused, the backend in the
provenance and the vector cache's namespace, backend="auto", the tokenizer and pooling that run
without transformers, and a warm run that never imports torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from chunkeval import embed_backends
from chunkeval.embed_backends import (
    EXPORT_FORMAT,
    EXPORT_MIN_COSINE,
    CompiledModel,
    FastTokenizer,
    backend_precisions,
    cpu_only_host,
    export_angle,
    export_path,
    installed_backends,
    load_compiled,
    pad_batch,
    pool,
)
from chunkeval.embedding import CALIBRATION_MIN_COSINE, Embedder, bundled_model_dir, cpu_supports_bf16

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODEL_DIR = bundled_model_dir()
COMPILED = ["openvino", "onnx"]
BackendName = Literal["auto", "torch", "openvino", "onnx"]


def _needs(backend: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(backend not in installed_backends(),
                              reason=f"{backend} runtime not installed (pip install 'chunkeval[{backend}]')")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """300 bundled-benchmark texts: 900-character windows of every corpus (some beyond 256
    tokens, so truncation is exercised), questions, and a few odd ones."""
    from chunkeval.datasets import load

    data = load()
    windows = [t[i:i + 900] for t in data.texts for i in range(0, len(t), 900)]
    windows = [windows[i] for i in np.linspace(0, len(windows) - 1, 200).round().astype(int)]
    long = [data.texts[0][:2500], data.texts[1][:1800]]
    questions = [q["question"] for q in data.questions][:90]
    odd = ["", "a", "UPPER case Ünïcödé naïve café", "emoji 🙂 and 中文字符", "x" * 700, "tabs\tand\nnew\nlines",
           "   padded   ", "The the THE tHe."]
    return (windows + long + questions + odd)[:300]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backend-cache")


@pytest.fixture(scope="module")
def torch_fp32(texts: list[str]) -> np.ndarray:
    return Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="torch", show_progress=False).embed(texts)


def n_longer_than(texts: list[str], limit: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    return sum(len(ids) > limit for ids in tokenizer(texts)["input_ids"])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


# ----------------------------------------------------------------------------------------------
# The model through each backend


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param(b, marks=_needs(b)) for b in COMPILED])
def test_fp32_vectors_match_torch_fp32(backend: BackendName, texts: list[str], torch_fp32: np.ndarray,
                                       cache: Path) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend=backend, cache_dir=cache,
                        show_progress=False)
    vectors = embedder.embed(texts)
    assert vectors.shape == (300, 384) and vectors.dtype == np.float32
    assert min_cosine(vectors, torch_fp32) >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.stats["backend"] == backend and embedder.stats["precision"] == "fp32"
    # the truncation count is transformers' own count of texts longer than 256 tokens
    assert embedder.stats["truncated"] == n_longer_than(texts, 256) > 0


@pytest.mark.slow
@_needs("openvino")
def test_openvino_auto_precision_within_calibration_bound(texts: list[str], torch_fp32: np.ndarray,
                                                          cache: Path) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="auto", backend="openvino", cache_dir=cache,
                        show_progress=False)
    vectors = embedder.embed(texts)
    assert embedder.stats["precision"] == ("bf16" if cpu_supports_bf16() else "fp32")
    assert embedder.stats["calibration_min_cosine"] is None or embedder.stats["calibration_min_cosine"] >= 0.9999
    assert min_cosine(vectors, torch_fp32) >= CALIBRATION_MIN_COSINE


@pytest.mark.slow
@_needs("onnx")
def test_backend_in_config_and_cache_namespace(texts: list[str], cache: Path) -> None:
    onnx = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="onnx", cache_dir=cache, show_progress=False)
    onnx.embed(texts[:5])
    torch = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="torch", cache_dir=cache, show_progress=False)
    torch.embed(texts[:5])
    assert onnx.config()["backend"] == "onnx" and onnx.config()["backend_requested"] == "onnx"
    assert onnx.config()["onnxruntime_version"] is not None
    assert torch.config()["backend"] == "torch"
    onnx_store, torch_store = onnx._vector_store(), torch._vector_store()
    assert onnx_store is not None and torch_store is not None
    # same model, same precision, but separate namespaces: onnx vectors are never served to torch
    assert onnx_store.folder != torch_store.folder
    onnx_space = json.loads((onnx_store.folder / "namespace.json").read_text())
    torch_space = json.loads((torch_store.folder / "namespace.json").read_text())
    assert onnx_space.pop("backend") == "onnx" and "backend" not in torch_space
    assert onnx_space == torch_space  # the backend is the only difference


@pytest.mark.slow
@_needs("onnx")
def test_export_is_written_once_and_reused_without_torch(cache: Path) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="onnx", cache_dir=cache, show_progress=False)
    embedder.embed(["an export exists after this"])
    folder = export_path(cache, "onnx", embedder.fingerprint)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == EXPORT_FORMAT and meta["fingerprint"] == embedder.fingerprint
    assert meta["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]  # no leftover temporary export
    # A fresh process loads the export and embeds without torch or transformers: nothing is re-exported.
    script = textwrap.dedent(f"""
        import sys
        from chunkeval.embedding import Embedder
        e = Embedder({str(MODEL_DIR)!r}, device="cpu", precision="fp32", backend="onnx", cache_dir={str(cache)!r},
                     show_progress=False)
        v = e.embed(["a text no run has embedded before: 8c1f"])
        assert v.shape == (1, 384), v.shape
        assert e.stats["embedded"] == 1, e.stats
        print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


@pytest.mark.slow
@_needs("onnx")
def test_damaged_export_is_replaced(tmp_path: Path, texts: list[str], torch_fp32: np.ndarray) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="onnx", cache_dir=tmp_path,
                        show_progress=False)
    folder = export_path(tmp_path, "onnx", embedder.fingerprint)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{ half a record")  # as a killed copy might leave it
    vectors = embedder.embed(texts[:4])
    assert json.loads((folder / "meta.json").read_text())["format"] == EXPORT_FORMAT
    assert min_cosine(vectors, torch_fp32[:4]) >= 0.99999


@pytest.mark.slow
@pytest.mark.skipif(not installed_backends(), reason="no compiled backend installed")
def test_auto_picks_first_compiled_backend_within_tolerance(texts: list[str], torch_fp32: np.ndarray,
                                                             cache: Path) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", backend="auto", cache_dir=cache, show_progress=False)
    vectors = embedder.embed(texts)
    assert embedder.stats["backend"] == installed_backends()[0]
    expected_precision = backend_precisions(installed_backends()[0], "auto", cpu_supports_bf16())[0]
    assert embedder.stats["precision"] == expected_precision
    assert embedder.stats["calibration_min_cosine"] >= CALIBRATION_MIN_COSINE
    assert min_cosine(vectors, torch_fp32) >= CALIBRATION_MIN_COSINE
    records = [json.loads(p.read_text()) for p in (cache / "calibration").glob("auto-*.json")]
    assert [r["backend"] for r in records] == [installed_backends()[0]]
    # A second embedder reads the decision back: every vector cached, no model loaded at all.
    again = Embedder(MODEL_DIR, device="cpu", backend="auto", cache_dir=cache, show_progress=False)
    np.testing.assert_array_equal(again.embed(texts), vectors)
    assert again.stats["backend"] == embedder.stats["backend"] and again.stats["embedded"] == 0
    assert again._model is None


@pytest.mark.slow
@pytest.mark.skipif(not cpu_only_host(), reason="needs a host where device='auto' can only be the CPU")
@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_warm_embed_imports_neither_torch_nor_transformers(backend: BackendName, tmp_path: Path) -> None:
    batch = ["warm path, first text", "warm path, second text", "warm path, first text"]
    Embedder(MODEL_DIR, device="auto", backend=backend, cache_dir=tmp_path, show_progress=False).embed(batch)
    script = textwrap.dedent(f"""
        import sys
        from chunkeval.embedding import Embedder
        e = Embedder({str(MODEL_DIR)!r}, device="auto", backend={backend!r}, cache_dir={str(tmp_path)!r},
                     show_progress=False)
        v = e.embed({batch!r})
        e.config()
        assert e.stats["cache_hits"] == 2 and e.stats["embedded"] == 0, e.stats
        print(v.shape, sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "(3, 384) []"


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param(b, marks=_needs(b)) for b in COMPILED])
def test_export_records_its_fp32_check_against_torch(backend: str, cache: Path) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend=backend, cache_dir=cache,
                        show_progress=False)
    embedder._load_model()
    meta = json.loads((export_path(cache, backend, embedder.fingerprint) / "meta.json").read_text())
    check = meta["fp32_check"]
    assert check["texts"] == 28 and EXPORT_MIN_COSINE <= check["min_cosine"] <= 1.0 + 1e-12
    assert isinstance(embedder._model, CompiledModel) and embedder._model.export_check == check


@pytest.mark.slow
@pytest.mark.skipif(not cpu_only_host(), reason="needs a host where device='auto' can only be the CPU")
@pytest.mark.skipif(not installed_backends(), reason="no compiled backend installed")
def test_auto_calibrates_without_torch_once_the_export_exists(texts: list[str], torch_fp32: np.ndarray,
                                                              tmp_path: Path) -> None:
    first = installed_backends()[0]
    Embedder(MODEL_DIR, device="cpu", backend=first, precision="fp32", cache_dir=tmp_path,
             show_progress=False)._load_model()  # the export (this needs torch, once per model)
    out_file = tmp_path / "vectors.npy"
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from chunkeval.embedding import Embedder
        e = Embedder({str(MODEL_DIR)!r}, device="auto", backend="auto", cache_dir={str(tmp_path)!r},
                     show_progress=False)
        np.save({str(out_file)!r}, e.embed(json.loads(sys.stdin.read())))
        print(e.stats["backend"], e.stats["precision"], e.stats["calibration_min_cosine"],
              sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    backend, precision, bound, imported = out.stdout.strip().splitlines()[-1].split(" ", 3)
    assert backend == first and imported == "[]"
    assert precision == backend_precisions(first, "auto", cpu_supports_bf16())[0]
    # the bound the calibration guarantees holds against torch fp32 on every text, not only its 32
    assert float(bound) >= CALIBRATION_MIN_COSINE
    assert min_cosine(np.load(out_file), torch_fp32) >= CALIBRATION_MIN_COSINE
    record = json.loads(next((tmp_path / "calibration").glob("auto-*.json")).read_text())
    assert record["reference"] == f"{first} fp32" and record["calibrated_on_texts"] == 32


@pytest.mark.slow
@pytest.mark.skipif(not installed_backends(), reason="no compiled backend installed")
def test_auto_skips_an_export_that_failed_its_check(texts: list[str], tmp_path: Path) -> None:
    first = installed_backends()[0]
    probe = Embedder(MODEL_DIR, device="cpu", backend=first, precision="fp32", cache_dir=tmp_path,
                     show_progress=False)
    probe._load_model()
    meta_path = export_path(tmp_path, first, probe.fingerprint) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["fp32_check"]["min_cosine"] = 0.9995  # as an export whose graph drifted from torch would show
    meta_path.write_text(json.dumps(meta))
    embedder = Embedder(MODEL_DIR, device="cpu", backend="auto", cache_dir=tmp_path, show_progress=False)
    embedder.embed(texts[:40])
    assert embedder.stats["backend"] != first
    record = json.loads(next((tmp_path / "calibration").glob("auto-*.json")).read_text())
    assert record["tried"][f"{first}:export"] == 0.9995


def test_export_angle() -> None:
    assert export_angle(None) is None and export_angle({"texts": 28}) is None
    assert export_angle({"min_cosine": 0.9995}) is None  # below EXPORT_MIN_COSINE: not usable
    assert export_angle({"min_cosine": 1.0}) == 0.0
    assert export_angle({"min_cosine": 1.0 + 2e-16}) == 0.0  # rounding above 1 is no angle
    assert export_angle({"min_cosine": 0.99999999}) == pytest.approx(np.arccos(0.99999999), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Pieces that run without transformers or torch


@pytest.mark.parametrize("max_length", [256, 16])
def test_fast_tokenizer_equals_transformers(texts: list[str], max_length: int) -> None:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    ours = FastTokenizer(MODEL_DIR, do_lower_case=False, model_input_names=["input_ids"])
    kwargs: dict[str, Any] = {"truncation": True, "max_length": max_length, "padding": False,
                              "return_attention_mask": False, "return_token_type_ids": False}
    theirs, mine = hf(texts, **kwargs), ours(texts, **kwargs)
    assert mine["input_ids"] == theirs["input_ids"]
    assert [bool(e.overflowing) for e in mine.encodings] == [bool(e.overflowing) for e in theirs.encodings]
    assert ours.pad_token_id == hf.pad_token_id == 0


def test_pool_matches_a_loop_over_tokens() -> None:
    rng = np.random.default_rng(7)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    lengths = np.array([5, 2, 1])
    mask = np.arange(5)[None, :] < lengths[:, None]
    for pooling in ("mean", "mean_sqrt_len_tokens", "cls", "max", "lasttoken"):
        expected = np.zeros((3, 4))
        for row in range(3):
            real = [hidden[row, t].astype(np.float64) for t in range(lengths[row])]
            if pooling == "mean":
                expected[row] = sum(real) / len(real)
            elif pooling == "mean_sqrt_len_tokens":
                expected[row] = sum(real) / np.sqrt(len(real))
            elif pooling == "cls":
                expected[row] = real[0]
            elif pooling == "max":
                expected[row] = np.max(real, axis=0)
            else:
                expected[row] = real[-1]
        np.testing.assert_allclose(pool(hidden, mask, lengths, pooling, normalize=False), expected, rtol=1e-5,
                                   atol=1e-6)
        unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(pool(hidden, mask, lengths, pooling, normalize=True), unit, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling='weightedmean' is not supported"):
        pool(hidden, mask, lengths, "weightedmean", normalize=False)


def test_backend_precisions() -> None:
    assert backend_precisions("openvino", "auto", bf16_native=True) == ["bf16", "fp32"]
    assert backend_precisions("openvino", "auto", bf16_native=False) == ["fp32"]
    assert backend_precisions("openvino", "bf16", bf16_native=False) == ["bf16"]
    assert backend_precisions("onnx", "auto", bf16_native=True) == ["fp32"]
    assert backend_precisions("onnx", "bf16", bf16_native=True) == []


def test_fast_tokenizer_needs_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"has no fast tokenizer \(tokenizer.json\); chunkeval needs one"):
        FastTokenizer(tmp_path, do_lower_case=False, model_input_names=["input_ids"])


@pytest.mark.slow
@_needs("onnx")
def test_load_compiled_without_cache_dir(texts: list[str], torch_fp32: np.ndarray) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="onnx", show_progress=False)
    tokenizer, model = load_compiled("onnx", embedder.spec, embedder.fingerprint, None, 1)
    assert model.folder.name.startswith("onnx-") and model.inputs[-1] == "token_type_ids"
    ids = tokenizer(texts[:3], truncation=True, max_length=256)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    mask = np.arange(lengths.max())[None, :] < lengths[:, None]
    input_ids = np.zeros(mask.shape, dtype=np.int64)
    input_ids[mask] = np.concatenate(ids)
    vectors = model.forward(input_ids, mask, lengths, "fp32", "mean", normalize=True)
    assert min_cosine(vectors, torch_fp32[:3]) >= 0.99999


@pytest.mark.slow
@_needs("openvino")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.skipif(
    not cpu_supports_bf16(), reason="this CPU has no native bf16"))])
def test_openvino_fixed_shapes_give_the_dynamic_models_vectors(precision: str, texts: list[str], cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dynamic = Embedder(MODEL_DIR, device="cpu", precision=precision, backend="openvino", cache_dir=cache,
                       show_progress=False)
    dynamic.cache_dir = None  # no vector cache: both embed every text
    expected = dynamic.embed(texts)
    assert isinstance(dynamic._model, CompiledModel) and dynamic._model.fixed_shapes == []  # 300 texts: too few
    monkeypatch.setattr(embed_backends, "STATIC_SHAPE_MIN_TOKENS", 1)  # every shape gets a compiled model
    fixed = Embedder(MODEL_DIR, device="cpu", precision=precision, backend="openvino", cache_dir=cache,
                     show_progress=False)
    fixed.cache_dir = None
    fixed._load_model()
    assert isinstance(fixed._model, CompiledModel)
    blobs = sorted(fixed._model.folder.glob("compiled/*.blob"))
    vectors = fixed.embed(texts)
    assert isinstance(fixed._model, CompiledModel)
    # the distinct texts, longest first, in batches of one micro-batch (16 rows) and one last short
    # one: one shape per batch at most (bf16 pads widths to 16, so neighbouring batches can share a
    # shape); the longest are truncated to 256 tokens. A reduced precision was calibrated on the
    # batch_size longest texts (counted as one batch), which are not run again.
    distinct, micro = len(set(texts)), fixed._model.micro_batch
    assert micro == embed_backends.MICRO_BATCH == 16 and fixed._model.batch_rows == micro
    run = distinct - (0 if precision == "fp32" else fixed.batch_size)
    shapes = fixed._model.fixed_shapes
    assert {rows for rows, _ in shapes} == {micro, run % micro} - {0}
    assert len(shapes) <= -(-run // micro) and max(width for _, width in shapes) == 256
    assert fixed.stats["batches"] == -(-run // micro) + (precision != "fp32")
    assert min_cosine(vectors, expected) >= (0.999999 if precision == "fp32" else 0.9999)
    # the fixed-shape models are compiled in memory only: each blob would hold every weight
    assert sorted(fixed._model.folder.glob("compiled/*.blob")) == blobs


@_needs("openvino")
def test_openvino_plan_counts_positions_across_calls(tmp_path: Path) -> None:
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="openvino", cache_dir=tmp_path,
                        show_progress=False)
    embedder._load_model()
    model = embedder._model
    assert isinstance(model, CompiledModel)
    threshold = embed_backends.STATIC_SHAPE_MIN_TOKENS
    rows, width = 16, 200  # one micro-batch per batch
    batches = -(-threshold // (rows * width))  # the batches whose positions reach the threshold
    model.plan([(rows, width)] * (batches - 1) + [(rows, 8)])
    assert model._static == set()
    model.plan([(rows, width)])  # a later call's batch of the same shape tips it over
    assert model._static == {(rows, width)}
    model.plan([(40, 100)] * 100)  # a 40-row batch runs as micro-batches of 16, 16 and 8 rows
    assert {(16, 100), (8, 100)} <= model._static and (40, 100) not in model._static
    onnx_like = CompiledModel.__new__(CompiledModel)
    onnx_like.backend = "onnx"
    onnx_like.plan([(rows, width)] * batches)  # only OpenVINO compiles per shape
    assert not hasattr(onnx_like, "_static")


@_needs("openvino")
@pytest.mark.parametrize("streams", [1, 2])
def test_openvino_forward_many_equals_forward_per_batch(streams: int, texts: list[str], tmp_path: Path) -> None:
    # forward_many queues every batch on the streams at once (no wait at the end of each batch):
    # the vectors, in order, are those forward() gives batch by batch, for batches of one
    # micro-batch and for larger ones (those run as forward() does)
    embedder = Embedder(MODEL_DIR, device="cpu", precision="fp32", backend="openvino", cache_dir=tmp_path,
                        show_progress=False, num_threads=streams)
    embedder._load_model()
    model = embedder._model
    assert isinstance(model, CompiledModel) and model.streams == streams
    ids, _ = embedder._tokenize(texts[:61])
    pad_id = embedder._tokenizer.pad_token_id
    for sizes in ([16, 16, 3, 16, 10], [40, 21]):
        starts = np.cumsum([0, *sizes])
        parts = [ids[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
        batches = [pad_batch(part, max(len(x) for x in part), pad_id) for part in parts]
        got = list(model.forward_many(batches, "fp32", "mean", True))
        want = [model.forward(*batch, "fp32", "mean", True) for batch in batches]
        assert [g.shape for g in got] == [(n, embedder.dim) for n in sizes]
        assert min_cosine(np.concatenate(got), np.concatenate(want)) >= 0.9999999


# ----------------------------------------------------------------------------------------------
# Argument errors


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"backend='tensorrt' is not one of \['auto', 'torch', 'openvino', 'onnx'\]"):
        Embedder(MODEL_DIR, device="cpu", backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backend must be a str"):
        Embedder(MODEL_DIR, device="cpu", backend=1)  # type: ignore[arg-type]


@_needs("onnx")
def test_onnx_rejects_reduced_precision() -> None:
    with pytest.raises(ValueError, match=r"backend='onnx' runs fp32 only, got precision='bf16'; pass precision="):
        Embedder(MODEL_DIR, device="cpu", backend="onnx", precision="bf16")


@_needs("openvino")
def test_openvino_rejects_fp16() -> None:
    with pytest.raises(ValueError, match=r"backend='openvino' runs fp32 or bf16 on a CPU, got precision='fp16'"):
        Embedder(MODEL_DIR, device="cpu", backend="openvino", precision="fp16")
