"""The one supervised training loop: seeded epochs of mini-batches, a task object for the loss
and the metrics, precision, checkpoints, exact resume, the corrupt-checkpoint guard and early
stopping.

Every supervised model trains here: classifiers (:func:`sonogan.train.loop.train_classifier`,
also the audit's domain encoder), lesion segmenters, multitask and fused classifiers
(:func:`sonogan.lesion.train.train_lesion`) and the annotation remover with its detector
(:func:`sonogan.annotations.train.fit`). What differs between them is handed in:

- a task (:class:`sonogan.train.tasks.Task`): the loss of a batch, the metric sums of an epoch,
  the scores of a validation set and the monitored metric (lower is better);
- the batches: :class:`TensorBatches` (index slices of preloaded tensors, shuffled and augmented
  from the loop's own generators), or any object with ``steps_per_epoch()``, ``to(precision)``
  and ``epoch(number, shuffle_gen, augment_gen)`` (the remover draws its pairs from ``(seed,
  iteration)``, one "epoch" per checkpoint);
- :class:`Parts`: how to build the model, the task, the optimiser, its schedule and a weight
  EMA. The loop calls them in that order inside its seeded RNG, so model (and discriminator)
  initialisation draws the same random numbers in every entry point;
- :class:`LoopOptions` with the :class:`~sonogan.train.accel.Precision` of the run (autocast,
  layout, compile; :func:`~sonogan.train.accel.resolve_precision` chose it), the run's
  ``identity`` (stored in ``last.pt``; a resume with another one is refused) and ``save_best``,
  the entry point's checkpoint writer.

Randomness: model init and dropout use torch's global RNG, so the loop runs inside
``torch.random.fork_rng`` (the caller's RNG state is left untouched) seeded from the seed;
shuffling and augmentation use their own ``torch.Generator``. All these states, the
optimiser, loss scaler, lr schedule, EMA, the task's own state and the early-stopping state go
into ``last.pt`` after every epoch, so an interrupted run resumed with ``resume=True`` ends with
the same history and weights as an uninterrupted one (on CPU).

``last.pt`` is written atomically (a temporary file renamed over the old one), so it is
never half-written by an interruption; one damaged from outside (a truncated copy) ends the
run with a one-line error naming the file and the fix (delete it to train that model again).
The loop keeps no older copy to fall back to: the previous epoch's state is what the rename
replaced.

Under torchrun (DDP, :mod:`sonogan.train.distributed`) every rank draws the same shuffles and
augmentations, trains on its slice of each batch and evaluates the whole validation set, so
all ranks take the same early-stopping decisions; only rank 0 writes files.

Files in ``out_dir``: ``best.pt`` (written by ``save_best``, holding ``"state_dict"``; none
when ``save_best`` is None: the final weights are the result), ``last.pt`` (full training
state), ``history.json`` (``{"epochs": [{epoch, train_<metric>..., val_<metric>..., lr}],
"best_epoch", "best_val_loss", "stopped_early", "precision"}``, the last what
:meth:`~sonogan.train.accel.Precision.describe` says: what was used and why).

Example:
    >>> import torch
    >>> from sonogan.train.accel import precision_for
    >>> from sonogan.train.tasks import ClassificationTask
    >>> x, y = torch.randn(8, 1, 4, 4), torch.arange(8) % 2
    >>> parts = Parts(model=lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)),
    ...               task=lambda: ClassificationTask(torch.nn.CrossEntropyLoss()),
    ...               optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    >>> opts = LoopOptions(epochs=2, seed=0, precision=precision_for(torch.device("cpu")), keep="last")
    >>> res = train_supervised(parts, TensorBatches({"image": x, "label": y}, 4), opts,
    ...                        "/tmp/sonogan-loop-doc", identity={"format": "doc"}, resume=False)
    >>> sorted(res.history[0]), res.best_epoch, res.best_path
    (['epoch', 'lr', 'train_acc', 'train_loss', 'val_acc', 'val_loss'], 2, None)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol

import numpy as np
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.progress import progress_bar
from sonogan.runs import write_json
from sonogan.torch_utils import atomic_torch_save, load_torch_file
import sonogan.train.distributed as ddp  # the module itself, not through train/__init__.py (which imports the loop)
from sonogan.train.accel import Precision, pinned, setup_device
from sonogan.train.augment import augment_fields
from sonogan.train.config import AugmentConfig
from sonogan.train.tasks import Task

STATE_FORMAT = "sonogan-train-state"
# what the loop stores in last.pt beside the caller's identity keys
_STATE_KEYS = ("model", "optimisation", "task_state", "rng", "history", "best")
Batch = dict[str, torch.Tensor]


def batch_starts(n: int, batch_size: int) -> list[int]:
    """First index of each mini-batch of an epoch over ``n`` images."""
    starts = list(range(0, n, batch_size))
    if n > 1 and n % batch_size == 1:
        starts = starts[:-1]  # a lone last image breaks BatchNorm in train mode; it is seen next epoch
    return starts


class Batches(Protocol):
    """Where an epoch's training batches come from."""

    def steps_per_epoch(self) -> int: ...

    def to(self, precision: Precision) -> "Batches": ...

    def epoch(self, number: int, shuffle: torch.Generator, augment: torch.Generator) -> Iterator[Batch]: ...


