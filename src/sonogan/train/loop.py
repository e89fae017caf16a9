"""Classifier training on the one supervised loop (:mod:`sonogan.train.supervised`): early
stopping on validation loss, checkpoints, exact resume; and prediction with a trained classifier.

Data are preloaded tensors (N, C, H, W), already z-scored by the caller with training-set
statistics. :func:`train_classifier` checks them, builds the classifier, its optimiser recipe
(:mod:`sonogan.train.recipe`) and the classification task, and hands them to the loop; the
loop owns randomness, precision, resume and early stopping (see there). Under torchrun the
loop runs DDP (:mod:`sonogan.train.distributed`). Its precision is :func:`classifier_precision`'s:
on the CPU ``precision`` / ``memory_format`` (fp32 / channels_first by default; ``auto`` picks
what was measured fastest for the model at that size), on CUDA ``amp``; ``compile: true`` adds
torch.compile. ``best.pt`` and ``history.json`` record what was used and why.

Files in ``out_dir``: ``best.pt`` (a :func:`sonogan.models.save_classifier` checkpoint of the
lowest-val-loss epoch), ``last.pt`` (full training state), ``history.json``
(``{"epochs": [{epoch, train_loss, train_acc, val_loss, val_acc, lr}], "best_epoch", ...}``).

Example:
    >>> import torch
    >>> from sonogan.train.config import ClassifierTrainConfig
    >>> cfg = ClassifierTrainConfig(image_size=16, epochs=2, batch_size=8, device="cpu")
    >>> x, y = torch.randn(16, 1, 16, 16), torch.arange(16) % 2
    >>> res = train_classifier(cfg, x, y, x, y, "/tmp/sonogan-doc-run", ["a", "b"], resume=False)
    >>> len(res.history), predict_proba(res.model, x).shape
    (2, (16, 2))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.models.checkpoint import save_classifier
from sonogan.models.classifiers import check_input_size, create_classifier
from sonogan.preprocess.fold import Normaliser
from sonogan.torch_utils import resolve_device
import sonogan.train.distributed as ddp  # the module itself, not through train/__init__.py (which imports the loop)
from sonogan.train.accel import Precision, precision_for, resolve_precision
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.recipe import make_ema, make_optimizer, make_scheduler, tta_logits
from sonogan.train.supervised import LoopOptions, Parts, TensorBatches, batch_starts, train_supervised
from sonogan.train.tasks import build_task

STATE_FORMAT = "sonogan-train-state"


@dataclass
class TrainResult:
    """What :func:`train_classifier` returns; ``model`` holds the best weights, in eval mode."""

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_loss: float | None
    epochs_run: int
    stopped_early: bool
    out_dir: Path
    best_path: Path
    last_path: Path
    device: str
    seconds: float
    precision: dict[str, Any]  # Precision.describe(): what was used and why


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 256, tta: str = "none") -> torch.Tensor:
    """Logits (N, C) on CPU, in eval mode, batch by batch on the model's device (``tta``: see
    :func:`sonogan.train.recipe.tta_logits`)."""
    model.eval()
    device = next(model.parameters()).device
    outs = [tta_logits(model, x[i:i + batch_size].to(device), tta).float().cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256, tta: str = "none") -> np.ndarray:
    """Softmax probabilities (N, C) as float64 numpy, eval mode, no grad."""
    return torch.softmax(predict_logits(model, x, batch_size, tta), dim=1).double().numpy()


def _check_inputs(cfg: ClassifierTrainConfig, x: torch.Tensor, y: torch.Tensor, n_classes: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != cfg.in_chans or not torch.is_floating_point(x):
        raise SonoganInputError(what, f"images have shape {tuple(x.shape)}, dtype {x.dtype}",
                                f"pass float tensors (N, {cfg.in_chans}, H, W) matching in_chans")
    if tuple(x.shape[-2:]) != (cfg.image_size, cfg.image_size):
        raise SonoganInputError(what, f"images are {x.shape[-2]}x{x.shape[-1]} px, config says image_size "
                                f"{cfg.image_size}", "resize the images or change image_size")
    if y.shape != (x.shape[0],) or (len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes)):
        raise SonoganInputError(what, "labels do not match the images",
                                f"pass {x.shape[0]} integer labels in [0, {n_classes - 1}]")


def _check_shards(n: int, batch_size: int) -> None:
    """Distributed, every rank needs at least one image of every batch."""
    smallest = min(batch_size, n - batch_starts(n, batch_size)[-1]) if n else 0
    if ddp.is_distributed() and smallest < ddp.world_size():
        raise SonoganInputError("batch_size", f"a batch of {smallest} images cannot be shared by "
                                f"{ddp.world_size()} processes", "use a larger batch_size or fewer processes")


def classifier_precision(cfg: ClassifierTrainConfig) -> Precision:
    """The precision ``cfg`` trains in on this machine (:func:`sonogan.train.accel.resolve_precision`
    for ``cfg.model`` at ``cfg.image_size``; on CUDA the ``amp`` policy)."""
    device = ddp.device_for(resolve_device(cfg.device))
    return resolve_precision(device, cfg.precision, cfg.memory_format, family=cfg.model, size=cfg.image_size,
                             compile=cfg.compile, cuda=precision_for(device, amp=cfg.amp))


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    # cheap identity check of the data a saved state was trained on (shape, sums)
    return [float(x.shape[0]), float(x.detach().double().sum()), float(y.double().sum())]


def _same_config(saved: Any, cfg: ClassifierTrainConfig) -> bool:
    # through the model: a state saved before a new option existed has that option's default
    try:
        return ClassifierTrainConfig.model_validate(saved).model_dump(mode="json") == cfg.model_dump(mode="json")
    except ValueError:
        return False


def _matches(cfg: ClassifierTrainConfig, class_names: list[str], data: list[list[float]]) -> Callable[[dict], bool]:
    """Whether a saved state is this run's: same config, class list and data (sums to 1e-6)."""
    def check(state: dict) -> bool:
        same_data = all(len(a) == len(b) and np.allclose(a, b, rtol=1e-6) for a, b in zip(state.get("data", []), data))
        return (state.get("format") == STATE_FORMAT and _same_config(state.get("config"), cfg)
                and state.get("class_names") == class_names and same_data)
    return check


