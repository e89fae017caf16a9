"""Remover registry, the weighted MSE against a hand-computed case, the detector, the checkpoint."""

from __future__ import annotations

import pytest
import torch

from sonogan.models.remover import (REMOVERS, AnnotationLoss, LossConfig, RemoverConfig, build_nets,
                                       create_detector, create_remover, load_remover, save_remover, weighted_mse)
from sonogan.errors import SonoganInputError

TINY = {"monai-unet": {"features": (4, 8, 16)}, "smp-unet": {"depth": 3}}


def test_weighted_mse_hand_case():
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # w = [300, 1, 1, 1]; sum w (t - p)^2 = 300*1 + 4 + 0 + 9 = 313; sum w = 303
    assert float(weighted_mse(pred, target, mask)) == pytest.approx(313 / 303)
    assert float(weighted_mse(pred, target, mask, alpha=1, beta=1)) == pytest.approx(14 / 4)  # plain MSE
    # two channels, one mask: each channel weighted the same way, the result is their mean
    two = weighted_mse(torch.zeros(1, 2, 2, 2), torch.cat([target, 2 * target], 1), mask)
    assert float(two) == pytest.approx((313 + 4 * 313) / (2 * 303))


def test_loss_object_adds_the_ssim_term_only_when_asked():
    rng = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 1, 16, 16, generator=rng)
    pred = (clean + 0.2 * torch.rand(2, 1, 16, 16, generator=rng)).clamp(0, 1)
    mask = (torch.rand(2, 1, 16, 16, generator=rng) > 0.9).float()
    plain = AnnotationLoss()(pred, clean, mask)
    assert float(plain) == pytest.approx(float(weighted_mse(pred, clean, mask)))
    both = AnnotationLoss(LossConfig(ssim_weight=0.5))(pred, clean, mask)
    assert float(both) > float(plain)
    assert float(AnnotationLoss(LossConfig(ssim_weight=0.5))(clean, clean, mask)) == pytest.approx(0, abs=1e-5)


@pytest.mark.parametrize("name", REMOVERS.names())
def test_every_remover_starts_as_the_identity_and_learns(name):
    torch.manual_seed(0)
    net = create_remover(name, channels=3, **TINY[name])
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(net(x), x)            # residual gain 0: the first step changes nothing
    loss = weighted_mse(net(x), torch.zeros_like(x), torch.ones(2, 1, 32, 32))
    loss.backward()
    assert net.gain.grad is not None and float(net.gain.grad.abs()) > 0
    plain = create_remover(name, channels=1, residual=False, **TINY[name])
    assert plain(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_detector_gives_two_logits():
    det = create_detector(channels=3, widths=(8, 16), hidden=16)
    assert det(torch.rand(3, 3, 32, 32)).shape == (3, 2)


def test_checkpoint_rebuilds_both_nets(tmp_path):
    cfg = RemoverConfig(size=32, model_kwargs={"features": [4, 8, 16]}, detector_kwargs={"widths": [8], "hidden": 8})
    torch.manual_seed(1)
    remover, detector = build_nets(cfg)
    with torch.no_grad():
        remover.gain.fill_(0.5)
    path = save_remover(tmp_path / "remover.pt", remover, detector, cfg, {"iterations": 3})
    r2, d2, cfg2, extra = load_remover(path)
    x = torch.rand(2, 3, 32, 32)
    assert cfg2 == cfg and extra == {"iterations": 3} and not r2.training
    assert torch.equal(r2(x), remover.eval()(x)) and torch.equal(d2(x), detector.eval()(x))
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(SonoganInputError, match="not a sonogan annotation-remover"):
        load_remover(tmp_path / "other.pt")
    with pytest.raises(SonoganInputError, match="not found"):
        load_remover(tmp_path / "missing.pt")


class FixedOutput(torch.nn.Module):
    """Stands for the U-Net: correction +1 everywhere, gate logit -1e4 (shut) or +1e4 (open) by row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.full_like(x[:, :1], -1e4)
        gate[:, :, :4] = 1e4
        return torch.cat([torch.ones_like(x), gate], 1)


def test_a_gated_remover_keeps_pixels_where_its_gate_is_shut():
    torch.manual_seed(0)
    net = create_remover("monai-unet", channels=3, gated=True, features=(4, 8, 16))
    x = torch.rand(2, 3, 32, 32)
    image, gate = net.restore(x)
    assert gate.shape == (2, 1, 32, 32) and torch.equal(image, x)      # gain 0 at the start
    net.net = FixedOutput()
    with torch.no_grad():
        net.gain.fill_(0.5)
    with torch.no_grad():
        image, gate = net.restore(x)
    assert torch.equal(image[:, :, 4:], x[:, :, 4:])                    # gate shut: input kept exactly
    assert torch.allclose(image[:, :, :4], x[:, :, :4] + 0.5)           # gate open: input + gain * correction
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, :4] = 1
    plain = AnnotationLoss(LossConfig(gate_weight=0))(image, x, mask, gate)
    gated = AnnotationLoss()(image, x, mask, gate)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(gate, mask)
    assert float(bce) == pytest.approx(0.0, abs=1e-6)                   # the gate matches the mask
    assert float(gated) == pytest.approx(float(plain) + float(bce))
    assert float(AnnotationLoss()(image, x, 1 - mask, gate)) > float(plain) + 1000   # the wrong gate costs
