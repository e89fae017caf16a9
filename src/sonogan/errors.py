"""User-facing errors.

Every problem a user can fix (bad file, bad label, bad config) raises
:class:`SonoganInputError` with a one-line message that names the file and the fix.
The CLI prints that line and exits with code 2; library callers can catch it. A full or
read-only disk is user-fixable too: :func:`disk_error_line` words it the same way.
:class:`RunInterrupted` carries the command that continues an interrupted run (exit 130).

Example:
    >>> raise SonoganInputError("data/x.png", "image cannot be decoded", "re-export it as PNG or JPEG")
    Traceback (most recent call last):
    ...
    sonogan.errors.SonoganInputError: data/x.png: image cannot be decoded; fix: re-export it as PNG or JPEG
    >>> disk_error_line(OSError(28, "No space left on device", "runs/x/metrics.json"))
    'runs/x/metrics.json: no space left on device; fix: free disk space (or use another --out), then run the command again'
    >>> disk_error_line(ValueError("a bug")) is None
    True
"""

from __future__ import annotations

import errno
from pathlib import Path

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


class SonoganInputError(Exception):
    """A problem with user input; the message is one line: '<where>: <what>; fix: <how>'."""

    def __init__(self, where: str | Path, what: str, fix: str) -> None:
        self.where = str(where)
        self.what = what
        self.fix = fix
        super().__init__(f"{self.where}: {what}; fix: {fix}")


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
