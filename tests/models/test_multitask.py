"""One classification head for single-task and multitask models; clinical fusion; config errors."""

from __future__ import annotations

import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.multitask import ClassificationHead, LesionModelConfig, build_lesion_model

BASE = {"backbone": "unet", "backbone_kwargs": {"width": 4}, "num_classes": 3}


def test_single_and_multitask_share_the_head_and_encoder() -> None:
    torch.manual_seed(0)
    cls = build_lesion_model(LesionModelConfig(**BASE, outputs="classification"))
    torch.manual_seed(0)
    mtl = build_lesion_model(LesionModelConfig(**BASE, outputs="multitask"))
    assert cls.backbone.decoder is None and mtl.backbone.decoder is not None
    assert type(cls.head) is type(mtl.head) is ClassificationHead
    # same seed -> identical encoder and head: the models differ only by the decoder
    c, m = cls.state_dict(), mtl.state_dict()
    assert all(torch.equal(c[k], m[k]) for k in c)
    assert set(m) - set(c) and all(k.startswith("backbone.decoder.") for k in set(m) - set(c))
    out = mtl(torch.zeros(2, 1, 32, 32))
    assert out["mask"].shape == (2, 1, 32, 32) and out["logits"].shape == (2, 3)
    assert set(cls(torch.zeros(2, 1, 32, 32))) == {"logits"}


def test_unet_head_pools_the_last_two_encoder_blocks() -> None:
    model = build_lesion_model(LesionModelConfig(**BASE, outputs="classification"))
    # widths (4, 4, 8, 16, 32): the last two give 16 + 32 pooled features
    assert model.head.mlp[0].in_features == 48


def test_clinical_fusion_concatenates_projected_variables() -> None:
    model = build_lesion_model(LesionModelConfig(**BASE, outputs="classification", clinical_dim=5, clinical_hidden=8))
    assert model.head.mlp[0].in_features == 48 + 8
    assert model.eval()(torch.zeros(2, 1, 32, 32), torch.zeros(2, 5))["logits"].shape == (2, 3)
    with pytest.raises(SonoganInputError, match="clinical"):
        model(torch.zeros(2, 1, 32, 32))


def test_segmentation_only_refuses_clinical_and_too_many_pooled() -> None:
    with pytest.raises(SonoganInputError, match="clinical"):
        build_lesion_model(LesionModelConfig(**BASE, outputs="segmentation", clinical_dim=3))
    with pytest.raises(SonoganInputError, match="pooled"):
        build_lesion_model(LesionModelConfig(**BASE, outputs="classification", pooled=9))


def test_head_options_normalise_and_drop_image_features_only() -> None:
    model = build_lesion_model(LesionModelConfig(**BASE, outputs="classification", clinical_dim=2, clinical_hidden=4,
                                                 head_norm=True, image_dropout=0.99))
    assert model.head.norm.num_features == 48 + 4
    model.train()
    fused = model.head.features(model.backbone.encoder(torch.ones(2, 1, 32, 32)), torch.ones(2, 2))
    assert (fused[:, :48] == 0).float().mean() > 0.9      # image part dropped
    assert (fused[:, 48:] == model.head.clinical(torch.ones(2, 2))).all()  # clinical part untouched
