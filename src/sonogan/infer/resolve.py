"""Find what a MODEL argument means: one checkpoint, one ensemble, or a run's fold models.

``MODEL`` may be

* a classifier checkpoint ``best.pt`` or an ensemble file ``ensemble.json`` (one predictor);
* a pipeline file ``pipeline.json`` (or a folder with one, e.g. its ONNX export): a segmenter
  and a lesion-ROI classifier (:class:`~sonogan.infer.pipeline.Pipeline`), for scans without a mask;
* an ONNX export folder (``onnx_model.json``, from ``sonogan export --onnx``): the same
  predictions through ONNX Runtime (no Grad-CAM, no validation predictions: it has left its run);
* an experiment run folder (``run.json`` + ``folds/``): one arm's models of every fold (or of
  ``fold``), averaged with equal weights after each fold's own temperature, the
  cross-validation ensemble the experiment reports on its hold-out test;
* a ``sonogan lesion`` run folder, or one of its arms' ``best.pt``: the whole-scan classifiers
  (``classification``, ``multitask``; default arm ``classification``) the same way, each fold's
  model reading the scan with its own preset and normaliser (:class:`LesionClassifier`);
* an annotation-remover run is not a classifier: a one-line error says what to use instead.

Paths inside a run come from :mod:`sonogan.layout`, the one run layout of every protocol.

Inside a run the files around the model say more, read-only: each fold's **validation**
predictions (``predictions.npz``), from which the referral operating point is chosen
(:func:`validation_predictions`), and the run's config and splits, from which the images the
models were developed on (train + validation of every fold = every non-test image) are found
(:func:`development_ids`).

Example:
    >>> loaded = load_model("runs/exp", arm="baseline")                       # doctest: +SKIP
    >>> loaded.description                                                    # doctest: +SKIP
    'runs/exp arm baseline, model frid-adar-cnn, folds 0, 1 averaged'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import torch
from torch import nn

from sonogan import layout
from sonogan.errors import SonoganInputError
from sonogan.infer.calibration import apply_temperature
from sonogan.infer.pipeline import Pipeline, is_pipeline
from sonogan.infer.predictor import ImageInput, Member, Predictor
from sonogan.lesion.train import load_lesion
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import PreprocessConfig

RUN_FILE = layout.RUN_FILE
REMOVER_KIND = "annotation-remover"
ONNX_META = "onnx_model.json"  # sonogan.infer.onnx.META_NAME, without importing ONNX Runtime here


@dataclass
class FoldAverage(ImageInput):
    """Equal-weight average of several predictors' (calibrated) probabilities; one preset."""

    predictors: list[Predictor]
    class_names: list[str] = field(init=False)
    preset: PreprocessConfig = field(init=False)

    def __post_init__(self) -> None:
        first = self.predictors[0]
        for p in self.predictors[1:]:
            if p.preset != first.preset or p.class_names != first.class_names:
                raise SonoganInputError("models", "the fold models differ in preprocessing or classes",
                                        "average only models of one experiment")
        self.class_names, self.preset = list(first.class_names), first.preset

    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.mean([p.predict_pixels(pixels, batch_size) for p in self.predictors], axis=0)