@dataclass
class TensorBatches:
    """Shuffled index slices of preloaded tensors (``{"image": (N,C,H,W), ...}``, every value
    indexed alike), augmented on their device (:func:`~sonogan.train.augment.augment_fields`).

    Ultrasound cohorts are small (a few thousand 64-256 px images fit in memory many times
    over), so a DataLoader with worker processes would only add start-up cost and a second
    source of randomness; the batches are index slices of tensors that live on the device."""

    data: Batch
    batch_size: int
    augment: AugmentConfig | None = None

    def steps_per_epoch(self) -> int:
        return len(batch_starts(self.data["image"].shape[0], self.batch_size))

    def to(self, precision: Precision) -> "TensorBatches":
        return replace(self, data={k: precision.inputs(v) for k, v in self.data.items()})

    def epoch(self, number: int, shuffle: torch.Generator, augment: torch.Generator) -> Iterator[Batch]:
        x = self.data["image"]
        perm = torch.randperm(x.shape[0], generator=shuffle).to(x.device)
        for s in batch_starts(x.shape[0], self.batch_size):
            batch = {k: v[perm[s:s + self.batch_size]] for k, v in self.data.items()}
            yield batch if self.augment is None else augment_fields(batch, self.augment, augment)


@dataclass
class Optimisation:
    """Optimiser, AMP scaler, per-step lr schedule and optional weight EMA: one optimiser step."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: Any = None

    def step(self, model: nn.Module, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(model)

    def evaluated(self, model: nn.Module) -> nn.Module:
        """The weights that are validated and saved: the EMA copy when there is one."""
        return model if self.ema is None else self.ema.module

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "ema": None if self.ema is None else self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


@dataclass
class Parts:
    """How to build what is trained; called by the loop in this order inside its seeded RNG.
    ``scheduler`` gets the optimiser and the number of steps per epoch."""

    model: Callable[[], nn.Module]
    task: Callable[[], Task]
    optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    scheduler: Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler] | None = None
    ema: Callable[[nn.Module], Any] | None = None


@dataclass
class LoopOptions:
    """The loop's own settings. ``patience``: epochs without a validation improvement larger
    than ``min_delta`` before stopping (None: never); ``keep``: save the best validation epoch
    or always the last; ``num_threads``: torch CPU threads during the run (None keeps the current).
    torch.compile is the precision's (:attr:`~sonogan.train.accel.Precision.compile`)."""

    epochs: int
    seed: int
    precision: Precision
    patience: int | None = None
    min_delta: float = 0.0
    keep: Literal["best", "last"] = "best"
    num_threads: int | None = None
    description: str = "train"


@dataclass
class LoopResult:
    """What :func:`train_supervised` returns; ``model`` holds the best weights (the last ones
    without ``save_best``), in eval mode."""

    model: nn.Module
    task: Task
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    best_path: Path | None
    last_path: Path
    seconds: float


@dataclass
class _Run:
    """Everything one run holds between epochs (what last.pt stores, plus the generators)."""

    model: nn.Module
    task: Task
    opt: Optimisation
    gens: tuple[torch.Generator, torch.Generator]
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_loss": None, "epoch": 0, "bad": 0,
                                                          "stopped_early": False})


