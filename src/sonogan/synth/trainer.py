"""THE one GAN training loop: D phase(s), G phase, EMA, checkpoints, grids, stopping rule.

Every family runs through :func:`fit_gan`; they differ only in the nets and the loss object
(``loss.d_loss`` / ``loss.g_loss``). Losses are summed on the device and read every
``log_every`` iterations (no per-step host sync). ``checkpoints/last.pt`` holds the full state
(nets, EMA, optimisers, RNG, histories), so ``resume=True`` continues exactly as an
uninterrupted run would on CPU.

Under torchrun (DDP, :mod:`sonogan.train.distributed`) every rank draws the same global batch,
noise and DiffAugment numbers and trains G and D (SyncBatchNorm) on its slice, so the run
equals the single-process one up to float error (wgan-gp: its penalty's mixing weights are
drawn per slice); rank 0 alone writes the run folder, checks quality and decides to stop.

Example:
    >>> ds = load_dataset("runs/phantom")                                          # doctest: +SKIP
    >>> run = train_gan(ds, "runs/phantom/splits.json", 0, "borderline",
    ...                 GanConfig(iterations=2000), "runs/gan-borderline-f0")        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

import sonogan
from sonogan import layout
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import manifest_sha256
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file
from sonogan.progress import progress_bar
from sonogan.runs import RunDir, sha256_file, write_json
from sonogan.synth.augment import diff_augment
from sonogan.synth.config import GanConfig
from sonogan.synth.data import RealImages, load_real_images
from sonogan.synth.ema import ema_update
from sonogan.synth.figures import save_final_vs_real, save_grid, save_loss_curves
from sonogan.synth.nets import CONDITIONAL, GAN_FAMILIES, sample_z
from sonogan.synth.quality import FeatureExtractor, feature_stats, frechet_distance
from sonogan.torch_utils import atomic_torch_save, resolve_device
import sonogan.train.distributed as ddp  # the module itself, not through train/__init__.py (which imports the loop)
from sonogan.train.accel import Float32Outputs, Precision, setup_device, to_device
from sonogan.synth.state import GanState, batch_stats, build_state, gan_precision, load_checkpoint_file

GRID_N = 36


def generate(G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None, chunk: int = 64) -> torch.Tensor:
    """Images from G (batch-statistics BN, no grad) in chunks; returns CPU float32 in [-1, 1]."""
    out = []
    with batch_stats(G):
        for i in range(0, len(z), chunk):
            yy = None if y is None else y[i:i + chunk]
            out.append(G(z[i:i + chunk], yy).float().cpu())
    return torch.cat(out)


def _fixed_inputs(G: torch.nn.Module, n: int, seed: int, classes: torch.Tensor | None,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fixed noise (and labels cycling over ``classes``) from a generator of its own."""
    gen = torch.Generator().manual_seed(seed)
    z = sample_z(G, n, gen, device)
    y = None if classes is None else classes.repeat(n // len(classes) + 1)[:n].to(device)
    return z, y


def hashed_ids(ids: list[str]) -> list[str]:
    """Image ids as short sha256 digests: GAN checkpoints and run folders are shared, and ids
    are often file names that can carry a patient's name; the digests still let the protocol
    check that a generator saw only its own fold's training images."""
    return [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in ids]


def generator_meta(real: RealImages, meta: dict[str, Any] | None) -> dict[str, Any]:
    """What every generator run records about its images: hashed ids and the class list."""
    meta = dict(meta or {})
    meta["training_ids"] = hashed_ids(real.ids)
    meta.setdefault("classes", list(real.classes))
    return meta


@contextlib.contextmanager
def start_run(out: Path, resume: bool, cfg: Any, kind: str, n_train: int, meta: dict[str, Any]) -> Iterator[RunDir]:
    """A new generator run folder, or the one a kill left before its first checkpoint (resumed),
    open for the ``with`` block, its training images recorded."""
    with RunDir.resume(out) if resume and (out / "run.json").is_file() else \
            RunDir.create(out, seed=cfg.seed, config=cfg, kind=kind) as run:
        run.set_info(n_train=n_train, family=cfg.family, **meta)
        yield run


@dataclass(frozen=True)
class RunSource:
    """The dataset folder and splits file a generator run trains on: run.json records the
    dataset, the run keeps its own copy of the splits (``--resume RUN`` continues on both)."""

    dataset: Path
    splits: Path | None  # None: the caller passed a Splits object, there is no file to copy


def run_source(ds: Dataset, splits: Any, out: Path, resume: bool) -> tuple[Any, RunSource]:
    """(the splits to train on, their :class:`RunSource`). Resuming a run that exists: its own
    splits copy (:func:`sonogan.layout.resume_splits`), whatever ``splits`` says; else ``splits``
    (a Splits object or a splits.json path), by default the dataset's
    (:func:`sonogan.locations.splits_file`)."""
    if resume and layout.is_run(out):
        splits = layout.resume_splits(out, ds.root)
    elif splits is None:
        splits = splits_file(ds.root)
    return splits, RunSource(ds.root, Path(splits) if isinstance(splits, (str, Path)) else None)


def record_source(run: RunDir, source: RunSource | None) -> None:
    """Write ``source`` into the open ``run`` (the splits copy is checked against its hash on resume)."""
    if source is None:
        return
    run.set_info(dataset=str(source.dataset.resolve()))
    splits = source.splits
    if splits is not None:
        layout.keep_splits(run, lambda: splits)


def check_same_images(ckpt: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    """A resumed generator must continue on exactly the images it started on."""
    if list(ckpt["training_ids"]) != meta["training_ids"]:
        raise SonoganInputError(out, "training images differ from the checkpoint's",
                                "resume with the same dataset, splits, fold and class")


def fit_gan(real: RealImages, cfg: GanConfig, out: str | Path, resume: bool = False,
            progress: bool = False, meta: dict[str, Any] | None = None, init: str | Path | None = None,
            source: RunSource | None = None) -> Path:
    """Train on in-memory ``real`` images into run folder ``out`` (new, or resumed from last.pt);
    ``source``: where the images come from, recorded in the run (:func:`record_source`).

    ``resume=True`` on a folder killed before its first checkpoint starts the training again
    inside that folder (nothing of it survived), so a resume works after a kill at any instant.
    ``init``: a GAN checkpoint (same family and widths) whose G, D and EMA-G weights a new run
    starts from instead of noise (fine-tuning a generator pretrained on more images).
    """
    out = Path(out)
    conditional = cfg.family in CONDITIONAL
    GAN_FAMILIES.get(cfg.family)  # unknown family -> SonoganInputError before any folder is made
    if cfg.batch_size % ddp.world_size():
        raise SonoganInputError("batch_size", f"{cfg.batch_size} images cannot be split evenly over "
                                f"{ddp.world_size()} processes", "use a multiple of the number of processes")
    meta = generator_meta(real, meta)
    device = ddp.device_for(resolve_device(cfg.device))
    setup_device(device)
    main = ddp.is_main()  # the only rank with a run folder
    num_classes = len(real.classes) if conditional else 1
    last = out / "checkpoints" / "last.pt"
    if ddp.broadcast_flag(resume and last.is_file()):  # rank 0's answer for all ranks
        ckpt = load_checkpoint_file(last)
        check_same_images(ckpt, meta, out)
        cfg = GanConfig.model_validate({**ckpt["config"], "iterations": cfg.iterations})
        opened: Any = RunDir.resume(out) if main else None
        precision = gan_precision(cfg, device)
        state = build_state(cfg, num_classes, device, precision)
        state.load_checkpoint(ckpt)
        resumed = f"resumed at iteration {state.iteration}, budget {cfg.iterations}"
    else:
        precision = gan_precision(cfg, device)
        state = build_state(cfg, num_classes, device, precision)
        if init is not None:  # checked before any folder is made
            start_from(state, load_checkpoint_file(init))
            meta.update(init_from=Path(init).parent.parent.name, init_sha256=sha256_file(init))
        opened = start_run(out, resume, cfg, "gan", len(real.ids), meta) if main else None
        resumed = None
    # a failure or Ctrl-C inside the loop marks the GAN run failed / interrupted
    with opened if opened is not None else contextlib.nullcontext() as run:
        if run is not None:
            if resumed is not None:
                run.log(resumed)
            run.set_info(device=str(device), precision=precision.describe())
            run.log(f"precision: {precision.reason}")
            record_source(run, source)
        _loop(state, real, run, out, precision, {**meta, "precision": precision.describe()}, progress and main)
    return out


def start_from(state: GanState, ckpt: dict[str, Any]) -> None:
    """Load another run's nets (not its optimisers, RNG or history) into a fresh state."""
    for name, net in (("G", state.G), ("D", state.D), ("G_ema", state.G_ema)):
        try:
            net.load_state_dict(ckpt[name])
        except RuntimeError as exc:
            raise SonoganInputError("init checkpoint", f"its {name} does not fit this GAN ({str(exc)[:80]})",
                                    "start from a GAN of the same family, widths and resolution") from None


def _loop(st: GanState, real: RealImages, run: RunDir | None, out: Path, precision: Precision,
          meta: dict[str, Any], progress: bool) -> None:
    """The iterations in ``precision``; ``run`` is None on the ranks > 0 of a distributed run (they
    write nothing); ``meta`` goes into every checkpoint."""
    cfg, device = st.cfg, precision.device
    conditional = cfg.family in CONDITIONAL
    X = precision.inputs(real.images)
    Y = to_device(real.labels, device)
    present = torch.unique(real.labels).to(device) if conditional else None
    G_ddp, D_ddp = ddp.wrap(st.G, device), ddp.wrap(st.D, device)  # st.G / st.D stay plain for state_dicts
    G, D = precision.wrap(G_ddp), precision.wrap(D_ddp)
    if precision.autocast_dtype is not None:
        D = Float32Outputs(D)  # the loss objects do not cast: their losses stay float32 under autocast
    lo, hi = ddp.shard_bounds(cfg.batch_size)
    if run is not None:
        fx = FeatureExtractor(cfg.channels, seed=cfg.seed).to(device)
        real_stats = feature_stats(fx(X))
    grid_z, grid_y = _fixed_inputs(st.G, GRID_N, cfg.seed + 1, present, device)
    q_z, q_y = _fixed_inputs(st.G, cfg.quality_samples, cfg.seed + 2, present, device)
    acc = torch.zeros(2, device=device)
    n_acc, t0, start_it = 0, time.perf_counter(), st.iteration
    times: list[tuple[int, float]] = []  # (iteration, seconds) at each loss read, for speed metrics
    ckpt_dir = out / "checkpoints"

    def batch() -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(X), (cfg.batch_size,), generator=st.gen, device=st.gen.device)
        z = sample_z(st.G, cfg.batch_size, st.gen, device)
        yf = None
        if present is not None:
            yf = present[torch.randint(len(present), (cfg.batch_size,), generator=st.gen, device=st.gen.device)]
        # every rank draws the whole batch (its generator is in the same state everywhere) and keeps its slice
        idx = idx[lo:hi]
        return X[idx], (Y[idx] if conditional else None), z[lo:hi], (None if yf is None else yf[lo:hi])

    def aug(x: torch.Tensor) -> torch.Tensor:
        if not cfg.diffaugment:
            return x
        return ddp.shard_apply(lambda full: diff_augment(full, cfg.diffaugment, st.gen), x, cfg.batch_size)

    name = f"fold {meta.get('fold')} {meta.get('class_name') or 'all classes'}"
    bar = progress_bar(progress, f"GAN {cfg.family}", transient=False)
    with bar:
        task = bar.add_task("", total=cfg.iterations, completed=st.iteration)
        while st.iteration < cfg.iterations and not st.stopped_early:
            st.G.train()
            st.D.train()
            for k in range(cfg.n_critic):
                xr, yr, z, yf = batch()
                last = k == cfg.n_critic - 1
                with precision.autocast():
                    # The last D step keeps G's graph: the G step reuses these fakes (as in the
                    # PyTorch DCGAN example), saving one G forward per iteration.
                    with torch.set_grad_enabled(last):
                        fake = G(z, yf)
                    d_loss, _ = st.loss.d_loss(D, aug(xr), aug(fake.detach()), yr, yf, st.gen)
                st.opt_d.zero_grad(set_to_none=True)
                st.scaler_d.scale(d_loss).backward()
                st.scaler_d.step(st.opt_d)
                st.scaler_d.update()
            with ddp.no_sync(D_ddp):  # D's gradients of the G step are discarded: no all-reduce
                with precision.autocast():
                    g_loss = st.loss.g_loss(D, aug(fake), yf)
                st.opt_g.zero_grad(set_to_none=True)
                st.scaler_g.scale(g_loss).backward()
            st.scaler_g.step(st.opt_g)
            st.scaler_g.update()
            ema_update(st.G_ema, st.G, cfg.ema_decay)
            acc += torch.stack([d_loss.detach().float(), g_loss.detach().float()])
            n_acc += 1
            st.iteration += 1
            it = st.iteration
            at_ckpt = it % cfg.checkpoint_every == 0 or it == cfg.iterations
            if it % cfg.log_every == 0 or at_ckpt:  # the only host sync: every log_every steps
                d, g = (ddp.all_sum(acc) / ddp.world_size() / n_acc).tolist()  # mean over ranks
                st.history.append({"iteration": it, "d_loss": d, "g_loss": g})
                acc.zero_()
                n_acc = 0
                times.append((it, time.perf_counter() - t0))
                bar.update(task, completed=it, description=f"{name}  D {d:.3f}  G {g:.3f}")
            if run is not None and it % cfg.sample_every == 0:
                save_grid(generate(st.G_ema, grid_z, grid_y), out / "grids" / f"iter_{it:06d}.png", nrow=6)
            if it % cfg.quality_every == 0 or it == cfg.iterations:
                if run is not None:
                    _quality_check(st, fx, real_stats, q_z, q_y, run, meta)
                st.stopped_early = ddp.broadcast_flag(st.stopped_early)  # rank 0 decides for all
            if run is not None and (at_ckpt or st.stopped_early):
                atomic_torch_save(st.to_checkpoint(meta), ckpt_dir / "last.pt")
        bar.update(task, completed=st.iteration)
    if run is not None:
        _finish(st, real, run, grid_z, grid_y, start_it, time.perf_counter() - t0, times)


def _quality_check(st: GanState, fx: FeatureExtractor, real_stats: tuple, q_z: torch.Tensor,
                   q_y: torch.Tensor | None, run: RunDir, meta: dict[str, Any]) -> None:
    """Stopping rule: Fréchet distance of EMA-G samples to the real training images; keep best.pt."""
    fd = frechet_distance(*real_stats, *feature_stats(fx(generate(st.G_ema, q_z, q_y).to(q_z.device))))
    st.quality.append({"iteration": st.iteration, "fd": fd})
    if fd < st.best_fd:
        st.best_fd, st.best_iteration, st.bad_checks = fd, st.iteration, 0
        atomic_torch_save(st.to_checkpoint(meta), run.path / "checkpoints" / "best.pt")
    else:
        st.bad_checks += 1
        cfg = st.cfg
        if cfg.patience and st.bad_checks >= cfg.patience and st.iteration >= cfg.min_iterations:
            st.stopped_early = True
    run.log(f"iteration {st.iteration}: feature FD {fd:.4f} (best {st.best_fd:.4f} at {st.best_iteration})")


def _finish(st: GanState, real: RealImages, run: RunDir, grid_z: torch.Tensor, grid_y: torch.Tensor | None,
            start_it: int, seconds: float, times: list[tuple[int, float]]) -> None:
    out = run.path
    fake = generate(st.G_ema, grid_z, grid_y)
    pick = st.np_rng.permutation(len(real.images))[:GRID_N]
    save_final_vs_real(fake, real.images[torch.as_tensor(pick)].cpu(), out / "final_vs_real.png",
                       title=f"{st.cfg.family}, iteration {st.iteration}")
    save_loss_curves(st.history, out / "loss_curves.png", st.quality)
    write_json(out / "losses.json", {"history": st.history, "quality": st.quality})
    done = st.iteration - start_it
    run.write_metrics({
        "family": st.cfg.family, "iterations": st.iteration, "budget": st.cfg.iterations,
        "stopped_early": st.stopped_early, "best_fd": st.best_fd, "best_iteration": st.best_iteration,
        "fd_curve": st.quality, "n_train": len(real.ids),
        "final_d_loss": st.history[-1]["d_loss"] if st.history else None,
        "final_g_loss": st.history[-1]["g_loss"] if st.history else None,
        "wall_s_this_session": round(seconds, 2),
        "ms_per_iteration": round(1000 * seconds / done, 2) if done else None,
        # between the first and last loss reads: the training steps only (no setup, no final figures)
        "ms_per_iteration_steady": (round(1000 * (times[-1][1] - times[0][1]) / (times[-1][0] - times[0][0]), 2)
                                    if len(times) > 1 and times[-1][0] > times[0][0] else None),
    })
    run.log(f"finished at iteration {st.iteration} (stopped early: {st.stopped_early})")


def train_gan(ds: Dataset | str | Path, splits: Any, fold: int | None, class_name: str | None, cfg: GanConfig,
              out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train a GAN on the real TRAINING images of ``fold`` and ``class_name`` (None = all classes,
    for cgan/acgan); returns the run folder. ``splits``: a Splits object, a splits.json path or
    None (the dataset's); a resumed run reads its own copy (:func:`run_source`).
    ``fold=None``: every non-test image (for a final model; samples get synth_fold "all")."""
    ds = ds if isinstance(ds, Dataset) else load_dataset(ds)
    splits, source = run_source(ds, splits, Path(out), resume)
    GAN_FAMILIES.get(cfg.family)
    if class_name is None and cfg.family not in CONDITIONAL:
        raise SonoganInputError(f"model '{cfg.family}'", "trains one class at a time",
                                "pass --class NAME, or use cgan/acgan for all classes")
    ddp.init_from_env()  # launched by torchrun: join the process group (one GAN over all ranks)
    with ddp.main_first():  # rank 0 builds the preprocessing cache, the others then read it
        real = load_real_images(ds, splits, fold, class_name, cfg.preset, cfg.channels, cfg.resolution)
    return fit_gan(real, cfg, out, resume=resume, progress=progress, meta=gan_meta(ds, fold, class_name, cfg),
                   source=source)


def gan_meta(ds: Dataset, fold: int | None, class_name: str | None, cfg: GanConfig) -> dict[str, Any]:
    """What a GAN run records about its data: names and hashes, never a path of this machine."""
    return {"dataset_name": ds.spec.name, "manifest_sha256": manifest_sha256(ds), "fold": fold,
            "class_name": class_name or "", "preset": cfg.preset, "sonogan_version": sonogan.__version__,
            "dataset_spec": ds.spec.model_dump(mode="json")}
