"""Training, prediction and checkpoints of lesion models (segmenter, multitask, fused classifier).

Training runs on the one supervised loop (:mod:`sonogan.train.supervised`), as classifiers do:
the batches carry masks, mask flags and clinical variables, geometric augmentation moves image
and mask together (:func:`sonogan.train.augment.augment_fields`), the task is a lesion task
of :mod:`sonogan.train.tasks` (the cGAN's discriminator is its own state, saved in
``last.pt`` too), and the loop's guarantees hold: seeded, resumable after a kill at any
epoch, same numbers on CPU, the classifier's precision options on CUDA.

Files in ``out_dir``: ``best.pt`` (a ``sonogan-lesion`` checkpoint, see :func:`save_lesion`),
``last.pt`` (training state), ``history.json``.

Example:
    >>> import torch
    >>> from sonogan.models.multitask import LesionModelConfig
    >>> mcfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs="segmentation")
    >>> tcfg = LesionTrainConfig(image_size=32, epochs=1, batch_size=4)
    >>> data = {"image": torch.randn(4, 1, 32, 32), "mask": (torch.rand(4, 1, 32, 32) > .5).float(),
    ...         "has_mask": torch.ones(4, dtype=torch.bool), "label": torch.zeros(4, dtype=torch.long)}
    >>> res = train_lesion(mcfg, tcfg, "segmentation", {}, data, None, "/tmp/sonogan-lesion-doc", resume=False)
    >>> predict(res.model, data)["mask_prob"].shape
    (4, 32, 32)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

import sonogan
from sonogan.errors import SonoganInputError
from sonogan.lesion.config import LesionTrainConfig
from sonogan.models.multitask import LesionModelConfig, build_lesion_model
from sonogan.torch_utils import atomic_torch_save, load_torch_file, resolve_device
from sonogan.train.accel import Precision, precision_for, resolve_precision
from sonogan.train.recipe import make_optimizer, make_scheduler
from sonogan.train.supervised import LoopOptions, Parts, TensorBatches, train_supervised
from sonogan.train.tasks import TASKS

FORMAT = "sonogan-lesion"
FORMAT_VERSION = 1
STATE_FORMAT = "sonogan-lesion-state-2"  # 2: the loop's last.pt (identity keys beside the training state)


@dataclass
class LesionTrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    seconds: float


def save_lesion(path: str | Path, model: nn.Module, model_cfg: LesionModelConfig | None, meta: dict[str, Any]) -> Path:
    """A self-describing checkpoint: state_dict, the model config that rebuilds it, and ``meta``
    (class_names, preprocess, normaliser, image_size, clinical encoder, ...: plain values)."""
    blob = {"format": FORMAT, "format_version": FORMAT_VERSION, "sonogan_version": sonogan.__version__,
            "model_config": None if model_cfg is None else model_cfg.model_dump(mode="json"),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, **meta}
    return atomic_torch_save(blob, path)


def read_lesion(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (weights_only), checked to be a lesion model."""
    path = Path(path)
    blob = load_torch_file(path, "check the path", "pass a best.pt written by 'sonogan lesion'")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or blob.get("model_config") is None:
        raise SonoganInputError(path, "not a sonogan lesion-model checkpoint",
                                "pass a segmentation or multitask arm's best.pt from a 'sonogan lesion' run")
    if int(blob.get("format_version", 0)) > FORMAT_VERSION:
        raise SonoganInputError(path, f"checkpoint format {blob['format_version']} is newer than this sonogan",
                                "upgrade sonogan")
    return blob


