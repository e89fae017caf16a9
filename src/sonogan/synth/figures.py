"""Figures of a GAN run: sample grids, loss curves, generated-vs-real panel.

Example:
    >>> import torch
    >>> save_grid(torch.zeros(4, 1, 8, 8), "grid.png")  # doctest: +SKIP
    >>> save_loss_curves([{"iteration": 50, "d_loss": 1.2, "g_loss": 0.8}], "loss_curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


def grid_array(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (H', W', 3) grid."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return make_grid(x, nrow=nrow, padding=padding, pad_value=255).permute(1, 2, 0).numpy()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid_array(images, nrow)).save(path)
    return path


def save_final_vs_real(fake: torch.Tensor, real: torch.Tensor, path: str | Path, nrow: int = 6,
                       title: str = "") -> Path:
    """Two panels: real training images (left) and generated images (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4))
    for ax, imgs, name in zip(axes, (real, fake), ("real (training)", "generated (EMA G)")):
        ax.imshow(grid_array(imgs, nrow))
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_loss_curves(history: list[dict], path: str | Path, quality: list[dict] | None = None) -> Path:
    """D and G losses over iterations (+ the stopping-rule distance on a second panel)."""
    n = 2 if quality else 1
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), squeeze=False)
    it = [h["iteration"] for h in history]
    axes[0, 0].plot(it, [h["d_loss"] for h in history], label="D")
    axes[0, 0].plot(it, [h["g_loss"] for h in history], label="G")
    axes[0, 0].set_xlabel("iteration")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend()
    if quality:
        axes[0, 1].plot([q["iteration"] for q in quality], [q["fd"] for q in quality], marker="o")
        axes[0, 1].set_xlabel("iteration")
        axes[0, 1].set_ylabel("feature Fréchet distance (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
