"""Named preprocessing pipelines (presets) and the one function that runs them.

A preset is a :class:`PreprocessConfig`: the typed, declarative description that checkpoints
and cache folders store. :func:`build_transforms` turns it into the list of dictionary
transforms (:mod:`sonogan.preprocess.transforms`) that does the work, and the cache key hashes
their tokens. :func:`apply_preset` is the single code path used by the cache (training) and
by inference, so a model always sees images prepared exactly as during training.

Z-score normalisation is deliberately NOT part of a preset and NOT baked into the cache: the
cache stores uint8 images, and the mean/std are computed at training time from the training
partition only (``functional.zscore_stats`` over the train ids of a fold), so validation and
test images never influence the statistics.

Example:
    >>> import numpy as np
    >>> cfg = get_preset("flagship-64")
    >>> img = np.zeros((120, 160, 3), np.uint8); img[10:110, 20:140] = 90
    >>> lesion = np.zeros((120, 160), np.uint8); lesion[40:70, 60:100] = 1
    >>> out, mask = apply_preset(cfg, img, lesion)
    >>> out.shape, mask.shape, out.dtype
    ((64, 64, 1), (64, 64), dtype('uint8'))
    >>> PRESETS.names()[:3]
    ['flagship-64', 'full-128', 'full-64']
    >>> [type(t).__name__ for t in build_transforms(cfg)]
    ['Channels', 'MedianFilter', 'ScanArea', 'LesionROI', 'Resize']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from sonogan.config import StrictModel
import sonogan.preprocess.transforms as T  # the module itself, not through preprocess/__init__.py (which imports this file)
from sonogan.preprocess.remove_annotations import RemoveAnnotations, remover_options
from sonogan.registry import Registry


class PreprocessConfig(StrictModel):
    """One preprocessing pipeline. Order: channels -> annotation removal -> median -> scan area
    -> lesion ROI -> CLAHE -> resize. Synthetic rows (already at GAN resolution) get channels +
    resize only."""

    name: str = Field("custom", description="used in the cache folder name")
    median_ksize: int | None = Field(3, description="odd median kernel; None = no filter")
    scan_area: bool = True
    scan_threshold: int = Field(10, ge=0, le=254)
    roi: Literal["none", "lesion"] = "lesion"
    roi_margin: float = Field(0.15, ge=0.0, le=2.0)
    size: int = Field(64, ge=8, le=1024)
    resize_mode: Literal["pad", "stretch"] = "pad"
    channels: Literal[1, 3] = 1
    clahe: bool = False
    clahe_clip: float = Field(2.0, gt=0)
    clahe_tile: int = Field(8, ge=1)
    remove_annotations: str | None = Field(None, description="annotation-remover checkpoint "
                                           "(sonogan annotations train); None = off")
    remove_annotations_sha256: str | None = Field(None, description="the remover's sha256, pinned: a changed file is an error")
    remove_annotations_on: Literal["detected", "all"] = Field("detected", description="images the detector flags, or all")


PRESETS: Registry[PreprocessConfig] = Registry("preprocess preset")


@PRESETS.register("flagship-64")
def _flagship_64() -> PreprocessConfig:
    # The flagship: 3x3 median, thresholded scan area, lesion ROI, 64 px. Its RGB input was
    # flattened to one channel; ultrasound is grey, so channels=1.
    return PreprocessConfig(name="flagship-64")


@PRESETS.register("full-64")
def _full_64() -> PreprocessConfig:
    return PreprocessConfig(name="full-64", roi="none", size=64)


@PRESETS.register("full-128")
def _full_128() -> PreprocessConfig:
    return PreprocessConfig(name="full-128", roi="none", size=128)


@PRESETS.register("roi-128")
def _roi_128() -> PreprocessConfig:
    return PreprocessConfig(name="roi-128", roi="lesion", size=128)


# Colour kept (MMOTU has colour Doppler and the pretrained backbones see RGB), sizes that
# ImageNet backbones are trained at. "full" keeps the whole scan area, "roi" the lesion's
# loose frame (needs masks, or the scan area is used).
@PRESETS.register("full-rgb-224")
def _full_rgb_224() -> PreprocessConfig:
    return PreprocessConfig(name="full-rgb-224", roi="none", size=224, channels=3)


@PRESETS.register("roi-rgb-224")
def _roi_rgb_224() -> PreprocessConfig:
    return PreprocessConfig(name="roi-rgb-224", roi="lesion", size=224, channels=3)


@PRESETS.register("full-rgb-160")
def _full_rgb_160() -> PreprocessConfig:
    return PreprocessConfig(name="full-rgb-160", roi="none", size=160, channels=3)


@PRESETS.register("roi-rgb-160")
def _roi_rgb_160() -> PreprocessConfig:
    return PreprocessConfig(name="roi-rgb-160", roi="lesion", size=160, channels=3)


# GAN presets use the same geometry as the classifier presets of the same size, so that the
# synthetic images mixed into training look like the real rows they sit beside.
@PRESETS.register("gan-64")
def _gan_64() -> PreprocessConfig:
    return PreprocessConfig(name="gan-64", roi="lesion", size=64)


@PRESETS.register("gan-128")
def _gan_128() -> PreprocessConfig:
    return PreprocessConfig(name="gan-128", roi="lesion", size=128)


# The same presets with burned-in annotations removed first (docs/annotation-removal.md): the
# remover is $SONOGAN_ANNOTATION_REMOVER (default ~/.cache/sonogan/annotation-remover.pt).
@PRESETS.register("roi-64-deannotated")
def _roi_64_deannotated() -> PreprocessConfig:  # flagship-64 with annotations removed
    return PreprocessConfig(name="roi-64-deannotated", **remover_options())


@PRESETS.register("roi-rgb-160-deannotated")
def _roi_rgb_160_deannotated() -> PreprocessConfig:
    return PreprocessConfig(name="roi-rgb-160-deannotated", roi="lesion", size=160, channels=3, **remover_options())


def get_preset(preset: str | PreprocessConfig) -> PreprocessConfig:
    """A registered preset by name (SonoganInputError listing the names if unknown), or the
    config itself."""
    if isinstance(preset, PreprocessConfig):
        return preset
    return PRESETS.create(preset)


def build_transforms(cfg: PreprocessConfig) -> list[T.DictTransform]:
    """The steps ``cfg`` describes, in order: channels -> annotation removal -> median -> scan
    area -> lesion ROI -> CLAHE -> resize (each one only when the config asks for it)."""
    steps: list[T.DictTransform] = [T.Channels(cfg.channels)]
    if cfg.remove_annotations:
        steps.append(RemoveAnnotations(cfg.remove_annotations, cfg.remove_annotations_sha256, cfg.remove_annotations_on))
    if cfg.median_ksize:
        steps.append(T.MedianFilter(cfg.median_ksize))
    if cfg.scan_area:
        steps.append(T.ScanArea(cfg.scan_threshold))
    if cfg.roi == "lesion":
        steps.append(T.LesionROI(cfg.roi_margin))
    if cfg.clahe:
        steps.append(T.CLAHE(cfg.clahe_clip, cfg.clahe_tile))
    steps.append(T.Resize(cfg.size, cfg.resize_mode))
    return steps


def pipeline(cfg: PreprocessConfig | str) -> T.Compose:
    """The composed transforms of a preset (or its name); ``.cache_token()`` keys the cache."""
    return T.Compose(build_transforms(get_preset(cfg)))


@dataclass
class PreprocessResult:
    image: np.ndarray        # (S, S, C) uint8
    mask: np.ndarray         # (S, S) uint8, 1 = lesion
    roi_fallback: bool       # True when the preset crops to the lesion but the mask was missing or empty


def run_pipeline(pipe: T.Compose, image: np.ndarray, mask: np.ndarray | None = None,
                 synthetic: bool = False) -> PreprocessResult:
    """Run an already built pipeline on one decoded image (uint8 RGB or grey) and its optional
    lesion mask (any non-zero = lesion). The cache builds the pipeline once for all rows."""
    out = pipe(T.make_sample(image, mask, synthetic))
    return PreprocessResult(image=out["image"], mask=out["mask"], roi_fallback=out["roi_fallback"])


def preprocess_one(cfg: PreprocessConfig | str, image: np.ndarray, mask: np.ndarray | None = None,
                   synthetic: bool = False) -> PreprocessResult:
    """Preprocess one image with preset ``cfg``. See :func:`apply_preset`."""
    return run_pipeline(pipeline(cfg), image, mask, synthetic)


def apply_preset(cfg: PreprocessConfig | str, image: np.ndarray, mask: np.ndarray | None = None,
                 synthetic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess one image -> (image (S,S,C) uint8, lesion mask (S,S) uint8 with 1 = lesion).

    With ``roi == "lesion"`` and a missing/empty mask, the whole scan area is kept
    (:func:`preprocess_one` reports that as ``roi_fallback``; the cache counts it).
    ``synthetic=True`` (GAN output, already cropped) only converts channels and resizes.
    """
    res = preprocess_one(cfg, image, mask, synthetic=synthetic)
    return res.image, res.mask
