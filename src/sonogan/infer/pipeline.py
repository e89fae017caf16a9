"""A two-stage model for scans without a drawn mask: segmenter -> lesion ROI -> classifier, in one file.

The best classifiers crop the lesion's loose frame with its mask (a lesion-ROI preset); a new
scan has no mask. ``pipeline.json`` ships such a classifier together with the ``sonogan
lesion`` segmenter that finds the lesion: :class:`Pipeline` segments each image
(:class:`~sonogan.lesion.locator.Locator`, mask mapped back onto the original pixels), crops
the loose frame exactly as the classifier's preset does (its own steps and margin,
:func:`~sonogan.infer.predictor.crop_with_box`), classifies, and returns the probabilities,
the mask and the box. Where the segmenter finds nothing, the preset's own fallback is used:
the whole scan area, flagged (``lesion_found`` false, box None).

The file (:class:`PipelineFile`, versioned, no pickled code) names the two stage files by
paths relative to itself, so a folder holding all three can be moved; it repeats the
classifier preset's crop (``roi``) for a human reader, and a classifier whose preset no longer
matches is refused. :func:`export_pipeline_onnx` writes ``segmenter.onnx``, the classifier's
ONNX folder and a ``pipeline.json`` pointing at them: the same pipeline on ONNX Runtime.

Example:
    >>> path = write_pipeline("deploy/pipeline.json", "runs/lesion/folds/fold0/segmentation/best.pt",
    ...                       "runs/exp/folds/fold0/baseline/ensemble.json")          # doctest: +SKIP
    >>> out = Pipeline.load(path).run([image])                                   # doctest: +SKIP
    >>> out.probs.shape, out.masks[0].shape == image.shape[:2], out.boxes[0]     # doctest: +SKIP
    ((1, 8), True, (212, 140, 398, 301))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import ValidationError

import sonogan
from sonogan.config import StrictModel
from sonogan.errors import SonoganInputError
from sonogan.infer.onnx import OnnxLocator, OnnxPredictor, export_onnx, export_segmenter_onnx
from sonogan.infer.predictor import ImageInput, Predictor
from sonogan.lesion.locator import Locator, MaskFinder, load_locator
from sonogan.preprocess import functional as F
from sonogan.preprocess.presets import PreprocessConfig
from sonogan.runs import read_format_json, write_json

FORMAT = "sonogan-pipeline"
FORMAT_VERSION = 1
FILE_NAME = "pipeline.json"
SEGMENTER_ONNX = "segmenter.onnx"
CLASSIFIER_ONNX = "classifier"
FIX = "pass a pipeline.json written by sonogan (write_pipeline, the experiment, or 'sonogan export --onnx')"


class StageFile(StrictModel):
    """One stage: its file relative to the pipeline file, and what runs it."""

    file: str
    backend: Literal["torch", "onnx"] = "torch"


class OnnxSegmenterInfo(StrictModel):
    """What an ONNX segmenter graph needs beside it (a checkpoint carries these itself)."""

    preprocess: dict[str, Any]
    postprocess: bool
    threshold: float = 0.5
    max_abs_diff_vs_torch: float


class RoiCrop(StrictModel):
    """The classifier preset's crop, repeated for the reader of the file (checked on load)."""

    preset: str
    roi_margin: float
    scan_area: bool
    size: int
    no_lesion_found: Literal["whole scan area"] = "whole scan area"  # the preset's fallback on an empty mask


class PipelineFile(StrictModel):
    """``pipeline.json``."""

    format: Literal["sonogan-pipeline"] = FORMAT
    version: int = FORMAT_VERSION
    sonogan_version: str = sonogan.__version__
    segmenter: StageFile
    classifier: StageFile
    roi: RoiCrop
    segmenter_onnx: OnnxSegmenterInfo | None = None


