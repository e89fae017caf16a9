"""``sonogan synth train`` / ``sample`` through typer, on the tiny phantom."""

import json

import pytest
from typer.testing import CliRunner

from sonogan.cli.synth import synth_app
from sonogan.data.manifest import load_dataset
from sonogan.errors import SonoganInputError

runner = CliRunner()


def test_train_then_sample(phantom, tmp_path):
    ds, splits = phantom
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("ngf: 4\nndf: 4\nz_dim: 8\nbatch_size: 4\nquality_samples: 8\ndevice: cpu\n")
    run = tmp_path / "run"
    res = runner.invoke(synth_app, ["train", str(ds.root), "--splits", str(splits), "--fold", "all",
                                    "--class", "borderline", "--model", "sngan", "--config", str(cfg),
                                    "--iterations", "2", "--seed", "4", "--out", str(run)])
    assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["family"] == "sngan" and info["seed"] == 4
    res = runner.invoke(synth_app, ["train", str(ds.root), "--splits", str(splits), "--fold", "all",
                                    "--class", "borderline", "--out", str(run), "--resume", "--iterations", "3"])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "metrics.json").read_text())["iterations"] == 3
    assert json.loads((run / "run.json").read_text())["resumed"]
    res = runner.invoke(synth_app, ["sample", str(run), "--n", "3", "--out", str(tmp_path / "syn")])
    assert res.exit_code == 0, res.output
    m = load_dataset(tmp_path / "syn").manifest
    assert len(m) == 3 and set(m["synth_fold"]) == {"all"} and set(m["generator"]) == {"sngan"}


@pytest.mark.parametrize("args,match", [
    (["--class", "nope"], "unknown class"),
    (["--class", "borderline", "--model", "gan9000"], "unknown name"),
    (["--class", "borderline", "--fold", "x"], "not a fold number"),
])
def test_errors_raise_input_errors(phantom, tmp_path, args, match):
    ds, splits = phantom
    res = runner.invoke(synth_app, ["train", str(ds.root), "--splits", str(splits), "--out", str(tmp_path / "r"),
                                    "--iterations", "1", *args])
    assert isinstance(res.exception, SonoganInputError) and match in str(res.exception)


def test_bad_config_is_input_error(phantom, tmp_path):
    ds, splits = phantom
    bad = tmp_path / "bad.yaml"
    bad.write_text("ngf: 4\nlearning_rate: 3\n")
    res = runner.invoke(synth_app, ["train", str(ds.root), "--splits", str(splits), "--class", "borderline",
                                    "--config", str(bad), "--out", str(tmp_path / "r")])
    assert isinstance(res.exception, SonoganInputError) and "learning_rate" in str(res.exception)


def test_help_has_examples():
    for cmd in ("train", "sample"):
        res = runner.invoke(synth_app, [cmd, "--help"])
        assert res.exit_code == 0 and "Example" in res.output
