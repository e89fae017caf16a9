"""Progress bars for long work: rich bars on a terminal, nothing when output is not a terminal.

Without a terminal (CI, ``nohup``, a pipe) rich redraws become blank lines and escape codes in
the log; the run's ``log.txt`` and the per-fold summaries carry the information instead.

Example:
    >>> with progress_bar(False) as bar:
    ...     task = bar.add_task("fold 0 baseline", total=3)
    ...     bar.update(task, advance=1)
"""

from __future__ import annotations

import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(enabled: bool, label: str = "", transient: bool = True) -> Progress:
    """A bar with ``label``, count, elapsed time and a free description; disabled off a terminal."""
    columns = ([TextColumn(f"[bold]{label}[/]")] if label else []) + [
        BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}")]
    return Progress(*columns, disable=not (enabled and sys.stdout.isatty()), transient=transient)
