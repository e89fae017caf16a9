"""Every command that writes checks its output paths before any work (issue 20): an output whose
parent is a regular file is one line and exit 2, before any input is read, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (command, where the bad path goes); the inputs do not exist: the output check must come first
COMMANDS = {
    "data phantom": ["data", "phantom", "--out", "{bad}"],
    "data relabel": ["data", "relabel", "{missing}", "--map", "a=b", "--out", "{bad}"],
    "data split": ["data", "split", "{missing}", "--out", "{bad}/splits.json"],
    "data inspect": ["data", "inspect", "{missing}", "--out", "{bad}"],
    "evaluate": ["evaluate", "{missing}", "{missing}", "--out", "{bad}"],
    "annotations train": ["annotations", "train", "{missing}", "--out", "{bad}"],
    "annotations apply": ["annotations", "apply", "{missing}/remover.pt", "{missing}", "--out", "{bad}"],
    "annotations evaluate": ["annotations", "evaluate", "{missing}/remover.pt", "--out", "{bad}/m.json"],
    "experiment": ["experiment", str(ROOT / "configs" / "demo.yaml"), "--out", "{bad}"],
    "lesion": ["lesion", str(ROOT / "configs" / "lesion" / "demo.yaml"), "--out", "{bad}"],
    "synth train": ["synth", "train", "{missing}", "--class", "b", "--out", "{bad}"],
    "synth sample": ["synth", "sample", "{missing}", "--out", "{bad}"],
    "synth audit --out": ["synth", "audit", "{missing}", "--real", "{missing}", "--splits", "{missing}/s.json",
                          "--out", "{bad}"],
    "synth audit --cache": ["synth", "audit", "{missing}", "--real", "{missing}", "--splits", "{missing}/s.json",
                            "--out", "{tmp}/audit", "--cache", "{bad}"],
    "train": ["train", "{missing}", "--out", "{bad}"],
    "study export --out": ["study", "export", "--db", "{db}", "--out", "{bad}/r.json"],
    "study export --csv": ["study", "export", "--db", "{db}", "--out", "{tmp}/r.json", "--csv", "{bad}/a.csv"],
    "demo": ["demo", "--out", "{bad}"],
    "export": ["export", "{missing}/best.pt", "--onnx", "--out", "{bad}"],
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_output_under_a_regular_file_is_one_line_before_any_work(name: str, tmp_path: Path, cli) -> None:
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "empty.db").write_bytes(b"")  # an empty file passes the --db check (SQLite makes it a database)
    before = _files(tmp_path)
    args = [a.format(bad=tmp_path / "file" / "out", missing=tmp_path / "missing", tmp=tmp_path,
                     db=tmp_path / "empty.db") for a in COMMANDS[name]]
    code, out, err = cli(args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert f"its parent {tmp_path / 'file'} is a file, not a folder" in lines[0], err
    assert _files(tmp_path) == before  # nothing written, nothing changed


def test_study_export_refuses_one_file_for_both_outputs(tmp_path: Path, cli) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    same = tmp_path / "r.json"
    code, _, err = cli(["study", "export", "--db", str(tmp_path / "empty.db"), "--out", str(same), "--csv", str(same)])
    assert code == 2 and err.strip() == f"error: --csv: is the --out file {same}; fix: give the CSV its own file name"
    assert not same.exists()


def test_a_non_empty_run_folder_is_refused_before_work(tmp_path: Path, cli) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    code, _, err = cli(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "run")])
    assert code == 2 and "run folder already exists and is not empty" in err, err
    assert (tmp_path / "run" / "metrics.json").read_text() == "{}"


@pytest.mark.parametrize("args", [["data", "phantom", "--out", "/proc/sonogan-ds"], ["demo", "--out", "/proc/runs"],
                                  ["annotations", "evaluate", "missing.pt", "--out", "/proc/m.json"]])
def test_a_system_folder_is_one_line(args: list[str], cli) -> None:
    code, out, err = cli(args)
    assert code == 2 and "nothing can be written in /proc" in err and len(err.strip().splitlines()) == 1, err


def test_preprocess_with_a_file_in_place_of_the_cache_folder(tmp_path: Path, cli) -> None:
    config = tmp_path / "phantom.yaml"
    config.write_text("n_benign: 2\nn_borderline: 2\nn_malignant: 2\nimages_per_patient: 1\nimage_size: 64\n")
    code, _, err = cli(["data", "phantom", "--out", str(tmp_path / "ds"), "--config", str(config)])
    assert code == 0, err
    (tmp_path / "ds" / "cache").write_text("keep me")
    code, _, err = cli(["preprocess", str(tmp_path / "ds"), "--preset", "full-64"])
    assert code == 2 and err.strip().startswith(f"error: {tmp_path / 'ds' / 'cache'}: cannot create the cache folder")
    assert len(err.strip().splitlines()) == 1 and (tmp_path / "ds" / "cache").read_text() == "keep me"
