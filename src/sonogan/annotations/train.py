"""Train the annotation remover and detector on pairs made on the fly from clean images.

Images come from the TRAINING partition of one fold of the dataset's saved splits (held-out
pairs for evaluation come from that fold's validation partition; the test partition is never
read). Optionally only "clean-ish" images are kept: MMOTU's own callipers and labels are
yellow, and an image that already carries marks would teach the remover to keep them.

Every iteration's pairs are a function of ``(seed, iteration)``, and ``state.pt`` (nets,
optimisers, torch RNG, loss history) is written every ``checkpoint_every`` iterations, so a
killed run resumed with ``resume=True`` continues exactly as an uninterrupted one on CPU.
The result is ``remover.pt`` (both nets + config + version, :func:`~sonogan.annotations.model.save_remover`)
and ``metrics.json`` (held-out PSNR / SSIM before and after, detector accuracy).

Example:
    >>> cfg = RemoverTrainConfig(iterations=2000)                         # doctest: +SKIP
    >>> train_remover("runs/bench/mmotu", "runs/annotations/mmotu", cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np
import torch
from pydantic import Field
from torch import nn

from sonogan import layout
from sonogan.annotations.model import AnnotationLoss, LossConfig, RemoverConfig, build_nets, save_remover
from sonogan.annotations.synthetic import AnnotationConfig, downsized_pair
from sonogan.config import StrictModel
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file
from sonogan.preprocess.cache import decode_image
from sonogan.progress import progress_bar
from sonogan.runs import RunDir
from sonogan.torch_utils import atomic_torch_save, load_torch_file, resolve_device


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


@dataclass
class CleanImages:
    ids: list[str]
    images: list[np.ndarray]   # HxWx3 uint8 RGB at the drawing size
    masks: list[np.ndarray]    # HxW uint8 lesion masks (all zero when the row has none)


def marker_fraction(image: np.ndarray) -> float:
    """Share of pixels that are saturated yellow (OpenCV hue 15-40 of 180, saturation and value
    > 90): burned-in calliper marks and labels on most scanners, rare in grey ultrasound."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return float(((h >= 15) & (h <= 40) & (s > 90) & (v > 90)).mean())


def load_clean_images(ds: Dataset, ids: list[str], draw_size: int, max_marker: float | None = None,
                      progress: bool = False) -> CleanImages:
    """Decode ``ids`` (real rows) and their masks, drop images with more marker colour than
    ``max_marker``, and resize (stretch) the rest to ``draw_size`` x ``draw_size``."""
    rows = ds.manifest.set_index("image_id").loc[ids]
    out = CleanImages([], [], [])
    with progress_bar(progress, "decode") as bar:
        task = bar.add_task("", total=len(rows))
        for image_id, row in rows.iterrows():
            bar.update(task, advance=1)
            image = decode_image(ds.path(row["image"]), context=f"manifest row {image_id}")
            if max_marker is not None and marker_fraction(image) > max_marker:
                continue
            mask = (decode_image(ds.path(row["mask"]), grey=True) > 0).astype(np.uint8) if row["mask"] else \
                np.zeros(image.shape[:2], np.uint8)
            if mask.shape != image.shape[:2]:
                mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            out.ids.append(str(image_id))
            out.images.append(cv2.resize(image, (draw_size, draw_size), interpolation=cv2.INTER_AREA))
            out.masks.append(cv2.resize(mask, (draw_size, draw_size), interpolation=cv2.INTER_NEAREST))
    if not out.ids:
        raise SonoganInputError(ds.root, "no clean image left to train on",
                                "raise clean_max_marker_fraction (or set it to null)")
    return out


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


def _state(remover: nn.Module, detector: nn.Module, opts: list[torch.optim.Optimizer], iteration: int,
           history: list[dict]) -> dict:
    return {"iteration": iteration, "remover": remover.state_dict(), "detector": detector.state_dict(),
            "opt_remover": opts[0].state_dict(), "opt_detector": opts[1].state_dict(),
            "torch_rng": torch.get_rng_state(), "history": history}


