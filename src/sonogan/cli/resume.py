"""The one ``--resume RUN`` policy of every command that starts a run (experiment, lesion,
annotations train): ``--resume RUN`` continues the run in RUN with its own config, dataset and
splits copy, so nothing that would change them may come with it; Ctrl-C during a run ends
with the command that continues it.

Example:
    >>> refuse_with_resume("lesion", None, {"a CONFIG": "x.yaml"})   # no --resume: nothing to refuse
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sonogan.errors import RunInterrupted, SonoganInputError
from sonogan.layout import is_run


def refuse_with_resume(command: str, resume: Path | None, given: dict[str, Any]) -> None:
    """With ``--resume``, refuse every option of ``given`` (name -> value) that was passed.
    The message names them all, so it reads the same whichever one was given."""
    if resume is None or all(v is None for v in given.values()):
        return
    names = list(given)
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    raise SonoganInputError("--resume", f"{listed} cannot be combined with --resume "
                            "(the run continues with its own config and folder)",
                            f"run: sonogan {command} --resume {shlex.quote(str(resume))}")


@contextmanager
def resumable(command: str, run: Path) -> Iterator[None]:
    """Ctrl-C once the run folder exists -> :class:`RunInterrupted` naming ``sonogan COMMAND --resume RUN``."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if not is_run(run):
            raise  # interrupted before the run folder existed: nothing to continue
        raise RunInterrupted(run, f"sonogan {command} --resume {shlex.quote(str(run))}") from exc
