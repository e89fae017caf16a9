"""Grad-CAM (captum) points at the evidence; overlays and PNGs."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from sonogan.infer.explain import gradcam, last_conv, overlay_heatmap, overlay_mask, save_png
from sonogan.infer.predictor import Member, Predictor
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import get_preset


def brightness_model() -> nn.Module:
    """logit_1 - logit_0 grows with the mean brightness: the evidence for class 1 is where it is bright."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0), model[0].bias.zero_()
        model[4].weight.copy_(torch.tensor([[-1.0], [1.0]])), model[4].bias.zero_()
    return model.eval()


def test_gradcam_lights_up_the_bright_square_for_the_bright_class():
    p = Predictor([Member("m", brightness_model(), Normaliser((0.0,), (255.0,)), 1, 64)], np.ones(1), ["dark", "bright"],
                  get_preset("full-64"))
    pixels = np.zeros((64, 64, 1), np.uint8)
    pixels[20:40, 30:50] = 250
    heat = gradcam(p, pixels, target=1)
    assert heat.shape == (64, 64) and heat.max() == 1.0
    assert heat[25:35, 35:45].min() > 0.9 and heat[:10, :10].max() < 0.05
    assert not gradcam(p, pixels, target=0).any()  # no positive evidence for "dark": an all-zero map
    assert isinstance(last_conv(p.members[0].model), nn.Conv2d)


def test_overlays_and_png(tmp_path):
    pixels = np.full((32, 32, 1), 100, np.uint8)
    heat = np.zeros((32, 32)); heat[:16] = 1.0
    out = overlay_heatmap(pixels, heat)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > out[0, 0, 2] and out[31, 0, 2] > out[31, 0, 0]  # JET: hot = red, cold = blue
    mask = np.zeros((32, 32), np.uint8); mask[8:24, 8:24] = 1
    outlined = overlay_mask(np.full((32, 32, 3), 50, np.uint8), mask)
    assert (outlined[8, 8:24] == (0, 255, 0)).all() and (outlined[16, 16] == 50).all()
    path = save_png(out, tmp_path / "x" / "a.png", scale=2)
    assert Image.open(path).size == (64, 64)
