"""Where sonogan writes the files it derives from a dataset (preprocessing caches, splits.json).

The dataset folder itself when sonogan can write there (``<dataset>/cache/``,
``<dataset>/splits.json``), so a dataset and its derived files travel together. A dataset
that cannot be written (a read-only mount, a shared folder, a CD of the hospital's export) is
never touched: its files go to ``$SONOGAN_CACHE_DIR/<name>-<hash>/`` or, without that
variable, ``~/.cache/sonogan/<name>-<hash>/``, where ``<name>`` is the dataset folder's name
and ``<hash>`` the first 12 hex of the sha256 of its resolved path (two datasets with the
same folder name never share a work folder).

The dataset's ``splits.json`` follows one rule, :func:`splits_file`, for every command that
reads or writes it (``data split``, ``experiment``, ``lesion``, ``annotations``, ``synth``,
``train``, the demo): the one the dataset ships in its own folder if it has one, else
``splits.json`` in the work folder. So a read-only dataset works with all of them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> work_dir(root) == root          # writable: the dataset folder itself
    True
    >>> is_writable(root / "no-such-folder")
    False
    >>> fallback_dir(Path("/data/My Cohort")).name.startswith("My_Cohort-")
    True
    >>> splits_file(root) == root / "splits.json"
    True
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

ENV_VAR = "SONOGAN_CACHE_DIR"


def is_writable(folder: Path) -> bool:
    """True when a file can really be created (and removed) in ``folder``.

    Tried, not read from the permission bits: as root (containers, CI) ``os.access`` says yes
    to a read-only mount, and ACLs or quotas can say no where the bits say yes.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=".sonogan-write-test-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        return False  # created but not removable: do not leave more files behind
    return True


def fallback_dir(ds_root: Path) -> Path:
    """The work folder outside the dataset: ``$SONOGAN_CACHE_DIR`` or ``~/.cache/sonogan``,
    then ``<name>-<hash of the resolved dataset path>``."""
    resolved = Path(ds_root).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", resolved.name) or "dataset"
    base = os.environ.get(ENV_VAR) or str(Path.home() / ".cache" / "sonogan")
    return Path(base).expanduser() / f"{name}-{digest}"


def work_dir(ds_root: Path) -> Path:
    """The folder for files derived from the dataset at ``ds_root`` (see the module docstring)."""
    root = Path(ds_root)
    return root if is_writable(root) else fallback_dir(root)


SPLITS_NAME = "splits.json"


def splits_file(ds_root: str | Path) -> Path:
    """Where the splits of the dataset at ``ds_root`` are read and written (see the module
    docstring): ``<dataset>/splits.json`` when it exists or the dataset is writable, else
    ``splits.json`` in the dataset's work folder outside it."""
    root = Path(ds_root)
    shipped = root / SPLITS_NAME
    return shipped if shipped.is_file() else work_dir(root) / SPLITS_NAME