def roi_crop(preset: PreprocessConfig) -> RoiCrop:
    """The crop ``preset`` makes; a whole-scan preset has no lesion ROI and is refused."""
    if preset.roi != "lesion":
        raise SonoganInputError(f"preset '{preset.name}'", "the classifier reads the whole scan (roi: none), so a "
                                "segmenter adds nothing to it", "pair the segmenter with a lesion-ROI classifier")
    return RoiCrop(preset=preset.name, roi_margin=preset.roi_margin, scan_area=preset.scan_area, size=preset.size)


@dataclass
class PipelineOutput:
    """What :meth:`Pipeline.run` found for N images."""

    probs: np.ndarray                    # (N, K) calibrated probabilities
    masks: list[np.ndarray]              # bool (H, W) on each image: the mask the crop came from
    boxes: list[F.Box | None]            # the loose frame on the image; None = no lesion, whole scan area

    @property
    def lesion_found(self) -> np.ndarray:
        return np.array([b is not None for b in self.boxes], bool)


@dataclass
class Pipeline(ImageInput):
    """A segmenter and a lesion-ROI classifier behind the Predictor's API (``predict_images``
    finds the masks the caller does not give)."""

    locator: MaskFinder
    classifier: ImageInput
    files: dict[str, Path]               # resolved stage files: "segmenter", "classifier"

    def __post_init__(self) -> None:
        roi_crop(self.classifier.preset)  # a whole-scan classifier is refused

    @property
    def preset(self) -> PreprocessConfig:  # type: ignore[override]
        return self.classifier.preset

    @property
    def class_names(self) -> list[str]:
        return list(getattr(self.classifier, "class_names"))

    @property
    def temperature(self) -> float:
        return float(getattr(self.classifier, "temperature", 1.0))

    @property
    def precision(self) -> Any:  # type: ignore[override]
        """The classifier's inference precision (the segmenter runs in float32)."""
        return self.classifier.precision

    @classmethod
    def load(cls, path: str | Path, intra_op_threads: int = 0) -> "Pipeline":
        """From ``pipeline.json`` (or a folder holding one); ``intra_op_threads`` for ONNX stages."""
        path, spec = read_pipeline(path)
        seg, clf = (path.parent / spec.segmenter.file, path.parent / spec.classifier.file)
        for what, file in (("segmenter", seg), ("classifier", clf)):
            if not file.exists():
                raise SonoganInputError(file, f"the pipeline's {what} is missing",
                                        f"keep the stage files where {path.name} points (paths relative to it)")
        if spec.segmenter.backend == "onnx":
            if spec.segmenter_onnx is None:
                raise SonoganInputError(path, "an ONNX segmenter without its preprocessing", FIX)
            info = spec.segmenter_onnx
            locator: MaskFinder = OnnxLocator.load(seg, PreprocessConfig.model_validate(info.preprocess),
                                                   info.postprocess, info.threshold, intra_op_threads)
        else:
            locator = load_locator(seg)
        classifier: ImageInput = (OnnxPredictor.load(clf, intra_op_threads) if spec.classifier.backend == "onnx"
                                  else Predictor.load(clf))
        if roi_crop(classifier.preset) != spec.roi:
            raise SonoganInputError(path, "the classifier's preset crops differently from what the file records",
                                    "write the pipeline again for this classifier")
        return cls(locator, classifier, {"segmenter": seg, "classifier": clf})

    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities of already cropped and preprocessed pixels: the classifier alone."""
        return self.classifier.predict_pixels(pixels, batch_size)

    def find_masks(self, images: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """Each given mask (as bool), else the segmenter's."""
        masks = list(masks) if masks is not None else [None] * len(images)
        if len(masks) != len(images):
            raise SonoganInputError("predict", f"{len(masks)} masks for {len(images)} images",
                                    "pass one mask (or None) per image")
        todo = [k for k, m in enumerate(masks) if m is None]
        found = dict(zip(todo, self.locator.predict_masks([images[k] for k in todo]) if todo else []))
        return [found[k] if m is None else np.asarray(m).astype(bool) for k, m in enumerate(masks)]

    def predict_images(self, images: Sequence[np.ndarray],
                       masks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return self.run(images, masks).probs

    def run(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None) -> PipelineOutput:
        """Segment (where no mask is given), crop as the preset does, classify."""
        found = self.find_masks(images, masks)
        prepared = [self.prepare_with_box(img, m) for img, m in zip(images, found)]
        probs = self.predict_pixels(np.stack([p for p, _ in prepared])) if prepared else \
            np.zeros((0, len(self.class_names)))
        return PipelineOutput(probs, found, [b for _, b in prepared])


def read_pipeline(path: str | Path) -> tuple[Path, PipelineFile]:
    """(the json file, its checked contents) of ``pipeline.json`` or a folder holding one."""
    path = Path(path)
    path = path / FILE_NAME if path.is_dir() else path
    blob = read_format_json(path, FORMAT, "pipeline file", FIX, FORMAT_VERSION, article="the ")
    try:
        return path, PipelineFile.model_validate(blob)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SonoganInputError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}", FIX) from None


