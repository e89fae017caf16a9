"""The remover's run follows the one run layout: it trains on a read-only dataset (its splits
in the dataset's work folder), keeps its own splits copy, and continues with ``--resume RUN``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from sonogan.locations import fallback_dir
from sonogan.phantom import PhantomConfig, generate_phantom
from sonogan.runs import sha256_file


@pytest.fixture()
def read_only_phantom(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "ro-phantom"
    generate_phantom(root, PhantomConfig(n_benign=4, n_borderline=4, n_malignant=4, images_per_patient=1,
                                         image_size=64, annotated_fraction=0.0))
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path / "cache"))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:  # root writes through chmod: stand in for a read-only mount
        monkeypatch.setattr("sonogan.locations.is_writable", lambda folder: Path(folder) != root)
    yield root
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_remover_trains_on_a_read_only_dataset(read_only_phantom, tmp_path, tiny_cfg, cli):
    before = sorted(p.relative_to(read_only_phantom) for p in read_only_phantom.rglob("*"))
    code, _, err = cli(["data", "split", str(read_only_phantom), "--folds", "2", "--test", "0.25"])
    assert code == 0, err
    work_splits = fallback_dir(read_only_phantom) / "splits.json"
    assert work_splits.is_file()
    config = tmp_path / "remover.yaml"
    config.write_text(yaml.safe_dump(tiny_cfg(iterations=4, checkpoint_every=2, eval_pairs=4).model_dump(mode="json")))
    code, _, err = cli(["annotations", "train", str(read_only_phantom), "--out", str(tmp_path / "run"),
                        "--config", str(config)])
    assert code == 0, err
    run = tmp_path / "run"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["splits_file"] == str(work_splits.resolve())
    assert (run / "splits.json").read_bytes() == work_splits.read_bytes()
    assert info["splits_sha256"] == sha256_file(work_splits)
    assert sorted(p.relative_to(read_only_phantom) for p in read_only_phantom.rglob("*")) == before


def test_resume_takes_the_run_alone(clean_phantom, tmp_path, tiny_cfg, cli):
    code, _, err = cli(["annotations", "train", str(clean_phantom), "--resume", str(tmp_path / "run")])
    assert code == 2 and "a DATASET, --out, --config, --fold, --iterations or --seed cannot be combined with " \
                          "--resume" in err and f"sonogan annotations train --resume {tmp_path / 'run'}" in err
    code, _, err = cli(["annotations", "train", "--resume", str(tmp_path / "nothing")])
    assert code == 2 and "not a sonogan run folder (no run.json)" in err
