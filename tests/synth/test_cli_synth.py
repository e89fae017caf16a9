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
    # no --splits: the dataset's (the one splits rule), copied into the run
    res = runner.invoke(synth_app, ["train", str(ds.root), "--fold", "all", "--class", "borderline",
                                    "--model", "sngan", "--config", str(cfg), "--iterations", "2", "--seed", "4",
                                    "--out", str(run)])
    assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["family"] == "sngan" and info["seed"] == 4 and info["dataset"] == str(ds.root.resolve())
    assert (run / "splits.json").read_bytes() == splits.read_bytes() and info["splits_file"] == str(splits.resolve())
    # the dataset's splits change; the run continues on its own copy, its fold and class, --iterations raises the budget
    splits.rename(tmp_path / "moved.json")
    try:
        res = runner.invoke(synth_app, ["train", "--resume", str(run), "--iterations", "3"])
    finally:
        (tmp_path / "moved.json").rename(splits)
    assert res.exit_code == 0, res.output
    assert json.loads((run / "metrics.json").read_text())["iterations"] == 3
    info = json.loads((run / "run.json").read_text())
    assert info["resumed"] and info["fold"] is None and info["class_name"] == "borderline"
    res = runner.invoke(synth_app, ["sample", str(run), "--n", "3", "--out", str(tmp_path / "syn")])
    assert res.exit_code == 0, res.output
    m = load_dataset(tmp_path / "syn").manifest
    assert len(m) == 3 and set(m["synth_fold"]) == {"all"} and set(m["generator"]) == {"sngan"}


@pytest.mark.parametrize("args,match", [
    (["--seed", "1"], "--splits, --fold, --class, --model, --out, --config or --seed cannot be combined with --resume"),
    (["--splits", "s.json"], "cannot be combined with --resume"),
    (["--class", "benign"], "cannot be combined with --resume"),
])
def test_resume_takes_the_runs_own_options(tmp_path, args, match):
    res = runner.invoke(synth_app, ["train", "--resume", str(tmp_path / "run"), *args])
    assert isinstance(res.exception, SonoganInputError) and match in str(res.exception)
    assert f"sonogan synth train --resume {tmp_path / 'run'}" in str(res.exception)


def test_resume_of_a_run_on_another_dataset_is_refused(tmp_path):
    from sonogan.runs import RunDir
    from sonogan.synth.config import GanConfig

    with RunDir.create(tmp_path / "run", config=GanConfig(), kind="gan") as run:
        run.set_info(dataset=str(tmp_path / "ds"), fold=0, class_name="borderline")
    res = runner.invoke(synth_app, ["train", str(tmp_path), "--resume", str(tmp_path / "run")])
    assert isinstance(res.exception, SonoganInputError) and "this run was started on" in str(res.exception)


def test_a_new_run_needs_dataset_and_out(phantom):
    ds, _ = phantom
    res = runner.invoke(synth_app, ["train", str(ds.root), "--class", "borderline"])
    assert isinstance(res.exception, SonoganInputError) and "no --out given" in str(res.exception)


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


@pytest.fixture
def gan_run(tmp_path):
    """A GAN run folder with a real (untrained) checkpoint, made without the training loop."""
    import torch

    from sonogan.synth.config import GanConfig
    from sonogan.synth.state import build_state
    from sonogan.torch_utils import atomic_torch_save

    st = build_state(GanConfig(ngf=4, ndf=4, z_dim=8), num_classes=1, device=torch.device("cpu"))
    ckpt = st.to_checkpoint(meta={"classes": ["benign", "borderline"], "class_name": "borderline", "fold": 0,
                                  "training_ids": ["a", "b"]})
    atomic_torch_save(ckpt, tmp_path / "gan" / "checkpoints" / "last.pt")
    return tmp_path / "gan"


def sample_main(args, monkeypatch, capsys):
    from sonogan.cli.main import main

    monkeypatch.setattr("sys.argv", ["sonogan", "synth", "sample", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("damage,match", [
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "empty, truncated or corrupt"),
    (lambda p: p.write_bytes(b""), "empty, truncated or corrupt"),
    (lambda p: p.write_bytes(b"not a checkpoint at all"), "not a sonogan checkpoint"),
    (lambda p: __import__("torch").save({"weights": 1}, p), "not a sonogan GAN checkpoint (missing"),
])
def test_sample_from_a_damaged_checkpoint_is_one_line(gan_run, tmp_path, monkeypatch, capsys, damage, match):
    assert sample_main([str(gan_run), "--n", "2", "--out", str(tmp_path / "ok")], monkeypatch, capsys)[0] == 0
    assert len(load_dataset(tmp_path / "ok").manifest) == 2  # the intact checkpoint samples
    damage(gan_run / "checkpoints" / "last.pt")
    code, err = sample_main([str(gan_run), "--n", "2", "--out", str(tmp_path / "syn")], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and match in lines[0] and "last.pt" in lines[0], err
    assert not (tmp_path / "syn").exists()
