"""The mask-shape classifier of Singh et al. (2020): a CNN whose only input is the binary lesion mask.

The segmenter's mask (post-processed) is downsampled to 64 x 64 and classified from its shape
alone: irregular, lobular, oval, round margins in the paper; here any class list. Four conv
blocks (conv 3x3, batch norm, ReLU, max-pool 2) and a dense layer with dropout, as the
paper's small shape CNN. It answers "how much does the outline alone tell?", the baseline
against which image and multitask models are read.

Example:
    >>> import torch
    >>> model = MaskShapeCNN(num_classes=4)
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 4])
    >>> import numpy as np
    >>> masks_to_input(np.ones((3, 128, 128), bool)).shape
    torch.Size([3, 1, 64, 64])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MASK_SIZE = 64


class MaskShapeCNN(nn.Module):
    """Binary mask (B, 1, 64, 64) -> class logits."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128), hidden: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for w in widths:
            layers += [nn.Conv2d(prev, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            prev = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(prev, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(mask))


def masks_to_input(masks: np.ndarray, size: int = MASK_SIZE) -> torch.Tensor:
    """Boolean (N, H, W) masks -> float (N, 1, size, size) in [-0.5, 0.5]: area resampling (a
    boundary pixel gets its lesion fraction), then centred so that lesion and background are
    symmetric inputs."""
    x = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x - 0.5
