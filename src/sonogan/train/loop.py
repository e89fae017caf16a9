"""The classifier training loop: early stopping on validation loss, checkpoints, exact resume.

Data are preloaded tensors (N, C, H, W), already z-scored by the caller with training-set
statistics. Ultrasound cohorts are small (a few thousand 64-256 px images fit in memory many
times over), so a DataLoader with worker processes would only add start-up cost and a second
source of randomness; batches are index slices of one tensor that lives on the device.

Randomness: model init and dropout use torch's global RNG, so the loop runs inside
``torch.random.fork_rng`` (the caller's RNG state is left untouched) seeded from ``cfg.seed``;
shuffling and augmentation use their own ``torch.Generator``. All these states go into
``last.pt`` after every epoch, so an interrupted run resumed with ``resume=True`` ends with
the same history and weights as an uninterrupted one (on CPU).

Under torchrun (DDP, :mod:`sonogan.train.distributed`) every rank draws the same shuffles and
augmentations, trains on its slice of each batch and evaluates the whole validation set, so
all ranks take the same early-stopping decisions; only rank 0 writes files. On CUDA the loop
uses bfloat16/float16 autocast, channels_last, cuDNN autotuning and pinned host memory
(:mod:`sonogan.train.accel`); ``compile: true`` adds torch.compile.

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

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.models.checkpoint import save_classifier
from sonogan.torch_utils import atomic_torch_save, resolve_device
from sonogan.models.classifiers import check_input_size, create_classifier
from sonogan.runs import write_json
from sonogan.train import distributed as ddp
from sonogan.train.accel import (amp_dtype, channels_last_model, compiled, grad_scaler, pinned, setup_device,
                                 to_device)
from sonogan.train.augment import augment_batch
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.recipe import make_ema, make_optimizer, make_scheduler, tta_logits
from sonogan.train.tasks import ClassificationTask, build_task
from sonogan.preprocess.fold import Normaliser
from sonogan.progress import progress_bar

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


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    # cheap identity check of the data a saved state was trained on (shape, sums)
    return [float(x.shape[0]), float(x.detach().double().sum()), float(y.double().sum())]


def batch_starts(n: int, batch_size: int) -> list[int]:
    """First index of each mini-batch of an epoch over ``n`` images."""
    starts = list(range(0, n, batch_size))
    if n > 1 and n % batch_size == 1:
        starts = starts[:-1]  # a lone last image breaks BatchNorm in train mode; it is seen next epoch
    return starts


def train_one_epoch(model: nn.Module, data: dict[str, torch.Tensor], task: ClassificationTask,
                    opt: Optimisation, cfg: ClassifierTrainConfig, shuffle_gen: torch.Generator,
                    aug_gen: torch.Generator, use_amp: bool, net: nn.Module | None = None) -> tuple[float, float]:
    """One pass over shuffled, augmented mini-batches; returns mean (loss, accuracy).

    ``net``: what runs the forward pass (``model`` wrapped in DDP and/or torch.compile).
    Distributed, each rank trains on its slice of every (whole-batch augmented) batch and the
    means are over all ranks' images."""
    model.train()
    net = model if net is None else net
    x = data["image"]
    n, bs = x.shape[0], cfg.batch_size
    perm = torch.randperm(n, generator=shuffle_gen).to(x.device)
    starts = batch_starts(n, bs)
    # running sums stay on the device (float64, the same arithmetic as Python floats) and are read
    # once per epoch: no host sync per batch on a GPU
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    seen = 0
    for s in starts:
        idx = perm[s:s + bs]
        batch = {k: v[idx] for k, v in data.items()}
        batch["image"] = augment_batch(batch["image"], cfg.augment, aug_gen)
        if ddp.is_distributed():
            lo, hi = ddp.shard_bounds(len(idx))
            batch = {k: v[lo:hi] for k, v in batch.items()}
        with torch.autocast(device_type=x.device.type, dtype=amp_dtype(x.device), enabled=use_amp):
            loss, n_correct = task.batch_loss(net, batch)
        opt.step(model, loss * ddp.shard_weight(len(idx)) if ddp.is_distributed() else loss)
        total_loss += loss.detach().double() * len(batch["image"])
        correct += n_correct
        seen += len(idx)
    total_loss, correct = ddp.all_sum(total_loss), ddp.all_sum(correct)
    return float(total_loss) / max(seen, 1), int(correct) / max(seen, 1)