def is_pipeline(path: str | Path) -> bool:
    """``path`` is a pipeline file or a folder with one (read no further than the format field)."""
    path = Path(path)
    path = path / FILE_NAME if path.is_dir() else path
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        read_format_json(path, FORMAT, "pipeline file", FIX, FORMAT_VERSION)
    except SonoganInputError:
        return False
    return True


def _relative(file: Path, folder: Path) -> str:
    # relative and with forward slashes, so the folder can move (and be read on another OS)
    return Path(os.path.relpath(Path(file).resolve(), folder.resolve())).as_posix()


def write_pipeline(path: str | Path, segmenter: str | Path, classifier: str | Path) -> Path:
    """Write ``pipeline.json`` at ``path`` for a ``sonogan lesion`` segmenter (``best.pt``) and a
    lesion-ROI classifier (``best.pt`` or ``ensemble.json``); both are loaded first, so a file
    that does not work is never written. Returns ``path``."""
    path = Path(path)
    load_locator(segmenter)  # refuses a lesion model that does not segment whole scans
    spec = PipelineFile(segmenter=StageFile(file=_relative(Path(segmenter), path.parent)),
                        classifier=StageFile(file=_relative(Path(classifier), path.parent)),
                        roi=roi_crop(Predictor.load(classifier).preset))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, spec.model_dump(mode="json"))
    return path


def export_pipeline_onnx(path: str | Path, out_dir: str | Path) -> Path:
    """``segmenter.onnx`` + the classifier's ONNX folder + ``pipeline.json`` pointing at them, in
    ``out_dir`` (each graph checked against PyTorch); ``path``: a PyTorch pipeline file."""
    pipeline = Pipeline.load(path)
    if not isinstance(pipeline.locator, Locator) or not isinstance(pipeline.classifier, Predictor):
        raise SonoganInputError(path, "is already an ONNX pipeline", "export the PyTorch pipeline.json")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SonoganInputError(out, "exists and is not a folder", "choose another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    loc = pipeline.locator
    diff = export_segmenter_onnx(loc, out / SEGMENTER_ONNX)
    export_onnx(pipeline.classifier, out / CLASSIFIER_ONNX)
    spec = PipelineFile(segmenter=StageFile(file=SEGMENTER_ONNX, backend="onnx"),
                        classifier=StageFile(file=CLASSIFIER_ONNX, backend="onnx"),
                        roi=roi_crop(pipeline.preset),
                        segmenter_onnx=OnnxSegmenterInfo(preprocess=loc.preset.model_dump(mode="json"),
                                                         postprocess=loc.postprocess, threshold=loc.threshold,
                                                         max_abs_diff_vs_torch=diff))
    write_json(out / FILE_NAME, spec.model_dump(mode="json"))  # last: its presence marks a complete export
    return out
