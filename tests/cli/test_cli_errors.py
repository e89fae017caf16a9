"""The CLI's one error policy: bad arguments (ours and typer's), bad files and a full or
read-only disk exit 2 with one 'error: ...; fix: ...' line; Ctrl-C exits 130 with the command
that continues the run; a bug exits 1 with one line naming the command, the step and the run,
whose log.txt holds the traceback (--debug / SONOGAN_DEBUG=1 print it too). Every run is marked
failed / interrupted and unlocked on the way out."""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import sys
import types
from pathlib import Path

import pytest

from sonogan import __version__
from sonogan.cli.main import main
from sonogan.errors import SonoganInputError
from sonogan.progress import progress_bar, step
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
    assert one_line(err) == f"interrupted; continue the run in {out} with: sonogan synth train --resume {out}"
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


BUG_FIX = "fix: this is a bug in sonogan, not a problem with your input: please report it with the traceback"
DEBUG_HINT = " (--debug or SONOGAN_DEBUG=1 prints it here)"


def failing_demo(monkeypatch, run_dir: Path | None, exc: BaseException) -> None:
    """``sonogan demo`` raises ``exc`` inside its run (when ``run_dir``), in the audit's bar at 'memorisation'."""

    def demo(out, cfg, experiment=True):
        with RunDir.create(run_dir, seed=0, kind="demo") if run_dir else open(os.devnull):
            with progress_bar(False, "audit benign") as bar:
                task = bar.add_task("features", total=2)
                bar.update(task, advance=1, description="memorisation")
                raise exc

    monkeypatch.setattr("sonogan.demo.run_demo", demo)


