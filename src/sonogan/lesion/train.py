"""Training, prediction and checkpoints of lesion models (segmenter, multitask, fused classifier).

The loop is the classifier loop's (:mod:`sonogan.train.loop`) with three differences a mask
brings: geometric augmentation moves image and mask together, the task (a
:mod:`sonogan.train.tasks` loss object) gets masks, mask flags and clinical variables, and a
task with its own state (the cGAN's discriminator) is saved in ``last.pt`` too. It reuses
the loop's :class:`~sonogan.train.loop.Optimisation`, batching and RNG handling, and keeps
its guarantees: seeded, resumable after a kill at any epoch, same numbers on CPU.

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

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import sonogan
from sonogan.errors import SonoganInputError
from sonogan.lesion.config import LesionTrainConfig
from sonogan.models.multitask import LesionModelConfig, build_lesion_model
from sonogan.progress import progress_bar
from sonogan.runs import write_json
from sonogan.torch_utils import atomic_torch_save, load_torch_file, resolve_device
from sonogan.train.augment import apply_intensity, apply_params, sample_params
from sonogan.train.loop import Optimisation, batch_starts
from sonogan.train.recipe import make_optimizer, make_scheduler
from sonogan.train.tasks import TASKS

FORMAT = "sonogan-lesion"
FORMAT_VERSION = 1
STATE_FORMAT = "sonogan-lesion-state"


@dataclass
class LesionTrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    seconds: float


def augment_pair(image: torch.Tensor, mask: torch.Tensor, cfg: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flips / rotation / shift / scale on images and masks (one resampling of
    both, stacked as channels); the mask is re-binarised at 0.5. Intensity ops touch the image only."""
    if not cfg.active or image.shape[0] == 0:
        return image, mask
    both = apply_params(torch.cat([image, mask], dim=1), sample_params(image.shape[0], cfg, gen))
    image, mask = both[:, :-1], (both[:, -1:] > 0.5).float()
    return (apply_intensity(image, cfg, gen) if cfg.intensity else image), mask


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


def _epoch(model: nn.Module, data: dict[str, torch.Tensor], task: Any, opt: Optimisation, cfg: LesionTrainConfig,
           gens: tuple[torch.Generator, torch.Generator], use_amp: bool) -> tuple[float, float]:
    model.train()
    x = data["image"]
    perm = torch.randperm(x.shape[0], generator=gens[0]).to(x.device)
    total, score, seen, weight = 0.0, 0.0, 0, 0.0
    for s in batch_starts(x.shape[0], cfg.batch_size):
        idx = perm[s:s + cfg.batch_size]
        batch = {k: v[idx] for k, v in data.items()}
        batch["image"], batch["mask"] = augment_pair(batch["image"], batch["mask"], cfg.augment, gens[1])
        with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=use_amp):
            loss, n_score = task.batch_loss(model, batch)
        opt.step(model, loss)
        total += float(loss.detach()) * len(idx)
        score += float(n_score)
        seen += len(idx)
        weight += len(idx) if getattr(task, "criterion", None) is not None else float(batch["has_mask"].sum())
    return total / max(seen, 1), score / max(weight, 1.0)


def _build_task(task_name: str, task_kwargs: dict[str, Any], cfg: LesionTrainConfig, labels: torch.Tensor,
                num_classes: int) -> Any:
    return TASKS.create(task_name, loss=cfg.loss, train_y=labels, num_classes=num_classes, gamma=cfg.focal_gamma,
                        **task_kwargs)


