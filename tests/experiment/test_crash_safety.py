"""kill -9 at any moment, then ``sonogan experiment --resume``: the finished run equals one that
was never interrupted (metrics.json parsed and compared exactly, and every predictions.npz).

Each kill point waits for a sign in the run folder (dataset being generated, a GAN folder
without its first checkpoint, classifiers training, results or report being written) and
then SIGKILLs the real CLI process. Also: two writers on one run folder (the second exits 2
with the lock message), Ctrl-C (exit 130 and the resume command), and under ``slow`` many
kill points, random offsets and repeated kill/resume cycles on one folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

# ~10 s uninterrupted on one CPU thread: tiny phantom, 2 folds, a 40-iteration GAN, a 4-epoch CNN
TINY = {
    "name": "crash",
    "seed": 0,
    "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 5, "images_per_patient": 2, "image_size": 96},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0},
    "gan": {"family": "dcgan", "iterations": 40, "batch_size": 8, "ngf": 4, "ndf": 4, "z_dim": 8,
            "checkpoint_every": 20, "sample_every": 20, "quality_every": 20, "quality_samples": 8, "ema_decay": 0.5},
    "synthetic": {"n_per_class": 6},
    "classifiers": [{"model": "frid-adar-cnn", "epochs": 4, "batch_size": 16, "model_kwargs": {"widths": [4, 8, 8]}}],
    "evaluation": {"n_resamples": 20, "tsne": False},
    "device": "cpu",
    "num_threads": 1,
    "audit": {"extractors": ["domain"], "domain_encoder": {"epochs": 2}, "quality_max_images": 4,
              "diversity_pairs": 10, "copies_per_image": 1, "gate_headroom": 1.0},
}
TIMEOUT_S = 300


def _exists(pattern: str) -> Callable[[Path], bool]:
    return lambda run: any(run.glob(pattern))


def _gan_before_first_checkpoint(run: Path) -> bool:
    return any((g / "run.json").is_file() and not (g / "checkpoints" / "last.pt").exists()
               for g in run.glob("folds/fold0/gan-*"))


def _gan_after_first_checkpoint(run: Path) -> bool:
    return any((g / "checkpoints" / "last.pt").exists() and not (g / "metrics.json").exists()
               for g in run.glob("folds/fold0/gan-*"))


KILL_POINTS: dict[str, Callable[[Path], bool]] = {
    "dataset generation": lambda run: (run / "dataset").is_dir() and not (run / "dataset" / "manifest.csv").exists(),
    "GAN before its first checkpoint": _gan_before_first_checkpoint,
    "classifiers training": lambda run: any(run.glob("folds/fold0/baseline/*")) and not (run / "folds/fold0/fold.json").exists(),
    "results being computed": lambda run: (run / "folds/fold1/fold.json").exists() and not (run / "metrics.json").exists(),
    # slow only:
    "GAN after its first checkpoint": _gan_after_first_checkpoint,
    "sampling": lambda run: any(run.glob("folds/fold0/synthetic-*")) and not any(run.glob("folds/fold0/synthetic-*/manifest.csv")),
    "second fold's GAN": _exists("folds/fold1/gan-*/run.json"),
    "report being written": lambda run: (run / "metrics.json").exists() and not (run / "report.html").exists(),
    "synthetic-image audit": lambda run: (any(run.glob("folds/fold0/audit/*"))
                                          and not any(run.glob("folds/fold0/audit/*/audit.json"))),
}
FAST = list(KILL_POINTS)[:4]


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """The real CLI in its own process (output to a file: a full pipe would block it)."""
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "sonogan.cli.main", *args], cwd=cwd, stdout=fh,
                                stderr=subprocess.STDOUT)


def first_or_resume(config: Path, run: Path) -> list[str]:
    """What a user does next: resume when the run folder exists, else start it again."""
    if (run / "run.json").is_file():
        return ["experiment", "--resume", str(run)]
    return ["experiment", str(config), "--out", str(run)]


def tail(log: Path, n: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else "(no log)"


def finish(config: Path, run: Path, log: Path) -> None:
    proc = start(first_or_resume(config, run), run.parent, log)
    assert proc.wait(TIMEOUT_S) == 0, f"resume of {run} failed:\n{tail(log)}"


def kill_when(proc: subprocess.Popen, sign: Callable[[], bool]) -> bool:
    """SIGKILL ``proc`` as soon as ``sign()`` holds; False if it exited before that."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if sign():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    proc.kill()
    raise TimeoutError("run neither reached the kill point nor finished")


