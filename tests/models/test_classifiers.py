"""Every registered classifier builds, runs forward/backward, and loads local weights."""

from __future__ import annotations

import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.classifiers import (CLASSIFIERS, MIN_INPUT_SIZE, FridAdarCNN, create_classifier,
                                        penultimate_features)

HEAVY = {"resnet50", "vgg16", "vgg16_bn", "inception_v3"}
# VGG's 100 M-weight first dense layer makes one backward pass take seconds on CPU
SLOW_BACKWARD = {"vgg16", "vgg16_bn"}


def _smoke(name: str, in_chans: int, backward: bool) -> None:
    size = max(MIN_INPUT_SIZE[name], 32)  # smallest size every model here supports
    torch.manual_seed(0)
    model = create_classifier(name, num_classes=3, in_chans=in_chans)
    # batch 2: BatchNorm needs more than one value per channel in train mode
    x = torch.randn(2, in_chans, size, size)
    if backward:
        out = model(x)
        assert out.shape == (2, 3)
        out.sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        feats = penultimate_features(model, x)
    assert feats.ndim == 2 and feats.shape[0] == 2 and torch.isfinite(feats).all()


@pytest.mark.parametrize("name", CLASSIFIERS.names())
def test_every_classifier_forward_backward(name: str) -> None:
    # heavy models run grayscale only here; the slow test below covers RGB and VGG's backward
    for in_chans in (1,) if name in HEAVY else (1, 3):
        _smoke(name, in_chans, backward=name not in SLOW_BACKWARD)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_classifiers_full(name: str) -> None:
    for in_chans in (1, 3):
        _smoke(name, in_chans, backward=True)


def test_frid_adar_param_count_matches_paper() -> None:
    model = create_classifier("frid-adar-cnn", num_classes=3, in_chans=1)
    n = sum(p.numel() for p in model.parameters())
    assert n == pytest.approx(1.3e6, rel=0.05)  # paper: "approximately 1.3 M parameters"
    # adaptive pooling keeps the count at other input sizes
    assert create_classifier("frid-adar-cnn", 3)(torch.zeros(1, 1, 96, 96)).shape == (1, 3)
    assert penultimate_features(model.eval(), torch.zeros(1, 1, 64, 64)).shape == (1, 128)


def test_too_small_input_is_an_input_error() -> None:
    with pytest.raises(SonoganInputError, match="at least 75"):
        create_classifier("inception_v3", num_classes=3, image_size=64)
    model = create_classifier("inception_v3", num_classes=3)
    with pytest.raises(SonoganInputError, match="too small"):
        model(torch.zeros(1, 1, 64, 64))


def test_bad_arguments_raise_input_errors() -> None:
    with pytest.raises(SonoganInputError, match="unknown name"):
        create_classifier("no-such-net", num_classes=3)
    with pytest.raises(SonoganInputError):
        create_classifier("resnet18", num_classes=1)


def test_weights_path_round_trip_and_new_head(tmp_path) -> None:
    torch.manual_seed(0)
    src = create_classifier("resnet10t", num_classes=3, in_chans=1).eval()
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    x = torch.randn(2, 1, 32, 32)
    same = create_classifier("resnet10t", num_classes=3, in_chans=1, weights_path=path).eval()
    assert torch.equal(same(x), src(x))
    # another number of classes: backbone loaded, head re-initialised
    other = create_classifier("resnet10t", num_classes=5, in_chans=1, weights_path=path)
    assert torch.equal(other.conv1[0].weight, src.conv1[0].weight)
    assert other.fc.out_features == 5
    # RGB weights adapted to a grayscale first conv (timm's adapt_input_conv)
    rgb = create_classifier("resnet10t", num_classes=3, in_chans=3)
    torch.save(rgb.state_dict(), path)
    gray = create_classifier("resnet10t", num_classes=3, in_chans=1, weights_path=path)
    assert torch.allclose(gray.conv1[0].weight, rgb.conv1[0].weight.sum(1, keepdim=True))


def test_weights_from_other_architecture_are_refused(tmp_path) -> None:
    path = tmp_path / "w.pt"
    torch.save(FridAdarCNN(3).state_dict(), path)
    with pytest.raises(SonoganInputError, match="do not match"):
        create_classifier("resnet10t", num_classes=3, weights_path=path)
    with pytest.raises(SonoganInputError, match="not found"):
        create_classifier("resnet10t", num_classes=3, weights_path=tmp_path / "missing.pt")
