"""Compiled CPU backends for :class:`chunkeval.embedding.Embedder`: OpenVINO and ONNX Runtime.

The transformer is exported locally, from the same model files the torch backend loads, once per
model fingerprint: ONNX with ``torch.onnx.export`` (run by ONNX Runtime), OpenVINO IR with
``openvino.convert_model`` (weights kept in fp32). An export lives in
``<cache_dir>/exports/<backend>-<fingerprint>-v<format>/``; it is written into a temporary folder
beside that one and renamed into place when complete, so a reader sees the whole export or none.
A later run reads it back without torch or transformers: the tokenizer is the model's own
``tokenizer.json`` run by the ``tokenizers`` library (the same fast tokenizer transformers wraps),
and pooling and normalisation are the torch backend's, in numpy.

Only the transformer's forward pass changes hands. Tokenisation, truncation (and its warning),
the length-sorted batching, the calibration rule and the vector cache stay in ``Embedder``.

Each export is checked once, when it is made: its fp32 vectors of a few dozen bundled-benchmark
texts against torch fp32's (the smallest cosine is kept in ``meta.json``).

``backend="auto"`` on a CPU tries the installed compiled backends in the order they measured
fastest here (OpenVINO, then ONNX Runtime) and keeps the first whose calibration batch, in the
precision it would use, stays within cosine :data:`~chunkeval.embedding.CALIBRATION_MIN_COSINE` of
torch fp32; otherwise torch. The calibration compares with the export's own fp32 and adds the
export's checked angle to torch fp32 (:func:`resolve_auto`), so a run whose export exists imports
neither torch nor transformers. Off the CPU it is torch. The choice is remembered in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from ._io import write_bytes_atomic

if TYPE_CHECKING:
    from .embedding import Embedder, ModelSpec

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "EXPORT_FORMAT",
    "EXPORT_MIN_COSINE",
    "STATIC_SHAPE_MIN_TOKENS",
    "CompiledModel",
    "FastTokenizer",
    "backend_precisions",
    "check_backend",
    "cpu_only_host",
    "export_path",
    "installed_backends",
    "load_compiled",
    "pad_batch",
    "pool",
]

logger = logging.getLogger("chunkeval.embedding")

Backend = Literal["torch", "openvino", "onnx"]
#: Every backend an ``Embedder`` accepts besides ``"auto"``.
BACKENDS: tuple[Backend, ...] = ("torch", "openvino", "onnx")
#: ``backend="auto"`` tries these, in this order, before torch (fastest first, measured on a CPU).
AUTO_ORDER: tuple[Backend, ...] = ("openvino", "onnx")
#: Bumped whenever an export's layout or contents change, so an old export is never trusted.
EXPORT_FORMAT = 2  # 2: meta.json holds the export's fp32 check against torch fp32

#: An export is used by ``backend="auto"`` only when its fp32 vectors of the check texts all have at
#: least this cosine to torch fp32's (measured: 0.9999999 for MiniLM through OpenVINO and ONNX).
EXPORT_MIN_COSINE = 0.99999
_MODULES = {"openvino": "openvino", "onnx": "onnxruntime"}
_Item = TypeVar("_Item")
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}

# Positions (rows x width, summed over the batches planned so far) a batch shape needs before
# OpenVINO gets a model compiled for it. A compile takes ~0.3 s; a fixed shape saves ~14 us per
# position on 2 cores (MiniLM, bf16, AVX512-AMX Xeon), twice that on one, so this repays it ~1.5x.
STATIC_SHAPE_MIN_TOKENS = 30_000

#: ``backend="auto"`` calibrates on this many of the longest texts (or a batch, if smaller).
CALIBRATION_TEXTS = 32

#: Rows per OpenVINO inference: the embedder's batches are split into micro-batches this size.
MICRO_BATCH = 16


def pad_batch(ids: Sequence[Sequence[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input_ids, mask, lengths)`` of token-id lists right-padded to ``width`` with ``pad_id``;
    ``mask`` is true on real tokens."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    input_ids[mask] = np.fromiter((t for x in ids for t in x), dtype=np.int64, count=int(lengths.sum()))
    return input_ids, mask, lengths


def _micro_rows(rows: int, micro: int) -> list[int]:
    """The row counts of the micro-batches of a ``rows``-row batch."""
    return [micro] * (rows // micro) + ([rows % micro] if rows % micro else [])


def check_backend(backend: object, precision: str) -> str:
    """Validate ``backend=`` (and the precisions it supports); returns it."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, one of {['auto', *BACKENDS]}, got {type(backend).__name__}")
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend={backend!r} is not one of {['auto', *BACKENDS]}")
    if backend == "onnx" and precision not in ("auto", "fp32"):
        raise ValueError(f"backend='onnx' runs fp32 only, got precision={precision!r}; "
                         "pass precision='fp32' or 'auto', or backend='openvino' for bf16")
    if backend == "openvino" and precision == "fp16":
        raise ValueError("backend='openvino' runs fp32 or bf16 on a CPU, got precision='fp16'; "
                         "pass precision='bf16', 'fp32' or 'auto'")
    if backend in _MODULES and importlib.util.find_spec(_MODULES[backend]) is None:
        raise ValueError(f"backend={backend!r} needs the {_MODULES[backend]} package: "
                         f"pip install 'chunkeval[{backend}]' (or pass backend='torch')")
    return backend


