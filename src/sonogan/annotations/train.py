"""Train the annotation remover and detector on pairs made on the fly from clean images.

Images come from the TRAINING partition of one fold of the dataset's saved splits (held-out
pairs for evaluation come from that fold's validation partition; the test partition is never
read). Optionally only "clean-ish" images are kept: MMOTU's own callipers and labels are
yellow, and an image that already carries marks would teach the remover to keep them.

Training runs on the one supervised loop (:mod:`sonogan.train.supervised`) with the
:class:`RemoverTask` (both nets in one module, one loss each) and an "epoch" of
``checkpoint_every`` iterations. Every iteration's pairs are a function of ``(seed,
iteration)``, and the loop's ``last.pt`` (nets, optimiser, torch RNG, loss history) is
written after every such period, so a killed run resumed with ``resume=True`` continues
exactly as an uninterrupted one on CPU.
The result is ``remover.pt`` (both nets + config + version, :func:`~sonogan.models.remover.save_remover`)
and ``metrics.json`` (held-out PSNR / SSIM before and after, detector accuracy).

Example:
    >>> cfg = RemoverTrainConfig(iterations=2000)                         # doctest: +SKIP
    >>> train_remover("runs/bench/mmotu", "runs/annotations/mmotu", cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Literal

import cv2
import numpy as np
import torch
from pydantic import Field
from torch import nn

from sonogan import layout
from sonogan.annotations.evaluate import evaluate_remover
from sonogan.annotations.images import CleanImages, load_clean_images
from sonogan.annotations.synthetic import AnnotationConfig, downsized_pair
from sonogan.config import StrictModel
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file
from sonogan.models.remover import AnnotationLoss, LossConfig, RemoverConfig, build_nets, save_remover
from sonogan.preprocess.cache import decode_image
from sonogan.progress import progress_bar
from sonogan.runs import RunDir
from sonogan.torch_utils import resolve_device
from sonogan.train.accel import MemoryFormatName, Precision, PrecisionName, precision_for, resolve_precision
from sonogan.train.supervised import LoopOptions, Parts, train_supervised
from sonogan.train.tasks import Sums, Task

STATE_FORMAT = "sonogan-remover-state"


class RemoverTrainConfig(StrictModel):
    """Everything one remover training run depends on (saved in the run folder and the checkpoint)."""

    seed: int = 0
    fold: int = Field(0, ge=0, description="images from this fold's training partition; its val partition evaluates")
    remover: RemoverConfig = Field(default_factory=RemoverConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    annotations: AnnotationConfig = Field(default_factory=AnnotationConfig)
    draw_scale: float = Field(2.0, ge=1.0, description="marks are drawn at size x draw_scale, then shrunk with the "
                                                       "image, as marks burned in at scanner resolution are")
    clean_max_marker_fraction: float | None = Field(
        None, ge=0, description="keep only images whose share of saturated yellow pixels (MMOTU's marker colour) "
                                "is at most this; None = every training image")
    iterations: int = Field(2000, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam, as the thesis")
    detector_lr: float = Field(1e-3, gt=0)
    checkpoint_every: int = Field(200, ge=1)
    eval_pairs: int = Field(200, ge=1, description="held-out synthetic pairs for metrics.json")
    num_threads: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: PrecisionName = Field("fp32", description="CPU training precision: fp32, bf16 autocast, or auto "
                                     "(the fastest measured; bf16 only on CPUs with native bf16); float32 on CUDA")
    memory_format: MemoryFormatName = Field("channels_first", description="CPU layout: channels_first, "
                                            "channels_last, or auto (the fastest measured)")


def make_batch(data: CleanImages, rng: np.random.Generator, n: int, cfg: RemoverTrainConfig
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random images, annotated: (annotated, clean, annotation mask) as float tensors in
    [0, 1], shaped (n, C, S, S), (n, C, S, S), (n, 1, S, S)."""
    size, channels = cfg.remover.size, cfg.remover.channels
    ann, clean, mask = [], [], []
    for k in rng.integers(len(data.images), size=n):
        image = data.images[k] if channels == 3 else cv2.cvtColor(data.images[k], cv2.COLOR_RGB2GRAY)
        pair = downsized_pair(image, rng, size, data.masks[k], cfg.annotations)
        ann.append(pair.annotated)
        clean.append(pair.clean)
        mask.append(pair.mask[:, :, None])

    def tensor(arrays: list[np.ndarray], scale: float) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / scale)

    return tensor(ann, 255.0), tensor(clean, 255.0), tensor(mask, 1.0)


