"""GAN loss objects: each has ``d_loss`` (one critic/discriminator phase) and ``g_loss``.

The trainer calls only these two methods, so a family is "networks + one loss object".
``D(x, y)`` returns logits (N,), or ``(logits, class_logits)`` for AC-GAN.

Example:
    >>> import torch
    >>> loss = LOSSES.create("bce")
    >>> D = lambda x, y=None: x.flatten(1).mean(1)
    >>> real, fake = torch.ones(4, 1, 2, 2), -torch.ones(4, 1, 2, 2)
    >>> d, stats = loss.d_loss(D, real, fake, None, None, torch.Generator().manual_seed(0))
    >>> bool(torch.isfinite(d))
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sonogan.registry import Registry

LOSSES: Registry["GanLoss"] = Registry("gan loss")


def _adv(out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


class GanLoss:
    """Base: subclasses implement the two phases. ``gen`` feeds any randomness (GP mixing)."""

    name = "base"

    def d_loss(self, D, real, fake, y_real, y_fake, gen):  # noqa: ANN001, ANN201
        raise NotImplementedError

    def g_loss(self, D, fake, y_fake):  # noqa: ANN001, ANN201
        raise NotImplementedError


@LOSSES.register("bce")
class BCELoss(GanLoss):
    """Non-saturating GAN loss; D outputs logits and BCEWithLogits replaces sigmoid + BCE (stabler)."""

    name = "bce"

    def d_loss(self, D, real, fake, y_real, y_fake, gen):  # noqa: ANN001, ANN201
        lr, lf = _adv(D(real, y_real)), _adv(D(fake, y_fake))
        loss = (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr))
                + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
        return loss, {}

    def g_loss(self, D, fake, y_fake):  # noqa: ANN001, ANN201
        lf = _adv(D(fake, y_fake))
        return F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))


@LOSSES.register("hinge")
class HingeLoss(GanLoss):
    """Hinge loss (SNGAN): D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z))."""

    name = "hinge"

    def d_loss(self, D, real, fake, y_real, y_fake, gen):  # noqa: ANN001, ANN201
        lr, lf = _adv(D(real, y_real)), _adv(D(fake, y_fake))
        return F.relu(1.0 - lr).mean() + F.relu(1.0 + lf).mean(), {}

    def g_loss(self, D, fake, y_fake):  # noqa: ANN001, ANN201
        return -_adv(D(fake, y_fake)).mean()


def gradient_penalty(D, real, fake, y, gen) -> torch.Tensor:  # noqa: ANN001
    """WGAN-GP penalty (||grad D(x_hat)|| - 1)^2 on random real/fake mixes (Gulrajani et al.)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=gen.device).to(real)
    mix = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = _adv(D(mix, y))
    (grad,) = torch.autograd.grad(out.sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


@LOSSES.register("wgan-gp")
class WassersteinGPLoss(GanLoss):
    """Wasserstein critic loss + gradient penalty (weight ``gp_weight``, 10 in the paper)."""

    name = "wgan-gp"

    def __init__(self, gp_weight: float = 10.0) -> None:
        self.gp_weight = gp_weight

    def d_loss(self, D, real, fake, y_real, y_fake, gen):  # noqa: ANN001, ANN201
        lr, lf = _adv(D(real, y_real)), _adv(D(fake, y_fake))
        gp = gradient_penalty(D, real, fake, y_real, gen)
        return lf.mean() - lr.mean() + self.gp_weight * gp, {"gp": gp.detach()}

    def g_loss(self, D, fake, y_fake):  # noqa: ANN001, ANN201
        return -_adv(D(fake, y_fake)).mean()


@LOSSES.register("acgan")
class ACGANLoss(GanLoss):
    """AC-GAN: BCE real/fake + cross-entropy class terms on real (D) and on fake (D and G)."""

    name = "acgan"

    def __init__(self, aux_weight: float = 1.0) -> None:
        self.aux_weight = aux_weight

    def d_loss(self, D, real, fake, y_real, y_fake, gen):  # noqa: ANN001, ANN201
        (lr, cr), (lf, cf) = D(real, y_real), D(fake, y_fake)
        adv = (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr))
               + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
        aux = F.cross_entropy(cr, y_real) + F.cross_entropy(cf, y_fake)
        return adv + self.aux_weight * aux, {"aux": aux.detach()}

    def g_loss(self, D, fake, y_fake):  # noqa: ANN001, ANN201
        lf, cf = D(fake, y_fake)
        return (F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))
                + self.aux_weight * F.cross_entropy(cf, y_fake))