@pytest.mark.parametrize("bug", [OSError(errno.EIO, "Input/output error"), ValueError("a real bug")])
def test_a_bug_is_one_line_exit_1_with_the_traceback_in_the_run(bug, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "demo-001"
    failing_demo(monkeypatch, run_dir, bug)
    code, err = run_main(["demo", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 1
    assert one_line(err) == (f"error: sonogan demo failed during step 'audit benign (last progress: memorisation)' "
                             f"with an unexpected {type(bug).__name__}: {bug} (run {run_dir} marked failed; "
                             f"traceback in {run_dir / 'log.txt'}); {BUG_FIX}{DEBUG_HINT}")
    log = (run_dir / "log.txt").read_text()
    assert f"failed: {type(bug).__name__}: {bug}" in log and "Traceback (most recent call last)" in log
    assert "raise exc" in log  # the frame that raised, so the report can be acted on
    assert status(run_dir)["status"] == "failed" and status(run_dir)["error"] == f"{type(bug).__name__}: {bug}"
    assert lock_free(run_dir)


def test_a_bug_outside_any_run_names_the_command_only(tmp_path, monkeypatch, capsys):
    def demo(out, cfg, experiment=True):
        raise ValueError("a real bug")

    monkeypatch.setattr("sonogan.demo.run_demo", demo)
    code, err = run_main(["demo", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 1
    assert one_line(err) == f"error: sonogan demo failed with an unexpected ValueError: a real bug; {BUG_FIX}{DEBUG_HINT}"


def test_nested_runs_and_steps_name_the_outer_run_and_the_inner_step(tmp_path, monkeypatch, capsys):
    outer, inner = tmp_path / "exp", tmp_path / "exp" / "gan"

    def experiment(cfg, path, resume=False, echo=None, executor="local", address=None):
        with RunDir.create(outer, seed=0, kind="experiment"), step("fold 1"):
            with RunDir.create(inner, seed=0, kind="gan"), progress_bar(False, "GAN dcgan"):
                raise RuntimeError("shape mismatch")

    fake_module(monkeypatch, "sonogan.experiment.protocol", run_experiment=experiment)
    code, err = run_main(["experiment", str(DEMO_CONFIG), "--out", str(outer)], monkeypatch, capsys)
    assert code == 1
    assert one_line(err).startswith("error: sonogan experiment failed during step 'fold 1 > GAN dcgan' with an "
                                    f"unexpected RuntimeError: shape mismatch (run {outer} marked failed; ")
    for run in (outer, inner):
        assert status(run)["status"] == "failed" and "Traceback" in (run / "log.txt").read_text()


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_prints_the_traceback_then_the_line(how, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "demo-001"
    failing_demo(monkeypatch, run_dir, ValueError("a real bug"))
    if how == "env":
        monkeypatch.setenv("SONOGAN_DEBUG", "1")
    code, err = run_main([*(["--debug"] if how == "option" else []), "demo", "--out", str(tmp_path)],
                         monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and lines[-2] == "ValueError: a real bug"
    assert lines[-1].startswith("error: sonogan demo failed during step 'audit benign") and lines[-1].endswith(BUG_FIX)


def test_an_input_error_inside_a_run_is_one_line_exit_2_and_logged_without_traceback(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "demo-001"
    failing_demo(monkeypatch, run_dir, SonoganInputError("scans/a.png", "cannot be decoded", "re-export it"))
    code, err = run_main(["demo", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and one_line(err) == "error: scans/a.png: cannot be decoded; fix: re-export it"
    log = (run_dir / "log.txt").read_text()
    assert log.rstrip().endswith("ERROR error: scans/a.png: cannot be decoded; fix: re-export it")
    assert "Traceback" not in log and status(run_dir)["status"] == "failed"


def test_ctrl_c_inside_a_run_names_it(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "demo-001"
    failing_demo(monkeypatch, run_dir, KeyboardInterrupt())
    code, err = run_main(["demo", "--out", str(tmp_path)], monkeypatch, capsys)
    assert code == 130 and one_line(err) == f"interrupted (run {run_dir} marked interrupted)"
    assert status(run_dir)["status"] == "interrupted" and lock_free(run_dir)


def test_success_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sonogan", "--version"])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert exit_.value.code == 0 and out.out == f"sonogan {__version__}\n" and out.err == ""


HELP = "fix: see '{}' for its arguments and options"


@pytest.mark.parametrize("args,line", [
    (["predict", "run", "x.png", "--fold", "a"],
     "error: sonogan predict: invalid value for '--fold': Input should be a valid integer, unable to parse string "
     "as an integer (got 'a'); " + HELP.format("sonogan predict --help")),
    (["--debug", "predict", "run", "x.png", "--fold", "a"],
     "error: sonogan predict: invalid value for '--fold': Input should be a valid integer, unable to parse string "
     "as an integer (got 'a'); " + HELP.format("sonogan predict --help")),
    (["predict"], "error: sonogan predict: missing argument 'model'; " + HELP.format("sonogan predict --help")),
    (["synth", "train", "ds", "--qqqq"],
     "error: sonogan synth train: no such option: --qqqq; " + HELP.format("sonogan synth train --help")),
    (["synth", "train", "ds", "--outt", "x"], "error: sonogan synth train: no such option: --outt (Possible "
     "options: --out); " + HELP.format("sonogan synth train --help")),
    (["nosuch"], "error: sonogan: no such command 'nosuch'; " + HELP.format("sonogan --help")),
])
def test_usage_errors_are_the_same_one_line_exit_2(args, line, monkeypatch, capsys):
    code, err = run_main(args, monkeypatch, capsys)
    assert code == 2 and one_line(err) == line


def test_a_fold_the_run_does_not_have_is_named_with_the_runs_folds(tmp_path, monkeypatch, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "experiment", "folds": [0, 1], "status": "completed"}))
    code, err = run_main(["predict", str(tmp_path), "x.png", "--fold", "9"], monkeypatch, capsys)
    assert code == 2
    assert one_line(err) == (f"error: {tmp_path}: fold 9 does not exist (the run's folds: 0, 1); "
                             "fix: choose one of them with --fold, or leave --fold out to average every fold")


@pytest.mark.parametrize("damage,reason", [
    (lambda p: p.write_bytes(b""), "checkpoint is empty, truncated or corrupt (0 bytes)"),
    (lambda p: p.write_bytes(p.read_bytes()[:200]),
     "checkpoint is empty, truncated or corrupt (not a complete zip archive, as torch.save writes)"),
    (lambda p: p.write_bytes(b"not a checkpoint at all"), "not a sonogan checkpoint (not a file written by torch.save)"),
    (lambda p: __import__("torch").save({"config": argparse.Namespace(a=1)}, p),
     "not a sonogan checkpoint (it holds a pickled Python object, argparse.Namespace, which sonogan never loads)"),
])
def test_a_corrupt_checkpoint_gets_a_short_reason_of_our_own(damage, reason, tmp_path, monkeypatch, capsys):
    import torch

    ckpt = tmp_path / "best.pt"
    torch.save({"state_dict": {"w": torch.zeros(4)}, "version": 2}, ckpt)
    damage(ckpt)
    code, err = run_main(["predict", str(ckpt), "x.png"], monkeypatch, capsys)
    line = one_line(err)
    assert code == 2 and line.startswith(f"error: {ckpt}: {reason}; fix: "), line
