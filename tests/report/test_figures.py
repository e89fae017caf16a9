"""Each figure function writes a non-empty, decodable PNG from small arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sonogan.report import figures as F

CLASSES = ["benign", "malignant", "bot"]


def _is_png(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return im.size


@pytest.fixture()
def preds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    noise = rng.dirichlet(np.ones(3), 40)
    return y, 0.6 * np.eye(3)[y] + 0.4 * noise, 0.3 * np.eye(3)[y] + 0.7 * noise


def test_roc_single_and_two_arms(tmp_path: Path, preds) -> None:
    y, p_aug, p_base = preds
    assert F.plot_roc_curves(y, p_aug, CLASSES, tmp_path / "roc.png", "ROC") == tmp_path / "roc.png"
    _is_png(tmp_path / "roc.png")
    _is_png(F.plot_roc_curves(y, p_aug, CLASSES, tmp_path / "sub" / "roc2.png", "ROC", y_prob_baseline=p_base))
    # a class absent from y_true is drawn as 'n/a', not a crash
    _is_png(F.plot_roc_curves(y % 2, p_aug, CLASSES, tmp_path / "roc3.png", "ROC"))


def test_confusion(tmp_path: Path) -> None:
    cm = np.array([[30, 2, 1], [3, 20, 4], [0, 5, 9]])
    _is_png(F.plot_confusion(cm, CLASSES, tmp_path / "cm.png"))
    _is_png(F.plot_confusion(np.zeros((3, 3)), CLASSES, tmp_path / "cm0.png", normalize=False))


def test_metric_bars_with_tuples_and_cis(tmp_path: Path) -> None:
    base = {"accuracy": (0.847, 0.80, 0.89), "f1/bot": (0.684, 0.55, 0.80)}
    aug = {"accuracy": 0.915, "f1/bot": 0.865}
    cis = {"augmented": {"accuracy": (0.88, 0.95), "f1/bot": (0.80, 0.92)}}
    _is_png(F.plot_metric_bars(base, aug, ["accuracy", "f1/bot"], tmp_path / "bars.png", cis=cis))


def test_loss_curves(tmp_path: Path) -> None:
    histories = {"baseline": {"train_loss": [1.0, 0.7, 0.5], "val_loss": [1.1, 0.9, 0.95]},
                 "augmented": {"train_loss": [1.0, 0.6, 0.4]}}
    width, _ = _is_png(F.plot_loss_curves(histories, tmp_path / "loss.png"))
    assert width > 700  # two panels side by side
    with pytest.raises(ValueError):
        F.plot_loss_curves({"a": {}}, tmp_path / "empty.png")


def test_sweep(tmp_path: Path) -> None:
    xs = [0, 100, 500, 1000]
    ys = {"accuracy": ([0.78, 0.81, 0.85, 0.84], [0.02, 0.03, 0.02, 0.02]),
          "f1/bot": ([0.6, 0.7, 0.8, 0.78], [0.05, np.nan, 0.04, 0.04])}
    _is_png(F.plot_sweep(xs, ys, tmp_path / "sweep.png"))


def test_tsne_real_dots_synthetic_crosses(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 12)
    features = rng.normal(size=(36, 8)) + labels[:, None] * 3.0
    synth = np.tile([False, True], 18)
    _is_png(F.plot_tsne(features, labels, synth, CLASSES, tmp_path / "tsne.png", seed=0))
    a, b = F.tsne_embedding(features, seed=3), F.tsne_embedding(features, seed=3)
    np.testing.assert_array_equal(a, b)  # seeded => deterministic
    with pytest.raises(ValueError):
        F.plot_tsne(features, labels[:-1], synth, CLASSES, tmp_path / "bad.png")


def test_image_grid_gray_and_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, size=(10, 16, 16), dtype=np.uint8)
    path = F.image_grid(gray, tmp_path / "grid.png", nrow=5, padding=2)
    with Image.open(path) as im:
        assert im.size == (5 * 18 + 2, 2 * 18 + 2)
        tile = np.asarray(im.convert("L"))[2:18, 2:18]
    np.testing.assert_array_equal(tile, gray[0])  # pixels survive the tiling unchanged
    rgb = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    assert F.image_grid(rgb, tmp_path / "rgb.png", nrow=3).stat().st_size > 0
    with pytest.raises(ValueError):
        F.image_grid(gray.astype(float), tmp_path / "bad.png")
