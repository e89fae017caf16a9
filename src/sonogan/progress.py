"""Progress bars for long work, and the named steps an error report points to.

A bar shows rich progress on a terminal and nothing when output is not a terminal: without a
terminal (CI, ``nohup``, a pipe) rich redraws become blank lines and escape codes in the log;
the run's ``log.txt`` and the per-fold summaries carry the information instead.

Every bar is also a :class:`step` named by its label: an exception that leaves it carries the
step (and the bar's last description), so the CLI can say where an unexpected error happened
("during step 'audit borderline' (last progress: quality ...)") without each command keeping
its own bookkeeping. Steps nest (``with step("fold 0"):`` around a bar gives "fold 0 > train").

Example:
    >>> with progress_bar(False) as bar:
    ...     task = bar.add_task("fold 0 baseline", total=3)
    ...     bar.update(task, advance=1)
    >>> from sonogan.errors import step_left
    >>> try:
    ...     with step("fold 0"), progress_bar(False, "audit benign") as bar:
    ...         task = bar.add_task("features", total=2)
    ...         bar.update(task, advance=1, description="memorisation")
    ...         raise ValueError("a bug")
    ... except ValueError as exc:
    ...     step_left(exc)
    'fold 0 > audit benign (last progress: memorisation)'
"""

from __future__ import annotations

import sys
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sonogan.errors import note_step

_STEPS: ContextVar[tuple[str, ...]] = ContextVar("sonogan_steps", default=())


class step:  # noqa: N801 (used like a function: ``with step("fold 0"):``)
    """Name the work inside a ``with`` block; an exception leaving it is noted with the names
    of the enclosing steps (:func:`sonogan.errors.note_step`) and ``detail()``, if any."""

    def __init__(self, name: str, detail: Callable[[], str | None] | None = None) -> None:
        self.name = name
        self.detail = detail
        self._token: Token[tuple[str, ...]] | None = None

    def __enter__(self) -> "step":
        self._token = _STEPS.set((*_STEPS.get(), self.name))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            extra = self.detail() if self.detail is not None else None
            note_step(exc, " > ".join(_STEPS.get()) + (f" (last progress: {extra})" if extra else ""))
        if self._token is not None:
            _STEPS.reset(self._token)
            self._token = None


class StepProgress(Progress):
    """A rich :class:`Progress` that is a :class:`step` while it is entered (``with bar:``)."""

    def __init__(self, *columns: Any, label: str, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._step = step(label or "progress", self._last_description)

    def _last_description(self) -> str | None:
        # the newest unfinished task's text: the audit names the phase it started, a loop its epoch
        text = next((t.description for t in reversed(self.tasks) if t.description and not t.finished), "")
        return " ".join(text.split()) or None  # the loops pad their columns with double spaces

    def __enter__(self) -> "StepProgress":
        self._step.__enter__()
        super().__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        finally:
            self._step.__exit__(exc_type, exc, tb)


def progress_bar(enabled: bool, label: str = "", transient: bool = True) -> StepProgress:
    """A bar with ``label``, count, elapsed time and a free description; disabled off a terminal."""
    columns = ([TextColumn(f"[bold]{label}[/]")] if label else []) + [
        BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}")]
    return StepProgress(*columns, label=label, disable=not (enabled and sys.stdout.isatty()), transient=transient)
