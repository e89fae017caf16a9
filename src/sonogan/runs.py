"""Self-describing run folders that never overwrite an earlier run.

A run folder holds ``config.yaml`` (resolved config), ``run.json`` (command, seed,
git commit, package versions, timings, device), ``log.txt`` and ``metrics.json``.

Example:
    >>> run = RunDir.create("runs/split-0", command="sonogan data split D", seed=0)  # doctest: +SKIP
    >>> run.write_metrics({"n_test": 96})  # doctest: +SKIP
    >>> run.finish()  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sonogan.config import to_yaml
from sonogan.errors import SonoganInputError

PACKAGES = ("sonogan", "torch", "torchvision", "timm", "monai", "numpy", "pandas", "scikit-learn",
            "scipy", "opencv-python-headless", "pillow", "imagehash", "pydicom", "pydantic", "matplotlib")


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
    """Create ``path``; refuse if it already exists and is not empty (never overwrite)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise SonoganInputError(path, f"{what} already exists and is not empty",
                                "choose a new --out path (earlier results are never overwritten)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename) so an interrupted run never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class RunDir:
    """A run folder. Use :meth:`create` for a new run or :meth:`resume` to continue one."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger | None = None

    @classmethod
    def create(cls, path: str | Path, command: str | None = None, seed: int | None = None,
               config: BaseModel | None = None, kind: str = "run") -> "RunDir":
        path = ensure_new_dir(path, "run folder")
        run = cls(path=path)
        run.info = {
            "kind": kind,
            "command": command or " ".join(sys.argv),
            "seed": seed,
            "git_commit": git_commit(),
            "versions": package_versions(),
            "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "status": "running",
        }
        if config is not None:
            (path / "config.yaml").write_text(to_yaml(config), encoding="utf-8")
        write_json(path / "run.json", run.info)
        run._open_log()
        return run

    @classmethod
    def resume(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        info_path = path / "run.json"
        if not info_path.is_file():
            raise SonoganInputError(path, "not a sonogan run folder (no run.json)",
                                    "pass the folder printed by the command that started the run")
        run = cls(path=path, info=json.loads(info_path.read_text(encoding="utf-8")))
        run.info.setdefault("resumed", []).append(
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        run.info["status"] = "running"
        write_json(info_path, run.info)
        run._open_log()
        return run

    def _open_log(self) -> None:
        logger = logging.getLogger(f"sonogan.run.{self.path.resolve()}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if not logger.handlers:
            handler = logging.FileHandler(self.path / "log.txt", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
        self.logger = logger

    def log(self, message: str) -> None:
        assert self.logger is not None
        self.logger.info(message)

    def set_info(self, **kwargs: Any) -> None:
        self.info.update(kwargs)
        write_json(self.path / "run.json", self.info)

    def write_metrics(self, metrics: dict[str, Any], name: str = "metrics.json") -> Path:
        out = self.path / name
        write_json(out, metrics)
        return out

    def finish(self, status: str = "completed") -> None:
        self.set_info(status=status,
                      finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        if self.logger is not None:
            for handler in list(self.logger.handlers):
                handler.close()
                self.logger.removeHandler(handler)


def next_run_dir(parent: str | Path, prefix: str) -> Path:
    """The next free numbered folder ``parent/prefix-NNN`` (not created): runs never collide."""
    parent = Path(parent)
    taken = [p.name for p in parent.glob(f"{prefix}-*")] if parent.is_dir() else []
    numbers = [int(n.rsplit("-", 1)[1]) for n in taken if n.rsplit("-", 1)[1].isdigit()]
    return parent / f"{prefix}-{max(numbers, default=0) + 1:03d}"
