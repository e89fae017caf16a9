"""Run folders: one writer at a time (a lock that dies with its process), honest status on
failure and Ctrl-C, atomic result files, and a failed create that leaves nothing behind."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan import runs
from sonogan.errors import SonoganInputError
from sonogan.runs import (LOCK_NAME, RunDir, atomic_write_text, ensure_new_dir, next_run_dir, save_npz_atomic,
                          write_json)
from sonogan.synth.config import GanConfig

HOLDER = textwrap.dedent("""
    import sys, time
    from sonogan.runs import RunDir
    with RunDir.resume(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def lock_is_free(path: Path) -> bool:
    fd = os.open(path / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def info(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


def test_create_records_seed_threads_and_holds_the_lock(tmp_path):
    with RunDir.create(tmp_path / "r", config=GanConfig(seed=7), kind="gan") as run:
        assert info(run.path) == run.info
        assert run.info["seed"] == 7 and run.info["num_threads"] == torch.get_num_threads()
        assert run.info["status"] == "running" and (run.path / LOCK_NAME).read_text() == str(os.getpid())
        assert "seed: 7" in (run.path / "config.yaml").read_text()
        assert not lock_is_free(run.path)
        run.record_file("splits", run.path / "config.yaml")
        assert info(run.path)["splits_sha256"] == runs.sha256_file(run.path / "config.yaml")
    assert info(run.path)["status"] == "completed" and lock_is_free(run.path)


def test_a_run_exists_only_inside_its_with_block(tmp_path):
    opener = RunDir.create(tmp_path / "r", seed=0)
    assert not (tmp_path / "r").exists()  # nothing made, nothing locked before the block
    with pytest.raises(RuntimeError, match="outside its 'with' block"):
        opener.set_info(x=1)
    with opener as run:
        run.set_info(x=1)
    with pytest.raises(RuntimeError, match="outside its 'with' block"):
        run.log("after the block")
    with pytest.raises(RuntimeError, match="entered once"):
        with run:
            pass
    assert info(tmp_path / "r")["x"] == 1 and lock_is_free(tmp_path / "r")


def test_threads_are_reread_at_every_write(tmp_path):
    with RunDir.create(tmp_path / "r", seed=0) as run:
        old = torch.get_num_threads()
        torch.set_num_threads(old + 1)  # the conftest fixture restores it
        run.set_info(dataset="d")
        assert info(run.path)["num_threads"] == old + 1


def test_second_process_is_refused_until_the_holder_is_killed(tmp_path):
    with RunDir.create(tmp_path / "r", seed=0) as run:
        pass
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SonoganInputError, match=f"in use by another sonogan process \\(pid {holder.pid}\\)"):
            with RunDir.resume(run.path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert info(run.path)["status"] == "running"  # kill -9: no chance to write a status ...
    with RunDir.resume(run.path) as again:  # ... but the lock died with the process
        assert len(again.info["resumed"]) == 2


def test_the_lock_is_per_folder(tmp_path):
    with RunDir.create(tmp_path / "exp", seed=0) as outer:
        with RunDir.create(tmp_path / "exp" / "folds" / "fold0" / "gan-x", seed=1) as inner:  # nested: own locks
            assert not lock_is_free(outer.path) and not lock_is_free(inner.path)
        assert lock_is_free(inner.path) and not lock_is_free(outer.path)
    assert lock_is_free(outer.path)


def test_a_failed_run_can_be_resumed_in_the_same_process(tmp_path):
    # the block that raised released the lock on its way out: no registry needed to take it again
    with pytest.raises(ValueError):
        with RunDir.create(tmp_path / "r", seed=0):
            raise ValueError("boom")
    with RunDir.resume(tmp_path / "r") as run:
        assert run.info["status"] == "running" and run.info["error"] == "ValueError: boom"
    assert info(tmp_path / "r")["status"] == "completed"


@pytest.mark.parametrize("exc,status", [(ValueError("boom\nsecond line"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_context_manager_records_failure_and_releases(tmp_path, exc, status):
    with pytest.raises(type(exc)):
        with RunDir.create(tmp_path / "r", seed=0):
            raise exc
    got = info(tmp_path / "r")
    assert got["status"] == status and got["finished"]
    assert got.get("error") == ("ValueError: boom" if status == "failed" else None)
    assert lock_is_free(tmp_path / "r")


def test_an_error_unwinding_through_nested_runs_marks_each_of_them(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir.create(tmp_path / "exp", seed=0):
            with RunDir.create(tmp_path / "exp" / "gan", seed=0):
                raise RuntimeError("disk on fire")
    for path in (tmp_path / "exp", tmp_path / "exp" / "gan"):
        assert info(path)["status"] == "failed" and info(path)["error"] == "RuntimeError: disk on fire"
        assert lock_is_free(path)


def test_next_run_dir_and_ensure_new_dir(tmp_path):
    assert next_run_dir(tmp_path / "none", "exp").name == "exp-001"
    for name in ("exp-001", "exp-007", "exp-x", "other-009"):
        (tmp_path / name).mkdir()
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp-008"
    assert ensure_new_dir(tmp_path / "a" / "b").is_dir()
    assert ensure_new_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"  # empty: fine
    (tmp_path / "a" / "b" / "f").write_text("x")
    with pytest.raises(SonoganInputError, match="already exists and is not empty"):
        ensure_new_dir(tmp_path / "a" / "b")
    with pytest.raises(SonoganInputError, match="already exists"):
        ensure_new_dir(tmp_path / "a" / "b" / "f")


def test_create_refuses_a_finished_run_but_reuses_a_killed_create(tmp_path):
    with RunDir.create(tmp_path / "r", seed=0):
        pass
    with pytest.raises(SonoganInputError, match="not empty"):
        with RunDir.create(tmp_path / "r", seed=0):
            pass
    killed = tmp_path / "k"  # what kill -9 between the lock and run.json leaves
    killed.mkdir()
    (killed / LOCK_NAME).write_text("123")
    (killed / "run.json.123.tmp").write_text("{")
    with RunDir.create(killed, seed=0):
        pass
    assert info(killed)["status"] == "completed"


def test_atomic_writers(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.arange(3), "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [0, 1, 2], "p": str(tmp_path)}
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    save_npz_atomic(tmp_path / "p.part", val=np.eye(2), test=np.zeros(3))  # no .npz appended to the name
    with np.load(tmp_path / "p.part") as saved:
        assert np.array_equal(saved["val"], np.eye(2)) and saved["test"].shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "p.part", "t.txt"]


def test_a_failed_atomic_write_keeps_the_old_file_and_names_the_target(tmp_path, monkeypatch):
    write_json(tmp_path / "m.json", {"v": 1})

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", full)
    with pytest.raises(OSError) as err:
        save_npz_atomic(tmp_path / "m.json", v=np.ones(2))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # temp file removed


@pytest.mark.parametrize("existed", [False, True])
@pytest.mark.parametrize("target", ["config.yaml", "run.json"])
def test_failing_create_leaves_nothing_behind(tmp_path, monkeypatch, existed, target):
    out = tmp_path / "parent" / "run"
    if existed:
        out.mkdir(parents=True)
    real_replace = os.replace

    def full_disk(src, dst):
        if Path(dst).name == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(runs.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        with RunDir.create(out, config=GanConfig(), seed=0):
            pass
    assert (out.is_dir() and not any(out.iterdir())) if existed else not out.exists()
    monkeypatch.setattr(runs.os, "replace", real_replace)
    with RunDir.create(out, config=GanConfig(), seed=0):  # the next try with the same --out works
        pass
    assert info(out)["status"] == "completed"


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (as root; chmod cannot stop root from writing); skip where not permitted."""
    mounted = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or 'mount failed'}): needs root or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def read_only_parent(tmp_path: Path, tmpfs) -> Path:
    if os.geteuid() != 0:
        parent = tmp_path / "ro"
        parent.mkdir()
        parent.chmod(0o555)
        return parent
    return tmpfs("size=64k,ro")


def cli(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from sonogan.cli.main import main

    monkeypatch.setattr(sys, "argv", ["sonogan", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


TINY_PHANTOM = "n_benign: 2\nn_borderline: 2\nn_malignant: 2\nimages_per_patient: 1\nimage_size: 64\n"


def test_read_only_out_is_one_line_and_leaves_nothing(tmp_path, tmpfs, monkeypatch, capsys):
    parent = read_only_parent(tmp_path, tmpfs)
    with pytest.raises(SonoganInputError, match="nothing can be written"):  # checked before mkdir
        with RunDir.create(parent / "run", seed=0):
            pass
    cfg = tmp_path / "p.yaml"
    cfg.write_text(TINY_PHANTOM)
    code, err_text = cli(["data", "phantom", "--config", str(cfg), "--out", str(parent / "ds")], monkeypatch, capsys)
    assert code == 2 and len(err_text.strip().splitlines()) == 1 and "Traceback" not in err_text
    assert str(parent / "ds") in err_text and "choose a writable --out" in err_text
    assert list(parent.iterdir()) == []


def test_full_disk_during_create_is_one_line_and_leaves_nothing(tmp_path, tmpfs, monkeypatch, capsys):
    disk = tmpfs("size=8k")  # two pages: the lock and config.yaml fit, run.json does not
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: x\nphantom: {" + TINY_PHANTOM.strip().replace("\n", ", ") + "}\n")
    code, err_text = cli(["experiment", str(exp), "--out", str(disk / "run")], monkeypatch, capsys)
    assert code == 2 and err_text.strip() == (f"error: {disk / 'run' / 'run.json'}: no space left on device; "
                                              "fix: free disk space (or use another --out), then run the command again")
    assert list(disk.iterdir()) == []
