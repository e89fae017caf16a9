"""Lesion models: segmentation-only, classification-only and multitask, with or without
clinical fusion, all built from one config around one :class:`~sonogan.models.segmentation.Backbone`.

The classification head (:class:`ClassificationHead`) is the SAME module in the
classification-only and the multitask model: global average pooling of the deepest encoder
maps (the last two for the classic U-Net, as in the thesis's Figure 7; the last one for the
EfficientNet encoder), optionally concatenated with the projected clinical variables
(intermediate fusion, Figure 5), then a one-hidden-layer MLP. The multitask model only adds
the decoder, so any difference in accuracy comes from the auxiliary segmentation loss.

``model(x, clinical)`` returns a dict: ``"mask"`` (B, 1, H, W) logits and/or ``"logits"`` (B, K).

Example:
    >>> import torch
    >>> cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 8}, outputs="multitask",
    ...                         num_classes=3, clinical_dim=4)
    >>> out = build_lesion_model(cfg)(torch.zeros(2, 1, 32, 32), torch.zeros(2, 4))
    >>> out["mask"].shape, out["logits"].shape
    (torch.Size([2, 1, 32, 32]), torch.Size([2, 3]))
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from sonogan.config import StrictModel
from sonogan.errors import SonoganInputError
from sonogan.models.clinical import ClinicalProjection
from sonogan.models.segmentation import Backbone, create_segmenter


class LesionModelConfig(StrictModel):
    """What a lesion model is (saved in every checkpoint; rebuilds the model)."""

    backbone: str = Field("unet", description="a SEGMENTERS name: unet, cgan-unet, efficientnet-lite0-unet, ...")
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict, description="e.g. {width: 16} for unet")
    pretrained: bool = Field(False, description="offline ImageNet weights in the encoder (EfficientNet-Lite)")
    in_chans: Literal[1, 3] = 1
    outputs: Literal["segmentation", "classification", "multitask"] = "multitask"
    num_classes: int = Field(2, ge=2)
    clinical_dim: int = Field(0, ge=0, description="encoded clinical columns; 0 = image only")
    clinical_hidden: int = Field(32, ge=1)
    pooled: int | None = Field(None, ge=1, description="deepest encoder maps pooled; null = the backbone's default")
    head_hidden: int = Field(128, ge=1)
    head_dropout: float = Field(0.3, ge=0.0, lt=1.0)
    image_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the pooled image features before "
                                 "fusion: with clinical variables, keeps the head from leaning on images alone")
    head_norm: bool = Field(False, description="batch-normalise the fused vector (pooled image features and "
                            "projected clinical variables) before the MLP, so neither part dominates by scale")


class ClassificationHead(nn.Module):
    """Pooled encoder maps (+ projected clinical variables) -> MLP -> class logits."""

    def __init__(self, channels: list[int], pooled: int, num_classes: int, clinical_dim: int = 0,
                 clinical_hidden: int = 32, hidden: int = 128, dropout: float = 0.3, norm: bool = False,
                 image_dropout: float = 0.0) -> None:
        super().__init__()
        self.pooled = pooled
        self.image_dropout = nn.Dropout(image_dropout)
        self.clinical = ClinicalProjection(clinical_dim, clinical_hidden) if clinical_dim else None
        in_dim = sum(channels[-pooled:]) + (clinical_hidden if clinical_dim else 0)
        self.norm = nn.BatchNorm1d(in_dim) if norm else None
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))

    def features(self, feats: list[torch.Tensor], clinical: torch.Tensor | None = None) -> torch.Tensor:
        """The fused vector fed to the MLP: pooled image features, then clinical features."""
        parts = [self.image_dropout(f.mean(dim=(-2, -1))) for f in feats[-self.pooled:]]
        if self.clinical is not None:
            if clinical is None:
                raise SonoganInputError("classification head", "this model was trained with clinical variables",
                                        "pass the encoded clinical variables with each image")
            parts.append(self.clinical(clinical))
        return torch.cat(parts, dim=1)

    def forward(self, feats: list[torch.Tensor], clinical: torch.Tensor | None = None) -> torch.Tensor:
        fused = self.features(feats, clinical)
        return self.mlp(fused if self.norm is None else self.norm(fused))


class LesionModel(nn.Module):
    """A backbone (its decoder dropped when there is no segmentation output) and an optional head."""

    def __init__(self, backbone: Backbone, head: ClassificationHead | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def segments(self) -> bool:
        return self.backbone.decoder is not None

    def forward(self, x: torch.Tensor, clinical: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        self.backbone.check_input(x)
        feats = self.backbone.encoder(x)
        out: dict[str, torch.Tensor] = {}
        if self.backbone.decoder is not None:
            out["mask"] = self.backbone.decoder(feats)
        if self.head is not None:
            out["logits"] = self.head(feats, clinical)
        return out


def build_lesion_model(cfg: LesionModelConfig) -> LesionModel:
    """The model ``cfg`` describes (fresh weights, or ImageNet weights in the encoder)."""
    backbone = create_segmenter(cfg.backbone, in_chans=cfg.in_chans, pretrained=cfg.pretrained, **cfg.backbone_kwargs)
    if cfg.outputs == "classification":
        backbone.decoder = None  # classification only: the same encoder and head, no decoder
    head = None
    if cfg.outputs != "segmentation":
        pooled = cfg.pooled or backbone.pooled
        if pooled > len(backbone.channels):
            raise SonoganInputError("lesion model", f"pooled={pooled} but the encoder has {len(backbone.channels)} maps",
                                    f"set pooled to at most {len(backbone.channels)}")
        head = ClassificationHead(backbone.channels, pooled, cfg.num_classes, cfg.clinical_dim,
                                  cfg.clinical_hidden, cfg.head_hidden, cfg.head_dropout, cfg.head_norm,
                                  cfg.image_dropout)
    elif cfg.clinical_dim:
        raise SonoganInputError("lesion model", "clinical variables only enter a classification head",
                                "set clinical_dim: 0 for a segmentation-only model")
    return LesionModel(backbone, head)
