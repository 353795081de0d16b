"""One progress bar for every long-running stage (rich), silent when asked or not on a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from rich.progress import TaskID


def progress_enabled(show: bool | None = None) -> bool:
    """``show=None`` means: on for an interactive terminal, off otherwise (CI logs, pipes)."""
    if show is not None:
        return show
    if os.environ.get("CHUNKEVAL_PROGRESS") in ("0", "1"):
        return os.environ["CHUNKEVAL_PROGRESS"] == "1"
    return sys.stderr.isatty()


class ProgressBar(Protocol):
    """The part of ``rich.progress.Progress`` that chunkeval's stages call."""

    def add_task(self, description: str, *, total: float | None = ...) -> TaskID: ...

    def update(self, task_id: TaskID, *, completed: float | None = ..., description: str | None = ...) -> None: ...

    def advance(self, task_id: TaskID, advance: float = ...) -> None: ...


class _Silent:
    def add_task(self, description: str, *, total: float | None = None, **_: object) -> TaskID:
        return cast("TaskID", 0)

    def update(self, task_id: TaskID, **_: object) -> None:
        pass

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        pass


@contextlib.contextmanager
def progress(show: bool | None = None) -> Iterator[ProgressBar]:
    """Yield a ``rich.progress.Progress`` (or a silent stand-in with the same three methods).

    Usage: ``with progress(show) as bar: t = bar.add_task("embed", total=n); bar.advance(t, 64)``.
    """
    if not progress_enabled(show):
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        # stdout carries results (`--json > file`); progress is for the person watching.
        console=Console(stderr=True),
    )
    with bar:
        yield bar
