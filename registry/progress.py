"""Progress bars of the long commands: one rich bar per step, on stderr, gone when done."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: ``progress(step, done, total)``: what the long functions (curation, demo builds) call
StepProgress = Callable[[str, int, int], None]

#: the columns of every step bar: its name, the bar, done/total, the time so far
COLUMNS = (
    TextColumn("{task.description:<12}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
)


@contextmanager
def step_bars(quiet: bool = False) -> Iterator[StepProgress]:
    """A ``progress(step, done, total)`` callback drawing one bar per step on stderr (nothing
    with ``quiet``); the bars are removed when the block ends."""
    console = Console(file=sys.stderr, quiet=quiet)
    with Progress(*COLUMNS, console=console, transient=True) as bars:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total)
            bars.update(tasks[step], completed=done, total=total)

        yield progress
