"""Lesion segmenters behind one registry, the cGAN segmenter's discriminator, and mask clean-up.

Every :data:`SEGMENTERS` entry builds a :class:`Backbone`: an ``encoder`` (image -> list of
feature maps, finest first) and a ``decoder`` (that list -> (B, 1, H, W) mask logits). The
split is what lets the multitask and classification-only models (:mod:`sonogan.models.multitask`)
put the SAME classification head on the SAME pooled encoder features.

- ``unet``: the classic U-Net (MONAI's ``BasicUNet``: two 3x3 conv + norm + activation blocks
  per level, max-pooling down, transposed convolutions up, skip connections).
- ``cgan-unet``: the same U-Net with dropout after its three deepest decoder levels: the noise
  ``z`` of the cGAN segmenter of Singh et al. (2020), trained adversarially by the
  ``cgan-segmentation`` task against :class:`MaskDiscriminator`.
- ``efficientnet-liteN-unet``: smp's U-Net decoder on timm's ``tf_efficientnet_liteN``
  encoder; ``pretrained=True`` loads the offline ImageNet weights of
  :mod:`sonogan.models.pretrained` into the encoder (nothing is downloaded).

:func:`postprocess_mask` is the cGAN paper's morphological clean-up (closing 3x3, erosion 2x2,
dilation 3x3) followed by keeping the largest connected component.

Example:
    >>> import torch
    >>> net = create_segmenter("unet", in_chans=1, width=8)
    >>> [f.shape[1] for f in net.encoder(torch.zeros(1, 1, 32, 32))]
    [8, 8, 16, 32, 64]
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import segmentation_models_pytorch as smp
import torch
from monai.networks.nets import BasicUNet
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.models.pretrained import LITE_VARIANTS, WEIGHTS, create_efficientnet_lite
from sonogan.registry import Registry

SEGMENTERS: Registry["Backbone"] = Registry("segmenter")


class Backbone(nn.Module):
    """Encoder (x -> feature maps, finest first) + decoder (features -> mask logits).

    ``channels`` are the encoder's output channels; ``pooled`` how many of the deepest maps a
    classification head pools by default; ``divisor`` what the input side must be a multiple of.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module | None, channels: list[int], pooled: int,
                 divisor: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.channels = list(channels)
        self.pooled = pooled
        self.divisor = divisor

    def check_input(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise SonoganInputError("segmenter", f"input {h}x{w} px is not a multiple of {self.divisor}",
                                    f"use an image size divisible by {self.divisor}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.decoder is None:
            raise SonoganInputError("segmenter", "this model has no decoder (classification only)",
                                    "build it with a segmentation output")
        self.check_input(x)
        return self.decoder(self.encoder(x))


class _UNetEncoder(nn.Module):
    """The down path of a MONAI BasicUNet (its own blocks, called in its own order)."""

    def __init__(self, net: BasicUNet) -> None:
        super().__init__()
        self.conv_0, self.down_1, self.down_2, self.down_3, self.down_4 = (
            net.conv_0, net.down_1, net.down_2, net.down_3, net.down_4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.conv_0(x)]
        for down in (self.down_1, self.down_2, self.down_3, self.down_4):
            feats.append(down(feats[-1]))
        return feats


class _UNetDecoder(nn.Module):
    """The up path of a MONAI BasicUNet; optional dropout after its three deepest levels."""

    def __init__(self, net: BasicUNet, dropout: float) -> None:
        super().__init__()
        self.upcat_4, self.upcat_3, self.upcat_2, self.upcat_1 = net.upcat_4, net.upcat_3, net.upcat_2, net.upcat_1
        self.final_conv = net.final_conv
        # F.dropout2d rather than nn.Dropout2d: no parameters, so a checkpoint's keys do not
        # depend on the dropout setting
        self.dropout = dropout

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x0, x1, x2, x3, x4 = feats
        u = x4
        for up, skip in ((self.upcat_4, x3), (self.upcat_3, x2), (self.upcat_2, x1)):
            u = nn.functional.dropout2d(up(u, skip), self.dropout, self.training)
        return self.final_conv(self.upcat_1(u, x0))


@SEGMENTERS.register("unet")
def _unet(in_chans: int = 1, pretrained: bool = False, width: int = 32, decoder_dropout: float = 0.0,
          **_: Any) -> Backbone:
    if pretrained:
        raise SonoganInputError("segmenter 'unet'", "no pretrained weights exist for the classic U-Net",
                                "set pretrained: false, or use efficientnet-lite0-unet")
    w = int(width)
    net = BasicUNet(spatial_dims=2, in_channels=in_chans, out_channels=1, features=(w, w, 2 * w, 4 * w, 8 * w, w))
    # the thesis's U-Net head pools the last two encoder blocks (its Figure 7)
    return Backbone(_UNetEncoder(net), _UNetDecoder(net, decoder_dropout), [w, w, 2 * w, 4 * w, 8 * w], 2, 16)


@SEGMENTERS.register("cgan-unet")
def _cgan_unet(in_chans: int = 1, pretrained: bool = False, width: int = 32, decoder_dropout: float = 0.5,
               **kw: Any) -> Backbone:
    # pix2pix's dropout rate; it is the generator's only source of noise, as in the cGAN paper
    return _unet(in_chans=in_chans, pretrained=pretrained, width=width, decoder_dropout=decoder_dropout)


class _SmpDecoder(nn.Module):
    """smp's U-Net decoder and segmentation head as one module (features -> logits)."""

    def __init__(self, net: smp.Unet) -> None:
        super().__init__()
        self.decoder, self.head = net.decoder, net.segmentation_head

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.head(self.decoder(feats))


def load_lite_into_encoder(encoder: nn.Module, name: str, in_chans: int) -> None:
    """Copy the offline ImageNet weights of ``name`` into smp's timm-universal encoder.

    The encoder wraps timm's features-only EfficientNet, whose tensors have the full model's
    names minus the head; every encoder tensor must be filled.
    """
    full = create_efficientnet_lite(name, num_classes=1000, in_chans=in_chans, pretrained=True).state_dict()
    target = encoder.model.state_dict()
    missing = [k for k in target if k not in full or full[k].shape != target[k].shape]
    if missing:
        raise SonoganInputError(WEIGHTS[name].package, f"no ImageNet tensor for encoder key '{missing[0]}'",
                                "install timm as pinned in pyproject.toml")
    encoder.model.load_state_dict({k: full[k] for k in target})


def _lite_unet_factory(name: str) -> Any:
    def factory(in_chans: int = 1, pretrained: bool = False, decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
                **_: Any) -> Backbone:
        # decoder_channels: smp's default; a narrower decoder is what makes CPU training affordable
        net = smp.Unet(f"tu-{WEIGHTS[name].timm_name}", encoder_weights=None, in_channels=in_chans, classes=1,
                       decoder_channels=tuple(decoder_channels))
        if pretrained:
            load_lite_into_encoder(net.encoder, name, in_chans)
        # smp's list starts with the input itself (identity stage); heads pool the deepest map
        return Backbone(net.encoder, _SmpDecoder(net), list(net.encoder.out_channels), 1, 32)
    return factory


for _name in LITE_VARIANTS:
    SEGMENTERS.register(f"{_name}-unet")(_lite_unet_factory(_name))


def create_segmenter(name: str, in_chans: int = 1, pretrained: bool = False, **kw: Any) -> Backbone:
    """Build a registered segmenter backbone; ``kw`` goes to its factory (e.g. ``width``)."""
    if in_chans not in (1, 3):
        raise SonoganInputError(f"segmenter '{name}'", f"in_chans={in_chans}", "use 1 (grayscale) or 3 (RGB)")
    return SEGMENTERS.create(name, in_chans=in_chans, pretrained=pretrained, **kw)


class MaskDiscriminator(nn.Module):
    """The cGAN segmenter's conditional discriminator: is this mask the true one for this image?

    Input: the image and a mask (probabilities) stacked as channels; four stride-2 conv
    blocks (LeakyReLU 0.2, batch norm after the first) and a 1-channel conv give a grid of
    real/fake logits, one per image patch (pix2pix's PatchGAN, the cGAN paper's D).
    """

    def __init__(self, in_chans: int = 1, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans + 1
        for i, mult in enumerate((1, 2, 4, 8)):
            layers += [nn.Conv2d(prev, width * mult, 4, stride=2, padding=1)]
            if i:
                layers.append(nn.BatchNorm2d(width * mult))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            prev = width * mult
        layers.append(nn.Conv2d(prev, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, mask], dim=1))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component of a boolean (H, W) mask (empty stays empty)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def postprocess_mask(mask: np.ndarray, largest: bool = True) -> np.ndarray:
    """Closing 3x3, erosion 2x2, dilation 3x3 (the cGAN paper's filter sizes), then the largest
    component: speckles go, small holes close. Boolean (H, W) in, boolean out.

    Example:
        >>> m = np.zeros((16, 16), bool); m[2:9, 2:9] = True; m[14, 14] = True   # a lesion + a speck
        >>> out = postprocess_mask(m)
        >>> bool(out[14, 14]), bool(out[5, 5])
        (False, True)
    """
    m = mask.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    m = cv2.erode(m, np.ones((2, 2), np.uint8))
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    return largest_component(m > 0) if largest else m > 0
