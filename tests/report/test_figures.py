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


def test_bar_labels_sit_clear_of_error_bars() -> None:
    # wide CIs (a rare class) are where labels drawn inside the bar used to cross the error bar
    base = {"accuracy": (0.80, 0.70, 0.90), "f1/bot": (0.40, 0.05, 0.75)}
    aug = {"accuracy": (0.85, 0.78, 0.92), "f1/bot": (0.55, 0.20, 1.0)}
    fig = F.metric_bars_figure(base, aug, ["accuracy", "f1/bot"])
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text()]
    assert sorted(t.get_text() for t in labels) == ["0.40", "0.55", "0.80", "0.85"]
    segments = [ax.transData.transform(seg) for c in ax.collections for seg in c.get_segments()]
    assert len(segments) == 4  # one vertical error bar per bar
    for text in labels:
        box = text.get_window_extent()
        for (x0, y0), (x1, y1) in segments:
            crosses_x = box.x0 <= x0 <= box.x1
            crosses_y = min(y0, y1) <= box.y1 and max(y0, y1) >= box.y0
            assert not (crosses_x and crosses_y), text.get_text()
        assert box.y1 <= ax.get_window_extent().y1  # inside the axes, even above a CI reaching 1.0


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


def test_tile_images_layout() -> None:
    images = np.arange(1, 6, dtype=np.uint8)[:, None, None] * np.ones((5, 2, 3), np.uint8)
    grid = F.tile_images(images, nrow=3, padding=1, pad_value=0)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1)
    assert grid[1, 1] == 1 and grid[1, 5] == 2 and grid[4, 5] == 5  # row-major, second row starts at image 4
    assert grid[4, 9] == 0 and grid[0].max() == 0  # the empty sixth slot and the border are padding


def test_image_panels_left_to_right(tmp_path: Path) -> None:
    dark, light = np.zeros((1, 8, 8), np.uint8), np.full((1, 8, 8), 255, np.uint8)  # one tile: no padding mid-panel
    path = F.plot_image_panels({"real": dark, "generated": light}, tmp_path / "panels.png", nrow=2)
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"), dtype=float)
    middle = grey[grey.shape[0] // 2]
    half = len(middle) // 2
    # the first panel (dark images) is drawn on the left, the second (light) on the right
    assert np.mean(middle[:half] < 60) > 0.2 and np.mean(middle[half:] < 60) < 0.05


def test_synth_figures_draw_through_the_report_layer(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from sonogan.synth import figures as S

    images = torch.linspace(-1, 1, 4 * 8 * 8).view(4, 1, 8, 8)
    path = S.save_grid(images, tmp_path / "grid.png", nrow=2)
    with Image.open(path) as im:
        tile = np.asarray(im)[2:10, 2:10]
    np.testing.assert_array_equal(tile, S.to_uint8(images)[0])
    assert S.to_uint8(torch.zeros(2, 3, 4, 4)).shape == (2, 4, 4, 3)
    _is_png(S.save_final_vs_real(images, -images, tmp_path / "fvr.png", nrow=2, title="dcgan"))
    history = [{"iteration": i, "d_loss": 1.0 / i, "g_loss": 0.5} for i in (1, 2, 3)]
    width, _ = _is_png(S.save_loss_curves(history, tmp_path / "loss.png", [{"iteration": 3, "fd": 2.0}]))
    assert width > 1000  # the stopping-rule panel beside the losses
