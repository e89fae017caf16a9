"""Figures of a GAN run, drawn by :mod:`sonogan.report.figures` (the one drawing layer):
fixed-noise sample grids, real-beside-generated panels, loss curves.

Generator output is a tensor in [-1, 1]; :func:`to_uint8` turns it into the uint8 images
the report layer tiles.

Example:
    >>> import torch
    >>> to_uint8(torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)).ravel().tolist()
    [0, 128, 255]
    >>> save_grid(torch.zeros(4, 1, 8, 8), "grid.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sonogan.report.figures import FINAL_VS_REAL_PANELS, image_grid, new_figure, plot_image_panels, save_figure


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W) for one channel, else (N, H, W, C)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Generator samples in [-1, 1] as one PNG grid, ``nrow`` per row."""
    return image_grid(to_uint8(images), path, nrow=nrow)


def save_final_vs_real(fake: torch.Tensor, real: torch.Tensor, path: str | Path, nrow: int = 6,
                       title: str = "") -> Path:
    """Two panels: real training images (left) and generated images (right)."""
    real_name, fake_name = FINAL_VS_REAL_PANELS
    return plot_image_panels({real_name: to_uint8(real), fake_name: to_uint8(fake)}, path, nrow=nrow, title=title)


def save_loss_curves(history: list[dict], path: str | Path, quality: list[dict] | None = None) -> Path:
    """D and G losses over iterations (+ the stopping-rule distance on a second panel)."""
    n = 2 if quality else 1
    fig = new_figure(6 * n, 4)
    ax = fig.add_subplot(1, n, 1)
    it = [h["iteration"] for h in history]
    ax.plot(it, [h["d_loss"] for h in history], label="D")
    ax.plot(it, [h["g_loss"] for h in history], label="G")
    ax.set(xlabel="iteration", ylabel="loss")
    ax.legend()
    if quality:
        ax = fig.add_subplot(1, n, 2)
        ax.plot([q["iteration"] for q in quality], [q["fd"] for q in quality], marker="o")
        ax.set(xlabel="iteration", ylabel="feature Fréchet distance (lower is better)")
    return save_figure(fig, path)