def _rng_states(device: torch.device, gens: tuple[torch.Generator, torch.Generator]) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "shuffle": gens[0].get_state(), "augment": gens[1].get_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _set_rng_states(states: dict[str, Any], device: torch.device, gens: tuple[torch.Generator, torch.Generator]) -> None:
    torch.set_rng_state(states["torch"])
    gens[0].set_state(states["shuffle"])
    gens[1].set_state(states["augment"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"], device)


def same_identity(identity: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """The default resume check: every identity value stored in ``last.pt`` equals this run's."""
    return lambda state: all(state.get(k) == v for k, v in identity.items())


def _save_state(path: Path, run: _Run, identity: dict[str, Any], device: torch.device) -> None:
    atomic_torch_save({**identity, "model": run.model.state_dict(), "optimisation": run.opt.state_dict(),
                       "task_state": run.task.state_dict(), "rng": _rng_states(device, run.gens),
                       "history": run.history, "best": run.best}, path)


def _resume(path: Path, run: _Run, matches: Callable[[dict[str, Any]], bool], device: torch.device) -> None:
    """Continue ``run`` from ``path``: refuse a damaged file or one of another run, in one line."""
    state = load_torch_file(path, "start without resume", f"delete {path.name} to train this model again from the start")
    if not isinstance(state, dict) or not all(k in state for k in _STATE_KEYS if k != "task_state") \
            or not matches(state):
        raise SonoganInputError(path, "holds a training run with another config or data",
                                "use a new run folder, or delete this model's folder to train it from the start")
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimisation"])
    if state.get("task_state") is not None:
        run.task.load_state_dict(state["task_state"])
    _set_rng_states(state["rng"], device, run.gens)
    run.history, run.best = list(state["history"]), dict(state["best"])


def _train_epoch(run: _Run, net: nn.Module, batches: Batches, number: int, precision: Precision) -> dict[str, float]:
    """One pass over the epoch's batches; returns each task metric's weighted mean.

    ``net``: what runs the forward pass (the model wrapped in DDP and/or torch.compile).
    Distributed, each rank trains on its slice of every (whole-batch augmented) batch and the
    means are over all ranks' images."""
    run.model.train()
    # running sums stay on the device (float64, the same arithmetic as Python floats) and are read
    # once per epoch: no host sync per batch on a GPU
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, float] = {}
    for batch in batches.epoch(number, *run.gens):
        n = len(next(iter(batch.values())))
        if ddp.is_distributed():
            lo, hi = ddp.shard_bounds(n)
            batch = {k: v[lo:hi] for k, v in batch.items()}
        with precision.autocast():
            loss, terms = run.task.batch_loss(net, batch)
        run.opt.step(run.model, loss * ddp.shard_weight(n) if ddp.is_distributed() else loss)
        for name, (total, weight) in terms.items():
            sums[name] = sums[name] + total.double() if name in sums else total.double()
            weights[name] = weights.get(name, 0.0) + weight
    out = {}
    for name in run.task.metrics:
        if name not in sums:
            out[name] = 0.0
            continue
        total = ddp.all_sum(sums[name])
        weight = float(ddp.all_sum(torch.tensor(weights[name], dtype=torch.float64, device=total.device)))
        out[name] = float(total) / max(weight, 1.0)
    return out


def _write_history(out_dir: Path, run: _Run, precision: Precision) -> None:
    write_json(out_dir / "history.json", {"epochs": run.history, "best_epoch": run.best["epoch"],
                                          "best_val_loss": run.best["val_loss"],
                                          "stopped_early": run.best["stopped_early"],
                                          "precision": precision.describe()})


def train_supervised(parts: Parts, batches: Batches, options: LoopOptions, out_dir: str | Path, *,
                     identity: dict[str, Any], val: Batch | None = None,
                     matches: Callable[[dict[str, Any]], bool] | None = None,
                     save_best: Callable[[Path, nn.Module, dict[str, Any]], Any] | None = None,
                     resume: bool = True, progress: bool = False,
                     on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
                     on_resume: Callable[[int], None] | None = None) -> LoopResult:
    """Train what ``parts`` build on ``batches``; see the module docstring.

    ``identity``: plain values naming the run (format, config, data fingerprint), stored in
    ``last.pt``; a resume whose stored identity fails ``matches`` (default: equal values) is
    refused. ``val``: validation tensors (early stopping and the best epoch; without them the
    last epoch is the best). ``save_best(path, model, record)`` writes ``best.pt`` (with a
    ``"state_dict"``) when the monitored validation metric improves; None: no best.pt, which
    needs ``keep="last"``. ``on_epoch_end(epoch, record)`` runs after each epoch's files are
    written (raising there stops the run, and a later call resumes it); ``on_resume(epochs)``
    after a resume. Under torchrun only rank 0 writes files and calls the hooks.
    """
    if save_best is None and options.keep != "last":
        raise ValueError("without save_best the last epoch is the result: use keep='last'")
    if any(k in identity for k in _STATE_KEYS):
        raise ValueError(f"identity keys may not be any of {_STATE_KEYS}")
    out_dir = Path(out_dir)
    main = ddp.is_main()
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    precision = options.precision
    device = precision.device
    setup_device(device)
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    has_val = val is not None and len(val["image"]) > 0
    old_threads = torch.get_num_threads()
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    started = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(options.seed)
            seeds = np.random.SeedSequence(options.seed).generate_state(2)
            gens = (torch.Generator().manual_seed(int(seeds[0])), torch.Generator().manual_seed(int(seeds[1])))
            model = precision.model(parts.model().to(device))
            optimizer = parts.optimizer(model)
            opt = Optimisation(optimizer, precision.scaler(),
                               None if parts.scheduler is None else parts.scheduler(optimizer, batches.steps_per_epoch()),
                               None if parts.ema is None else parts.ema(model))
            run = _Run(model, parts.task().to(device), opt, gens)
            batches = batches.to(precision)
            # evaluation copies the validation batches to the device: from pinned memory on CUDA
            val_data = {k: pinned(v, device) for k, v in val.items()} if val is not None and has_val else None
            # rank 0's answer for all (a collective, so rank 0 is done with any earlier writes)
            if ddp.broadcast_flag(resume and last_path.is_file()):
                _resume(last_path, run, matches or same_identity(identity), device)
                if on_resume is not None and main:
                    on_resume(len(run.history))
            net = precision.wrap(ddp.wrap(model, device))  # after loading: DDP starts from rank 0's weights
            _epochs(run, net, batches, val_data, options, out_dir, identity, save_best, progress and main,
                    on_epoch_end)
            if main:
                _write_history(out_dir, run, precision)
            ddp.barrier()  # best.pt is complete before any rank reads it
            if save_best is not None and best_path.is_file():  # the best weights (also right after a resume)
                fix = f"delete {best_path.name} and {last_path.name} to train this model again"
                model.load_state_dict(load_torch_file(best_path, fix, fix)["state_dict"])
            model.eval()
    finally:
        torch.set_num_threads(old_threads)
    return LoopResult(model=model, task=run.task, history=run.history, best_epoch=run.best["epoch"],
                      best_val_loss=run.best["val_loss"], stopped_early=run.best["stopped_early"],
                      best_path=best_path if save_best is not None else None, last_path=last_path,
                      seconds=time.perf_counter() - started)


def _epochs(run: _Run, net: nn.Module, batches: Batches, val: Batch | None, options: LoopOptions, out_dir: Path,
            identity: dict[str, Any], save_best: Callable[[Path, nn.Module, dict[str, Any]], Any] | None,
            progress: bool, on_epoch_end: Callable[[int, dict[str, Any]], None] | None) -> None:
    """The epochs still to run: train, validate, keep the best, stop early, write last.pt."""
    main, device, best = ddp.is_main(), options.precision.device, run.best
    metrics = run.task.metrics
    done = best["stopped_early"] or len(run.history) >= options.epochs
    with progress_bar(progress, "train") as bar:
        bar_task = bar.add_task(options.description, total=options.epochs, completed=len(run.history))
        for epoch in range(len(run.history) + 1, options.epochs + 1):
            if done:
                break
            lr = run.opt.optimizer.param_groups[0]["lr"]
            ddp.seed_rank(options.seed, epoch)
            train = _train_epoch(run, net, batches, epoch, options.precision)
            scores = run.task.evaluate(run.opt.evaluated(run.model), val) if val is not None else {}
            record = {"epoch": epoch, **{f"train_{m}": train[m] for m in metrics},
                      **{f"val_{m}": scores.get(m) for m in metrics}, "lr": lr}
            run.history.append(record)
            monitored = scores.get(run.task.monitor)
            improved = (options.keep == "last" or monitored is None or best["val_loss"] is None
                        or monitored < best["val_loss"] - options.min_delta)
            # rank 0 decides for all (GPUs may differ in the last bits of a validation loss)
            if ddp.broadcast_flag(improved and (monitored is None or math.isfinite(monitored))):
                best.update(val_loss=monitored, epoch=epoch, bad=0)
                if main and save_best is not None:
                    save_best(out_dir / "best.pt", run.opt.evaluated(run.model), record)
            else:
                best["bad"] += 1
            if options.patience is not None and val is not None and best["bad"] >= options.patience:
                best["stopped_early"] = done = True
            if main:
                _save_state(out_dir / "last.pt", run, identity, device)
                _write_history(out_dir, run, options.precision)
            shown = "" if monitored is None else f"  val {run.task.monitor} {monitored:.3f}"
            bar.update(bar_task, advance=1,
                       description=f"{options.description}  epoch {epoch}  loss {train['loss']:.3f}{shown}")
            if on_epoch_end is not None and main:
                on_epoch_end(epoch, record)
