"""Durable file writes shared by every stage: results, caches and question files either appear
complete or not at all, and appended records survive a crash once the call returns."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_open", "write_bytes_atomic", "write_text_atomic", "write_parquet_atomic", "append_line_durable"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it over ``path``.

    The rename is atomic on POSIX and Windows, and the fsync before it means a crash cannot leave a
    renamed but empty file. On an exception the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: {mode!r}; atomic_open writes whole files ('w' or 'wb')")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; the finished file gets the permissions open() would have given it.
        os.fchmod(fd, 0o666 & ~_umask())
        handle: Any = os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8", newline="")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: without it a crash can forget the new directory entry."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_parquet_atomic(path: str | os.PathLike[str], table: Any) -> None:
    import pyarrow.parquet as pq

    with atomic_open(path, "wb") as handle:
        pq.write_table(table, handle)


def append_line_durable(path: str | os.PathLike[str], line: str) -> None:
    """Append one line with a single ``write`` (O_APPEND) and fsync it before returning."""
    data = (line if line.endswith("\n") else line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:  # a write may be partial (signals, full pipes); finish the line
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