def _rng(device: torch.device, gens: tuple[torch.Generator, torch.Generator]) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "shuffle": gens[0].get_state(), "augment": gens[1].get_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng(state: dict[str, Any], device: torch.device, gens: tuple[torch.Generator, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    gens[0].set_state(state["shuffle"])
    gens[1].set_state(state["augment"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def train_lesion(model_cfg: LesionModelConfig | nn.Module, cfg: LesionTrainConfig, task_name: str,
                 task_kwargs: dict[str, Any], train: dict[str, torch.Tensor], val: dict[str, torch.Tensor] | None,
                 out_dir: str | Path, *, seed: int = 0, device: str = "cpu", amp: bool = True,
                 meta: dict[str, Any] | None = None, init_state: dict[str, torch.Tensor] | None = None,
                 resume: bool = True, progress: bool = False, description: str = "lesion") -> LesionTrainResult:
    """Train a lesion model (built from ``model_cfg``, or a ready module such as the mask-shape
    CNN) with task ``task_name``; see the module docstring. ``init_state``: pre-trained weights
    loaded before training (tensors whose shape differs, e.g. another class count's head, are
    left fresh). ``meta`` goes into ``best.pt``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    use_amp = amp and dev.type == "cuda"
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    is_cfg = isinstance(model_cfg, LesionModelConfig)
    num_classes = model_cfg.num_classes if is_cfg else len((meta or {}).get("class_names", [0, 1]))
    fingerprint = [[int(d["image"].shape[0]), float(d["image"].double().sum())] for d in (train, val) if d is not None]
    ident = {"format": STATE_FORMAT, "train": cfg.model_dump(mode="json"), "task": [task_name, task_kwargs],
             "model": model_cfg.model_dump(mode="json") if is_cfg else type(model_cfg).__name__, "seed": seed,
             "data": fingerprint}
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        s = np.random.SeedSequence(seed).generate_state(2)
        gens = (torch.Generator().manual_seed(int(s[0])), torch.Generator().manual_seed(int(s[1])))
        model = build_lesion_model(model_cfg) if is_cfg else model_cfg
        if init_state is not None:
            own = model.state_dict()
            model.load_state_dict({k: v for k, v in init_state.items() if k in own and own[k].shape == v.shape},
                                  strict=False)
        model.to(dev)
        optimizer = make_optimizer(cfg, model)
        opt = Optimisation(optimizer, torch.amp.GradScaler(dev.type, enabled=use_amp),
                           make_scheduler(cfg, optimizer, len(batch_starts(train["image"].shape[0], cfg.batch_size))))
        task = _build_task(task_name, task_kwargs, cfg, train["label"], num_classes).to(dev)
        train_d = {k: v.to(dev) for k, v in train.items()}
        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {"val_loss": None, "epoch": 0, "bad": 0, "stopped": False}
        if resume and last_path.is_file():
            state = torch.load(last_path, map_location="cpu", weights_only=True)
            if state.get("ident") != ident:
                raise SonoganInputError(last_path, "holds a run with another config or data",
                                        "use a new run folder, or delete this arm's folder to start it over")
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimisation"])
            if state.get("task") is not None:
                task.load_state_dict(state["task"])
            _set_rng(state["rng"], dev, gens)
            history, best = list(state["history"]), dict(state["best"])
        with progress_bar(progress, "train") as bar:
            bar_task = bar.add_task(description, total=cfg.epochs, completed=len(history))
            for epoch in range(len(history) + 1, cfg.epochs + 1):
                if best["stopped"]:
                    break
                train_loss, train_score = _epoch(model, train_d, task, opt, cfg, gens, use_amp)
                val_loss, val_score = task.evaluate(model, val) if val is not None and len(val["image"]) else (None, None)
                history.append({"epoch": epoch, "train_loss": train_loss, "train_score": train_score,
                                "val_loss": val_loss, "val_score": val_score})
                improved = cfg.keep == "last" or val_loss is None or best["val_loss"] is None or val_loss < best["val_loss"]
                if improved and (val_loss is None or math.isfinite(val_loss)):
                    best.update(val_loss=val_loss, epoch=epoch, bad=0)
                    save_lesion(best_path, model, model_cfg if is_cfg else None,
                                {**(meta or {}), "epoch": epoch, "val_loss": val_loss})
                else:
                    best["bad"] += 1
                    best["stopped"] = cfg.patience is not None and best["bad"] >= cfg.patience
                atomic_torch_save({"ident": ident, "model": model.state_dict(), "optimisation": opt.state_dict(),
                                   "task": task.state_dict() if hasattr(task, "state_dict") else None,
                                   "rng": _rng(dev, gens), "history": history, "best": best}, last_path)
                write_json(out_dir / "history.json", {"epochs": history, "best_epoch": best["epoch"]})
                bar.update(bar_task, advance=1, description=f"{description}  epoch {epoch}  loss {train_loss:.3f}")
        if best_path.is_file():
            model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"])
    return LesionTrainResult(model.eval(), history, best["epoch"], time.perf_counter() - started)


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
