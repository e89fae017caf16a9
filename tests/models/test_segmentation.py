"""Every registered segmenter builds and segments; the Lite encoder gets the offline ImageNet
weights; the cGAN discriminator; the morphological clean-up on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.pretrained import create_efficientnet_lite
from sonogan.models.segmentation import (SEGMENTERS, MaskDiscriminator, create_segmenter, largest_component,
                                         postprocess_mask)

SMALL = {"unet": {"width": 4}, "cgan-unet": {"width": 4}}


@pytest.mark.parametrize("name", SEGMENTERS.names())
def test_every_segmenter_segments(name: str) -> None:
    net = create_segmenter(name, in_chans=1, **SMALL.get(name, {}))
    feats = net.encoder(torch.zeros(1, 1, 64, 64))
    assert [f.shape[1] for f in feats] == net.channels
    assert net.eval()(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 64, 64)


def test_lite_encoder_gets_the_imagenet_weights() -> None:
    net = create_segmenter("efficientnet-lite0-unet", in_chans=3, pretrained=True)
    ref = create_efficientnet_lite("efficientnet-lite0", num_classes=1000, in_chans=3, pretrained=True).state_dict()
    own = net.encoder.model.state_dict()
    assert all(torch.equal(own[k], ref[k]) for k in own)
    fresh = create_segmenter("efficientnet-lite0-unet", in_chans=3).encoder.model.state_dict()
    assert not torch.equal(fresh["conv_stem.weight"], ref["conv_stem.weight"])


def test_unet_has_no_pretrained_weights_and_sizes_are_checked() -> None:
    with pytest.raises(SonoganInputError, match="no pretrained"):
        create_segmenter("unet", pretrained=True)
    with pytest.raises(SonoganInputError, match="multiple of 16"):
        create_segmenter("unet", width=4)(torch.zeros(1, 1, 40, 40))


def test_cgan_generator_decoder_dropout_makes_noise_in_training_only() -> None:
    net = create_segmenter("cgan-unet", width=4)
    x = torch.randn(1, 1, 32, 32)
    torch.manual_seed(0)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_discriminator_scores_patches() -> None:
    d = MaskDiscriminator(in_chans=3, width=4)
    assert d(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)).shape == (2, 1, 4, 4)


def test_postprocess_removes_specks_and_keeps_the_largest_component() -> None:
    m = np.zeros((20, 20), bool)
    m[2:10, 2:10] = True          # lesion, 64 px
    m[5, 5] = False               # a one-pixel hole: closed
    m[14:17, 14:17] = True        # a smaller blob: not the largest
    m[0, 19] = True               # a speck
    out = postprocess_mask(m)
    assert out[5, 5] and out[2:10, 2:10].all()
    assert not out[14:17, 14:17].any() and not out[0, 19]
    assert not postprocess_mask(np.zeros((8, 8), bool)).any()


def test_largest_component_by_hand() -> None:
    m = np.zeros((6, 6), bool)
    m[0, 0:2] = True
    m[3:6, 3:6] = True
    assert largest_component(m).sum() == 9 and not largest_component(m)[0, 0]
