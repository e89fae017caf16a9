"""Self-describing run folders that never overwrite an earlier run, with one writer at a time.

A run folder holds ``config.yaml`` (resolved config), ``run.json`` (command, seed, torch
threads, git commit, package versions, timings, status), ``log.txt`` and ``metrics.json``.
While a :class:`RunDir` is open it holds an exclusive ``flock`` on ``<run>/.lock``: a second
process that opens the same folder gets a one-line error. The kernel drops the lock when the
process dies, so even ``kill -9`` never leaves a stale lock. Every result file is written
atomically (temp file + fsync + rename), so a kill never leaves half a file.

A run exists only inside a ``with`` block: :meth:`RunDir.create` / :meth:`RunDir.resume` make
the folder and take the lock when the block is entered, and leaving the block always records
the outcome (``completed``, ``failed`` with the error line, ``interrupted``) and releases the
lock. So no process-wide list of open runs is needed: an exception unwinding through nested
runs (an experiment, then the GAN it trains) marks each of them on its way out.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with RunDir.create(root / "split-001", command="sonogan data split D", seed=0) as run:
    ...     _ = run.write_metrics({"n_test": 96})
    >>> json.loads((root / "split-001" / "run.json").read_text())["status"]
    'completed'
    >>> next_run_dir(root, "split").name
    'split-002'
    >>> shutil.rmtree(root)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel

from sonogan.config import to_yaml
from sonogan.errors import SonoganInputError, expected_error_line, note_run
from sonogan.outpaths import check_new_folder, check_output

PACKAGES = ("sonogan", "torch", "torchvision", "timm", "diffusers", "numpy", "pandas", "scikit-learn",
            "scipy", "opencv-python-headless", "pillow", "imagehash", "pydicom", "pydantic", "matplotlib")
LOCK_NAME = ".lock"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """The commit of the sonogan source tree (with '+dirty' if modified), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def ensure_new_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path``; refuse if it already exists and is not empty (never overwrite), or if it
    cannot be made there (a parent that is a file, a read-only or system folder: one line, by
    :func:`sonogan.outpaths.check_new_folder`, instead of an OSError's traceback)."""
    path = check_new_folder(path, what)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_new_run(path: str | Path) -> Path:
    """``path`` if :meth:`RunDir.create` will accept it, checked before a command's work: a
    folder that can be made (:func:`sonogan.outpaths.check_output`), new, empty, or holding
    only what a create killed before run.json left."""
    path = check_output(path, "folder")
    if path.is_dir() and not _only_leftovers(path):
        raise SonoganInputError(path, "run folder already exists and is not empty",
                                "choose a new --out path (earlier results are never overwritten)")
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> Path:
    """Write ``data`` to a temp file beside ``path`` (named by pid, so a killed writer's
    leftover never collides), fsync it, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file; the CLI's message needs one
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_npz_atomic(path: str | Path, **arrays: Any) -> Path:
    """``np.savez`` into memory, then :func:`atomic_write_bytes` (a file object, because
    ``np.savez`` appends ``.npz`` to a file name that lacks it)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getbuffer())


def read_format_json(path: Path, fmt: str, what: str, fix: str, newest_version: int = 1,
                     article: str = "") -> dict[str, Any]:
    """A JSON file sonogan wrote with ``{"format": fmt, "version": N}``: one-line input errors
    for an unreadable, foreign or too-new file (``what`` names it: "ensemble file")."""
    try:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SonoganInputError(path, f"cannot read {article}{what} ({type(exc).__name__})", fix) from None
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise SonoganInputError(path, f"not a sonogan {what}", fix)
    if int(blob.get("version", 0)) > newest_version:
        raise SonoganInputError(path, f"{what} format {blob['version']} is newer than this sonogan", "upgrade sonogan")
    return blob


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically so an interrupted run never leaves half a file."""
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _torch_threads() -> int | None:
    # Only when torch is already loaded: importing it just to report would slow the data commands.
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def one_line(exc: BaseException) -> str:
    """An exception as one line, for run.json and the CLI."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _lock(path: Path) -> int:
    """Take the run folder's exclusive lock (non-blocking) and write our pid into it."""
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise SonoganInputError(path, f"run folder is in use by another sonogan process (pid {holder})",
                                "wait for it to finish, or use another --out") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except BaseException:
        os.close(fd)  # closing drops the lock
        raise
    return fd


def _only_leftovers(path: Path) -> bool:
    """Empty but for a lock file and temp files: what a create killed before run.json leaves."""
    return all(p.name == LOCK_NAME or p.name.endswith(".tmp") for p in path.iterdir())


