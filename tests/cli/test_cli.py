"""The CLI is a thin layer: help texts, the phantom -> split -> preprocess -> inspect flow,
and user errors as one line + exit code 2 that never overwrite earlier results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sonogan.cli.main import main

TINY_PHANTOM = "n_benign: 6\nn_borderline: 4\nn_malignant: 5\nimages_per_patient: 2\nimage_size: 128\n"


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["sonogan", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    from sonogan.phantom import PhantomConfig, generate_phantom

    root = tmp_path_factory.mktemp("cli") / "phantom"
    generate_phantom(root, PhantomConfig(n_benign=6, n_borderline=4, n_malignant=5, images_per_patient=2, image_size=128))
    return root


def test_help_lists_command_groups(capsys, monkeypatch):
    code, out, _ = run_cli(["--help"], capsys, monkeypatch)
    assert code == 0
    for group in ("data", "preprocess", "synth", "experiment", "demo"):
        assert group in out


@pytest.mark.parametrize("cmd", [["data", "phantom"], ["data", "import"], ["data", "validate"], ["data", "split"],
                                 ["data", "inspect"], ["preprocess"], ["synth", "train"], ["synth", "sample"],
                                 ["experiment"], ["demo"]])
def test_every_command_has_help_with_an_example(cmd, capsys, monkeypatch):
    code, out, _ = run_cli([*cmd, "--help"], capsys, monkeypatch)
    assert code == 0
    assert "Example" in out


def test_phantom_split_preprocess_inspect_flow(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "phantom.yaml"
    cfg.write_text(TINY_PHANTOM)
    ds = tmp_path / "ds"
    assert run_cli(["data", "phantom", "--out", str(ds), "--config", str(cfg)], capsys, monkeypatch)[0] == 0
    assert run_cli(["data", "validate", str(ds)], capsys, monkeypatch)[0] == 0
    code, out, _ = run_cli(["data", "split", str(ds), "--folds", "2", "--test", "0.2", "--seed", "1"], capsys, monkeypatch)
    assert code == 0 and (ds / "splits.json").is_file()
    first = (ds / "splits.json").read_bytes()
    # splits are made once: a second call refuses and leaves the file untouched
    code, _, err = run_cli(["data", "split", str(ds), "--folds", "2", "--seed", "2"], capsys, monkeypatch)
    assert code == 2 and "splits.json" in err and len(err.strip().splitlines()) == 1
    assert (ds / "splits.json").read_bytes() == first
    assert run_cli(["preprocess", str(ds), "--preset", "flagship-64"], capsys, monkeypatch)[0] == 0
    caches = list((ds / "cache").iterdir())
    assert run_cli(["preprocess", str(ds), "--preset", "flagship-64"], capsys, monkeypatch)[0] == 0
    assert list((ds / "cache").iterdir()) == caches  # second call is a no-op
    report = tmp_path / "inspect"
    code, out, _ = run_cli(["data", "inspect", str(ds), "--out", str(report)], capsys, monkeypatch)
    assert code == 0
    info = json.loads((report / "run.json").read_text())
    assert info["status"] == "completed" and info["versions"]["torch"]
    assert json.loads((report / "metrics.json").read_text())["n_images"] == 30
    assert list(report.glob("*.png"))


def test_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, phantom_dir):
    code, _, err = run_cli(["data", "validate", str(tmp_path / "nope")], capsys, monkeypatch)
    assert code == 2 and "nope" in err and "fix:" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_benign: [oops\n")
    code, _, err = run_cli(["data", "phantom", "--out", str(tmp_path / "p"), "--config", str(bad)], capsys, monkeypatch)
    assert code == 2 and "bad.yaml" in err
    bad.write_text("n_benign: 5\nno_such_key: 1\n")
    code, _, err = run_cli(["data", "phantom", "--out", str(tmp_path / "p"), "--config", str(bad)], capsys, monkeypatch)
    assert code == 2 and "no_such_key" in err
    code, _, err = run_cli(["preprocess", str(phantom_dir), "--preset", "no-such-preset"], capsys, monkeypatch)
    assert code == 2 and "no-such-preset" in err


def test_existing_output_is_never_overwritten(tmp_path, capsys, monkeypatch, phantom_dir):
    out = tmp_path / "taken"
    out.mkdir()
    keep = out / "precious.txt"
    keep.write_text("user data")
    code, _, err = run_cli(["data", "import", str(phantom_dir / "manifest.csv"), "--format", "csv", "--out", str(out)],
                           capsys, monkeypatch)
    assert code == 2 and "taken" in err
    code, _, _ = run_cli(["data", "phantom", "--out", str(out)], capsys, monkeypatch)
    assert code == 2
    assert keep.read_text() == "user data" and sorted(p.name for p in out.iterdir()) == ["precious.txt"]
