"""Shared building blocks for the GAN families: one generator and one discriminator class.

The families (dcgan, dcgan-radford, cgan, acgan, wgan-gp, sngan) differ only in the options
passed here (widths, kernel size, normalisation, conditioning, head), so every family gets
the same 64/128 and 1/3-channel handling for free.

Example:
    >>> import torch
    >>> G = Generator(z_dim=8, out_channels=1, resolution=64, base=8, widths=[32, 16, 8])
    >>> G(torch.zeros(2, 8)).shape
    torch.Size([2, 1, 64, 64])
    >>> D = Discriminator(in_channels=1, resolution=64, widths=[8, 16, 32])
    >>> D(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import spectral_norm

Norm = Literal["bn", "none", "sn"]


def _act(kind: str) -> nn.Module:
    return nn.ReLU(inplace=True) if kind == "relu" else nn.LeakyReLU(0.2, inplace=True)


def up_block(cin: int, cout: int, kernel: int, norm: bool, act: str | None) -> list[nn.Module]:
    """A x2 fractionally-strided conv (k=4,p=1 or k=5,p=2,output_padding=1) [+ BN] [+ act]."""
    pad, out_pad = (1, 0) if kernel == 4 else (2, 1)
    layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, kernel, 2, pad, output_padding=out_pad,
                                                  bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    if act:
        layers.append(_act(act))
    return layers


def down_block(cin: int, cout: int, kernel: int, norm: Norm | None) -> list[nn.Module]:
    """A /2 strided conv [+ BN or spectral norm] + LeakyReLU(0.2)."""
    pad = 1 if kernel == 4 else 2
    conv = nn.Conv2d(cin, cout, kernel, 2, pad, bias=norm != "bn")
    layers: list[nn.Module] = [spectral_norm(conv) if norm == "sn" else conv]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(cout))
    layers.append(_act("lrelu"))
    return layers


class Generator(nn.Module):
    """z (+ class embedding) -> linear projection to base x base -> x2 up blocks -> tanh image.

    ``widths`` are the feature widths after the projection and after each hidden up block;
    the last up block maps ``widths[-1]`` to the image channels. A resolution above
    ``base * 2**len(widths)`` adds up blocks at the start (same width).
    """

    def __init__(self, z_dim: int, out_channels: int, resolution: int, base: int, widths: list[int],
                 kernel: int = 4, act: str = "lrelu", project_norm: bool = False,
                 num_classes: int = 0, embed_dim: int = 32, z_dist: str = "normal") -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.z_dist = z_dim, num_classes, z_dist
        extra = int(math.log2(resolution // (base * 2 ** len(widths))))
        if base * 2 ** (len(widths) + extra) != resolution:
            raise ValueError(f"resolution {resolution} is not base {base} x a power of two")
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        z_in = z_dim + (embed_dim if num_classes > 0 else 0)
        self.base, self.width0 = base, widths[0]
        self.project = nn.Linear(z_in, widths[0] * base * base, bias=not project_norm)
        head: list[nn.Module] = [nn.BatchNorm2d(widths[0]), _act(act)] if project_norm else []
        body: list[nn.Module] = []
        for _ in range(extra):  # extra blocks for 128x128 keep the first width
            body += up_block(widths[0], widths[0], kernel, True, act)
        for cin, cout in zip(widths[:-1], widths[1:]):
            body += up_block(cin, cout, kernel, True, act)
        body += up_block(widths[-1], out_channels, kernel, False, None)
        body.append(nn.Tanh())
        self.head = nn.Sequential(*head)
        self.body = nn.Sequential(*body)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is class-conditional: pass labels y")
            z = torch.cat([z, self.embed(y)], dim=1)
        h = self.project(z).view(z.shape[0], self.width0, self.base, self.base)
        return self.body(self.head(h))


class Discriminator(nn.Module):
    """Image -> /2 down blocks -> flatten -> real/fake logit (+ projection or auxiliary class head).

    ``head``: "plain" returns logits (N,); "projection" adds <embed(y), features> (cGAN with a
    projection discriminator); "aux" returns (logits, class_logits) (AC-GAN).
    """

    def __init__(self, in_channels: int, resolution: int, widths: list[int], kernel: int = 4,
                 norm: Norm = "bn", head: str = "plain", num_classes: int = 0) -> None:
        super().__init__()
        extra = int(math.log2(resolution // 64))
        layers = down_block(in_channels, widths[0], kernel, "sn" if norm == "sn" else None)
        for _ in range(extra):  # extra block for 128x128 keeps the first width
            layers += down_block(widths[0], widths[0], kernel, norm)
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += down_block(cin, cout, kernel, norm)
        self.features = nn.Sequential(*layers)
        side = 64 // 2 ** len(widths)
        n_feat = widths[-1] * side * side
        wrap = spectral_norm if norm == "sn" else (lambda m: m)
        self.out = wrap(nn.Linear(n_feat, 1))
        self.head_kind = head
        self.embed = wrap(nn.Embedding(num_classes, n_feat)) if head == "projection" else None
        self.aux = wrap(nn.Linear(n_feat, num_classes)) if head == "aux" else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):  # noqa: ANN201 - tensor or pair
        h = self.features(x).flatten(1)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("projection discriminator needs labels y")
            logit = logit + (self.embed(y) * h).sum(1)
        if self.aux is not None:
            return logit, self.aux(h)
        return logit


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN init (Radford et al.): conv/linear weights N(0, 0.02), BN weights N(1, 0.02), biases 0.

    Call inside a seeded ``torch.random.fork_rng`` so construction is deterministic.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            w = getattr(m, "weight_orig", m.weight)  # spectral-norm wrapped layers keep weight_orig
            nn.init.normal_(w, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
