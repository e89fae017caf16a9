"""``sonogan data``: where inspect writes, --against, and out-of-range options refused in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sonogan.cli.main import main
from sonogan.data.manifest import write_dataset




def test_inspect_writes_beside_the_dataset_or_to_out(tmp_path: Path, dh, capsys, monkeypatch, cli) -> None:
    ds = tmp_path / "ds"
    dh.make_dataset(ds)
    monkeypatch.chdir(tmp_path)
    assert cli(["data", "inspect", str(ds)])[0] == 0
    assert cli(["data", "inspect", str(ds)])[0] == 0
    assert sorted(p.name for p in ds.glob("inspect-*")) == ["inspect-001", "inspect-002"]
    assert (ds / "inspect-001/summary.json").is_file() and not (tmp_path / "runs").exists()
    out = tmp_path / "elsewhere" / "report"
    code, stdout, _ = cli(["data", "inspect", str(ds), "--out", str(out)])
    assert code == 0 and (out / "summary.json").is_file() and "report ->" in stdout
    assert len(list(ds.glob("inspect-*"))) == 2


def test_inspect_against_prints_the_count(tmp_path: Path, dh, capsys, monkeypatch, cli) -> None:
    dh.make_dataset(tmp_path / "a")
    dh.make_dataset(tmp_path / "b", n_per_class=2, clinical=False)
    code, out, _ = cli(["data", "inspect", str(tmp_path / "a"), "--against", str(tmp_path / "b"),
                            "--out", str(tmp_path / "r")])
    assert code == 0
    assert "4 image pairs in both datasets (4 exact, 0 near)" in " ".join(out.split())
    assert json.loads((tmp_path / "r/summary.json").read_text())["against"]["n_exact"] == 4
    code, _, err = cli(["data", "inspect", str(tmp_path / "a"), "--against", str(tmp_path / "nope")])
    assert code == 2 and "nope: dataset folder not found" in err and not list((tmp_path / "a").glob("inspect-*"))


@pytest.mark.parametrize("scale", ["0", "-1", "nan"])
def test_phantom_refuses_scale_not_above_zero(tmp_path: Path, capsys, monkeypatch, scale: str, cli) -> None:
    code, _, err = cli(["data", "phantom", "--out", str(tmp_path / "p"), "--scale", scale])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--scale {float(scale)}: the scale must be above 0" in err and not (tmp_path / "p").exists()


@pytest.mark.parametrize("test", ["0.9", "0.5", "0", "-0.1"])
def test_split_refuses_test_fraction_outside_0_to_half(tmp_path: Path, dh, capsys, monkeypatch, test: str, cli) -> None:
    dh.make_dataset(tmp_path / "ds")
    code, _, err = cli(["data", "split", str(tmp_path / "ds"), "--test", test])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"test fraction {float(test)} is not in (0, 0.5)" in err and not (tmp_path / "ds/splits.json").exists()


def test_validate_lists_every_problem_then_exits_2(tmp_path: Path, dh, capsys, monkeypatch, cli) -> None:
    ds = tmp_path / "ds"
    dh.make_dataset(ds)
    (ds / "images/benign/benign-0.png").write_bytes(b"")
    (ds / "images/malignant/malignant-3.png").unlink()
    code, out, err = cli(["data", "validate", str(ds)])
    lines = err.strip().splitlines()
    assert code == 2 and "valid:" not in out and len(lines) == 3
    assert lines[0].endswith("benign-0.png: file is empty (0 bytes); fix: restore or re-export the image, or remove its row")
    assert "malignant-3.png: image file not found" in lines[1]
    assert lines[2] == f"2 problems in {ds}; fix them all, then validate again"


def test_read_only_dataset_reports_go_to_the_cache_folder(tmp_path: Path, dh, capsys, monkeypatch, cli) -> None:
    ds = tmp_path / "ds"
    spec, df = dh.make_dataset(ds, n_per_class=5)
    write_dataset(ds, spec, df.assign(patient_id=df["image_id"]))  # enough patients for 2 folds + test
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path / "cache"))
    # as root a chmod'ed folder stays writable, so stand in for a read-only mount
    monkeypatch.setattr("sonogan.locations.is_writable", lambda folder: False)
    assert cli(["data", "inspect", str(ds)])[0] == 0
    assert cli(["data", "split", str(ds), "--folds", "2", "--test", "0.3"])[0] == 0
    [work] = (tmp_path / "cache").iterdir()
    assert (work / "inspect-001/summary.json").is_file() and (work / "splits.json").is_file()
    assert sorted(p.name for p in ds.iterdir()) == ["dataset.yaml", "images", "manifest.csv", "masks"]