class ScanLogits(nn.Module):
    """A lesion model's whole-scan logits alone (the ``"logits"`` of its dict output): a classifier's output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["logits"]


@dataclass
class LesionClassifier(ImageInput):
    """A ``sonogan lesion`` whole-scan classifier (``classification`` or ``multitask`` arm) with
    the preset, normaliser and input size of its training, behind the Predictor's API."""

    model: nn.Module
    normaliser: Normaliser
    in_chans: int
    image_size: int
    class_names: list[str]
    preset: PreprocessConfig
    temperature: float = 1.0  # lesion models are not temperature-scaled

    @classmethod
    def load(cls, path: str | Path, fix: str = "choose --arm classification or multitask") -> "LesionClassifier":
        """From a lesion arm's ``best.pt``; an arm that does not classify the whole scan by itself
        is refused with ``fix`` (what the calling command should be given instead)."""
        model, meta = load_lesion(path)
        if meta["model_config"].get("outputs") not in ("classification", "multitask"):
            raise SonoganInputError(path, f"the lesion arm '{meta.get('arm')}' does not classify the scan",
                                    f"{fix} (a segmenter goes to --segmenter)")
        if meta.get("clinical") is not None or meta.get("cascade") is not None:
            raise SonoganInputError(path, f"the lesion arm '{meta.get('arm')}' needs clinical variables or its "
                                    "segmenter's crops, which a whole-scan classifier does not take", fix)
        return cls(model, Normaliser.from_dict(meta["normaliser"]), int(meta["in_chans"]), int(meta["image_size"]),
                   list(meta["class_names"]), PreprocessConfig.model_validate(meta["preprocess"]))

    def as_predictor(self, name: str) -> Predictor:
        """The same classifier as a one-member :class:`Predictor` (what ``export --onnx`` writes)."""
        member = Member(name, ScanLogits(self.model), self.normaliser, self.in_chans, self.image_size)
        return Predictor([member], np.ones(1), list(self.class_names), self.preset)

    @torch.no_grad()
    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = self.normaliser(pixels, self.in_chans, self.image_size)
        probs = [torch.softmax(self.model(x[i:i + batch_size])["logits"].float(), 1).double().numpy()
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(probs) if probs else np.zeros((0, len(self.class_names)))


def _is_lesion_checkpoint(path: Path) -> bool:
    """A ``sonogan lesion`` checkpoint: its run's run.json says so (no torch.load needed)."""
    place = layout.locate(path)
    return place is not None and layout.read_info(place.run).get("kind") == "lesion"


def _refuse_remover(path: Path) -> None:
    raise SonoganInputError(path, "an annotation remover is not a classifier",
                            "clean the images with 'sonogan annotations apply RUN/remover.pt IMAGES --out DIR', "
                            "then predict them with a classifier run")


def export_predictor(path: Path) -> Predictor:
    """What ``sonogan export --onnx`` writes for the model file ``path``: a classifier checkpoint
    or ensemble as it loads; a lesion arm's ``best.pt`` as its whole-scan classifier. An arm
    that needs clinical values or its segmenter's crops is refused, naming the arm to export."""
    place = layout.locate(path)
    if place is None or layout.read_info(place.run).get("kind") != "lesion":
        return Predictor.load(path)
    other = layout.arm_dir(place.run, place.fold, "classification") / layout.BEST_FILE  # type: ignore[arg-type]
    fix = f"export a whole-scan arm (classification or multitask) instead, e.g. {other}"
    return LesionClassifier.load(path, fix).as_predictor(place.arm or "lesion")


def _load_one(path: Path) -> ImageInput:
    return LesionClassifier.load(path) if _is_lesion_checkpoint(path) else Predictor.load(path)


@dataclass
class ModelFile:
    """One checkpoint / ensemble file and where it sits in a run (if it does)."""

    path: Path
    run_dir: Path | None = None
    fold: int | None = None
    arm: str | None = None
    model: str | None = None      # classifier name, or "ensemble"


@dataclass
class LoadedModel:
    """A predictor with the files it came from."""

    predictor: ImageInput
    files: list[ModelFile]
    description: str

    @property
    def run_dir(self) -> Path | None:
        return self.files[0].run_dir

    @property
    def class_names(self) -> list[str]:
        return list(getattr(self.predictor, "class_names"))


def find_run(path: Path) -> ModelFile:
    """``path`` (a model file) with its run, fold, arm and model when it lies in a run (:func:`sonogan.layout.locate`)."""
    path = Path(path)
    place = layout.locate(path)
    if place is None:
        return ModelFile(path)
    return ModelFile(path, place.run, place.fold, place.arm, place.model)


def run_model_files(run_dir: Path, arm: str | None = None, model: str | None = None,
                    fold: int | None = None) -> list[ModelFile]:
    """The model file of ``arm`` (default: baseline) in every fold of ``run_dir`` (or ``fold``).

    ``model``: a classifier name or "ensemble"; default the arm's ensemble when there is one,
    else its single classifier.
    """
    info = layout.read_info(run_dir)
    layout.check_layout(run_dir)
    if info.get("kind") == REMOVER_KIND:
        _refuse_remover(run_dir)
    lesion = info.get("kind") == "lesion"
    run_folds = list(info.get("folds") or [])
    if fold is not None and fold not in run_folds:
        listed = ", ".join(map(str, run_folds)) or "none"
        raise SonoganInputError(run_dir, f"fold {fold} does not exist (the run's folds: {listed})",
                                "choose one of them with --fold, or leave --fold out to average every fold")
    folds = [fold] if fold is not None else run_folds
    arm = arm or ("classification" if lesion else "baseline")
    files = []
    for k in folds:
        arm_dir = layout.arm_dir(run_dir, k, arm)
        if lesion and (arm_dir / layout.BEST_FILE).is_file():  # a lesion arm is one model
            if model is not None:
                raise SonoganInputError(arm_dir, "a lesion arm holds one model", "drop --model")
            files.append(ModelFile(arm_dir / layout.BEST_FILE, run_dir, k, arm, None))
            continue
        if not arm_dir.is_dir():
            known = sorted(p.name for p in arm_dir.parent.glob("*") if p.is_dir())
            raise SonoganInputError(arm_dir, f"no arm '{arm}' in fold {k}", f"choose --arm from {known}")
        if model in (None, "ensemble") and (arm_dir / "ensemble.json").is_file():
            files.append(ModelFile(arm_dir / "ensemble.json", run_dir, k, arm, "ensemble"))
            continue
        names = sorted(p.parent.name for p in arm_dir.glob(f"*/{layout.BEST_FILE}"))
        name = model if model not in (None, "ensemble") else (names[0] if len(names) == 1 else None)
        if name is None or name not in names:
            raise SonoganInputError(arm_dir, f"no model '{model}' here" if model else f"{len(names)} models, no ensemble",
                                    f"choose --model from {names}")
        files.append(ModelFile(layout.model_dir(run_dir, k, arm, name) / layout.BEST_FILE, run_dir, k, arm, name))
    if not files:
        raise SonoganInputError(run_dir, "the run has no finished fold", "finish the run first")
    return files


def load_model(path: str | Path, arm: str | None = None, model: str | None = None,
               fold: int | None = None) -> LoadedModel:
    """A checkpoint, an ensemble file, or a run folder (``arm``/``model``/``fold`` choose inside it)."""
    path = Path(path)
    if path.is_dir() and (path / RUN_FILE).is_file():
        files = run_model_files(path, arm, model, fold)
        predictors = [_load_one(f.path) for f in files]
        folds = ", ".join(str(f.fold) for f in files)
        what = (f"{path} arm {files[0].arm}" + (f", model {files[0].model}" if files[0].model else "")
                + f", fold{'s' if len(files) > 1 else ''} {folds}")
        if len(predictors) == 1:
            return LoadedModel(predictors[0], files, what)
        return LoadedModel(FoldAverage(predictors), files, what + " averaged")
    if is_pipeline(path):
        if arm or model or fold is not None:
            raise SonoganInputError(path, "--arm / --model / --fold choose inside a run folder", "drop them")
        pipeline = Pipeline.load(path)
        seg, clf = pipeline.files["segmenter"], pipeline.files["classifier"]
        # the classifier's place in its run: its validation predictions set the referral threshold
        return LoadedModel(pipeline, [find_run(clf)], f"{path} (segmenter {seg}, classifier {clf})")
    if (path / ONNX_META).is_file() or path.name == ONNX_META:
        if arm or model or fold is not None:
            raise SonoganInputError(path, "--arm / --model / --fold choose inside a run folder", "drop them")
        from sonogan.infer.onnx import OnnxPredictor  # ONNX Runtime is only needed for exported models

        return LoadedModel(OnnxPredictor.load(path), [ModelFile(path)], f"{path} (ONNX Runtime)")
    if path.is_dir():
        raise SonoganInputError(path, "a folder without run.json or onnx_model.json",
                                "pass an experiment run folder, a best.pt, an ensemble.json or an ONNX export")
    if arm or model or fold is not None:
        raise SonoganInputError(path, "--arm / --model / --fold choose inside a run folder",
                                "pass the run folder, or drop them")
    if path.name == layout.REMOVER_FILE:
        _refuse_remover(path)
    return LoadedModel(_load_one(path), [find_run(path)], str(path))


def _fold_validation(f: ModelFile) -> tuple[np.ndarray, np.ndarray]:
    """Raw validation probabilities and labels of one fold's model, from the run's saved files."""
    saved = np.load(layout.fold_dir(f.run_dir, f.fold) / "predictions.npz")  # type: ignore[arg-type]
    key = f"{f.arm}|{f.model}|val"
    if key not in saved.files:
        raise FileNotFoundError(key)
    return saved[key], saved["y|val"]


def validation_predictions(loaded: LoadedModel) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Calibrated validation probabilities, labels and a description, or None outside a run.

    Each fold's model is scored on its own validation images with its own temperature, as
    the Predictor applies it; for a fold average these are pooled out-of-fold.
    """
    probs, labels, calibrated = [], [], False
    for f, predictor in zip(loaded.files, _predictors(loaded)):
        if f.run_dir is None:
            return None
        try:
            p, y = _fold_validation(f)
        except (FileNotFoundError, KeyError):
            return None
        calibrated |= predictor.temperature != 1.0
        probs.append(apply_temperature(p, predictor.temperature) if predictor.temperature != 1.0 else p)
        labels.append(y)
    folds = ", ".join(str(f.fold) for f in loaded.files)
    what = (f"fold{'s' if len(loaded.files) > 1 else ''} {folds} validation "
            f"({'temperature-calibrated' if calibrated else 'no temperature stored, raw probabilities'})")
    return np.concatenate(probs), np.concatenate(labels), what


def _predictors(loaded: LoadedModel) -> list[Predictor]:
    p = loaded.predictor
    return p.predictors if isinstance(p, FoldAverage) else [p]  # type: ignore[list-item]
