"""The CLI's one-line endings: bad ``experiment`` arguments and a full or read-only disk exit 2,
Ctrl-C exits 130 with the command that continues the run, and genuine bugs keep their
traceback. Every open run is marked failed / interrupted and unlocked on the way out."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import types
from pathlib import Path

import pytest

from sonogan.cli.main import main
from sonogan.runs import LOCK_NAME, RunDir

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def run_main(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Exit code and stderr of ``sonogan ARGS`` run in this process."""
    monkeypatch.setattr(sys, "argv", ["sonogan", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def fake_module(monkeypatch, name: str, **attrs) -> None:
    # stands in for a heavy module (the protocol, the GAN trainer), so these tests need neither
    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))


def status(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def lock_free(run: Path) -> bool:
    fd = os.open(run / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError while a RunDir holds it
        return True
    finally:
        os.close(fd)


@pytest.mark.parametrize("args,match", [
    ([str(DEMO_CONFIG), "--folds", "0,x"], "--folds: '0,x' is not a comma-separated list of fold numbers"),
    ([str(DEMO_CONFIG), "--folds", "1.5"], "not a comma-separated list"),
    (["--resume", "runs/r", str(DEMO_CONFIG)], "--resume: a CONFIG, --folds or --out cannot be combined"),
    (["--resume", "runs/r", "--folds", "0"], "cannot be combined with --resume"),
    (["--resume", "runs/r", "--out", "runs/s"], "cannot be combined with --resume"),
    ([], "no config given"),
    ([str(DEMO_CONFIG), "--executor", "dask"], "unknown executor 'dask'"),
    ([str(DEMO_CONFIG), "--address", "auto"], "add --executor ray"),
])
def test_experiment_argument_errors(args, match, monkeypatch, capsys):
    code, err = run_main(["experiment", *args], monkeypatch, capsys)
    assert code == 2 and match in one_line(err)


def test_ctrl_c_in_experiment_says_how_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "exp"

    def interrupted(cfg, path, resume=False, echo=None, executor="local", address=None):
        with RunDir.create(path, seed=0, kind="experiment"):  # the block marks it interrupted
            raise KeyboardInterrupt

    fake_module(monkeypatch, "sonogan.experiment.protocol", run_experiment=interrupted)
    code, err = run_main(["experiment", str(DEMO_CONFIG), "--out", str(out)], monkeypatch, capsys)
    assert code == 130
    assert one_line(err) == f"interrupted; continue the run in {out} with: sonogan experiment --resume {out}"
    assert status(out)["status"] == "interrupted" and lock_free(out)


def test_ctrl_c_in_synth_train_says_how_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "gan"

    def interrupted(ds, splits, fold, cls, cfg, path, resume=False, progress=True):
        with RunDir.create(path, seed=0, kind="gan"):
            raise KeyboardInterrupt

    fake_module(monkeypatch, "sonogan.synth.trainer", train_gan=interrupted)
    code, err = run_main(["synth", "train", "data/ds", "--splits", "data/ds/splits.json", "--fold", "1", "--class",
                          "borderline", "--model", "dcgan", "--out", str(out)], monkeypatch, capsys)
    assert code == 130
    assert one_line(err) == (f"interrupted; continue the run in {out} with: sonogan synth train data/ds "
                             f"--splits data/ds/splits.json --fold 1 --class borderline --out {out} --resume")
    assert status(out)["status"] == "interrupted"


def test_ctrl_c_elsewhere_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(out, cfg, experiment=True):
        raise KeyboardInterrupt

    monkeypatch.setattr("sonogan.demo.run_demo", interrupted)
    code, err = run_main(["demo", "--out", str(tmp_path), "--data-only"], monkeypatch, capsys)
    assert code == 130 and one_line(err) == "interrupted"


@pytest.mark.parametrize("code_,fix", [(errno.ENOSPC, "free disk space"), (errno.EDQUOT, "free disk space"),
                                       (errno.EACCES, "choose a writable --out"), (errno.EROFS, "choose a writable --out")])
def test_disk_errors_are_one_line_exit_2(code_, fix, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "demo-001"

    def disk_trouble(out, cfg, experiment=True):
        with RunDir.create(run_dir, seed=0, kind="demo"):
            raise OSError(code_, "from the OS", str(run_dir / "metrics.json"))

    monkeypatch.setattr("sonogan.demo.run_demo", disk_trouble)
    code, err = run_main(["demo", "--out", str(tmp_path)], monkeypatch, capsys)
    line = one_line(err)
    assert code == 2 and line.startswith(f"error: {run_dir / 'metrics.json'}: ") and f"fix: {fix}" in line
    assert status(run_dir)["status"] == "failed" and lock_free(run_dir)


@pytest.mark.parametrize("bug", [OSError(errno.EIO, "Input/output error"), ValueError("a real bug")])
def test_other_errors_keep_their_traceback(bug, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "demo-001"

    def broken(out, cfg, experiment=True):
        with RunDir.create(run_dir, seed=0, kind="demo"):
            raise bug

    monkeypatch.setattr("sonogan.demo.run_demo", broken)
    monkeypatch.setattr(sys, "argv", ["sonogan", "demo", "--out", str(tmp_path)])
    with pytest.raises(type(bug)):
        main()
    assert status(run_dir)["error"].startswith(type(bug).__name__) and lock_free(run_dir)