class RemoverTask(Task):
    """The remover's weighted-MSE loss (:class:`~sonogan.models.remover.AnnotationLoss`) and
    the detector's cross-entropy on one batch of pairs, for the model ``{"remover", "detector"}``.
    The two nets share no parameter, so one step on the sum of the losses is each net's own step."""

    metrics = ("loss", "detector_loss")

    def __init__(self, loss: LossConfig) -> None:
        self.loss_fn, self.ce = AnnotationLoss(loss), nn.CrossEntropyLoss()

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Sums]:
        ann, clean = batch["annotated"], batch["clean"]
        pred, gate = model["remover"].restore(ann)
        # float32 losses also under autocast (a no-op in float32)
        loss = self.loss_fn(pred.float(), clean, batch["mask"], None if gate is None else gate.float())
        # the detector sees the first half annotated, the second half clean: balanced, and
        # no more images per step than the remover
        half = (len(ann) + 1) // 2
        labels = torch.cat([torch.ones(half), torch.zeros(len(ann) - half)]).long().to(ann.device)
        det_loss = self.ce(model["detector"](torch.cat([ann[:half], clean[half:]])).float(), labels)
        # history: the mean per iteration of each loss
        return loss + det_loss, {"loss": (loss.detach().double(), 1), "detector_loss": (det_loss.detach().double(), 1)}


