"""Seeded classic augmentation on batched tensors (rotation, flips, translation, scale), of
images alone or of images with their lesion masks (:func:`augment_pair`).

torchvision's random v2 transforms draw their parameters from torch's global RNG, which we
never use; so the parameters are drawn here from a ``torch.Generator`` the caller owns and
applied in one batched ``affine_grid`` / ``grid_sample`` call on the tensor's own device.
Same generator state => same batch.
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


def affine_matrices(params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """(N, 2, 3) ``affine_grid`` matrices: output -> input sampling for rotate + scale + shift.

    The forward map is ``p_out = s * R(angle) p_in + shift`` in pixel units about the image
    centre; ``affine_grid`` wants its inverse in normalised [-1, 1] coordinates, so the
    inverse is conjugated with ``D = diag(W/2, H/2)`` (keeps rotations right on non-square images).
    """
    rad = torch.deg2rad(params["angle"])
    cos, sin, inv_s = torch.cos(rad), torch.sin(rad), 1.0 / params["scale"]
    # inverse rotation / scale in pixel units: (1/s) R(-angle)
    a, b, c, d = cos * inv_s, sin * inv_s, -sin * inv_s, cos * inv_s
    sx, sy = width / 2.0, height / 2.0
    # D^-1 M D for the 2x2 part; translation: -(1/s) R^-1 t, t in pixels, then / D
    tx = params["shift"][:, 0] * width
    ty = params["shift"][:, 1] * height
    theta = torch.stack([
        torch.stack([a, b * sy / sx, -(a * tx + b * ty) / sx], dim=1),
        torch.stack([c * sx / sy, d, -(c * tx + d * ty) / sy], dim=1),
    ], dim=1)
    return theta


def apply_params(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply sampled parameters to x (N, C, H, W): flips, then one batched affine resampling.

    Hand-written with ``affine_grid`` / ``grid_sample`` rather than torchvision's
    ``functional.affine``, which takes one parameter set per call: looping over images cost
    ~10 ms per 64x64 image on a CPU, the batched form is one call on any device.
    """
    dev = x.device
    x = torch.where(params["hflip"].to(dev)[:, None, None, None], x.flip(-1), x)
    x = torch.where(params["vflip"].to(dev)[:, None, None, None], x.flip(-2), x)
    if not ((params["angle"] != 0).any() or (params["shift"] != 0).any() or (params["scale"] != 1).any()):
        return x  # flips only: skip resampling, which would add rounding noise
    h, w = x.shape[-2:]
    theta = affine_matrices(params, h, w).to(device=dev, dtype=x.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    # sample (x - min) with zero padding, then add min back: outside pixels get the image minimum
    low = x.amin(dim=(-2, -1), keepdim=True)
    return torch.nn.functional.grid_sample(x - low, grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=False) + low


def apply_intensity(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-image brightness (a shift of up to ``brightness`` in normalised units, i.e. about that
    many standard deviations) and contrast about the image mean, as scanner gain varies.
    Drawn after the geometric parameters and only when set, so configs without them keep
    exactly the random streams they had."""
    u = torch.rand(x.shape[0], 2, generator=generator, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    shift = (2 * u[:, 0] - 1) * cfg.brightness
    contrast = 1 + (2 * u[:, 1] - 1) * cfg.contrast
    mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    return (x - mean) * contrast[:, None, None, None] + mean + shift[:, None, None, None]


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment a batch (N, C, H, W) on its own device; returns x unchanged when no op is set."""
    if not cfg.active or x.shape[0] == 0:
        return x
    x = apply_params(x, sample_params(x.shape[0], cfg, generator))
    return apply_intensity(x, cfg, generator) if cfg.intensity else x


def augment_pair(image: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flips / rotation / shift / scale on images and masks (one resampling of
    both, stacked as channels); the mask is re-binarised at 0.5. Intensity ops touch the image only."""
    if not cfg.active or image.shape[0] == 0:
        return image, mask
    both = apply_params(torch.cat([image, mask], dim=1), sample_params(image.shape[0], cfg, gen))
    image, mask = both[:, :-1], (both[:, -1:] > 0.5).float()
    return (apply_intensity(image, cfg, gen) if cfg.intensity else image), mask


def augment_fields(batch: dict[str, torch.Tensor], cfg: AugmentConfig,
                   gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch dict with its ``"image"`` augmented, and its ``"mask"`` moved with it when it has one."""
    if "mask" in batch:
        image, mask = augment_pair(batch["image"], batch["mask"], cfg, gen)
        return {**batch, "image": image, "mask": mask}
    return {**batch, "image": augment_batch(batch["image"], cfg, gen)}