@dataclass
class Optimisation:
    """Optimiser, AMP scaler, per-step lr schedule and optional weight EMA: one optimiser step."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: Any = None

    def step(self, model: nn.Module, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(model)

    def evaluated(self, model: nn.Module) -> nn.Module:
        """The weights that are validated and saved: the EMA copy when there is one."""
        return model if self.ema is None else self.ema.module

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "scheduler": self.scheduler.state_dict(), "ema": None if self.ema is None else self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def _rng_states(device: torch.device, shuffle_gen: torch.Generator, aug_gen: torch.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "shuffle": shuffle_gen.get_state(), "augment": aug_gen.get_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_states(states: dict[str, Any], device: torch.device, shuffle_gen: torch.Generator,
                    aug_gen: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    shuffle_gen.set_state(states["shuffle"])
    aug_gen.set_state(states["augment"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"], device)


def _same_config(saved: Any, cfg: ClassifierTrainConfig) -> bool:
    # through the model: a state saved before a new option existed has that option's default
    try:
        return ClassifierTrainConfig.model_validate(saved).model_dump(mode="json") == cfg.model_dump(mode="json")
    except ValueError:
        return False


def _load_state(path: Path, cfg: ClassifierTrainConfig, class_names: list[str], data: list[list[float]]) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a half-written or foreign file
        raise SonoganInputError(path, f"cannot read training state ({type(exc).__name__})",
                                "delete it to start over, or pass resume=False") from None
    same_data = all(len(a) == len(b) and np.allclose(a, b, rtol=1e-6) for a, b in zip(state.get("data", []), data))
    if (state.get("format") != STATE_FORMAT or not _same_config(state.get("config"), cfg)
            or state.get("class_names") != class_names or not same_data):
        raise SonoganInputError(path, "holds a run with another config, class list or data",
                                "use a new output folder, or pass resume=False to start over")
    return state


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
    main = ddp.is_main()
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    n_classes = len(class_names)
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    _check_inputs(cfg, train_x, train_y, n_classes, "training images")
    has_val = val_x is not None and val_y is not None and len(val_x) > 0
    if has_val:
        val_y = torch.as_tensor(val_y, dtype=torch.long)
        _check_inputs(cfg, val_x, val_y, n_classes, "validation images")
    check_input_size(cfg.model, cfg.image_size, cfg.image_size)
    _check_shards(len(train_x), cfg.batch_size)
    device = ddp.device_for(resolve_device(cfg.device))
    setup_device(device)
    use_amp = cfg.amp and device.type == "cuda"
    data_id = [_fingerprint(train_x, train_y)] + ([_fingerprint(val_x, val_y)] if has_val else [])
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    old_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    started = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed)
            seeds = np.random.SeedSequence(cfg.seed).generate_state(2)
            shuffle_gen = torch.Generator().manual_seed(int(seeds[0]))
            aug_gen = torch.Generator().manual_seed(int(seeds[1]))
            model = create_classifier(cfg.model, num_classes=n_classes, in_chans=cfg.in_chans,
                                      pretrained=cfg.pretrained, weights_path=cfg.weights_path,
                                      image_size=cfg.image_size, **cfg.model_kwargs).to(device)
            channels_last = channels_last_model(model, device)
            optimizer = make_optimizer(cfg, model)
            opt = Optimisation(optimizer, grad_scaler(device, use_amp),
                               make_scheduler(cfg, optimizer, len(batch_starts(len(train_x), cfg.batch_size))),
                               make_ema(cfg, model))
            task = build_task("classification", cfg.loss, train_y, n_classes, gamma=cfg.focal_gamma,
                              label_smoothing=cfg.label_smoothing).to(device)
            train_data = {"image": to_device(train_x, device, channels_last), "label": to_device(train_y, device)}
            # evaluation copies the validation batches to the device: from pinned memory on CUDA
            val_data = {"image": pinned(val_x, device), "label": pinned(val_y, device)} if has_val else None
            history: list[dict[str, Any]] = []
            best: dict[str, Any] = {"val_loss": None, "epoch": 0, "bad": 0, "stopped_early": False}
            # rank 0's answer for all (a collective, so rank 0 is done with any earlier writes)
            if ddp.broadcast_flag(resume and last_path.is_file()):
                state = _load_state(last_path, cfg, class_names, data_id)
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimisation"])
                _set_rng_states(state["rng"], device, shuffle_gen, aug_gen)
                history, best = list(state["history"]), dict(state["best"])
            net = compiled(ddp.wrap(model, device), cfg.compile)  # after loading: DDP starts from rank 0's weights
            done = best["stopped_early"] or len(history) >= cfg.epochs
            name = description or cfg.model
            with progress_bar(progress and main, "train") as bar:
                bar_task = bar.add_task(name, total=cfg.epochs, completed=len(history))
                for epoch in range(len(history) + 1, cfg.epochs + 1):
                    if done:
                        break
                    lr = optimizer.param_groups[0]["lr"]
                    ddp.seed_rank(cfg.seed, epoch)
                    train_loss, train_acc = train_one_epoch(model, train_data, task, opt, cfg,
                                                            shuffle_gen, aug_gen, use_amp, net)
                    val_loss, val_acc = task.evaluate(opt.evaluated(model), val_data) if val_data else (None, None)
                    record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                              "val_loss": val_loss, "val_acc": val_acc, "lr": lr}
                    history.append(record)
                    improved = (cfg.keep == "last" or val_loss is None or best["val_loss"] is None
                                or val_loss < best["val_loss"] - cfg.min_delta)
                    # rank 0 decides for all (GPUs may differ in the last bits of a validation loss)
                    if ddp.broadcast_flag(improved and (val_loss is None or math.isfinite(val_loss))):
                        best.update(val_loss=val_loss, epoch=epoch, bad=0)
                        if main:
                            save_classifier(best_path, opt.evaluated(model), cfg.model, n_classes, cfg.in_chans,
                                            class_names, preprocess=preprocess or {"image_size": cfg.image_size},
                                            normaliser=normaliser, image_size=cfg.image_size, tta=cfg.tta,
                                            extra={"epoch": epoch, "val_loss": val_loss,
                                                   "train_config": cfg.model_dump(mode="json")})
                    else:
                        best["bad"] += 1
                    if cfg.patience is not None and has_val and best["bad"] >= cfg.patience:
                        best["stopped_early"] = done = True
                    if main:
                        atomic_torch_save({"format": STATE_FORMAT, "config": cfg.model_dump(mode="json"),
                                           "class_names": list(class_names), "data": data_id,
                                           "model": model.state_dict(), "optimisation": opt.state_dict(),
                                           "rng": _rng_states(device, shuffle_gen, aug_gen),
                                           "history": history, "best": best}, last_path)
                        _write_history(out_dir, history, best)
                    shown = "" if val_loss is None else f"  val loss {val_loss:.3f}  val acc {val_acc:.3f}"
                    bar.update(bar_task, advance=1, description=f"{name}  epoch {epoch}  loss {train_loss:.3f}{shown}")
                    if on_epoch_end is not None and main:
                        on_epoch_end(epoch, record)
            if main:
                _write_history(out_dir, history, best)
            ddp.barrier()  # best.pt is complete before any rank reads it
            if best_path.is_file():  # restore the best weights (also right after a resume)
                model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"])
            model.eval()
    finally:
        torch.set_num_threads(old_threads)
    return TrainResult(model=model, history=history, best_epoch=best["epoch"], best_val_loss=best["val_loss"],
                       epochs_run=len(history), stopped_early=best["stopped_early"], out_dir=out_dir,
                       best_path=best_path, last_path=last_path, device=str(device),
                       seconds=time.perf_counter() - started)


def _check_shards(n: int, batch_size: int) -> None:
    """Distributed, every rank needs at least one image of every batch."""
    smallest = min(batch_size, n - batch_starts(n, batch_size)[-1]) if n else 0
    if ddp.is_distributed() and smallest < ddp.world_size():
        raise SonoganInputError("batch_size", f"a batch of {smallest} images cannot be shared by "
                                f"{ddp.world_size()} processes", "use a larger batch_size or fewer processes")


def _write_history(out_dir: Path, history: list[dict[str, Any]], best: dict[str, Any]) -> None:
    write_json(out_dir / "history.json", {"epochs": history, "best_epoch": best["epoch"],
                                          "best_val_loss": best["val_loss"], "stopped_early": best["stopped_early"]})