@dataclass
class PairBatches:
    """The batches of "epoch" ``k``: iterations ``(k-1) * checkpoint_every`` up to the next
    checkpoint, each iteration's pairs drawn from ``(seed, iteration)`` (so the loop's own
    generators are not used)."""

    data: CleanImages
    cfg: RemoverTrainConfig
    precision: Precision | None = None

    def steps_per_epoch(self) -> int:
        return self.cfg.checkpoint_every

    def to(self, precision: Precision) -> "PairBatches":
        return replace(self, precision=precision)

    def epoch(self, number: int, shuffle: torch.Generator, augment: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        every, cfg = self.cfg.checkpoint_every, self.cfg
        for it in range((number - 1) * every, min(number * every, cfg.iterations)):
            tensors = make_batch(self.data, np.random.default_rng([cfg.seed, it]), cfg.batch_size, cfg)
            yield {k: t if self.precision is None else self.precision.inputs(t)
                   for k, t in zip(("annotated", "clean", "mask"), tensors)}


def remover_precision(cfg: RemoverTrainConfig) -> Precision:
    """The precision the remover trains in (:func:`sonogan.train.accel.resolve_precision`);
    float32 in the default layout on CUDA, as it has always trained."""
    device = resolve_device(cfg.device)
    return resolve_precision(device, cfg.precision, cfg.memory_format, family=f"remover-{cfg.remover.model}",
                             size=cfg.remover.size, cuda=precision_for(device, amp=False, channels_last=False))


def fit(data: CleanImages, cfg: RemoverTrainConfig, out: Path, resume: bool = False, progress: bool = False,
        log: Callable[[str], None] = print) -> tuple[nn.Module, nn.Module, list[dict]]:
    """Train the remover and the detector (one Adam, a parameter group each) on the loop;
    continues from ``out/last.pt`` when ``resume`` and it exists. Returns (remover, detector,
    history) with one history entry ``{iteration, loss, detector_loss}`` per checkpoint."""
    every, precision = cfg.checkpoint_every, remover_precision(cfg)

    def iteration(epoch: int) -> int:
        return min(epoch * every, cfg.iterations)

    def report(epoch: int, record: dict) -> None:
        log(f"iteration {iteration(epoch)}: loss {record['train_loss']:.5f}, "
            f"detector {record['train_detector_loss']:.4f}")

    parts = Parts(model=lambda: nn.ModuleDict(dict(zip(("remover", "detector"), build_nets(cfg.remover)))),
                  task=lambda: RemoverTask(cfg.loss),
                  optimizer=lambda nets: torch.optim.Adam([
                      {"params": nets["remover"].parameters(), "lr": cfg.lr},
                      {"params": nets["detector"].parameters(), "lr": cfg.detector_lr}], **precision.optimizer_kwargs()))
    options = LoopOptions(epochs=math.ceil(cfg.iterations / every), seed=cfg.seed, keep="last",
                          precision=precision, description="annotation remover")
    res = train_supervised(parts, PairBatches(data, cfg), options, out,
                           identity={"format": STATE_FORMAT, "config": cfg.model_dump(mode="json"), "images": data.ids},
                           resume=resume, progress=progress, on_epoch_end=report,
                           on_resume=lambda epochs: log(f"resumed at iteration {iteration(epochs)}"))
    history = [{"iteration": iteration(r["epoch"]), "loss": r["train_loss"], "detector_loss": r["train_detector_loss"]}
               for r in res.history]
    return res.model["remover"], res.model["detector"], history


def train_remover(dataset: str | Path | None, out: str | Path, cfg: RemoverTrainConfig | None = None,
                  resume: bool = False, progress: bool = False) -> Path:
    """Train on the fold's training images of ``dataset`` into the new run folder ``out``, or
    with ``resume=True`` continue the run in ``out`` with its own config, dataset and splits
    copy (a different ``cfg`` or ``dataset`` is refused); then evaluate on held-out pairs of
    the fold's validation images. The splits are read where
    :func:`~sonogan.locations.splits_file` says, so a read-only dataset works. Returns
    ``out/remover.pt``."""
    out = Path(out)
    if resume:
        cfg = layout.resume_config(out, RemoverTrainConfig, cfg)
        dataset = layout.resume_dataset(out, dataset)
    cfg = cfg or RemoverTrainConfig()
    if dataset is None:
        raise SonoganInputError("annotations train", "no dataset given", "pass the DATASET folder")
    torch.set_num_threads(cfg.num_threads)
    ds = load_dataset(dataset)
    with RunDir.resume(out) if resume else \
            RunDir.create(out, seed=cfg.seed, config=cfg, kind="annotation-remover") as run:
        run.set_info(dataset=str(ds.root.resolve()), precision=remover_precision(cfg).describe())
        # the run's own copy: a resumed run continues on the splits it started with
        splits = Splits.load(layout.keep_splits(run, lambda: splits_file(ds.root)), ds)
        start = time.perf_counter()
        draw = int(round(cfg.remover.size * cfg.draw_scale))
        train = load_clean_images(ds, splits.partition(cfg.fold, "train"), draw, cfg.clean_max_marker_fraction, progress)
        run.log(f"{len(train.ids)} clean training images of fold {cfg.fold}")
        remover, detector, history = fit(train, cfg, out, resume, progress, run.log)
        extra = {"train_config": cfg.model_dump(mode="json"), "dataset": str(ds.root), "fold": cfg.fold,
                 "n_train_images": len(train.ids), "iterations": cfg.iterations, "history": history}
        path = save_remover(out / layout.REMOVER_FILE, remover.cpu(), detector.cpu(), cfg.remover, extra)
        held_out = load_clean_images(ds, splits.partition(cfg.fold, "val"), draw, None, progress)
        metrics = evaluate_remover(path, held_out, cfg.eval_pairs, seed=cfg.seed + 1, cfg=cfg.annotations)
        metrics.update(n_train_images=len(train.ids), n_val_images=len(held_out.ids), history=history,
                       train_seconds=round(time.perf_counter() - start, 1))
        run.write_metrics(metrics)
    return path
