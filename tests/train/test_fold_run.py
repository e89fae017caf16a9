"""``sonogan train`` / train_on_fold: one classifier on a fold into a run folder; under torchrun
(2 gloo processes) the same history as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from sonogan.cli.main import app
from sonogan.data.splits import make_splits
from sonogan.phantom import PhantomConfig, generate_phantom
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.fold_run import train_on_fold

CFG = {"model": "frid-adar-cnn", "model_kwargs": {"drop_rate": 0.0}, "image_size": 32, "epochs": 2,
       "batch_size": 8, "device": "cpu", "num_threads": 1}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom") / "ds"
    ds = generate_phantom(root, PhantomConfig(n_benign=6, n_borderline=6, n_malignant=4, images_per_patient=2,
                                              image_size=64))
    make_splits(ds, n_folds=2, test_fraction=0.2, seed=0, duplicate_groups={}).save(root / "splits.json")
    return root


def test_train_on_fold_writes_a_run_and_resumes(phantom, tmp_path) -> None:
    out = train_on_fold(phantom, phantom / "splits.json", 0, ClassifierTrainConfig(**CFG), tmp_path / "clf",
                        preset="full-64", progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"run.json", "config.yaml", "best.pt", "last.pt", "history.json", "metrics.json"} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["world_size"] == 1
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "completed" and info["fold"] == 0 and info["kind"] == "classifier"
    before = (out / "history.json").read_text()
    train_on_fold(phantom, phantom / "splits.json", 0, ClassifierTrainConfig(**CFG), out, preset="full-64",
                  resume=True, progress=False)
    assert (out / "history.json").read_text() == before  # finished: the resume trains nothing more


def test_cli_train_resume_and_its_input_errors(phantom, tmp_path) -> None:
    cfg = tmp_path / "clf.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    out = tmp_path / "clf"
    # no --splits: the dataset's (the one splits rule), copied into the run
    args = ["train", str(phantom), "--config", str(cfg), "--preset", "full-64", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "classifier run" in res.output and (out / "best.pt").is_file()
    assert (out / "splits.json").read_bytes() == (phantom / "splits.json").read_bytes()
    info = json.loads((out / "run.json").read_text())
    assert info["dataset"] == str(phantom.resolve()) and info["preset"] == "full-64"
    before = (out / "history.json").read_text()
    res = CliRunner().invoke(app, ["train", "--resume", str(out)])  # its own config, dataset, splits, fold, preset
    assert res.exit_code == 0, res.output
    assert (out / "history.json").read_text() == before and json.loads((out / "run.json").read_text())["resumed"]
    res = CliRunner().invoke(app, ["train", "--resume", str(out), "--preset", "full-64"])
    assert "--splits, --fold, --out, --config or --preset cannot be combined with --resume" in str(res.exception)
    res = CliRunner().invoke(app, args[:-1] + [str(tmp_path / "bad"), "--fold", "x"])
    assert res.exit_code != 0 and "not a fold number" in str(res.exception)
    res = CliRunner().invoke(app, ["train", str(phantom)])
    assert "no --out given" in str(res.exception)


def test_ctrl_c_in_train_says_how_to_resume(tmp_path, monkeypatch) -> None:
    from sonogan.errors import RunInterrupted
    from sonogan.runs import RunDir

    def interrupted(ds, splits, fold, cfg, out, preset="flagship-64", resume=False):
        with RunDir.create(out, kind="classifier"):
            raise KeyboardInterrupt

    monkeypatch.setattr("sonogan.train.fold_run.train_on_fold", interrupted)
    res = CliRunner().invoke(app, ["train", "data/ds", "--out", str(tmp_path / "clf")])
    assert isinstance(res.exception, RunInterrupted)
    assert f"sonogan train --resume {tmp_path / 'clf'}" in str(res.exception)


@pytest.mark.slow
def test_torchrun_cli_equals_one_process(phantom, tmp_path) -> None:
    cfg = tmp_path / "clf.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    args = ["train", str(phantom), "--config", str(cfg), "--preset", "full-64", "--out"]
    assert CliRunner().invoke(app, args + [str(tmp_path / "one")]).exit_code == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sonogan.cli.main", *args, str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    one, two = (json.loads((tmp_path / d / "history.json").read_text())["epochs"] for d in ("one", "two"))
    for a, b in zip(one, two, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4 and abs(a["val_loss"] - b["val_loss"]) < 1e-4
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["world_size"] == 2
