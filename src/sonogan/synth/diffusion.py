"""Diffusion generator family ("ddpm"): train a UNet denoiser on one fold's training images,
sample it with DDIM into a synthetic dataset folder, beside the GANs and to the same contract.

:func:`fit_diffusion` is :func:`sonogan.synth.trainer.fit_gan`'s twin: same run folder
(``RunDir``; ``config.yaml``, ``run.json`` with hashed ``training_ids``, ``log.txt``,
``metrics.json``, ``grids/``, ``loss_curves.png``, ``final_vs_real.png``), and
``checkpoints/last.pt`` holds the full state (UNet, EMA UNet, AdamW, warm-up schedule, scaler,
the run's own ``torch.Generator``, loss history), so ``resume=True`` continues exactly as an
uninterrupted run would on CPU. :func:`sample_diffusion` is :func:`sample_gan`'s twin and writes
through the same writer (:func:`sonogan.synth.sample.write_synthetic`).

Example:
    >>> from sonogan.synth.diffusion_config import DIFFUSION_FAMILIES, DiffusionConfig
    >>> DiffusionConfig(iterations=4000).family
    'ddpm'
    >>> ema_decay_at(0.999, 0), ema_decay_at(0.999, 10_000)
    (0.1, 0.999)
    >>> run = train_diffusion("runs/phantom", "runs/phantom/splits.json", 0, "borderline",
    ...                       DiffusionConfig(iterations=4000), "runs/ddpm-f0")         # doctest: +SKIP
    >>> syn = sample_diffusion(run, 2000, Path("runs/syn-ddpm-f0"), seed=0)              # doctest: +SKIP
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from sonogan.config import read_yaml
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.errors import SonoganInputError
from sonogan.progress import progress_bar
from sonogan.report.figures import new_figure, save_figure
from sonogan.runs import RunDir, write_json
from sonogan.synth.data import RealImages, load_real_images
from sonogan.synth.diffusion_config import DIFFUSION_FAMILIES, DiffusionConfig
from sonogan.synth.diffusion_state import (DiffusionState, build_state, ddim_scheduler, diffusion_precision,
                                           is_diffusion_checkpoint, load_diffusion_checkpoint, load_ema_unet,
                                           noise_scheduler)
from sonogan.synth.ema import ema_update
from sonogan.synth.figures import save_final_vs_real, save_grid
from sonogan.synth.sample import check_n, checkpoint_path, write_synthetic
from sonogan.synth.trainer import (RunSource, check_same_images, gan_meta, generator_meta, record_source, run_source,
                                   start_run)
from sonogan.torch_utils import atomic_torch_save, resolve_device
from sonogan.train.accel import Precision

GRID_N = 36


def ema_decay_at(decay: float, iteration: int) -> float:
    """The EMA decay at ``iteration``: ``min(decay, (1 + it) / (10 + it))``, the warm-up of
    diffusers' ``EMAModel``, so a short run's EMA is not mostly the random initial weights.
    Applied by the project's :func:`ema_update` (not ``EMAModel``) so the checkpoint holds the
    EMA UNet as a plain module state_dict, exactly like the GANs' ``G_ema``."""
    return min(decay, (1 + iteration) / (10 + iteration))


@torch.no_grad()
def ddim_sample(unet: torch.nn.Module, cfg: DiffusionConfig, noise: torch.Tensor, labels: torch.Tensor | None,
                steps: int, chunk: int = 64) -> torch.Tensor:
    """Deterministic DDIM (eta 0) from ``noise`` (on the UNet's device); CPU float32 in [-1, 1].

    Written out rather than through diffusers' ``DDIMPipeline``: the pipeline passes no class
    labels to the UNet and draws its own noise, and we need both under our control."""
    sched = ddim_scheduler(cfg)
    sched.set_timesteps(steps, device=noise.device)
    was = unet.training
    unet.eval()
    out = []
    for i in range(0, len(noise), chunk):
        x = noise[i:i + chunk]
        y = None if labels is None else labels[i:i + chunk]
        for t in sched.timesteps:
            x = sched.step(unet(x, t, class_labels=y).sample, t, x, eta=0.0).prev_sample
        out.append(x.float().cpu())
    unet.train(was)
    return torch.cat(out).clamp(-1, 1)


