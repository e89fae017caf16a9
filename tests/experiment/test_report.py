"""The experiment report draws from saved files only: it imports no model code, reads the
protocol's features.npz, captions every fold's GAN figures (real left, synthetic right), shows
the configuration line by line, and prints headline numbers from a metrics.json-shaped dict."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sonogan.experiment import report
from sonogan.experiment.config import ExperimentConfig
from sonogan.report import figures as fig
from sonogan.report.html import render_report

CLASSES = ["benign", "borderline", "malignant"]
MODEL_CODE = ["sonogan.models", "sonogan.train", "sonogan.synth.nets", "sonogan.experiment.fold_data",
              "sonogan.preprocess.fold"]


def test_report_imports_no_model_code() -> None:
    code = ("import sys, sonogan.experiment.report; "
            f"print(','.join(m for m in {MODEL_CODE!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the report pulls in model code: {out.stdout.strip()}"


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8)).save(path)
    return path


def _features(fold_dir: Path, n_real: int = 30, n_syn: int = 10, **override) -> Path:
    rng = np.random.default_rng(0)
    labels = np.concatenate([rng.integers(0, 3, n_real), np.ones(n_syn, np.int64)])
    arrays = {"features": (rng.normal(size=(n_real + n_syn, 6)) + labels[:, None]).astype(np.float32),
              "label": labels.astype(np.int64), "synthetic": np.arange(n_real + n_syn) >= n_real,
              "model": np.array("frid-adar-cnn"), "arm": np.array("augmented"), **override}
    fold_dir.mkdir(parents=True, exist_ok=True)
    np.savez(fold_dir / "features.npz", **{k: v for k, v in arrays.items() if v is not None})
    return fold_dir / "features.npz"


def test_tsne_reads_the_first_fold_with_features(tmp_path: Path) -> None:
    folds = tmp_path / "folds"
    _features(folds / "fold2")
    _features(folds / "fold3", n_real=12)
    out = report.tsne_figure(tmp_path, [0, 2, 3], CLASSES, tmp_path / "figures", seed=0)
    assert out is not None
    path, caption = out
    assert path == tmp_path / "figures" / "tsne.png" and path.stat().st_size > 1000
    assert caption.startswith("Fold 2 ") and "30 real" in caption and "10 synthetic" in caption
    assert "frid-adar-cnn" in caption and "augmented" in caption


def test_tsne_skipped_without_features(tmp_path: Path) -> None:
    assert report.tsne_figure(tmp_path, [0, 1], CLASSES, tmp_path / "figures", seed=0) is None
    assert not (tmp_path / "figures" / "tsne.png").exists()


def test_features_file_missing_a_key_is_named(tmp_path: Path) -> None:
    path = _features(tmp_path / "fold0", synthetic=None)
    with pytest.raises(ValueError, match="lacks synthetic"):
        report.load_features(path)


def test_gan_figures_cover_every_fold(tmp_path: Path) -> None:
    folds = [0, 1, 3]
    for fold in folds:
        gan = tmp_path / "folds" / f"fold{fold}" / "gan-borderline"
        for it in (50, 100, 150, 200, 250, 300):
            _png(gan / "grids" / f"iter_{it:06d}.png")
        _png(gan / "final_vs_real.png")
        _png(gan / "loss_curves.png")
    captions = {c: p for p, c in report.gan_figures(tmp_path, folds, ["borderline"])}
    finals = [c for c in captions if "final" in c]
    assert [c.split(",")[0] for c in finals] == ["fold 0", "fold 1", "fold 3"]
    real, generated = fig.FINAL_VS_REAL_PANELS
    # the panel drawn first is on the left: the caption must say so
    for caption in finals:
        assert caption.endswith(f"final samples; left: {real}, right: {generated}")
    evolution = [c for c in captions if "fixed-noise" in c]
    assert len(evolution) == 4 and all(c.startswith("fold 0, borderline") for c in evolution)
    losses = [c for c in captions if "losses" in c]
    assert losses == ["fold 0, borderline: GAN losses and feature distance (stopping rule)"]
    assert all(p.is_file() for p in captions.values())


def test_configuration_is_readable_yaml(tmp_path: Path) -> None:
    cfg = ExperimentConfig.model_validate({"name": "tiny", "synthetic": {"n_per_class": 12, "sweep": [6]}})
    html = render_report([report.config_section(cfg)], tmp_path / "r.html", "t").read_text(encoding="utf-8")
    pre = re.search(r"<pre><code>(.*?)</code></pre>", html, re.DOTALL)
    assert pre is not None
    lines = pre.group(1).splitlines()
    assert len(lines) > 20 and lines[0] == "name: tiny"
    assert "  n_per_class: 12" in lines  # nested keys keep their indentation


def test_sweep_points_follow_the_configured_sweeps() -> None:
    cfg = ExperimentConfig.model_validate({"name": "t", "synthetic": {"n_per_class": 60, "sweep": [20]},
                                           "classic_arm": {"hflip": True}, "classic_sweep": [6]})
    assert report.sweep_points(cfg) == {"synthetic": [(0, "baseline"), (20, "synthetic-20"), (60, "augmented")],
                                        "classic copies": [(0, "baseline"), (6, "classic-6")]}
    assert report.sweep_points(ExperimentConfig.model_validate({"name": "t"})) == {}


def _scope(base: dict[str, float], aug: dict[str, float], gain: dict[str, list[float]]) -> dict:
    # as metrics.json holds it: ci[arm][metric] = [point, low, high]; gain = [gain, low, high, p]
    return {"ci": {"baseline": {k: [v, v - 0.1, v + 0.1] for k, v in base.items()},
                   "augmented": {k: [v, v - 0.1, v + 0.1] for k, v in aug.items()},
                   "synthetic-20": {k: [0.0, 0.0, 0.0] for k in base}},
            "gain_vs_baseline": {"augmented": gain, "synthetic-20": {k: [9.0, 9.0, 9.0, 1.0] for k in gain}}}


RESULTS = {
    "class_names": CLASSES, "rare_classes": ["borderline"], "primary_model": "frid-adar-cnn",
    "arms": ["baseline", "augmented", "synthetic-20"], "folds_run": [0, 1, 2, 3, 4],
    "bootstrap": {"n_resamples": 1000, "ci": 0.95, "unit": "patient"}, "n_test": 30, "n_cv": 174,
    "cv": _scope({"accuracy": 0.7816, "macro_f1": 0.6012, "f1/borderline": 0.2105},
                 {"accuracy": 0.8046, "macro_f1": 0.6590, "f1/borderline": 0.3750},
                 {"accuracy": [0.023, -0.017, 0.063, 0.27], "macro_f1": [0.0578, 0.0004, 0.12, 0.046],
                  "f1/borderline": [0.1644, 0.02, 0.31, 0.0]}),
    "test": _scope({"accuracy": 0.7333, "macro_f1": 0.55, "f1/borderline": 0.0},
                   {"accuracy": 0.7667, "macro_f1": 0.62, "f1/borderline": 0.4},
                   {"accuracy": [0.0333, -0.1, 0.17, 0.64], "macro_f1": [0.07, -0.08, 0.22, 0.37],
                    "f1/borderline": [0.4, 0.0, 1.0, 0.08]}),
}


def test_headline_lines_from_metrics_json_structure() -> None:
    lines = report.headline_lines(RESULTS, ["borderline"])
    assert 3 <= len(lines) <= 6 and all(len(line) < 200 for line in lines)
    assert "frid-adar-cnn" in lines[0] and "augmented − baseline" in lines[0] and "95 %" in lines[0]
    assert "1000 patient resamples" in lines[0]
    cv, cv_rare, test, test_rare = lines[1:]
    assert cv.startswith("Cross-validation (pooled out-of-fold, 174 real images): ")
    assert "accuracy 0.782 → 0.805 (+0.023, CI -0.017 to +0.063, p = 0.27)" in cv
    assert "macro-F1 0.601 → 0.659 (+0.058, CI +0.000 to +0.120, p = 0.046)" in cv
    assert cv_rare == "  F1 borderline 0.210 → 0.375 (+0.164, CI +0.020 to +0.310, p < 0.001)"
    assert test.startswith("Hold-out test (30 real images, fold models averaged): ") and "p = 0.64" in test
    assert test_rare == "  F1 borderline 0.000 → 0.400 (+0.400, CI +0.000 to +1.000, p = 0.080)"
    assert "9.000" not in " ".join(lines)  # only the augmented arm is headlined, not the sweep


def test_headline_lines_name_every_rare_class() -> None:
    results = {**RESULTS, "cv": {**RESULTS["cv"]}, "test": {**RESULTS["test"]}}
    for key in ("cv", "test"):
        scope = results[key]
        scope["ci"] = {arm: {**m, "f1/malignant": [0.5, 0.4, 0.6]} for arm, m in scope["ci"].items()}
        scope["gain_vs_baseline"] = {arm: {**g, "f1/malignant": [0.0, -0.1, 0.1, 1.0]}
                                     for arm, g in scope["gain_vs_baseline"].items()}
    lines = report.headline_lines(results, ["borderline", "malignant"])
    assert len(lines) == 5
    assert lines[2].startswith("  F1 borderline ")
    assert lines[2].endswith("; F1 malignant 0.500 → 0.500 (+0.000, CI -0.100 to +0.100, p > 0.99)")