def installed_backends() -> list[Backend]:
    """The compiled backends whose runtime is importable here, in :data:`AUTO_ORDER`."""
    return [b for b in AUTO_ORDER if importlib.util.find_spec(_MODULES[b]) is not None]


def backend_precisions(backend: str, requested: str, bf16_native: bool) -> list[str]:
    """Precisions a compiled backend would try for ``precision=requested``, preferred first."""
    if backend == "onnx":
        return ["fp32"] if requested in ("auto", "fp32") else []
    if requested == "auto":
        return ["bf16", "fp32"] if bf16_native else ["fp32"]
    return [requested] if requested in _OV_PRECISION else []


def cpu_only_host() -> bool:
    """True when ``device="auto"`` can only mean the CPU, decided without importing torch.

    That is: torch is not installed, or the installed torch has neither CUDA nor ROCm libraries
    (a CPU-only build) and this is not an Apple-silicon Mac (MPS). Anything else is left to torch.
    """
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return False
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return True
    lib = Path(spec.origin).parent / "lib"
    accelerated = ("libtorch_cuda", "libtorch_hip", "libc10_cuda", "libc10_hip")
    try:
        names = [p.name for p in lib.iterdir()]
    except OSError:
        return False
    return not any(name.startswith(accelerated) for name in names)


# ----------------------------------------------------------------------------------------------
# Tokenizer and pooling without transformers or torch


class _Encoded:
    """What ``Embedder._tokenize`` reads from a tokenizer call: ``["input_ids"]`` and ``.encodings``."""

    def __init__(self, encodings: list[Any]) -> None:
        self.encodings = encodings

    def __getitem__(self, key: str) -> list[list[int]]:
        if key != "input_ids":
            raise KeyError(key)
        return [e.ids for e in self.encodings]


class FastTokenizer:
    """The model's ``tokenizer.json`` run by the ``tokenizers`` library, called like transformers'.

    transformers' fast tokenizer wraps the same object and, for ``truncation=True,
    max_length=N``, enables longest-first right truncation at ``N`` with the special tokens added;
    this does the same, so ids and truncation flags are equal (tested on the bundled model).
    """

    def __init__(self, transformer_dir: Path, do_lower_case: bool, model_input_names: Sequence[str]) -> None:
        from tokenizers import Tokenizer

        path = transformer_dir / "tokenizer.json"
        if not path.is_file():
            raise ValueError(f"model: {transformer_dir} has no fast tokenizer (tokenizer.json); "
                             "chunkeval needs one to count truncated texts")
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if do_lower_case:
            from tokenizers.normalizers import Lowercase
            from tokenizers.normalizers import Sequence as NormalizerSequence

            parts = [Lowercase()] + ([tokenizer.normalizer] if tokenizer.normalizer is not None else [])
            tokenizer.normalizer = NormalizerSequence(parts)
        self._tokenizer = tokenizer
        self._max_length: int | None = None
        side = "right"
        pad_token: object = None
        config_path = transformer_dir / "tokenizer_config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            side = str(config.get("truncation_side", "right"))
            pad_token = config.get("pad_token")
            if isinstance(pad_token, dict):
                pad_token = pad_token.get("content")
        self._side = side
        pad_id = tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
        self.pad_token_id: int = int(pad_id) if pad_id is not None else 0
        self.model_input_names = list(model_input_names)
        self.is_fast = True

    def __call__(self, texts: list[str], *, truncation: bool, max_length: int, padding: bool = False,
                 return_attention_mask: bool = False, return_token_type_ids: bool = False) -> _Encoded:
        if not truncation or padding:
            raise ValueError("FastTokenizer: only truncation=True, padding=False is supported (Embedder's call)")
        if self._max_length != max_length:
            self._tokenizer.enable_truncation(max_length, stride=0, strategy="longest_first", direction=self._side)
            self._max_length = max_length
        return _Encoded(self._tokenizer.encode_batch(texts, add_special_tokens=True))


