"""The mask-shape CNN classifies from the outline alone."""

from __future__ import annotations

import numpy as np
import torch

from sonogan.models.mask_classifier import MaskShapeCNN, masks_to_input


def test_mask_input_is_resized_and_centred() -> None:
    masks = np.zeros((2, 128, 128), bool)
    masks[0] = True
    x = masks_to_input(masks)
    assert x.shape == (2, 1, 64, 64)
    assert float(x[0].min()) == 0.5 and float(x[1].max()) == -0.5


def test_it_learns_round_from_elongated() -> None:
    torch.manual_seed(0)
    yy, xx = np.mgrid[:64, :64]
    round_ = ((yy - 32) ** 2 + (xx - 32) ** 2) < 15 ** 2
    long_ = (((yy - 32) / 6.0) ** 2 + ((xx - 32) / 25.0) ** 2) < 1
    x = masks_to_input(np.stack([round_, long_] * 8))
    y = torch.tensor([0, 1] * 8)
    model = MaskShapeCNN(num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model.eval()(x).argmax(1) == y).all()