def _remove_created(path: Path, existed: bool) -> None:
    """Undo a failed create: the folder if we made it, else what we put in the empty folder."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def run_logger(path: str | Path) -> logging.Logger:
    """The logger that appends to ``path/log.txt``; also used by a run's tasks in other processes
    (the file is opened for appending, so their lines interleave whole)."""
    path = Path(path)
    logger = logging.getLogger(f"sonogan.run.{path.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        handler = logging.FileHandler(path / "log.txt", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


@dataclass
class RunDir:
    """A run folder, used only as a context manager::

        with RunDir.create(out, config=cfg, kind="gan") as run:   # or RunDir.resume(out)
            run.log("...")

    Entering makes (or re-opens) the folder and takes its lock; leaving finishes the run on
    success, marks ``run.json`` ``failed`` (with the one-line error) or ``interrupted``
    (Ctrl-C) on an exception, and always releases the lock. Outside its block a RunDir writes
    nothing (its writers raise).
    """

    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger | None = None
    lock_fd: int | None = None
    opener: Callable[["RunDir"], None] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, path: str | Path, command: str | None = None, seed: int | None = None,
               config: BaseModel | None = None, kind: str = "run") -> "RunDir":
        """A new run in ``path`` (refused if it holds anything but a killed create's leftovers),
        made when the ``with`` block is entered."""
        return cls(path=Path(path), opener=lambda run: run._create(command, seed, config, kind))

    @classmethod
    def resume(cls, path: str | Path) -> "RunDir":
        """The existing run in ``path`` (it must hold run.json), re-opened when the ``with`` block is entered."""
        return cls(path=Path(path), opener=lambda run: run._resume())

    def _create(self, command: str | None, seed: int | None, config: BaseModel | None, kind: str) -> None:
        path = self.path
        existed = path.exists()
        if not (existed and path.is_dir() and _only_leftovers(path)):
            ensure_new_dir(path, "run folder")
        try:
            self.lock_fd = _lock(path)
        except SonoganInputError:
            raise  # another process raced us to this folder: it is theirs, touch nothing
        except BaseException:
            _remove_created(path, existed)
            raise
        if not _only_leftovers(path):  # filled by a writer that finished meanwhile
            self._release()
            raise SonoganInputError(path, "run folder already exists and is not empty",
                                    "choose a new --out path (earlier results are never overwritten)")
        try:
            if seed is None and config is not None:
                seed = getattr(config, "seed", None)
            self.info = {
                "kind": kind,
                "command": command or " ".join(sys.argv),
                "seed": seed,
                "num_threads": _torch_threads(),
                "git_commit": git_commit(),
                "versions": package_versions(),
                "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
                "pid": os.getpid(),
                "started": _now(),
                "finished": None,
                "status": "running",
            }
            if config is not None:
                atomic_write_text(path / "config.yaml", to_yaml(config))
            self._write_info()
            self._open_log()
        except BaseException:
            self._release()
            _remove_created(path, existed)  # so the next try with the same --out starts clean
            raise

    def _resume(self) -> None:
        info_path = self.path / "run.json"
        if not info_path.is_file():
            raise SonoganInputError(self.path, "not a sonogan run folder (no run.json)",
                                    "pass the folder printed by the command that started the run")
        self.lock_fd = _lock(self.path)
        try:
            self.info = json.loads(info_path.read_text(encoding="utf-8"))
            self.info.setdefault("resumed", []).append(_now())
            self.info.update(status="running", pid=os.getpid())
            self._write_info()
            self._open_log()
        except BaseException:
            self._release()
            raise

    def _write_info(self) -> None:
        if self.lock_fd is None:
            raise RuntimeError(f"run {self.path} written outside its 'with' block")
        # threads are re-read at every write: a command may set them after creating its run
        self.info["num_threads"] = _torch_threads()
        write_json(self.path / "run.json", self.info)

    def _open_log(self) -> None:
        self.logger = run_logger(self.path)

    def log(self, message: str) -> None:
        if self.logger is None:
            raise RuntimeError(f"run {self.path} logged to outside its 'with' block")
        self.logger.info(message)

    def set_info(self, **kwargs: Any) -> None:
        self.info.update(kwargs)
        self._write_info()

    def record_file(self, key: str, path: str | Path) -> None:
        """Record an input file and its SHA-256 as ``<key>_file`` / ``<key>_sha256`` (e.g. the splits)."""
        self.set_info(**{f"{key}_file": str(Path(path).resolve()), f"{key}_sha256": sha256_file(path)})

    def write_metrics(self, metrics: dict[str, Any], name: str = "metrics.json") -> Path:
        if self.lock_fd is None:
            raise RuntimeError(f"run {self.path} written outside its 'with' block")
        out = self.path / name
        write_json(out, metrics)
        return out

    def _finish(self, status: str, error: str | None = None) -> None:
        """Record the final status (and error line), then close the log and release the lock."""
        try:
            extra = {"error": error} if error is not None else {}
            self.set_info(status=status, finished=_now(), **extra)
        finally:
            self._release()

    def _log_outcome(self, exc: BaseException, status: str) -> None:
        """log.txt ends with the reason: the error line, or the traceback of an unexpected error
        (the CLI prints one line and points here)."""
        if self.logger is None:
            return
        expected = expected_error_line(exc)
        if status == "interrupted":
            self.logger.info("interrupted")
        elif expected is not None:
            self.logger.error(f"error: {expected}")
        else:
            self.logger.error(f"failed: {one_line(exc)}", exc_info=exc)

    def _abandon(self, exc: BaseException) -> None:
        """Mark the run ``interrupted`` (Ctrl-C) or ``failed`` (with the error line) and close it.
        Best effort: a full disk must not hide the error that brought us here."""
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        note_run(exc, self.path)  # the CLI's one-line report names the run
        try:
            self._log_outcome(exc, status)
            self._finish(status, error=None if status == "interrupted" else one_line(exc))
        except OSError:
            pass  # _finish released the lock all the same

    def _release(self) -> None:
        if self.logger is not None:
            for handler in list(self.logger.handlers):
                handler.close()
                self.logger.removeHandler(handler)
            self.logger = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def __enter__(self) -> "RunDir":
        if self.opener is None or self.lock_fd is not None:
            raise RuntimeError(f"run {self.path} is already open (a RunDir is entered once)")
        opener, self.opener = self.opener, None
        opener(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self._abandon(exc)
        else:
            self._finish("completed")


def next_run_dir(parent: str | Path, prefix: str) -> Path:
    """The next free numbered folder ``parent/prefix-NNN`` (not created): runs never collide."""
    parent = Path(parent)
    taken = [p.name for p in parent.glob(f"{prefix}-*")] if parent.is_dir() else []
    numbers = [int(n.rsplit("-", 1)[1]) for n in taken if n.rsplit("-", 1)[1].isdigit()]
    return parent / f"{prefix}-{max(numbers, default=0) + 1:03d}"