def fit(data: CleanImages, cfg: RemoverTrainConfig, out: Path, resume: bool = False, progress: bool = False,
        log: Callable[[str], None] = print) -> tuple[nn.Module, nn.Module, list[dict]]:
    """The training loop (weighted-MSE remover and cross-entropy detector, one Adam each);
    continues from ``out/state.pt`` when ``resume`` and it exists. Returns (remover, detector, history)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    remover, detector = build_nets(cfg.remover)
    remover.to(device).train()
    detector.to(device).train()
    opts = [torch.optim.Adam(remover.parameters(), lr=cfg.lr), torch.optim.Adam(detector.parameters(), lr=cfg.detector_lr)]
    start, history = 0, []
    state_path = out / "state.pt"
    if resume and state_path.is_file():
        state = load_torch_file(state_path, "start a new run", "delete state.pt and start a new run")
        remover.load_state_dict(state["remover"])
        detector.load_state_dict(state["detector"])
        opts[0].load_state_dict(state["opt_remover"])
        opts[1].load_state_dict(state["opt_detector"])
        torch.set_rng_state(state["torch_rng"])
        start, history = int(state["iteration"]), list(state["history"])
        log(f"resumed at iteration {start}")
    loss_fn, ce = AnnotationLoss(cfg.loss), nn.CrossEntropyLoss()
    sums = np.zeros(2)
    with progress_bar(progress, "annotation remover") as bar:
        task = bar.add_task("", total=cfg.iterations, completed=start)
        for it in range(start, cfg.iterations):
            ann, clean, mask = (t.to(device) for t in make_batch(data, np.random.default_rng([cfg.seed, it]),
                                                                 cfg.batch_size, cfg))
            pred, gate = remover.restore(ann)
            loss = loss_fn(pred, clean, mask, gate)
            opts[0].zero_grad(set_to_none=True)
            loss.backward()
            opts[0].step()
            # the detector sees the first half annotated, the second half clean: balanced, and
            # no more images per step than the remover
            half = (len(ann) + 1) // 2
            labels = torch.cat([torch.ones(half), torch.zeros(len(ann) - half)]).long().to(device)
            det_loss = ce(detector(torch.cat([ann[:half], clean[half:]])), labels)
            opts[1].zero_grad(set_to_none=True)
            det_loss.backward()
            opts[1].step()
            sums += (loss.item(), det_loss.item())
            done = it + 1
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
                n = done - (history[-1]["iteration"] if history else 0)
                history.append({"iteration": done, "loss": float(sums[0] / n), "detector_loss": float(sums[1] / n)})
                sums[:] = 0
                atomic_torch_save(_state(remover, detector, opts, done, history), state_path)
                log(f"iteration {done}: loss {history[-1]['loss']:.5f}, detector {history[-1]['detector_loss']:.4f}")
            bar.update(task, advance=1, description=f"loss {loss.item():.4f}")
    return remover.eval(), detector.eval(), history


def train_remover(dataset: str | Path | None, out: str | Path, cfg: RemoverTrainConfig | None = None,
                  resume: bool = False, progress: bool = False) -> Path:
    """Train on the fold's training images of ``dataset`` into the new run folder ``out``, or
    with ``resume=True`` continue the run in ``out`` with its own config, dataset and splits
    copy (a different ``cfg`` or ``dataset`` is refused); then evaluate on held-out pairs of
    the fold's validation images. The splits are read where
    :func:`~sonogan.locations.splits_file` says, so a read-only dataset works. Returns
    ``out/remover.pt``."""
    from sonogan.annotations.evaluate import evaluate_remover

    out = Path(out)
    if resume:
        cfg = layout.resume_config(out, RemoverTrainConfig, cfg)
        started_on = layout.read_info(out).get("dataset")
        if dataset is not None and started_on is not None and Path(dataset).resolve() != Path(started_on):
            raise SonoganInputError(dataset, f"this run was started on {started_on}",
                                    "resume without DATASET (the run's own is used), or start a new run")
        dataset = dataset if started_on is None else started_on
    cfg = cfg or RemoverTrainConfig()
    if dataset is None:
        raise SonoganInputError("annotations train", "no dataset given", "pass the DATASET folder")
    torch.set_num_threads(cfg.num_threads)
    ds = load_dataset(dataset)
    with RunDir.resume(out) if resume else \
            RunDir.create(out, seed=cfg.seed, config=cfg, kind="annotation-remover") as run:
        run.set_info(dataset=str(ds.root.resolve()))
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