def pool(hidden: np.ndarray, mask: np.ndarray, lengths: np.ndarray, pooling: str, normalize: bool) -> np.ndarray:
    """The torch backend's pooling and L2 normalisation, in numpy (fp32).

    ``hidden`` is ``(batch, width, dim)``, ``mask`` ``(batch, width)`` true on real tokens (right
    padding), ``lengths`` the real token counts.
    """
    hidden = hidden.astype(np.float32, copy=False)
    weights = mask[:, :, None].astype(np.float32)
    if pooling in ("mean", "mean_sqrt_len_tokens"):
        counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
        summed = np.einsum("bwd,bw->bd", hidden, weights[:, :, 0])
        pooled = summed / (counts if pooling == "mean" else np.sqrt(counts))
    elif pooling == "cls":
        pooled = hidden[:, 0].copy()
    elif pooling == "max":
        pooled = np.where(weights > 0, hidden, np.float32(-np.inf)).max(axis=1)
    elif pooling == "lasttoken":
        pooled = hidden[np.arange(len(hidden)), lengths - 1].copy()
    else:
        raise ValueError(f"pooling={pooling!r} is not supported by the compiled backends")
    if normalize:
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        pooled = pooled / norms
    return np.ascontiguousarray(pooled, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Export: once per model fingerprint, atomically


def export_path(cache_dir: Path, backend: str, fingerprint: str) -> Path:
    """Folder of the ``backend`` export of the model with this fingerprint."""
    return cache_dir / "exports" / f"{backend}-{fingerprint[:32]}-v{EXPORT_FORMAT}"


def _model_file(backend: str) -> str:
    return "model.xml" if backend == "openvino" else "model.onnx"


def _export_into(folder: Path, backend: str, spec: ModelSpec, fingerprint: str) -> None:
    """Load the torch model from ``spec`` and write the ``backend`` export into ``folder``."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(str(spec.transformer_dir), local_files_only=True)
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(spec.transformer_dir), local_files_only=True).eval()
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        names.append("token_type_ids")

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs).last_hidden_state  # type: ignore[no-any-return]

    wrapper = LastHidden(model).eval()
    # Two padded rows of different lengths, so no shape or mask pattern can be folded into the graph.
    sample = tokenizer(["An example sentence, long enough to need a dozen tokens or so.", "Short."],
                       padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    example_ids = sample["input_ids"].to(torch.int64)
    mask = sample["attention_mask"].to(torch.int64)
    example = (example_ids, mask, torch.zeros_like(example_ids))[: len(names)]
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        if backend == "onnx":
            axes = {name: {0: "batch", 1: "width"} for name in [*names, "last_hidden_state"]}
            torch.onnx.export(wrapper, example, str(folder / "model.onnx"), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                              dynamo=False)
        else:
            import openvino as ov  # type: ignore[import-untyped]

            converted = ov.convert_model(wrapper, example_input=example)
            for port, name in zip(converted.inputs, names, strict=True):
                port.get_tensor().set_names({name})
            ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)
    meta = {"format": EXPORT_FORMAT, "backend": backend, "fingerprint": fingerprint, "inputs": names,
            "torch_version": torch.__version__, "runtime_version": _runtime_version(backend),
            "model_dir": str(spec.model_dir), "fp32_check": _check_export(folder, backend, names, wrapper, spec)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _check_texts() -> list[str]:
    """The export check's texts: windows of the bundled benchmark's corpora, most of them past the
    model's 256-token limit (long inputs are where two fp32 runs drift apart most), and short ones."""
    from .datasets import load

    corpora = load().texts
    windows = [c[i:i + 1500] for c in corpora for i in range(0, 15000, 1500)]
    step = max(1, len(windows) // 24)
    return windows[::step][:24] + ["Short.", "A question about revenue in 2021?", "x " * 40, "Émoji 🙂 and 中文."]


def _check_export(folder: Path, backend: str, names: Sequence[str], wrapper: Any, spec: ModelSpec) -> dict[str, Any]:
    """Embed the check texts with torch fp32 (``wrapper``: the exported module) and with the export
    in fp32; the smallest cosine between the two, and how many texts were compared."""
    import torch

    texts = _check_texts()
    tokenizer = FastTokenizer(spec.transformer_dir, spec.do_lower_case, names)
    ids = tokenizer(texts, truncation=True, max_length=spec.max_seq_length)["input_ids"]
    input_ids, mask, lengths = pad_batch(ids, max(len(x) for x in ids), tokenizer.pad_token_id)
    feeds = (torch.from_numpy(input_ids), torch.from_numpy(mask.astype(np.int64)),
             torch.zeros(mask.shape, dtype=torch.int64))
    with torch.inference_mode():
        expected = pool(wrapper(*feeds[: len(names)]).numpy(), mask, lengths, spec.pooling, True)
    got = CompiledModel(backend, folder, names, None).forward(input_ids, mask, lengths, "fp32", spec.pooling, True)
    return {"texts": len(texts), "min_cosine": _min_cosine(expected, got)}


def export_angle(check: object) -> float | None:
    """The largest angle (radians) between the export's fp32 vectors and torch fp32's on its check
    texts, or ``None`` when the export has no passing check."""
    if not isinstance(check, dict) or not isinstance(check.get("min_cosine"), float):
        return None
    cosine = float(check["min_cosine"])
    return float(np.arccos(min(cosine, 1.0))) if cosine >= EXPORT_MIN_COSINE else None


def _runtime_version(backend: str) -> str | None:
    module = sys.modules.get(_MODULES[backend])
    if module is None:
        with contextlib.suppress(ImportError):
            module = __import__(_MODULES[backend])
    return getattr(module, "__version__", None) if module is not None else None


def _read_meta(folder: Path, backend: str, fingerprint: str) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT or meta.get("backend") != backend
            or meta.get("fingerprint") != fingerprint or not (folder / _model_file(backend)).is_file()):
        return None
    return meta


def _ensure_export(backend: str, spec: ModelSpec, fingerprint: str, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The export folder (created if missing) and its ``meta.json``; writes are atomic."""
    target = export_path(cache_dir, backend, fingerprint)
    meta = _read_meta(target, backend, fingerprint)
    if meta is not None:
        return target, meta
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # damaged or from another format: set it aside, then export afresh
        logger.warning("embedding: ignoring the incomplete %s export in %s; exporting again", backend, target)
        stale = target.with_name(f".{target.name}.stale-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(OSError):
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is as shareable as the cache
    started = time.perf_counter()
    logger.info("embedding: exporting %s for the %s backend (once per model) into %s", spec.model_dir, backend, target)
    try:
        _export_into(tmp, backend, spec, fingerprint)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same export first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("embedding: %s export done in %.1f s", backend, time.perf_counter() - started)
    meta = _read_meta(target, backend, fingerprint)
    if meta is None:
        raise RuntimeError(f"embedding: the {backend} export in {target} is unreadable right after writing it")
    return target, meta


# ----------------------------------------------------------------------------------------------
# Running an export


class CompiledModel:
    """An exported transformer run by OpenVINO or ONNX Runtime; :meth:`forward` returns pooled rows."""

    def __init__(self, backend: str, folder: Path, inputs: Sequence[str], num_threads: int | None) -> None:
        from .metrics.api import cpu_affinity_count

        self.backend = backend
        self.folder = folder
        self.inputs = list(inputs)
        self.num_threads = num_threads
        self._compiled: dict[tuple[str, tuple[int, int] | None], Any] = {}  # (precision, fixed shape)
        self.export_check: object = None  # meta.json's fp32 check against torch fp32 (load_compiled)
        self._static: set[tuple[int, int]] = set()  # shapes that get a fixed-shape model (plan())
        self._planned: dict[tuple[int, int], int] = {}  # positions planned per shape so far
        self._session: Any = None
        self._requests = threading.local()  # per thread: an infer request per compiled model
        self._compile_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        # OpenVINO: one stream per thread, each running its own micro-batches of `micro_batch` rows.
        self.streams = max(1, num_threads if num_threads is not None else cpu_affinity_count())
        self.micro_batch = MICRO_BATCH
        if backend == "onnx":
            import onnxruntime as ort  # type: ignore[import-untyped]

            options = ort.SessionOptions()
            if num_threads is not None:
                options.intra_op_num_threads = num_threads
                options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        else:
            import openvino as ov

            self._core = ov.Core()
            # The first numpy conversion in OpenVINO's bindings initialises pybind11's numpy API, and
            # that initialiser releases and retakes the GIL inside a C++ static's initialisation. If
            # the first conversions happen on two stream threads at once, one can hold the GIL while
            # it waits on the static the other is initialising: a deadlock (seen once here, a
            # calibration hung in futex waits). One conversion on this thread, before any stream
            # thread exists, initialises it for the whole process.
            ov.Tensor(np.zeros(1, dtype=np.float32))
            # OpenVINO keeps the compiled kernels here, so a later run skips most of the compile.
            with contextlib.suppress(Exception):
                self._core.set_property({"CACHE_DIR": str(folder / "compiled")})

    def _openvino_config(self, precision: str) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[precision]}
        if self.streams == 1:
            config["PERFORMANCE_HINT"] = "LATENCY"
        else:
            config["NUM_STREAMS"] = self.streams
        config["INFERENCE_NUM_THREADS"] = self.streams
        return config

    def _openvino(self, precision: str, shape: tuple[int, int] | None = None) -> Any:
        """The compiled model for ``precision``: the dynamic one, or one compiled for ``shape``."""
        key = (precision, shape)
        if key not in self._compiled:
            if shape is None:
                # From the path, not a read model: with a compiled blob cached the IR is not even parsed.
                model: Any = str(self.folder / "model.xml")
            else:
                model = self._core.read_model(str(self.folder / "model.xml"))
                model.reshape({port.get_any_name(): list(shape) for port in model.inputs})
            config = self._openvino_config(precision)
            if shape is not None:
                # Not kept on disk: each fixed-shape blob holds all the weights (~90 MB for MiniLM),
                # and compiling one (~0.3 s) costs little more than reading it back (~0.15 s).
                config["CACHE_DIR"] = ""
            self._compiled[key] = self._core.compile_model(model, "CPU", config)
        return self._compiled[key]

    @property
    def fixed_shapes(self) -> list[tuple[int, int]]:
        """The ``(rows, width)`` shapes that have run on a model compiled for them, sorted."""
        return sorted(shape for _, shape in self._compiled if shape is not None)

    def plan(self, shapes: Sequence[tuple[int, int]]) -> None:
        """Batches of these ``(rows, width)`` shapes come next: compile a fixed-shape model for each
        shape whose batches, with those planned before, hold :data:`STATIC_SHAPE_MIN_TOKENS`
        positions or more.

        OpenVINO's CPU plugin runs a model compiled for one shape about 1.35x faster than the
        dynamic one (measured with MiniLM in bf16: fixed GEMM blocking, fused element-wise ops),
        but each shape costs a compile, so only shapes with enough work to repay it get one.
        The vectors are the same computation up to float rounding (cosine 1.0000000 measured).
        """
        if self.backend != "openvino":
            return
        for rows, width in shapes:  # summed over calls: many small embed() calls add up too
            for micro in _micro_rows(rows, self.micro_batch):  # what hidden() will run
                total = self._planned.get((micro, width), 0) + micro * width
                self._planned[(micro, width)] = total
                if total >= STATIC_SHAPE_MIN_TOKENS:
                    self._static.add((micro, width))

    def _infer(self, precision: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One OpenVINO micro-batch on this thread's infer request (one request per stream)."""
        shape = (int(feeds["input_ids"].shape[0]), int(feeds["input_ids"].shape[1]))
        key = (precision, shape if shape in self._static else None)
        requests: dict[tuple[str, tuple[int, int] | None], Any] = self._requests.__dict__.setdefault("by_model", {})
        request = requests.get(key)
        if request is None:
            with self._compile_lock:
                compiled = self._openvino(*key)
            request = requests[key] = compiled.create_infer_request()
        request.infer(feeds)
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def _feeds(self, input_ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"input_ids": input_ids, "attention_mask": mask.astype(np.int64)}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return feeds

    def _on_streams(self, run: Callable[[_Item], np.ndarray], items: Sequence[_Item]) -> Iterator[np.ndarray]:
        """``run`` of each item, in order: on the stream threads when there are several streams and
        items, each thread taking the next item as soon as it is free."""
        if self.streams == 1 or len(items) == 1:
            return map(run, items)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="chunkeval-openvino")
        return self._pool.map(run, items)

    def hidden(self, input_ids: np.ndarray, mask: np.ndarray, precision: str) -> np.ndarray:
        """``last_hidden_state`` (fp32) of one padded batch."""
        feeds = self._feeds(input_ids, mask)
        if self.backend == "onnx":
            if precision != "fp32":
                raise ValueError(f"backend='onnx' runs fp32 only, got precision={precision!r}")
            out = self._session.run(["last_hidden_state"], feeds)[0]
            return np.asarray(out, dtype=np.float32)
        # OpenVINO: micro-batches of MICRO_BATCH rows, run concurrently on the streams. On this
        # 2-core Xeon, 16-row batches on 2 one-thread streams ran 1.18x the texts/s of whole 64-row
        # batches on one 2-thread stream, alternated (activations stay in each core's L2, and no
        # inference waits on the other core).
        micro = self.micro_batch
        parts = [{name: array[b:b + micro] for name, array in feeds.items()} for b in range(0, len(input_ids), micro)]
        outs = list(self._on_streams(lambda part: self._infer(precision, part), parts))
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    @property
    def batch_rows(self) -> int | None:
        """The rows per batch :meth:`forward_many` runs best with (OpenVINO: one micro-batch), or
        ``None`` for the embedder's batch size."""
        return self.micro_batch if self.backend == "openvino" else None

    def forward_many(self, batches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], precision: str,
                     pooling: str, normalize: bool) -> Iterator[np.ndarray]:
        """Pooled vectors of each padded ``(input_ids, mask, lengths)`` batch, in order.

        OpenVINO runs batches of at most :attr:`micro_batch` rows back to back on its streams, each
        pooled on the stream's thread: a stream takes the next batch as soon as it is free instead
        of waiting at the end of every batch for the slowest stream.
        """
        def one(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
            input_ids, mask, lengths = batch
            return pool(self._infer(precision, self._feeds(input_ids, mask)), mask, lengths, pooling, normalize)

        if self.backend != "openvino" or any(len(b[0]) > self.micro_batch for b in batches):
            return (self.forward(*b, precision, pooling, normalize) for b in batches)
        return self._on_streams(one, batches)

    def forward(self, input_ids: np.ndarray, mask: np.ndarray, lengths: np.ndarray, precision: str,
                pooling: str, normalize: bool) -> np.ndarray:
        """Pooled (and optionally normalised) fp32 vectors of one padded batch."""
        return pool(self.hidden(input_ids, mask, precision), mask, lengths, pooling, normalize)


_scratch: list[Path] = []


def _scratch_dir() -> Path:
    """One temporary export folder per process (for embedders without a cache), removed at exit."""
    if not _scratch:
        import atexit

        _scratch.append(Path(tempfile.mkdtemp(prefix="chunkeval-export-")))
        atexit.register(shutil.rmtree, _scratch[0], True)
    return _scratch[0]


def load_compiled(backend: str, spec: ModelSpec, fingerprint: str, cache_dir: Path | None,
                  num_threads: int | None) -> tuple[FastTokenizer, CompiledModel]:
    """Tokenizer and compiled model for ``backend``, exporting the model first if its export is missing.

    Without a cache directory the export goes to a temporary folder shared by this process.
    """
    if cache_dir is None:
        cache_dir = _scratch_dir()
    folder, meta = _ensure_export(backend, spec, fingerprint, cache_dir)
    inputs = [str(x) for x in meta["inputs"]]
    model = CompiledModel(backend, folder, inputs, num_threads)
    model.export_check = meta.get("fp32_check")
    tokenizer = FastTokenizer(spec.transformer_dir, spec.do_lower_case, inputs)
    return tokenizer, model


# ----------------------------------------------------------------------------------------------
# backend="auto": the fastest installed backend that stays within tolerance of torch fp32


def _auto_record_path(embedder: Embedder, candidates: Sequence[str]) -> Path | None:
    if embedder.cache_dir is None:
        return None
    from .embedding import CALIBRATION_MIN_COSINE, _cpu_model_name, cpu_supports_bf16

    versions = {b: _installed_version(b) for b in candidates}
    key = json.dumps(["auto", embedder.fingerprint, _cpu_model_name(), cpu_supports_bf16(),
                      embedder.precision_requested, embedder.max_length, embedder.pooling, embedder.normalize,
                      versions, CALIBRATION_MIN_COSINE, EXPORT_FORMAT])
    return embedder.cache_dir / "calibration" / f"auto-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _installed_version(backend: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_MODULES[backend])
    except PackageNotFoundError:
        return None


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)  # float32 sums would round near 1.0
    na = np.maximum(np.linalg.norm(a, axis=1), 1e-12)
    nb = np.maximum(np.linalg.norm(b, axis=1), 1e-12)
    return float(((a * b).sum(axis=1) / (na * nb)).min())


