"""Self-describing classifier checkpoints: the file rebuilds its own model.

A checkpoint is a plain dict saved with ``torch.save`` (so ``torch.load(weights_only=True)``
can read it safely): the state_dict, the build arguments, class names, the preprocessing
preset (a ``PreprocessConfig`` dump), the train-only :class:`~sonogan.preprocess.fold.Normaliser`
(``normaliser``: mean, std, offset), the model's input (``input``: in_chans, image_size) and
free-form ``extra`` (epoch, val loss, ...). Format 1 files (``norm: [mean, std]``) still load.

Example:
    >>> from sonogan.models.classifiers import create_classifier
    >>> model = create_classifier("frid-adar-cnn", num_classes=3)
    >>> from sonogan.preprocess.fold import Normaliser
    >>> save_classifier("/tmp/m.pt", model, "frid-adar-cnn", 3, 1, ["a", "b", "c"],
    ...                 preprocess={"size": 64}, normaliser=Normaliser((0.5,), (0.2,)), image_size=64)
    PosixPath('/tmp/m.pt')
    >>> model2, meta = load_classifier("/tmp/m.pt")
    >>> meta["class_names"], meta["normaliser"]["mean"], meta["input"]
    (['a', 'b', 'c'], [0.5], {'in_chans': 1, 'image_size': 64, 'tta': 'none'})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

import sonogan
from sonogan.torch_utils import atomic_torch_save, load_torch_file
from sonogan.errors import SonoganInputError
from sonogan.models.classifiers import create_classifier


class SavesAsDict(Protocol):
    """What a checkpoint needs of the normaliser (:class:`sonogan.preprocess.fold.Normaliser`,
    one layer up: models/ do not import preprocess/): its plain-value dict."""

    def to_dict(self) -> dict[str, Any]: ...


FORMAT = "sonogan-classifier"
FORMAT_VERSION = 2


def save_classifier(path: str | Path, model: nn.Module, name: str, num_classes: int, in_chans: int,
                    class_names: list[str], preprocess: dict[str, Any] | None = None,
                    normaliser: SavesAsDict | None = None, image_size: int | None = None, tta: str = "none",
                    extra: dict[str, Any] | None = None, model_kwargs: dict[str, Any] | None = None) -> Path:
    """Save ``model`` with everything needed to rebuild it; returns the path.

    ``model_kwargs`` defaults to the keyword arguments ``create_classifier`` recorded on the
    model. ``preprocess`` and ``extra`` must hold plain values (str, numbers, lists, dicts).
    """
    if len(class_names) != num_classes:
        raise SonoganInputError(path, f"{len(class_names)} class names for {num_classes} classes",
                                "pass one name per class")
    if model_kwargs is None:
        model_kwargs = dict(getattr(model, "sonogan_config", {}).get("kwargs", {}))
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sonogan_version": sonogan.__version__,
        "config": {"name": name, "num_classes": int(num_classes), "in_chans": int(in_chans),
                   "model_kwargs": model_kwargs},
        "class_names": [str(c) for c in class_names],
        "preprocess": dict(preprocess or {}),
        "normaliser": None if normaliser is None else normaliser.to_dict(),
        "input": {"in_chans": int(in_chans), "image_size": None if image_size is None else int(image_size),
                  "tta": tta},
        "extra": dict(extra or {}),
        # clone to CPU so a CUDA model saves a device-independent file
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    return atomic_torch_save(blob, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load the raw checkpoint dict (weights_only) and check it is a sonogan classifier."""
    path = Path(path)
    blob = load_torch_file(path, "check the path", "pass a .pt file written by sonogan")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise SonoganInputError(path, "not a sonogan classifier checkpoint",
                                "pass a best.pt / model file written by sonogan training")
    if int(blob.get("format_version", 0)) > FORMAT_VERSION:
        raise SonoganInputError(path, f"checkpoint format {blob['format_version']} is newer than this sonogan",
                                "upgrade sonogan")
    if "normaliser" not in blob:  # format 1: one scalar z-score as [mean, std]
        norm = blob.pop("norm", None)
        blob["normaliser"] = None if norm is None else {"mean": [norm[0]], "std": [norm[1]], "offset": 0.0}
        blob["input"] = {"in_chans": blob["config"]["in_chans"],
                         "image_size": blob.get("extra", {}).get("train_config", {}).get("image_size"), "tta": "none"}
    return blob


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored at ``path`` (eval mode); returns ``(model, meta)``.

    ``meta`` is the checkpoint dict without the state_dict (config, class_names, preprocess,
    norm, extra, sonogan_version).
    """
    blob = read_checkpoint(path)
    cfg = blob["config"]
    model = create_classifier(cfg["name"], num_classes=cfg["num_classes"], in_chans=cfg["in_chans"],
                              **cfg.get("model_kwargs", {}))
    model.load_state_dict(blob["state_dict"])
    model.to(map_location).eval()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return model, meta


def set_calibration(path: str | Path, calibration: dict[str, Any]) -> Path:
    """Store a fitted calibration (e.g. ``{"temperature": T, "fitted_on": ...}``) in the checkpoint
    at ``path``, atomically; :class:`sonogan.infer.Predictor` applies it."""
    blob = read_checkpoint(path)
    blob["calibration"] = dict(calibration)
    return atomic_torch_save(blob, path)
