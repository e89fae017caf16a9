"""Report figures from plain arrays and dicts (never models); each returns the saved Path.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, not
through pyplot, so no global figure state leaks between calls or threads.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> y = np.array([0, 1, 2, 1]); p = np.eye(3)[[0, 1, 2, 0]] * 0.8 + 0.1
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "roc.png"
    >>> plot_roc_curves(y, p, ["benign", "malignant", "bot"], out, "ROC").name
    'roc.png'
    >>> tile_images(np.zeros((5, 4, 4), np.uint8), nrow=3, padding=1).shape   # 2 rows of 3 tiles
    (11, 16)
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from sklearn.manifold import TSNE
from sklearn.metrics import roc_auc_score, roc_curve

from sonogan.skipped import NotComputable

DPI = 120
# left to right in a GAN's final_vs_real.png (sonogan.synth.figures); report captions name the sides from it
FINAL_VS_REAL_PANELS = ("real (training)", "generated (EMA G)")


def new_figure(width: float = 5.5, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _colour(i: int) -> str:
    return f"C{i % 10}"


def plot_roc_curves(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "ROC curves (one-vs-rest)",
    y_prob_baseline: np.ndarray | None = None,
    arm_names: tuple[str, str] = ("augmented", "baseline"),
) -> Path:
    """One-vs-rest ROC per class with AUC in the legend (flagship Fig. 6).

    With ``y_prob_baseline`` both arms are overlaid: baseline dashed, main arm solid.
    Classes absent from ``y_true`` (or covering every case) are listed as "n/a".
    """
    y_true = np.asarray(y_true)
    fig = new_figure()
    ax = fig.add_subplot()
    arms = [(np.asarray(y_prob, dtype=float), arm_names[0], "-")]
    if y_prob_baseline is not None:
        arms.append((np.asarray(y_prob_baseline, dtype=float), arm_names[1], "--"))
    for c, name in enumerate(class_names):
        pos = y_true == c
        for prob, arm, style in arms:
            label = name if y_prob_baseline is None else f"{name}, {arm}"
            if not 0 < pos.sum() < len(pos):
                ax.plot([], [], style, color=_colour(c), label=f"{label} (AUC n/a)")
                continue
            fpr, tpr, _ = roc_curve(pos, prob[:, c])
            auc = roc_auc_score(pos, prob[:, c])
            ax.plot(fpr, tpr, style, color=_colour(c), lw=1.8, label=f"{label} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="1 - specificity (false positive rate)",
           ylabel="sensitivity (true positive rate)", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_confusion(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Confusion matrix heat map (rows = truth), cells show row share and count (Fig. 7)."""
    cm = np.asarray(cm, dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    shown = shares if normalize else cm
    fig = new_figure(4.8, 4.2)
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = (1 if normalize else cm.max()) / 2
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            text = f"{shares[i, j]:.2f}\n(n={int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if shown[i, j] > threshold else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=30, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set(xlabel="predicted", ylabel="true", title=title + (" (row-normalised)" if normalize else ""))
    return save_figure(fig, path)


def _point_and_err(value: float | Sequence[float], ci: Sequence[float] | None) -> tuple[float, float, float]:
    # accepts a bare number or a (point, low, high[, ...]) tuple as bootstrap_ci returns
    if isinstance(value, (tuple, list, np.ndarray)):
        point, low, high = (float(v) for v in value[:3])
    else:
        point, low, high = float(value), np.nan, np.nan
    if ci is not None:
        low, high = float(ci[0]), float(ci[1])
    return point, max(point - low, 0.0) if np.isfinite(low) else 0.0, max(high - point, 0.0) if np.isfinite(high) else 0.0


def metric_bars_figure(
    baseline: Mapping[str, float | Sequence[float]],
    augmented: Mapping[str, float | Sequence[float]],
    metric_names: Sequence[str],
    cis: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    arm_names: tuple[str, str] = ("baseline", "augmented"),
    title: str = "Baseline vs GAN-augmented",
) -> Figure:
    """Grouped bars, one pair per metric, with CI error bars (flagship Fig. 5).

    Values may be floats or ``(point, low, high)`` tuples from ``bootstrap_ci``;
    ``cis`` = ``{"baseline": {metric: (low, high)}, "augmented": {...}}`` overrides them.
    Each value is written just above its CI cap, where no error bar can cross it.
    """
    fig = new_figure(max(5.0, 1.1 * len(metric_names) + 2), 4.4)
    ax = fig.add_subplot()
    x = np.arange(len(metric_names))
    width = 0.38
    for k, (arm, values) in enumerate([(arm_names[0], baseline), (arm_names[1], augmented)]):
        key = "baseline" if k == 0 else "augmented"
        arm_cis = (cis or {}).get(key, {})
        stats = [_point_and_err(values[m], arm_cis.get(m)) for m in metric_names]
        points = np.array([s[0] for s in stats])
        err = np.array([[s[1] for s in stats], [s[2] for s in stats]])
        centres = x + (k - 0.5) * width
        ax.bar(centres, points, width, yerr=err, capsize=3, color=_colour(k), alpha=0.85, label=arm)
        for cx, top, point in zip(centres, points + err[1], points):
            ax.text(cx, top + 0.015, f"{point:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, labels=list(metric_names), rotation=30, ha="right")
    ax.set(ylim=(0, 1.15), ylabel="score")
    ax.set_title(title, loc="left")
    # above the axes, so the legend never hides a bar or its label
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    return fig


def plot_metric_bars(
    baseline: Mapping[str, float | Sequence[float]],
    augmented: Mapping[str, float | Sequence[float]],
    metric_names: Sequence[str],
    path: str | Path,
    cis: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    arm_names: tuple[str, str] = ("baseline", "augmented"),
    title: str = "Baseline vs GAN-augmented",
) -> Path:
    """:func:`metric_bars_figure` saved as a PNG."""
    return save_figure(metric_bars_figure(baseline, augmented, metric_names, cis, arm_names, title), path)


def plot_loss_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path,
                     title: str = "Training curves") -> Path:
    """One panel per series name (e.g. ``train_loss``, ``val_loss``), one line per run."""
    series = sorted({name for history in histories.values() for name in history})
    if not series:
        raise ValueError("histories contain no series to plot")
    fig = new_figure(4.2 * len(series), 3.6)
    for s, name in enumerate(series):
        ax = fig.add_subplot(1, len(series), s + 1)
        for r, (run, history) in enumerate(histories.items()):
            values = history.get(name)
            if values is not None and len(values):
                ax.plot(np.arange(1, len(values) + 1), values, color=_colour(r), label=run)
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_sweep(
    xs: Sequence[float],
    ys_by_metric: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str = "synthetic images added per fold",
    title: str = "Performance vs number of synthetic images",
) -> Path:
    """Metric mean +- SD against the sweep variable (Frid-Adar et al. Fig. 8)."""
    xs = np.asarray(xs, dtype=float)
    fig = new_figure(5.5, 4.0)
    ax = fig.add_subplot()
    for i, (name, (mean, sd)) in enumerate(ys_by_metric.items()):
        mean = np.asarray(mean, dtype=float)
        sd = np.nan_to_num(np.asarray(sd, dtype=float))
        ax.plot(xs, mean, "o-", color=_colour(i), label=name)
        ax.fill_between(xs, mean - sd, mean + sd, color=_colour(i), alpha=0.2)
    ax.set(xlabel=xlabel, ylabel="score (mean ± SD across folds)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_reliability(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path,
                     title: str = "Reliability, hold-out test") -> Path:
    """Top-label reliability diagram: bin accuracy against bin confidence per curve (diagonal =
    perfectly calibrated), and the images per bin below."""
    fig = new_figure(5.0, 5.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    for i, (name, (conf, acc, counts)) in enumerate(curves.items()):
        keep = np.asarray(counts) > 0
        top.plot(np.asarray(conf)[keep], np.asarray(acc)[keep], "o-", color=_colour(i), label=name)
        edges = np.linspace(0, 1, len(counts) + 1)
        bottom.step(edges[:-1], counts, where="post", color=_colour(i))
    top.set(ylabel="accuracy", title=title, xlim=(0, 1), ylim=(0, 1))
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    bottom.set(xlabel="confidence (top class)", ylabel="images")
    return save_figure(fig, path)


def tsne_embedding(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D sklearn t-SNE of (N, D) features; perplexity shrunk for small N (must be < N, and at
    least 2, so N >= 3: fewer points raise :class:`~sonogan.skipped.NotComputable`)."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 3:
        raise NotComputable(f"t-SNE needs at least 3 points (perplexity 2 must be below their number), "
                            f"got {len(features)}")
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def plot_tsne(
    features: np.ndarray,
    labels: np.ndarray,
    is_synthetic: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    seed: int = 0,
    title: str = "t-SNE of classifier features",
) -> Path:
    """t-SNE scatter, colour = class, dots = real, crosses = synthetic (Frid-Adar Fig. 9)."""
    labels = np.asarray(labels)
    is_synthetic = np.asarray(is_synthetic, dtype=bool)
    if not len(labels) == len(is_synthetic) == len(features):
        raise ValueError("features, labels and is_synthetic need the same length")
    xy = tsne_embedding(features, seed)
    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    for c, name in enumerate(class_names):
        real = (labels == c) & ~is_synthetic
        synth = (labels == c) & is_synthetic
        if real.any():
            ax.scatter(xy[real, 0], xy[real, 1], s=14, marker="o", color=_colour(c), label=f"{name} real")
        if synth.any():
            ax.scatter(xy[synth, 0], xy[synth, 1], s=22, marker="x", color=_colour(c), label=f"{name} synthetic")
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(fontsize=8, markerscale=1.2)
    return save_figure(fig, path)


def tile_images(images: np.ndarray, nrow: int = 8, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile uint8 images (N, H, W) or (N, H, W, C) into one array, ``nrow`` per row, with
    ``padding`` pixels of ``pad_value`` around every tile (torchvision's make_grid layout)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"tile_images needs uint8 (N,H,W[,C]) images, got {images.dtype} {images.shape}")
    n, h, w = images.shape[:3]
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, *images.shape[3:]),
                   pad_value, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[top:top + h, left:left + w] = image
    return grid


def image_grid(images: np.ndarray, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """The one grid writer: tile uint8 images (N, H, W) or (N, H, W, C) into one PNG."""
    grid = tile_images(images, nrow, padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if grid.ndim == 3 and grid.shape[2] == 1 else grid).save(path)
    return path


def plot_image_panels(panels: Mapping[str, np.ndarray], path: str | Path, nrow: int = 6, title: str = "") -> Path:
    """Image grids side by side, left to right in ``panels`` order, each titled by its key."""
    fig = new_figure(5.0 * len(panels), 5.4)
    for k, (name, images) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(tile_images(images, nrow), cmap="gray", vmin=0, vmax=255)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
