"""Predict inputs and outputs: the safe decoder on every image, output paths checked before work."""

from __future__ import annotations

import csv
import importlib.util
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.errors import SonoganInputError
from sonogan.infer.decision import decision_paths
from sonogan.infer.predict_files import read_inputs


def _predict_cases():
    """The checkpoint factory of tests/cli/test_predict.py (loaded by path: tests are not a package)."""
    spec = importlib.util.spec_from_file_location("predict_cases", Path(__file__).parents[1] / "cli" / "test_predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scan(path: Path, h: int = 80, w: int = 100) -> Path:
    img = np.random.default_rng(0).integers(30, 220, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _bomb(path: Path) -> Path:
    """874 bytes that claim 30000 x 30000 px (the issue's decompression bomb, in miniature)."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_read_inputs_refuses_bombs_and_thumbnails(tmp_path: Path) -> None:
    with pytest.raises(SonoganInputError, match=r"bomb.png: image is 30000 x 30000 px, larger than the limit"):
        read_inputs([_bomb(tmp_path / "bomb.png")])
    with pytest.raises(SonoganInputError, match=r"dot.png: image is 1 x 1 px, below the minimum of 32 x 32 px"):
        read_inputs([_scan(tmp_path / "dot.png", 1, 1)])
    items, skipped = read_inputs([_scan(tmp_path / "ok.png", 32, 32)])
    assert items[0].image.shape == (32, 32, 3) and skipped == []


def test_decision_paths_checks_every_file_up_front(tmp_path: Path) -> None:
    (tmp_path / "p-summary.json").write_text("{}")
    with pytest.raises(SonoganInputError, match="p-summary.json: already exists"):
        decision_paths(tmp_path / "p.csv")
    (tmp_path / "q-explain").mkdir()
    assert decision_paths(tmp_path / "q.csv")["images"] == tmp_path / "q.csv"  # no Grad-CAM: the folder is not ours
    with pytest.raises(SonoganInputError, match="q-explain: already exists"):
        decision_paths(tmp_path / "q.csv", explain=True)


def test_cli_out_paths(tmp_path: Path, cli) -> None:
    ckpt = _predict_cases()._checkpoint(tmp_path / "best.pt")
    scan = _scan(tmp_path / "scan.png")
    code, _, err = cli(["predict", str(ckpt), str(scan), "--out", str(tmp_path / "new" / "deeper" / "p.csv")])
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "new" / "deeper" / "p.csv")) == 1
    assert (tmp_path / "new" / "deeper" / "p-patients.csv").is_file()
    (tmp_path / "file").write_text("keep me")
    # a missing model: the --out error comes first, before any loading or decoding
    for out, what in [(tmp_path / "file" / "p.csv", "is a file, not a folder"), (Path("/proc/p.csv"), "/proc")]:
        code, _, err = cli(["predict", str(tmp_path / "no-model.pt"), str(scan), "--out", str(out)])
        assert code == 2 and what in err and len(err.strip().splitlines()) == 1, err
    code, _, err = cli(["predict", str(ckpt), str(_bomb(tmp_path / "bomb.png")), "--out", str(tmp_path / "b.csv")])
    assert code == 2 and "bomb.png: image is 30000 x 30000 px" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.csv").exists() and (tmp_path / "file").read_text() == "keep me"


def test_folder_lists_every_skipped_file_and_csv_cells_stay_text(tmp_path: Path, cli, monkeypatch) -> None:
    ckpt = _predict_cases()._checkpoint(tmp_path / "best.pt")
    _scan(tmp_path / "scans" / "a.png")
    (tmp_path / "scans" / "notes.txt").write_text("not an image")
    (tmp_path / "scans" / ".hidden.png").write_bytes(b"x")
    _scan(tmp_path / "=HYPERLINK(A1).png")
    monkeypatch.chdir(tmp_path)  # relative names: the CSV cell starts with the file name itself
    code, out, err = cli(["predict", str(ckpt), "scans", "=HYPERLINK(A1).png", "--clinical", "note=@SUM(A1)",
                          "--out", "p.csv"])
    assert code == 0, err
    txt = "not an image or DICOM file (.txt; predict reads .bmp, .jpeg, .jpg, .png, .tif, .tiff and DICOM)"
    assert f"skipped 2 file(s) (listed in p-summary.json):\n  scans/.hidden.png: hidden file\n  scans/notes.txt: {txt}\n" in out
    assert json.loads((tmp_path / "p-summary.json").read_text())["skipped"] == [
        {"file": "scans/.hidden.png", "reason": "hidden file"}, {"file": "scans/notes.txt", "reason": txt}]
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], r["patient"], r["clinical_note"]) for r in rows] == [
        ("scans/a.png", "scans/a.png", "'@SUM(A1)"), ("'=HYPERLINK(A1).png", "'=HYPERLINK(A1).png", "'@SUM(A1)")]
    with open(tmp_path / "p-patients.csv", newline="") as fh:
        assert sorted(r["patient"] for r in csv.DictReader(fh)) == ["'=HYPERLINK(A1).png", "scans/a.png"]