def fixed_inputs(cfg: DiffusionConfig, n: int, seed: int, classes: torch.Tensor | None,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fixed noise (drawn on the CPU, so the same on any device) and labels cycling over ``classes``."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, cfg.channels, cfg.resolution, cfg.resolution, generator=gen).to(device)
    y = None if classes is None else classes.repeat(n // len(classes) + 1)[:n].to(device)
    return noise, y


def _check_images(real: RealImages, cfg: DiffusionConfig) -> None:
    want = (cfg.channels, cfg.resolution, cfg.resolution)
    if tuple(real.images.shape[1:]) != want or len(real.images) < 2:
        raise SonoganInputError("training images", f"shape {tuple(real.images.shape)} does not fit the config",
                                f"pass at least 2 images of shape (N, {want[0]}, {want[1]}, {want[2]}) "
                                "or change channels/resolution")


def fit_diffusion(real: RealImages, cfg: DiffusionConfig, out: str | Path, resume: bool = False,
                  progress: bool = False, meta: dict[str, Any] | None = None, source: RunSource | None = None) -> Path:
    """Train on in-memory ``real`` images into run folder ``out`` (new, or resumed from last.pt);
    ``source``: where the images come from, recorded in the run (:func:`record_source`).

    ``resume=True`` on a folder killed before its first checkpoint starts the training again
    inside that folder (nothing of it survived), so a resume works after a kill at any instant.
    """
    out = Path(out)
    _check_images(real, cfg)
    meta = generator_meta(real, meta)
    device = resolve_device(cfg.device)
    num_classes = len(real.classes) if cfg.class_conditional else 1
    last = out / "checkpoints" / "last.pt"
    if resume and last.is_file():
        ckpt = load_diffusion_checkpoint(last)
        check_same_images(ckpt, meta, out)
        cfg = DiffusionConfig.model_validate({**ckpt["config"], "iterations": cfg.iterations})
        opened: Any = RunDir.resume(out)
        precision = diffusion_precision(cfg, device)
        state = build_state(cfg, int(ckpt["num_classes"]), device, precision)  # the checkpoint's, like its config
        state.load_checkpoint(ckpt)
        resumed = f"resumed at iteration {state.iteration}, budget {cfg.iterations}"
    else:
        opened = start_run(out, resume, cfg, "diffusion", len(real.ids), meta)
        precision = diffusion_precision(cfg, device)
        state = build_state(cfg, num_classes, device, precision)
        resumed = None
    with opened as run:  # a failure or Ctrl-C inside the loop marks the run failed / interrupted
        if resumed is not None:
            run.log(resumed)
        run.set_info(device=str(device), precision=precision.describe())
        run.log(f"precision: {precision.reason}")
        record_source(run, source)
        _loop(state, real, run, precision, {**meta, "precision": precision.describe()}, progress)
    return out


def _step(st: DiffusionState, sched: DDPMScheduler, X: torch.Tensor, Y: torch.Tensor | None,
          precision: Precision) -> torch.Tensor:
    """One optimiser step of the epsilon-prediction MSE (in float32, also under autocast); every
    draw from the run's generator."""
    cfg, gen, dev = st.cfg, st.gen, X.device
    idx = torch.randint(len(X), (cfg.batch_size,), generator=gen, device=dev)
    x0 = X[idx]
    if cfg.hflip:
        flip = torch.rand(cfg.batch_size, generator=gen, device=dev) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    noise = torch.randn(x0.shape, generator=gen, device=dev)
    t = torch.randint(cfg.train_timesteps, (cfg.batch_size,), generator=gen, device=dev)
    with precision.autocast():
        pred = st.unet(sched.add_noise(x0, noise, t), t, class_labels=None if Y is None else Y[idx]).sample
    loss = F.mse_loss(pred.float(), noise)
    st.opt.zero_grad(set_to_none=True)
    st.scaler.scale(loss).backward()
    st.scaler.step(st.opt)
    st.scaler.update()
    st.lr_sched.step()
    ema_update(st.unet_ema, st.unet, ema_decay_at(cfg.ema_decay, st.iteration))
    return loss.detach()


def _loop(st: DiffusionState, real: RealImages, run: RunDir, precision: Precision, meta: dict[str, Any],
          progress: bool) -> None:
    cfg, out, device = st.cfg, run.path, precision.device
    sched = noise_scheduler(cfg)
    X = precision.inputs(real.images)
    Y = real.labels.to(device) if cfg.class_conditional else None
    present = torch.unique(real.labels) if cfg.class_conditional else None
    grid_noise, grid_y = fixed_inputs(cfg, GRID_N, cfg.seed + 1, present, device)
    acc = torch.zeros((), device=device)
    n_acc, start_it, t0, extra_s = 0, st.iteration, time.perf_counter(), 0.0
    grid: tuple[int, torch.Tensor] | None = None
    name = f"fold {meta.get('fold')} {meta.get('class_name') or 'all classes'}"
    bar = progress_bar(progress, f"diffusion {cfg.family}", transient=False)
    st.unet.train()
    with bar:
        task = bar.add_task("", total=cfg.iterations, completed=st.iteration)
        while st.iteration < cfg.iterations:
            acc += _step(st, sched, X, Y, precision)
            n_acc += 1
            st.iteration += 1
            it = st.iteration
            at_ckpt = it % cfg.checkpoint_every == 0 or it == cfg.iterations
            if it % cfg.log_every == 0 or at_ckpt:  # the only host sync: every log_every steps
                loss = (acc / n_acc).item()
                st.history.append({"iteration": it, "loss": loss})
                acc.zero_()
                n_acc = 0
                bar.update(task, completed=it, description=f"{name}  loss {loss:.4f}")
            t1 = time.perf_counter()  # grids and checkpoints are timed apart from the training steps
            if it % cfg.sample_every == 0:
                grid = (it, ddim_sample(st.unet_ema, cfg, grid_noise, grid_y, cfg.sample_steps))
                save_grid(grid[1], out / "grids" / f"iter_{it:06d}.png", nrow=6)
            if at_ckpt:
                atomic_torch_save(st.to_checkpoint(meta), out / "checkpoints" / "last.pt")
            extra_s += time.perf_counter() - t1
        bar.update(task, completed=st.iteration)
    train_s = time.perf_counter() - t0 - extra_s  # the training steps only
    fake = grid[1] if grid and grid[0] == st.iteration else \
        ddim_sample(st.unet_ema, cfg, grid_noise, grid_y, cfg.sample_steps)
    _finish(st, real, run, fake, st.iteration - start_it, time.perf_counter() - t0, train_s)


def save_loss_curve(history: list[dict], path: str | Path) -> Path:
    """The denoising loss over iterations (log scale: it falls by orders of magnitude)."""
    fig = new_figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([h["iteration"] for h in history], [h["loss"] for h in history], label="noise MSE")
    ax.set(xlabel="iteration", ylabel="loss", yscale="log")
    ax.legend()
    return save_figure(fig, path)


def _finish(st: DiffusionState, real: RealImages, run: RunDir, fake: torch.Tensor, done: int,
            seconds: float, train_s: float) -> None:
    out = run.path
    pick = np.random.default_rng(st.cfg.seed).permutation(len(real.images))[:GRID_N]
    save_final_vs_real(fake, real.images[torch.as_tensor(pick)].cpu(), out / "final_vs_real.png",
                       title=f"{st.cfg.family}, iteration {st.iteration}")
    if st.history:
        save_loss_curve(st.history, out / "loss_curves.png")
    write_json(out / "losses.json", {"history": st.history})
    run.write_metrics({
        "family": st.cfg.family, "iterations": st.iteration, "budget": st.cfg.iterations,
        "n_train": len(real.ids), "final_loss": st.history[-1]["loss"] if st.history else None,
        "wall_s_this_session": round(seconds, 2),
        # training steps only: grid sampling and checkpoint writes are timed apart
        "ms_per_iteration": round(1000 * train_s / done, 2) if done else None,
        "sampling_and_checkpoint_s": round(seconds - train_s, 2),
    })
    run.log(f"finished at iteration {st.iteration}")


def train_diffusion(ds: Dataset | str | Path, splits: Any, fold: int | None, class_name: str | None,
                    cfg: DiffusionConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train on the real TRAINING images of ``fold`` and ``class_name`` (None = all classes, for a
    class-conditional model); returns the run folder. Same arguments as :func:`train_gan`."""
    ds = ds if isinstance(ds, Dataset) else load_dataset(ds)
    splits, source = run_source(ds, splits, Path(out), resume)
    if class_name is None and not cfg.class_conditional:
        raise SonoganInputError(f"model '{cfg.family}'", "trains one class at a time",
                                "pass --class NAME, or set class_conditional: true for all classes")
    real = load_real_images(ds, splits, fold, class_name, cfg.preset, cfg.channels, cfg.resolution)
    # gan_meta reads only the preset of the config: it is the same provenance for every family
    return fit_diffusion(real, cfg, out, resume=resume, progress=progress,
                         meta=gan_meta(ds, fold, class_name, cfg), source=source)  # type: ignore[arg-type]


def sample_diffusion(run: str | Path, n: int, out: str | Path, seed: int = 0, classes: list[str] | None = None,
                     steps: int | None = None, checkpoint: str = "last", progress: bool = False,
                     batch: int = 64, device: str = "auto") -> Dataset:
    """``n`` DDIM samples per class of the EMA UNet of ``run`` into the new dataset folder ``out``,
    in exactly :func:`sample_gan`'s format (generator = "ddpm"). Per-class runs sample their
    class; class-conditional runs sample ``classes`` (default: the run's class, else the
    dataset's rare classes, else every class). ``steps``: DDIM steps (default: the config's).
    ``checkpoint``: 'last', 'best' (= last: diffusion runs have no stopping rule) or a path.
    Noise comes from one CPU generator seeded by ``seed``: the same seed gives the same images."""
    run, out = Path(run), Path(out)
    check_n(n)
    path = checkpoint_path(run, checkpoint)
    ckpt = load_diffusion_checkpoint(path)
    unet, cfg = load_ema_unet(ckpt)
    steps = cfg.sample_steps if steps is None else steps
    if not 1 <= steps <= cfg.train_timesteps:
        raise SonoganInputError("--steps", f"{steps} DDIM steps requested",
                                f"use 1 to {cfg.train_timesteps} (the model's training timesteps)")
    dev = resolve_device(device)
    unet = unet.to(dev)
    names = list(ckpt["classes"])

    def make(cls: str, m: int, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(m, cfg.channels, cfg.resolution, cfg.resolution, generator=gen).to(dev)
        y = torch.full((m,), names.index(cls), dtype=torch.long, device=dev) if cfg.class_conditional else None
        return ddim_sample(unet, cfg, noise, y, steps, chunk=batch)

    return write_synthetic(run, path, ckpt, out, n, seed, cfg.family, cfg.class_conditional, make,
                           what="diffusion", classes=classes, progress=progress, batch=batch)


def is_diffusion_run(run: str | Path, checkpoint: str = "best") -> bool:
    """Whether ``checkpoint`` of ``run`` is a diffusion checkpoint (read memory-mapped, so a
    large file costs little). A checkpoint that is unreadable, or neither kind's, is judged by
    the run's ``config.yaml``, so that the right family's loader words the one-line error."""
    path = checkpoint_path(Path(run), checkpoint)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
        ckpt = None
    if is_diffusion_checkpoint(ckpt) or (isinstance(ckpt, dict) and "G_ema" in ckpt):
        return is_diffusion_checkpoint(ckpt)
    try:
        return read_yaml(Path(run) / "config.yaml").get("family") in DIFFUSION_FAMILIES
    except SonoganInputError:
        return False
