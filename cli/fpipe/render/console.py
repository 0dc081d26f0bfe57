"""Consoles and progress: colour only on a terminal and never with NO_COLOR; quiet when piped or --quiet."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def make_console(*, stderr: bool = False, no_color: bool = False) -> Console:
    # imported when something is drawn (rich.table and rich.console: 0.05 s a process)
    from rich.console import Console

    return Console(
        stderr=stderr,
        no_color=no_color or bool(os.environ.get("NO_COLOR")),
        highlight=False,
        soft_wrap=False,
        width=None if (sys.stderr if stderr else sys.stdout).isatty() else 120,
    )


@contextmanager
def stage_progress(enabled: bool, no_color: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A `(stage, done, total)` callback drawing one Rich bar per stage on stderr (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():

        def noop(stage: str, done: int, total: int) -> None:
            return None

        yield noop
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = make_console(stderr=True, no_color=no_color)
    with Progress(
        TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False
    ) as bar:
        tasks: dict[str, object] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))  # type: ignore[arg-type]

        yield update
