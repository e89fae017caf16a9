"""Derived files of a read-only dataset go to $SONOGAN_CACHE_DIR or ~/.cache/sonogan, never into
the dataset. Writability is tried for real: tests run as root, where permission bits stop
nothing, so a read-only folder is made by fault injection and, where mounting is allowed,
by a real read-only tmpfs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from sonogan import locations
from sonogan.errors import SonoganInputError
from sonogan.locations import fallback_dir, is_writable, work_dir
from sonogan.preprocess.cache import build_cache, open_cache


def _read_only(monkeypatch, *roots: Path) -> None:
    """Make ``roots`` look unwritable (the write test fails there, as on a read-only mount)."""
    real = locations.tempfile.mkstemp
    blocked = {r.resolve() for r in roots}

    def mkstemp(prefix: str = "", dir: str | Path | None = None) -> tuple[int, str]:
        if dir is not None and Path(dir).resolve() in blocked:
            raise OSError(30, "Read-only file system")
        return real(prefix=prefix, dir=dir)

    monkeypatch.setattr(locations.tempfile, "mkstemp", mkstemp)


def test_writable_dataset_is_its_own_work_dir(tmp_path):
    assert is_writable(tmp_path) and work_dir(tmp_path) == tmp_path
    assert list(tmp_path.iterdir()) == []               # the write test leaves nothing behind
    assert not is_writable(tmp_path / "missing")


def test_fallback_names_and_environment(tmp_path, monkeypatch):
    a, b = tmp_path / "x" / "cohort", tmp_path / "y" / "cohort"
    _read_only(monkeypatch, a, b)
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path / "caches"))
    digest = hashlib.sha256(str(a.resolve()).encode()).hexdigest()[:12]
    assert work_dir(a) == tmp_path / "caches" / f"cohort-{digest}"
    assert work_dir(a) != work_dir(b)                   # same folder name, different dataset
    monkeypatch.delenv("SONOGAN_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert work_dir(a) == tmp_path / "home" / ".cache" / "sonogan" / f"cohort-{digest}"
    assert fallback_dir(tmp_path / "a b!").name.startswith("a_b_-")


def test_cache_of_a_read_only_dataset_goes_to_the_work_dir(ds, tmp_path_factory, monkeypatch):
    before = sorted(p.name for p in ds.root.iterdir())
    _read_only(monkeypatch, ds.root)
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path_factory.mktemp("caches")))
    path = build_cache(ds, "full-64")
    assert path.parent == fallback_dir(ds.root) / "cache"
    assert sorted(p.name for p in ds.root.iterdir()) == before
    assert open_cache(ds, "full-64").path == path
    assert build_cache(ds, "full-64") == path           # found again, not rebuilt


def test_cache_inside_a_read_only_dataset_is_still_used(ds, tmp_path_factory, monkeypatch):
    inside = build_cache(ds, "full-64")                 # built while the dataset was writable
    _read_only(monkeypatch, ds.root)
    caches = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(caches))
    assert build_cache(ds, "full-64") == inside and open_cache(ds, "full-64").path == inside
    assert list(caches.iterdir()) == []


def test_unusable_work_dir_is_a_user_error(ds, tmp_path, monkeypatch):
    _read_only(monkeypatch, ds.root)
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path / "a-file"))
    with pytest.raises(SonoganInputError, match="cannot create the cache folder.*SONOGAN_CACHE_DIR"):
        build_cache(ds, "full-64")


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_real_read_only_mount(tmp_path, tiny_dataset, monkeypatch):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)):
        pytest.skip("mounting a tmpfs is not permitted here (needs root outside a locked container)")
    try:
        ds = tiny_dataset(mnt)
        assert _mount("-o", "remount,ro", str(mnt))
        assert not is_writable(mnt)
        monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path / "caches"))
        path = build_cache(ds, "flagship-64")
        assert path.is_relative_to(tmp_path / "caches") and not (mnt / "cache").exists()
        assert open_cache(ds, "flagship-64").images.shape == (9, 64, 64, 1)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
