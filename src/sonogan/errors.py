"""User-facing errors.

Every problem a user can fix (bad file, bad label, bad config) raises a :class:`SonoganError`
with a one-line message that says what is wrong and the fix; :class:`SonoganInputError`, the
usual one, also names the file or option. The CLI prints that line and exits with code 2;
library callers can catch it. A full or read-only disk is user-fixable too:
:func:`disk_error_line` words it the same way (:func:`expected_error_line` covers both).
:class:`RunInterrupted` carries the command that continues an interrupted run (exit 130).

Anything else is a bug. On its way up an exception collects where it happened, for the
CLI's one-line report: :func:`note_run` (the run folders it left, innermost first, by
``RunDir``) and :func:`note_step` (the innermost named step, by ``sonogan.progress.step``).

Example:
    >>> raise SonoganInputError("data/x.png", "image cannot be decoded", "re-export it as PNG or JPEG")
    Traceback (most recent call last):
    ...
    sonogan.errors.SonoganInputError: data/x.png: image cannot be decoded; fix: re-export it as PNG or JPEG
    >>> disk_error_line(OSError(28, "No space left on device", "runs/x/metrics.json"))
    'runs/x/metrics.json: no space left on device; fix: free disk space (or use another --out), then run the command again'
    >>> disk_error_line(ValueError("a bug")) is None
    True
    >>> expected_error_line(SonoganError("only one class ('benign') in column 'label'", "label two classes or more"))
    "only one class ('benign') in column 'label'; fix: label two classes or more"
"""

from __future__ import annotations

import errno
from pathlib import Path

EXIT_BUG = 1  # an unexpected error: a bug, reported by the CLI in one line (traceback in the run's log.txt)
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT

_SPACE_FIX = "free disk space (or use another --out), then run the command again"
_WRITE_FIX = "choose a writable --out folder (or fix its permissions), then run the command again"
DISK_ERRORS = {
    errno.ENOSPC: ("no space left on device", _SPACE_FIX),
    errno.EDQUOT: ("disk quota exceeded", _SPACE_FIX),
    errno.EACCES: ("permission denied", _WRITE_FIX),
    errno.EROFS: ("read-only file system", _WRITE_FIX),
}


class SonoganError(Exception):
    """A problem the user can fix; the message is one line: '<what>; fix: <how>'."""

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}; fix: {fix}")


class SonoganInputError(SonoganError):
    """A problem with a named input; the message is one line: '<where>: <what>; fix: <how>'."""

    def __init__(self, where: str | Path, what: str, fix: str) -> None:
        self.where = str(where)
        super().__init__(what, fix)
        self.args = (f"{self.where}: {what}; fix: {fix}",)


class RunInterrupted(Exception):
    """Ctrl-C during a resumable command; the message says how to continue the run.

    Deliberately not a KeyboardInterrupt: typer turns those into a silent exit, while this
    one reaches ``sonogan.cli.main`` and is printed as one line.
    """

    def __init__(self, run: str | Path, resume: str) -> None:
        self.run = str(run)
        self.resume = resume
        super().__init__(f"interrupted; continue the run in {self.run} with: {resume}")


def disk_error_line(exc: BaseException) -> str | None:
    """'<file>: <problem>; fix: <how>' for a full, over-quota, read-only or forbidden disk, else None."""
    if not isinstance(exc, OSError) or exc.errno not in DISK_ERRORS:
        return None
    what, fix = DISK_ERRORS[exc.errno]
    where = exc.filename if exc.filename is not None else "(a file of this command)"
    return f"{where}: {what}; fix: {fix}"


def expected_error_line(exc: BaseException) -> str | None:
    """The one line of a problem the user can fix (a :class:`SonoganError` or a disk error), else None."""
    if isinstance(exc, SonoganError):
        return str(exc)
    return disk_error_line(exc)


# Attribute names under which an exception carries where it happened (see the module docstring).
_RUNS = "sonogan_runs"
_STEP = "sonogan_step"


def note_run(exc: BaseException, run: str | Path) -> None:
    """Record that ``exc`` left the run in folder ``run`` (called innermost run first)."""
    exc.__dict__.setdefault(_RUNS, []).append(str(run))


def note_step(exc: BaseException, step: str) -> None:
    """Record the step ``exc`` left; only the first (innermost) call counts."""
    exc.__dict__.setdefault(_STEP, step)


def _chain(exc: BaseException | None) -> list[BaseException]:
    # an exception re-raised as another one (``raise X from exc``) keeps the original's notes
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def runs_left(exc: BaseException) -> list[str]:
    """The run folders ``exc`` (or an exception it was raised from) left, innermost first."""
    return [run for e in _chain(exc) for run in e.__dict__.get(_RUNS, [])]


def step_left(exc: BaseException) -> str | None:
    """The innermost named step ``exc`` (or an exception it was raised from) left, if any."""
    return next((e.__dict__[_STEP] for e in _chain(exc) if _STEP in e.__dict__), None)