def _set_backend(embedder: Embedder, backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"embedding cache: calibration record names an unknown backend {backend!r}")
    embedder._backend = backend
    embedder.stats["backend"] = backend


def resolve_auto(embedder: Embedder, texts: Sequence[str]) -> tuple[list[int], np.ndarray, np.ndarray] | None:
    """Decide ``backend="auto"`` (and the precision) for ``embedder``; see the module docstring.

    Each installed backend's export carries its fp32 check against torch fp32 (made when it was
    exported). A precision passes when the angle from its vectors of the calibration batch to the
    export's own fp32 vectors, plus the export's angle to torch fp32, stays within
    ``arccos(CALIBRATION_MIN_COSINE)``: by the triangle inequality on the sphere the vectors are then
    within cosine :data:`~chunkeval.embedding.CALIBRATION_MIN_COSINE` of torch fp32 wherever the
    export agrees with torch as closely as on its check texts, and neither torch nor transformers
    is imported (the export is made once per model; the decision is remembered in the cache).

    Returns the calibration batch like ``Embedder._resolve_precision`` does (or ``None``).
    """
    from .embedding import CALIBRATION_MIN_COSINE, cpu_supports_bf16, longest_first

    candidates = installed_backends() if embedder.device == "cpu" else []
    if not candidates:
        _set_backend(embedder, "torch")
        return embedder._resolve_precision(texts)
    path = _auto_record_path(embedder, candidates)
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            _set_backend(embedder, str(saved["backend"]))
            if embedder._backend == "torch":
                return embedder._resolve_precision(texts)
            embedder._set_precision(str(saved["precision"]), float(saved["min_cosine"]))
            return None
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("embedding cache: ignoring unreadable calibration record %s", path)
    by_length = longest_first(texts, min(embedder.batch_size, CALIBRATION_TEXTS))
    allowed = float(np.arccos(CALIBRATION_MIN_COSINE))
    tried: dict[str, float] = {}
    for backend in candidates:
        _set_backend(embedder, backend)
        embedder._model = None
        embedder._load_model()
        assert isinstance(embedder._model, CompiledModel)
        export = export_angle(embedder._model.export_check)
        if export is None:
            check = embedder._model.export_check
            tried[f"{backend}:export"] = float(check["min_cosine"]) if isinstance(check, dict) else float("nan")
            logger.info("embedding: the %s export failed its fp32 check against torch fp32 (%s); skipping it",
                        backend, check)
            continue
        ids, truncated = embedder._tokenize([texts[i] for i in by_length])
        reference: np.ndarray | None = None
        for precision in backend_precisions(backend, embedder.precision_requested, cpu_supports_bf16()):
            vectors = np.asarray(embedder._forward(ids, precision), dtype=np.float32)
            angle = export
            if precision != "fp32":
                if reference is None:
                    reference = np.asarray(embedder._forward(ids, "fp32"), dtype=np.float32)
                angle += float(np.arccos(min(_min_cosine(reference, vectors), 1.0)))
            bound = float(np.cos(angle))  # the least cosine to torch fp32 this guarantees
            tried[f"{backend}:{precision}"] = bound
            if angle <= allowed:
                embedder._set_precision(precision, bound)
                if path is not None:
                    record = {"backend": backend, "precision": precision, "min_cosine": bound, "tried": tried,
                              "calibrated_on_texts": len(ids), "reference": f"{backend} fp32",
                              "export_check": embedder._model.export_check}
                    write_bytes_atomic(path, json.dumps(record, indent=1).encode())
                return by_length, vectors, truncated
            logger.info("embedding: %s %s is within cosine %.6f < %s of torch fp32 on the calibration batch",
                        backend, precision, bound, CALIBRATION_MIN_COSINE)
    _set_backend(embedder, "torch")
    embedder._model = None
    embedder._tokenizer = None
    if path is not None:
        write_bytes_atomic(path, json.dumps({"backend": "torch", "tried": tried}, indent=1).encode())
    return embedder._resolve_precision(texts)
