"""Seeded classic augmentation on batched tensors (rotation, flips, translation, scale).

torchvision's random v2 transforms draw their parameters from torch's global RNG, which we
never use; so the parameters are drawn here from a ``torch.Generator`` the caller owns and
applied with torchvision's deterministic functional ops. Same generator state => same batch.
Empty corners left by rotation / shifts are filled with each image's minimum, i.e. the black
ultrasound background (images are z-scored, so 0 would be mid-grey).

Example:
    >>> import torch
    >>> from sonogan.train.config import AugmentConfig
    >>> g = torch.Generator().manual_seed(0)
    >>> augment_batch(torch.zeros(4, 1, 64, 64), AugmentConfig.frid_adar(), g).shape
    torch.Size([4, 1, 64, 64])
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

from sonogan.train.config import AugmentConfig


def sample_params(n: int, cfg: AugmentConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image parameters: angle (deg), shift (fraction, 2), scale, hflip, vflip; all (n,) or (n, 2).

    Every draw happens whatever the config, so turning one op on or off does not change the
    random numbers the other ops see.
    """
    u = torch.rand(n, 7, generator=generator, dtype=torch.float64)
    lo, hi = cfg.scale
    return {
        "angle": (2 * u[:, 0] - 1) * cfg.rotation,
        "shift": (2 * u[:, 1:3] - 1) * cfg.translate,
        "scale": lo + u[:, 3] * (hi - lo),
        "hflip": (u[:, 4] < 0.5) & cfg.hflip,
        "vflip": (u[:, 5] < 0.5) & cfg.vflip,
    }


def apply_params(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply sampled parameters to x (N, C, H, W): flips (vectorised), then one affine per image."""
    dev = x.device
    x = torch.where(params["hflip"].to(dev)[:, None, None, None], x.flip(-1), x)
    x = torch.where(params["vflip"].to(dev)[:, None, None, None], x.flip(-2), x)
    h, w = x.shape[-2:]
    out = []
    for i in range(x.shape[0]):  # the functional affine takes one parameter set per call
        angle, scale = float(params["angle"][i]), float(params["scale"][i])
        dx, dy = float(params["shift"][i, 0]) * w, float(params["shift"][i, 1]) * h
        if angle == 0.0 and scale == 1.0 and dx == 0.0 and dy == 0.0:
            out.append(x[i])
            continue
        fill = [float(v) for v in x[i].amin(dim=(-2, -1))]
        out.append(TF.affine(x[i], angle=angle, translate=[dx, dy], scale=scale, shear=[0.0, 0.0],
                             interpolation=TF.InterpolationMode.BILINEAR, fill=fill))
    return torch.stack(out)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment a batch (N, C, H, W) on its own device; returns x unchanged when no op is set."""
    if not cfg.active or x.shape[0] == 0:
        return x
    return apply_params(x, sample_params(x.shape[0], cfg, generator))