def assert_same_results(run: Path, reference: Path) -> None:
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    for ref in reference.rglob("predictions.npz"):
        with np.load(ref) as want, np.load(run / ref.relative_to(reference)) as got:
            assert sorted(got.files) == sorted(want.files), ref
            for key in want.files:
                assert np.array_equal(got[key], want[key]), f"{ref.relative_to(reference)}: {key}"
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def reference(config: Path) -> tuple[Path, float]:
    """One uninterrupted run (and its wall time, for the random kill offsets)."""
    run, log = config.parent / "reference", config.parent / "reference.log"
    begin = time.monotonic()
    finish(config, run, log)
    wall = time.monotonic() - begin
    assert "baseline → augmented" in log.read_text()  # the CLI printed the headline numbers
    return run, wall


def kill_then_resume(point: str, config: Path, reference: Path, tmp_path: Path) -> None:
    run, log = tmp_path / "run", tmp_path / "log.txt"
    proc = start(first_or_resume(config, run), tmp_path, log)
    assert kill_when(proc, lambda: KILL_POINTS[point](run)), f"finished before '{point}':\n{tail(log)}"
    finish(config, run, log)
    assert_same_results(run, reference)


@pytest.mark.parametrize("point", FAST)
def test_kill_then_resume_equals_an_uninterrupted_run(point, config, reference, tmp_path):
    kill_then_resume(point, config, reference[0], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS)[len(FAST):])
def test_kill_then_resume_more_points(point, config, reference, tmp_path):
    kill_then_resume(point, config, reference[0], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_repeated_kills_at_random_moments(seed, config, reference, tmp_path):
    """Kill after a random delay, resume, kill again ... (6 times), then let it finish."""
    ref, wall = reference
    rng = random.Random(seed)
    run, log = tmp_path / "run", tmp_path / "log.txt"
    for _ in range(6):
        proc = start(first_or_resume(config, run), tmp_path, log)
        delay = rng.uniform(0.5, wall)
        try:
            proc.wait(delay)
            assert proc.returncode == 0, tail(log)
            break  # finished before the kill
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finish(config, run, log)
    assert_same_results(run, ref)


# The second writer imports everything first and waits for a go file, so that its attempt
# falls inside the first writer's run however slow the imports are on a loaded machine.
READY_THEN_RUN = """
import pathlib, sys, time
import sonogan.experiment.protocol
from sonogan.cli.main import main
print("ready", flush=True)
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.005)
sys.argv = ["sonogan", *sys.argv[2:]]
main()
"""


def test_second_writer_is_refused_and_the_first_completes(config, reference, tmp_path):
    run, log, go = tmp_path / "run", tmp_path / "log.txt", tmp_path / "go"
    first = start(first_or_resume(config, run), tmp_path, log)
    assert kill_when(first, lambda: KILL_POINTS["GAN before its first checkpoint"](run)), tail(log)
    second = subprocess.Popen([sys.executable, "-c", READY_THEN_RUN, str(go), "experiment", "--resume", str(run)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert second.stdout.readline().strip() == "ready"
    first = start(["experiment", "--resume", str(run)], tmp_path, log)
    lock = run / ".lock"
    deadline = time.monotonic() + TIMEOUT_S  # wait until the first resume holds the lock
    while not (lock.exists() and lock.read_text() == str(first.pid)):
        assert first.poll() is None and time.monotonic() < deadline, tail(log)
        time.sleep(0.005)
    go.touch()
    _, err = second.communicate(timeout=TIMEOUT_S)
    assert first.poll() is None, "the first writer finished before the second tried: the test proves nothing"
    assert second.returncode == 2, err
    assert err.strip() == (f"error: {run}: run folder is in use by another sonogan process (pid {first.pid}); "
                           "fix: wait for it to finish, or use another --out")
    assert first.wait(TIMEOUT_S) == 0, tail(log)
    assert_same_results(run, reference[0])


def test_ctrl_c_exits_130_with_the_resume_command(config, reference, tmp_path):
    run = tmp_path / "run"
    # A shell that starts the tests in the background (nohup ... &) passes SIGINT on as *ignored*,
    # and then Python never turns it into KeyboardInterrupt: give the child the default disposition,
    # as a terminal's Ctrl-C would find it.
    proc = subprocess.Popen([sys.executable, "-m", "sonogan.cli.main", "experiment", str(config), "--out", str(run)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + TIMEOUT_S
    while not KILL_POINTS["classifiers training"](run):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"interrupted; continue the run in {run} with: sonogan experiment --resume {run}"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    finish(config, run, tmp_path / "log.txt")
    assert_same_results(run, reference[0])
