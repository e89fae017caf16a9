"""check_output: every bad output path is one line before any work, and nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonogan.errors import SonoganInputError
from sonogan.outpaths import check_output
from sonogan.runs import ensure_new_dir


def _refused(path: Path | str, kind: str) -> str:
    with pytest.raises(SonoganInputError) as info:
        check_output(path, kind)  # type: ignore[arg-type]
    msg = str(info.value)
    assert len(msg.splitlines()) == 1
    return msg


def test_new_paths_pass_and_nothing_is_created(tmp_path: Path) -> None:
    assert check_output(tmp_path / "a" / "b" / "p.csv", "file") == tmp_path / "a" / "b" / "p.csv"
    assert check_output(tmp_path / "run", "folder") == tmp_path / "run"
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", "folder") == tmp_path / "empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_refusals(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("keep me")
    assert _refused(tmp_path / "f.txt", "file") == (
        f"{tmp_path / 'f.txt'}: already exists; fix: choose a new --out path (earlier results are never overwritten)")
    assert "already exists as a file, not a folder" in _refused(tmp_path / "f.txt", "folder")
    assert f"its parent {tmp_path / 'f.txt'} is a file, not a folder" in _refused(tmp_path / "f.txt" / "x" / "p.csv", "file")
    assert "nothing can be written in /proc" in _refused("/proc/sonogan-test/p.csv", "file")
    assert "not a usable --out path (file name too long)" in _refused(tmp_path / ("n" * 300) / "p.csv", "file")
    assert "embedded null byte" in _refused(str(tmp_path / "a\0b"), "folder")
    assert (tmp_path / "f.txt").read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_ensure_new_dir_is_one_line_where_mkdir_would_raise(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("keep me")
    with pytest.raises(SonoganInputError, match="is a file, not a folder"):
        ensure_new_dir(tmp_path / "f.txt" / "run")
    with pytest.raises(SonoganInputError, match="nothing can be written in /proc"):
        ensure_new_dir("/proc/sonogan-test-run")