def train_classifier(cfg: ClassifierTrainConfig, train_x: torch.Tensor, train_y: torch.Tensor,
                     val_x: torch.Tensor | None, val_y: torch.Tensor | None, out_dir: str | Path,
                     class_names: list[str], progress: bool = False, resume: bool = True, *,
                     normaliser: Normaliser | None = None, preprocess: dict[str, Any] | None = None,
                     description: str | None = None,
                     on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> TrainResult:
    """Train ``cfg.model`` with early stopping on validation loss; see the module docstring.

    ``normaliser`` / ``preprocess`` are stored in ``best.pt`` for inference; ``description``
    names the run in the progress bar (e.g. fold and arm). ``on_epoch_end(epoch,
    record)`` is called after each epoch's files are written (logging; raising there stops
    the run and a later call resumes it). Without validation data there is no early stopping
    and the last epoch is the best. Under torchrun only rank 0 writes files and calls
    ``on_epoch_end``; every rank returns the best weights.
    """
    out_dir = Path(out_dir)
    n_classes = len(class_names)
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    _check_inputs(cfg, train_x, train_y, n_classes, "training images")
    has_val = val_x is not None and val_y is not None and len(val_x) > 0
    val = None
    if has_val:
        val_y = torch.as_tensor(val_y, dtype=torch.long)
        _check_inputs(cfg, val_x, val_y, n_classes, "validation images")
        val = {"image": val_x, "label": val_y}
    check_input_size(cfg.model, cfg.image_size, cfg.image_size)
    _check_shards(len(train_x), cfg.batch_size)
    precision = classifier_precision(cfg)
    data_id = [_fingerprint(train_x, train_y)] + ([_fingerprint(val_x, val_y)] if has_val else [])

    def save_best(path: Path, model: nn.Module, record: dict[str, Any]) -> None:
        save_classifier(path, model, cfg.model, n_classes, cfg.in_chans, class_names,
                        preprocess=preprocess or {"image_size": cfg.image_size}, normaliser=normaliser,
                        image_size=cfg.image_size, tta=cfg.tta,
                        extra={"epoch": record["epoch"], "val_loss": record["val_loss"],
                               "train_config": cfg.model_dump(mode="json"), "precision": precision.describe()})

    parts = Parts(model=lambda: create_classifier(cfg.model, num_classes=n_classes, in_chans=cfg.in_chans,
                                                  pretrained=cfg.pretrained, weights_path=cfg.weights_path,
                                                  image_size=cfg.image_size, **cfg.model_kwargs),
                  task=lambda: build_task("classification", cfg.loss, train_y, n_classes, gamma=cfg.focal_gamma,
                                          label_smoothing=cfg.label_smoothing),
                  optimizer=lambda model: make_optimizer(cfg, model, precision.optimizer_kwargs()),
                  scheduler=lambda optimizer, steps: make_scheduler(cfg, optimizer, steps),
                  ema=lambda model: make_ema(cfg, model))
    options = LoopOptions(epochs=cfg.epochs, seed=cfg.seed, precision=precision, patience=cfg.patience,
                          min_delta=cfg.min_delta, keep=cfg.keep, num_threads=cfg.num_threads,
                          description=description or cfg.model)
    identity = {"format": STATE_FORMAT, "config": cfg.model_dump(mode="json"), "class_names": list(class_names),
                "data": data_id}
    res = train_supervised(parts, TensorBatches({"image": train_x, "label": train_y}, cfg.batch_size, cfg.augment),
                           options, out_dir, identity=identity, val=val,
                           matches=_matches(cfg, list(class_names), data_id), save_best=save_best, resume=resume,
                           progress=progress, on_epoch_end=on_epoch_end)
    return TrainResult(model=res.model, history=res.history, best_epoch=res.best_epoch,
                       best_val_loss=res.best_val_loss, epochs_run=len(res.history), stopped_early=res.stopped_early,
                       out_dir=out_dir, best_path=res.best_path or out_dir / "best.pt", last_path=res.last_path,
                       device=str(precision.device), seconds=res.seconds, precision=precision.describe())
