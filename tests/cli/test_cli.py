"""The CLI is a thin layer: help texts, the phantom -> split -> preprocess -> inspect flow,
and user errors as one line + exit code 2 that never overwrite earlier results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sonogan.cli.main import main

TINY_PHANTOM = "n_benign: 6\nn_borderline: 4\nn_malignant: 5\nimages_per_patient: 2\nimage_size: 128\n"




@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    from sonogan.phantom import PhantomConfig, generate_phantom

    root = tmp_path_factory.mktemp("cli") / "phantom"
    generate_phantom(root, PhantomConfig(n_benign=6, n_borderline=4, n_malignant=5, images_per_patient=2, image_size=128))
    return root


def test_help_lists_command_groups(capsys, monkeypatch, cli):
    code, out, _ = cli(["--help"])
    assert code == 0
    for group in ("data", "preprocess", "synth", "experiment", "demo"):
        assert group in out


@pytest.mark.parametrize("cmd", [["data", "phantom"], ["data", "import"], ["data", "validate"], ["data", "split"],
                                 ["data", "inspect"], ["preprocess"], ["synth", "train"], ["synth", "sample"],
                                 ["experiment"], ["demo"]])
def test_every_command_has_help_with_an_example(cmd, capsys, monkeypatch, cli):
    code, out, _ = cli([*cmd, "--help"])
    assert code == 0
    assert "Example" in out


def test_phantom_split_preprocess_inspect_flow(tmp_path, capsys, monkeypatch, cli):
    cfg = tmp_path / "phantom.yaml"
    cfg.write_text(TINY_PHANTOM)
    ds = tmp_path / "ds"
    assert cli(["data", "phantom", "--out", str(ds), "--config", str(cfg)])[0] == 0
    assert cli(["data", "validate", str(ds)])[0] == 0
    code, out, _ = cli(["data", "split", str(ds), "--folds", "2", "--test", "0.2", "--seed", "1"])
    assert code == 0 and (ds / "splits.json").is_file()
    first = (ds / "splits.json").read_bytes()
    # splits are made once: a second call refuses and leaves the file untouched
    code, _, err = cli(["data", "split", str(ds), "--folds", "2", "--seed", "2"])
    assert code == 2 and "splits.json" in err and len(err.strip().splitlines()) == 1
    assert (ds / "splits.json").read_bytes() == first
    assert cli(["preprocess", str(ds), "--preset", "flagship-64"])[0] == 0
    caches = list((ds / "cache").iterdir())
    assert cli(["preprocess", str(ds), "--preset", "flagship-64"])[0] == 0
    assert list((ds / "cache").iterdir()) == caches  # second call is a no-op
    report = tmp_path / "inspect"
    code, out, _ = cli(["data", "inspect", str(ds), "--out", str(report)])
    assert code == 0
    info = json.loads((report / "run.json").read_text())
    assert info["status"] == "completed" and info["versions"]["torch"]
    assert json.loads((report / "metrics.json").read_text())["n_images"] == 30
    assert list(report.glob("*.png"))


def test_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, phantom_dir, cli):
    code, _, err = cli(["data", "validate", str(tmp_path / "nope")])
    assert code == 2 and "nope" in err and "fix:" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_benign: [oops\n")
    code, _, err = cli(["data", "phantom", "--out", str(tmp_path / "p"), "--config", str(bad)])
    assert code == 2 and "bad.yaml" in err
    bad.write_text("n_benign: 5\nno_such_key: 1\n")
    code, _, err = cli(["data", "phantom", "--out", str(tmp_path / "p"), "--config", str(bad)])
    assert code == 2 and "no_such_key" in err
    code, _, err = cli(["preprocess", str(phantom_dir), "--preset", "no-such-preset"])
    assert code == 2 and "no-such-preset" in err


def test_existing_output_is_never_overwritten(tmp_path, capsys, monkeypatch, phantom_dir, cli):
    out = tmp_path / "taken"
    out.mkdir()
    keep = out / "precious.txt"
    keep.write_text("user data")
    code, _, err = cli(["data", "import", str(phantom_dir / "manifest.csv"), "--format", "csv", "--out", str(out)])
    assert code == 2 and "taken" in err
    code, _, _ = cli(["data", "phantom", "--out", str(out)])
    assert code == 2
    assert keep.read_text() == "user data" and sorted(p.name for p in out.iterdir()) == ["precious.txt"]
