"""User-facing errors.

Every problem a user can fix (bad file, bad label, bad config) raises
:class:`SonoganInputError` with a one-line message that names the file and the fix.
The CLI prints that line and exits with code 2; library callers can catch it.

Example:
    >>> raise SonoganInputError("data/x.png", "image cannot be decoded", "re-export it as PNG or JPEG")
    Traceback (most recent call last):
    ...
    sonogan.errors.SonoganInputError: data/x.png: image cannot be decoded; fix: re-export it as PNG or JPEG
"""

from __future__ import annotations

from pathlib import Path

EXIT_INPUT_ERROR = 2


class SonoganInputError(Exception):
    """A problem with user input; the message is one line: '<where>: <what>; fix: <how>'."""

    def __init__(self, where: str | Path, what: str, fix: str) -> None:
        self.where = str(where)
        self.what = what
        self.fix = fix
        super().__init__(f"{self.where}: {what}; fix: {fix}")
