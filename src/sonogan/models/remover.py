"""The annotation remover (a U-Net denoising autoencoder with skip connections), its weighted
MSE loss, the annotation detector, and their one checkpoint file. Here in models/ (not in
annotations/, which trains and scores it) because preprocessing runs it
(:mod:`sonogan.preprocess.remove_annotations`) and sits above models/.

``001_*`` §3.1: a plain convolutional autoencoder lost high frequencies and contrast, so the
remover is a U-Net (MONAI's or segmentation-models-pytorch's, behind :data:`REMOVERS`). The
loss weights the annotated pixels ``alpha`` (300) and the rest ``beta`` (1), so the few
pixels that matter are not drowned by the many that are already right; an SSIM term is
optional (the thesis found it added nothing). The detector is a small classifier from
:data:`sonogan.models.classifiers.CLASSIFIERS` (2 classes: clean, annotated) trained on the
same pairs, so the preprocessing step can leave clean images untouched.

Example:
    >>> import torch
    >>> net = create_remover("monai-unet", channels=1, features=(4, 8, 16))
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
    >>> p, t = torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 2.0]]]])
    >>> float(weighted_mse(p, t, torch.tensor([[[[1.0, 0.0]]]]), alpha=3.0, beta=1.0))  # (3*1 + 1*4) / 4
    1.75
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

import sonogan
from sonogan.config import StrictModel
from sonogan.errors import SonoganInputError
from sonogan.models.classifiers import create_classifier
from sonogan.registry import Registry
from sonogan.torch_utils import atomic_torch_save, load_torch_file

REMOVERS: Registry[nn.Module] = Registry("annotation remover")
FORMAT = "sonogan-annotation-remover"
FORMAT_VERSION = 1


class Remover(nn.Module):
    """A U-Net whose output is the clean image in [0, 1].

    ``residual``: the net predicts the correction added to its input, scaled by a learnable
    gain that starts at 0 (ReZero, Bachlechner et al. 2020): on the ~99 % of pixels without
    marks the answer is the input itself, which this net gives from its first step instead of
    learning it (what lets a few CPU minutes of training already help).
    ``gated``: one more output channel, a per-pixel gate ``g`` (trained to find the marks, see
    :class:`AnnotationLoss`); the result is ``x + sigmoid(g) * (fill - x)``, so where the gate
    is shut every input pixel is kept exactly instead of being re-synthesised (and blurred)."""

    def __init__(self, net: nn.Module, channels: int, residual: bool = True, gated: bool = False) -> None:
        super().__init__()
        self.net, self.channels, self.residual, self.gated = net, channels, residual, gated
        self.gain = nn.Parameter(torch.zeros(1)) if residual else None

    def restore(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(restored image, gate logits or None)."""
        out = self.net(x)
        d, gate = (out[:, :self.channels], out[:, self.channels:]) if self.gated else (out, None)
        fill = x + self.gain * d if self.gain is not None else d
        return (fill if gate is None else x + torch.sigmoid(gate) * (fill - x)), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restore(x)[0]


@REMOVERS.register("monai-unet")
def _monai_unet(channels: int = 3, features: tuple[int, ...] = (16, 32, 64, 128), residual: bool = True,
                gated: bool = False, num_res_units: int = 1) -> nn.Module:
    from monai.networks.nets import UNet  # imported on use: MONAI is slow to import

    net = UNet(spatial_dims=2, in_channels=channels, out_channels=channels + int(gated), channels=tuple(features),
               strides=(2,) * (len(features) - 1), num_res_units=num_res_units)
    return Remover(net, channels, residual, gated)


@REMOVERS.register("smp-unet")
def _smp_unet(channels: int = 3, encoder: str = "resnet18", depth: int = 4, residual: bool = True,
              gated: bool = False) -> nn.Module:
    import segmentation_models_pytorch as smp  # imported on use, as MONAI above: slow to import

    decoder = (256, 128, 64, 32, 16)[5 - depth:]
    net = smp.Unet(encoder_name=encoder, encoder_weights=None, encoder_depth=depth, in_channels=channels,
                   classes=channels + int(gated), decoder_channels=decoder)
    return Remover(net, channels, residual, gated)


def create_remover(name: str, channels: int = 3, **kwargs: Any) -> nn.Module:
    """A registered remover (SonoganInputError listing the names if unknown)."""
    return REMOVERS.create(name, channels=channels, **kwargs)


def create_detector(name: str = "frid-adar-cnn", channels: int = 3, **kwargs: Any) -> nn.Module:
    """The annotation detector: a registered classifier with 2 outputs (0 clean, 1 annotated)."""
    return create_classifier(name, num_classes=2, in_chans=channels, **kwargs)


def annotation_weights(mask: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """The thesis's ``w = alpha * M + beta * (1 - M)`` for a 0/1 annotation mask."""
    return alpha * mask + beta * (1 - mask)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, alpha: float = 300.0,
                 beta: float = 1.0) -> torch.Tensor:
    """``sum(w * (target - pred)^2) / sum(w)`` (``001_*`` eq. 1). ``mask`` is (N,1,H,W) or
    (N,C,H,W), 1 = annotated; with several channels each channel counts once (a mean over them)."""
    w = annotation_weights(mask, alpha, beta).expand_as(pred)
    return (w * (target - pred) ** 2).sum() / w.sum()


