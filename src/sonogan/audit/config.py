"""``AuditConfig``: what the synthetic-image audit measures and how the memorisation gate decides.

One typed config for ``sonogan synth audit`` and for the experiment's per-fold audit
(``audit:`` in an experiment YAML); it is saved in the audit's run folder.

``profile`` sets what the audit costs (docs/audit.md, benchmarks/audit_cost.py): ``light`` (the
default) computes the distribution metrics (FID/KID/PRDC, diversity, quality) on a seeded sample of
at most ``max_synthetic`` synthetic images and runs the feature extractors in bf16 where the CPU
has native bf16 instructions; ``full`` uses every synthetic image in fp32 (the audit before the
light default). The memorisation gate checks every synthetic image under both.

Example:
    >>> cfg = AuditConfig()
    >>> cfg.extractors, cfg.gate, cfg.profile, cfg.max_synthetic
    (['domain', 'imagenet-lite0'], True, 'light', 500)
    >>> AuditConfig(profile="full").max_synthetic is None
    True
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sonogan.config import StrictModel


# KID's subsets never exceed the (rare) real set and FID is limited by its tens of images: on the
# tiny experiment's fold 0, 500 of 2,200 samples gave FID within 0.1 % of all of them (docs/audit.md)
LIGHT_MAX_SYNTHETIC = 500
# the domain encoder of the light profile: half the Frid-Adar CNN's widths (5.6x cheaper to train with
# bf16 + channels_last on the demo's fold 0, benchmarks/results/audit_cost.json)
LIGHT_ENCODER_KWARGS = {"widths": [16, 32, 64]}


class DomainEncoderConfig(StrictModel):
    """The small encoder trained on the fold's real training images when no checkpoint is given."""

    model: str = Field("frid-adar-cnn", description="classifier architecture (sonogan.models.CLASSIFIERS)")
    model_kwargs: dict[str, Any] | None = Field(None, description="create_classifier kwargs; null = the profile's "
                                                "(light: the half-width Frid-Adar CNN, widths [16, 32, 64], as "
                                                "configs/demo.yaml's classifier; full: the architecture's default)")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="training precision; auto = bf16 + "
                                                       "channels_last under the light profile on a CPU with native "
                                                       "bf16, else fp32")
    image_size: int = Field(64, ge=16, description="input size of the encoder")
    epochs: int = Field(15, ge=1, description="epochs over the fold's real training images (every class)")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0


class AuditConfig(StrictModel):
    """Fidelity, diversity, quality and memorisation settings."""

    enabled: bool = Field(True, description="run the audit (experiment: per fold and class, after sampling)")
    extractors: list[str] = Field(default_factory=lambda: ["domain", "imagenet-lite0"],
                                  description="feature extractors for FID/KID/PRDC (sonogan.audit.EXTRACTORS); "
                                              "'domain' = an encoder trained on the fold's real training images")
    domain_checkpoint: str | None = Field(None, description="a classifier checkpoint trained on the fold's real "
                                          "training images to use as the domain encoder; null = train one")
    domain_encoder: DomainEncoderConfig = Field(default_factory=DomainEncoderConfig)
    kid_subsets: int = Field(50, ge=1, description="KID subsets (subset size = min(1000, n_real, n_synthetic))")
    prdc_k: int = Field(5, ge=1, description="k of the k-NN balls (Naeem 2020 recommend 5)")
    diversity_pairs: int = Field(200, ge=1, description="random image pairs for mean pairwise (MS-)SSIM")
    quality_max_images: int = Field(100, ge=1, description="images scored by BRISQUE / PIQE / NIQE per set")
    niqe_patch: int = Field(16, ge=8, description="NIQE patch size in pixels (the pristine model is fitted "
                                                 "on the fold's real training images with this size)")
    memorisation_spaces: list[str] = Field(default_factory=lambda: ["pixel", "domain"],
                                           description="'pixel' and/or an extractor name")
    pixel_size: int = Field(32, ge=8, description="the pixel space compares grey images area-downsampled to this "
                            "size (speckle and 1-px shifts weigh less than at full size)")
    copy_quantile: float = Field(0.95, gt=0, lt=1, description="threshold = this quantile of the NN-distance "
                                 "ratios of augmented copies of real images (the share of such near-copies caught)")
    max_ratio: float = Field(0.5, gt=0, le=1, description="the threshold never exceeds this ratio (a near-copy "
                             "is at least 1 / max_ratio times closer to a training image than real images are "
                             "to each other)")
    copies_per_image: int = Field(2, ge=1, description="augmented copies of each real image for calibration")
    gate: bool = Field(True, description="exclude flagged near-copies from training (experiment)")
    gate_headroom: float = Field(0.1, ge=0.0, le=1.0, description="with the gate, the experiment samples this "
                                 "fraction more and keeps the first unflagged ones, so a few excluded near-copies "
                                 "do not leave a class short of its synthetic count")
    tsne: bool = True
    seed: int = 0
    profile: Literal["light", "full"] = Field("light", description="light: distribution metrics on at most "
                                              "max_synthetic samples, bf16 extractors on a CPU with native bf16; "
                                              "full: every sample, fp32 (the gate checks every sample in both)")
    max_synthetic: int | None = Field(None, ge=2, description="synthetic images (a seeded sample) for FID/KID/PRDC, "
                                      "diversity and quality; null = the profile's (light: 500, full: all)")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="feature extractors' precision; auto = "
                                                       "bf16 under the light profile on a CPU with native bf16, "
                                                       "else fp32")

    @model_validator(mode="after")
    def _profile_defaults(self) -> "AuditConfig":
        if self.max_synthetic is None and self.profile == "light":
            self.max_synthetic = LIGHT_MAX_SYNTHETIC
        if self.domain_encoder.model_kwargs is None:
            light = self.profile == "light" and self.domain_encoder.model == "frid-adar-cnn"
            kwargs = dict(LIGHT_ENCODER_KWARGS) if light else {}
            self.domain_encoder = self.domain_encoder.model_copy(update={"model_kwargs": kwargs})
        return self

    @model_validator(mode="after")
    def _spaces_known(self) -> "AuditConfig":
        unknown = [s for s in self.memorisation_spaces if s != "pixel" and s not in self.extractors]
        if unknown:
            raise ValueError(f"memorisation_spaces {unknown} are neither 'pixel' nor among the extractors "
                             f"{self.extractors}")
        return self
