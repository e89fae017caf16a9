"""Check an output path before any work starts: one line and exit 2 instead of a traceback
after an hour of computing.

:func:`check_output` refuses, naming the path and the fix: a file that already exists
(results are never overwritten), a folder path that is a file, a parent that is a regular
file (which Python reports as ``NotADirectoryError`` or ``FileExistsError``), a name the
file system cannot hold (too long, a NUL byte), and a place where nothing can be written (a read-only mount,
no permission, a system folder such as ``/proc``). Writability is tried (a temp file made
and removed in the nearest existing folder), not read from permission bits, which say yes
to root on a read-only mount. Missing parent folders are fine: the writers create them.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> check_output(root / "new" / "p.csv", "file") == root / "new" / "p.csv"
    True
    >>> _ = (root / "f").write_text("x")
    >>> check_output(root / "f" / "p.csv", "file")
    Traceback (most recent call last):
    ...
    sonogan.errors.SonoganInputError: .../f/p.csv: its parent .../f is a file, not a folder; fix: choose an --out whose parent folders are folders (or can be created)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from sonogan.errors import SonoganInputError
from sonogan.locations import is_writable

_NEVER_OVERWRITE = "choose a new --out path (earlier results are never overwritten)"


def _exists(path: Path, option: str) -> bool:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a loop of links, no permission
        raise SonoganInputError(path, f"not a usable {option} path ({_reason(exc)})",
                                f"choose another {option}") from None
    return True


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).lower()


def check_output(path: str | Path, kind: Literal["file", "folder"], option: str = "--out") -> Path:
    """``path`` if sonogan can create it as a new ``kind``; else a one-line SonoganInputError.

    A ``folder`` may exist (as a folder: whether it must be empty is the caller's rule, e.g.
    :func:`sonogan.runs.ensure_new_dir`); a ``file`` must not exist.
    """
    path = Path(path)
    if _exists(path, option):
        if kind == "file":
            raise SonoganInputError(path, "already exists", _NEVER_OVERWRITE)
        if not path.is_dir():
            raise SonoganInputError(path, "already exists as a file, not a folder", f"choose a folder path for {option}")
        folder = path
    else:
        folder = path.parent
        while not _exists(folder, option):
            folder = folder.parent
        if not folder.is_dir():
            raise SonoganInputError(path, f"its parent {folder} is a file, not a folder",
                                    f"choose an {option} whose parent folders are folders (or can be created)")
    if not is_writable(folder):
        raise SonoganInputError(path, f"nothing can be written in {folder} (read-only, no permission, "
                                "or a system folder such as /proc)", f"choose a writable {option} (or fix its permissions)")
    return path


def check_new_folder(path: str | Path, what: str = "output folder", option: str = "--out") -> Path:
    """``path`` if it can be made as a new (or empty) folder: :func:`check_output`, and an
    existing folder must be empty (earlier results are never overwritten). The check
    :func:`sonogan.runs.ensure_new_dir` makes, without creating anything: a command calls it
    before its work, so a folder refused at the end costs no hour of computing."""
    path = check_output(path, "folder", option)
    if path.exists() and any(path.iterdir()):
        raise SonoganInputError(path, f"{what} already exists and is not empty", _NEVER_OVERWRITE)
    return path
