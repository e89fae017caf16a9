"""Every registered GAN family: shapes at 64 and 128, one D + G step, finite losses."""

import pytest
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.synth import GAN_FAMILIES, GanConfig, create_gan, discriminator_as_classifier, sample_z

FAMILIES = GAN_FAMILIES.names()


def test_all_expected_families_registered():
    assert set(FAMILIES) == {"dcgan", "dcgan-radford", "cgan", "acgan", "wgan-gp", "sngan"}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution,channels", [(64, 1), (128, 3)])
def test_family_shapes_and_one_step(family, resolution, channels):
    cfg = GanConfig(family=family, resolution=resolution, channels=channels, ngf=4, ndf=4, z_dim=16)
    G, D, loss = create_gan(family, cfg, num_classes=3)
    gen = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 2, 1])
    z = sample_z(G, 4, gen)
    fake = G(z, y)
    assert fake.shape == (4, channels, resolution, resolution)
    assert fake.abs().max() <= 1.0  # tanh output
    real = torch.rand(4, channels, resolution, resolution, generator=gen) * 2 - 1
    opt_d = torch.optim.Adam(D.parameters(), 1e-3)
    opt_g = torch.optim.Adam(G.parameters(), 1e-3)
    before = [p.detach().clone() for p in G.parameters()]
    d_loss, _ = loss.d_loss(D, real, fake.detach(), y, y, gen)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = loss.g_loss(D, G(z, y), y)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))


def _count(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if type(m) is kind]


def test_dcgan_is_the_flagship_three_layer_net():
    G, D, loss = create_gan("dcgan", GanConfig(ngf=8, ndf=8))
    assert len(_count(G, nn.ConvTranspose2d)) == 3
    assert len(_count(D, nn.Conv2d)) == 3
    assert loss.name == "bce"
    # BN after every hidden conv, none after input/output layers
    assert len(_count(G, nn.BatchNorm2d)) == 2 and len(_count(D, nn.BatchNorm2d)) == 2


def test_radford_matches_frid_adar():
    G, D, _ = create_gan("dcgan-radford", GanConfig(ngf=64, ndf=64))
    convt = _count(G, nn.ConvTranspose2d)
    assert len(convt) == 4 and all(c.kernel_size == (5, 5) for c in convt)
    assert G.project.out_features == 4 * 4 * 1024 and G.z_dim == 100
    convs = _count(D, nn.Conv2d)
    assert len(convs) == 4 and all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    z = sample_z(G, 256, torch.Generator().manual_seed(0))
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.9  # uniform [-1, 1]
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.std().item() - 0.02) < 0.003  # N(0, 0.02) init


def test_wgan_critic_has_no_batchnorm_and_sngan_is_spectral():
    _, D, loss = create_gan("wgan-gp", GanConfig(ngf=4, ndf=4))
    assert not _count(D, nn.BatchNorm2d) and loss.gp_weight == 10.0
    _, D, loss = create_gan("sngan", GanConfig(ngf=4, ndf=4))
    assert all(hasattr(c, "weight_orig") for c in _count(D, nn.Conv2d)) and loss.name == "hinge"


def test_acgan_discriminator_as_classifier():
    G, D, _ = create_gan("acgan", GanConfig(ngf=4, ndf=4), num_classes=3)
    clf = discriminator_as_classifier(D)
    assert clf(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
    _, D_plain, _ = create_gan("dcgan", GanConfig(ngf=4, ndf=4))
    with pytest.raises(ValueError):
        discriminator_as_classifier(D_plain)


def test_construction_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    G1, _, _ = create_gan("dcgan", GanConfig(ngf=4, ndf=4, seed=5))
    assert torch.equal(torch.rand(1), expected)
    G2, _, _ = create_gan("dcgan", GanConfig(ngf=4, ndf=4, seed=5))
    G3, _, _ = create_gan("dcgan", GanConfig(ngf=4, ndf=4, seed=6))
    assert all(torch.equal(a, b) for a, b in zip(G1.parameters(), G2.parameters()))
    assert not torch.equal(G1.project.weight, G3.project.weight)


def test_unknown_family_is_input_error():
    with pytest.raises(SonoganInputError, match="unknown name"):
        create_gan("stylegan9", GanConfig())
