"""``sonogan study create`` / ``study export`` / ``serve``: links printed once, results exported, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image


def _folder(root: Path, n: int) -> Path:
    for i in range(n):
        path = root / ("cyst" if i % 2 else "tumour") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((10, 12), 20 * i, np.uint8)).save(path)
    return root


def test_create_prints_links_and_export_writes_results(cli, tmp_path: Path) -> None:
    real, syn, db = _folder(tmp_path / "real", 4), _folder(tmp_path / "syn", 4), tmp_path / "study.db"
    code, out, err = cli(["study", "create", "--real", str(real), "--synthetic", str(syn), "--n", "6",
                          "--ratio", "0.5", "--raters", "ana,ben", "--db", str(db), "--base-url", "http://host:9/"])
    assert code == 0, err
    links = dict(re.findall(r"^(rater \w+|admin): (http://host:9/[ra]/\S+)$", out, re.M))
    assert set(links) == {"rater ana", "rater ben", "admin"}
    assert links["admin"].startswith("http://host:9/a/") and len(set(links.values())) == 3
    results = tmp_path / "reader_study.json"
    code, out, err = cli(["study", "export", "--db", str(db), "--out", str(results), "--csv", str(tmp_path / "a.csv")])
    assert code == 0, err
    summary = json.loads(results.read_text())
    assert summary["format"] == "sonogan-reader-study" and summary["study"]["n_synthetic"] == 3
    assert (tmp_path / "a.csv").read_text().startswith("rater,position,item,source")
    code, _, err = cli(["study", "export", "--db", str(db), "--out", str(results)])
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_export_into_an_experiment_run_redraws_its_report(cli, tmp_path: Path, monkeypatch) -> None:
    from sonogan.experiment import protocol

    real, syn, db = _folder(tmp_path / "real", 4), _folder(tmp_path / "syn", 4), tmp_path / "study.db"
    assert cli(["study", "create", "--real", str(real), "--synthetic", str(syn), "--n", "6", "--ratio", "0.5",
                "--raters", "ana", "--db", str(db)])[0] == 0
    run = tmp_path / "run"
    run.mkdir()
    for name in ("metrics.json", "config.yaml"):  # what marks a finished experiment run
        (run / name).write_text("{}")
    redrawn: list[Path] = []
    monkeypatch.setattr(protocol, "rewrite_report", lambda r: redrawn.append(Path(r)) or Path(r) / "report.html")
    code, out, err = cli(["study", "export", "--db", str(db), "--out", str(run / "reader_study.json")])
    assert code == 0, err
    assert redrawn == [run] and "experiment report with the reader study" in out


def test_one_line_errors(cli, tmp_path: Path) -> None:
    real = _folder(tmp_path / "real", 2)
    code, _, err = cli(["study", "create", "--real", str(real), "--synthetic", str(real), "--n", "40",
                        "--raters", "ana", "--db", str(tmp_path / "s.db")])
    assert code == 2 and "needs 20 images but has 2" in err
    code, _, err = cli(["study", "create", "--real", str(real), "--synthetic", str(real), "--n", "4",
                        "--raters", "bad name", "--db", str(tmp_path / "s.db")])
    assert code == 2 and "rater names" in err
    for args in (["serve", "--db", str(tmp_path / "none.db")], ["study", "export", "--db", str(tmp_path / "none.db"),
                                                               "--out", str(tmp_path / "x.json")]):
        code, _, err = cli(args)
        assert code == 2 and "no study database here" in err, err