def load_lesion(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the lesion model stored at ``path`` (eval mode, CPU) -> (model, meta)."""
    blob = read_lesion(path)
    cfg = LesionModelConfig.model_validate(blob["model_config"])
    model = build_lesion_model(cfg.model_copy(update={"pretrained": False}))  # the weights come from the file
    model.load_state_dict(blob["state_dict"])
    return model.eval(), {k: v for k, v in blob.items() if k != "state_dict"}


def _init_model(model_cfg: LesionModelConfig | nn.Module, init_state: dict[str, torch.Tensor] | None) -> nn.Module:
    """The model (built, or the ready module), with the tensors of ``init_state`` whose shape fits."""
    model = build_lesion_model(model_cfg) if isinstance(model_cfg, LesionModelConfig) else model_cfg
    if init_state is not None:
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in init_state.items() if k in own and own[k].shape == v.shape},
                              strict=False)
    return model


def lesion_precision(cfg: LesionTrainConfig, family: str, device: str = "cpu", amp: bool = True) -> Precision:
    """The precision a lesion model with backbone ``family`` trains in
    (:func:`sonogan.train.accel.resolve_precision` at ``cfg.image_size``; on CUDA ``amp``, as for classifiers)."""
    dev = resolve_device(device)
    return resolve_precision(dev, cfg.precision, cfg.memory_format, family=family, size=cfg.image_size,
                             cuda=precision_for(dev, amp=amp))


def train_lesion(model_cfg: LesionModelConfig | nn.Module, cfg: LesionTrainConfig, task_name: str,
                 task_kwargs: dict[str, Any], train: dict[str, torch.Tensor], val: dict[str, torch.Tensor] | None,
                 out_dir: str | Path, *, seed: int = 0, device: str = "cpu", amp: bool = True,
                 meta: dict[str, Any] | None = None, init_state: dict[str, torch.Tensor] | None = None,
                 resume: bool = True, progress: bool = False, description: str = "lesion",
                 on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> LesionTrainResult:
    """Train a lesion model (built from ``model_cfg``, or a ready module such as the mask-shape
    CNN) with task ``task_name``; see the module docstring. ``init_state``: pre-trained weights
    loaded before training (tensors whose shape differs, e.g. another class count's head, are
    left fresh). ``meta`` goes into ``best.pt`` with the precision (:func:`lesion_precision`);
    ``amp``: mixed precision on CUDA, as for classifiers;
    ``on_epoch_end(epoch, record)`` runs after each epoch's files are written."""
    is_cfg = isinstance(model_cfg, LesionModelConfig)
    num_classes = model_cfg.num_classes if is_cfg else len((meta or {}).get("class_names", [0, 1]))
    fingerprint = [[int(d["image"].shape[0]), float(d["image"].double().sum())] for d in (train, val) if d is not None]
    identity = {"format": STATE_FORMAT, "train": cfg.model_dump(mode="json"), "task": [task_name, task_kwargs],
                "model_config": model_cfg.model_dump(mode="json") if is_cfg else type(model_cfg).__name__,
                "seed": seed, "data": fingerprint}

    precision = lesion_precision(cfg, model_cfg.backbone if is_cfg else type(model_cfg).__name__, device, amp)

    def save_best(path: Path, model: nn.Module, record: dict[str, Any]) -> None:
        save_lesion(path, model, model_cfg if is_cfg else None,
                    {**(meta or {}), "epoch": record["epoch"], "val_loss": record["val_loss"],
                     "precision": precision.describe()})

    parts = Parts(model=lambda: _init_model(model_cfg, init_state),
                  task=lambda: TASKS.create(task_name, loss=cfg.loss, train_y=train["label"], num_classes=num_classes,
                                            gamma=cfg.focal_gamma, **task_kwargs),
                  optimizer=lambda model: make_optimizer(cfg, model, precision.optimizer_kwargs()),
                  scheduler=lambda optimizer, steps: make_scheduler(cfg, optimizer, steps))
    options = LoopOptions(epochs=cfg.epochs, seed=seed, precision=precision,
                          patience=cfg.patience, keep=cfg.keep, description=description)
    res = train_supervised(parts, TensorBatches(train, cfg.batch_size, cfg.augment), options, out_dir,
                           identity=identity, val=val, save_best=save_best, resume=resume, progress=progress,
                           on_epoch_end=on_epoch_end)
    return LesionTrainResult(res.model, res.history, res.best_epoch, res.seconds)


@torch.no_grad()
def predict(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Eval-mode outputs on CPU numpy: ``mask_prob`` (N, H, W) float32 and/or ``proba`` (N, K) float64."""
    model.eval()
    dev = next(model.parameters()).device
    masks, probs = [], []
    for i in range(0, data["image"].shape[0], batch_size):
        x = data["image"][i:i + batch_size].to(dev)
        clinical = data.get("clinical")
        out = model(x, clinical[i:i + batch_size].to(dev)) if clinical is not None else model(x)
        out = out if isinstance(out, dict) else {"logits": out}
        if "mask" in out:
            masks.append(torch.sigmoid(out["mask"].float())[:, 0].cpu().numpy())
        if "logits" in out:
            probs.append(torch.softmax(out["logits"].float(), 1).double().cpu().numpy())
    result: dict[str, np.ndarray] = {}
    if masks:
        result["mask_prob"] = np.concatenate(masks)
    if probs:
        result["proba"] = np.concatenate(probs)
    return result