class LossConfig(StrictModel):
    alpha: float = Field(300.0, gt=0, description="weight of annotated pixels (the thesis's final value)")
    beta: float = Field(1.0, gt=0, description="weight of the other pixels")
    mse_weight: float = Field(1.0, ge=0, description="lambda_MSE")
    ssim_weight: float = Field(0.0, ge=0, description="lambda_SSIM of 1 - SSIM (MONAI); 0 = off, as in the thesis")
    gate_weight: float = Field(1.0, ge=0, description="weight of the gate's binary cross-entropy against the "
                                                     "annotation mask (gated removers only)")


class AnnotationLoss(nn.Module):
    """``lambda_MSE * weighted_mse + lambda_SSIM * (1 - SSIM)`` between prediction and clean
    image, plus ``gate_weight * BCE(gate, M)`` when a gated remover passes its gate logits."""

    def __init__(self, cfg: LossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LossConfig()
        self.ssim: nn.Module | None = None
        if self.cfg.ssim_weight > 0:
            from monai.losses import SSIMLoss  # imported on use: MONAI is slow to import

            self.ssim = SSIMLoss(spatial_dims=2, data_range=1.0)

    def forward(self, pred: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor,
                gate_logits: torch.Tensor | None = None) -> torch.Tensor:
        loss = self.cfg.mse_weight * weighted_mse(pred, clean, mask, self.cfg.alpha, self.cfg.beta)
        if self.ssim is not None:
            loss = loss + self.cfg.ssim_weight * self.ssim(pred, clean)
        if gate_logits is not None and self.cfg.gate_weight > 0:
            loss = loss + self.cfg.gate_weight * nn.functional.binary_cross_entropy_with_logits(gate_logits, mask)
        return loss


class RemoverConfig(StrictModel):
    """The remover and detector nets and the image size they work at."""

    model: str = Field("monai-unet", description="registered remover (REMOVERS)")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="e.g. features: [16, 32, 64, 128]")
    residual: bool = True
    gated: bool = Field(False, description="add a per-pixel gate trained on the annotation mask (keeps unmarked pixels)")
    channels: Literal[1, 3] = Field(3, description="3 keeps coloured marks (yellow callipers) distinct")
    size: int = Field(128, ge=16, le=1024, description="images are resized (stretched) to size x size")
    detector: str = Field("frid-adar-cnn", description="registered classifier used as the detector")
    detector_kwargs: dict[str, Any] = Field(default_factory=lambda: {"widths": [16, 32, 64], "hidden": 64})


def build_nets(cfg: RemoverConfig) -> tuple[nn.Module, nn.Module]:
    """(remover, detector) as ``cfg`` describes them, freshly initialised."""
    kw = dict(cfg.model_kwargs)
    if "features" in kw:
        kw["features"] = tuple(kw["features"])
    det_kw = dict(cfg.detector_kwargs)
    if "widths" in det_kw:
        det_kw["widths"] = tuple(det_kw["widths"])
    return (create_remover(cfg.model, channels=cfg.channels, residual=cfg.residual, gated=cfg.gated, **kw),
            create_detector(cfg.detector, channels=cfg.channels, **det_kw))


def save_remover(path: str | Path, remover: nn.Module, detector: nn.Module, cfg: RemoverConfig,
                 extra: dict[str, Any] | None = None) -> Path:
    """One file with both state_dicts, the :class:`RemoverConfig` and free-form ``extra``
    (training config, data, iterations): it rebuilds its own nets."""
    blob = {"format": FORMAT, "format_version": FORMAT_VERSION, "sonogan_version": sonogan.__version__,
            "config": cfg.model_dump(mode="json"), "extra": dict(extra or {}),
            "remover": {k: v.detach().cpu().clone() for k, v in remover.state_dict().items()},
            "detector": {k: v.detach().cpu().clone() for k, v in detector.state_dict().items()}}
    return atomic_torch_save(blob, path)


def load_remover(path: str | Path) -> tuple[nn.Module, nn.Module, RemoverConfig, dict[str, Any]]:
    """(remover, detector, config, extra) from a file written by :func:`save_remover`, in eval mode."""
    fix = "pass a remover.pt written by 'sonogan annotations train'"
    blob = load_torch_file(path, "check the path, or train one with 'sonogan annotations train'", fix)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise SonoganInputError(path, "not a sonogan annotation-remover checkpoint", fix)
    if int(blob.get("format_version", 0)) > FORMAT_VERSION:
        raise SonoganInputError(path, f"format {blob['format_version']} is newer than this sonogan", "upgrade sonogan")
    cfg = RemoverConfig.model_validate(blob["config"])
    remover, detector = build_nets(cfg)
    remover.load_state_dict(blob["remover"])
    detector.load_state_dict(blob["detector"])
    return remover.eval(), detector.eval(), cfg, blob["extra"]
