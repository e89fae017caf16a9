"""Sample a trained GAN into a dataset folder of synthetic rows with provenance; the writer
(:func:`write_synthetic`) is shared with the diffusion sampler (:mod:`sonogan.synth.diffusion`).

Writes ``images/<class>/syn_<run-tag>_<k>.png`` + ``manifest.csv`` + ``dataset.yaml`` (the
source dataset's classes and clinical variables, ``masks: none``). Each row carries
source=synthetic, generator, checkpoint_sha256, synth_seed, synth_fold and synth_run, and
patient_id = image_id (a synthetic image is its own "patient"). ``<run-tag>`` is the run
folder name plus ``s<seed>``, so samples of different runs or seeds never share an id.

Example:
    >>> ds_syn = sample_gan(Path("runs/gan-borderline-f0"), 2000, Path("runs/syn-f0"), seed=0)  # doctest: +SKIP
    >>> ds_syn.manifest["source"].unique().tolist()                                            # doctest: +SKIP
    ['synthetic']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image
from rich.progress import track

from sonogan.data.manifest import Dataset, DatasetSpec, write_dataset
from sonogan.errors import SonoganInputError
from sonogan.runs import ensure_new_dir, sha256_file
from sonogan.synth.config import GanConfig
from sonogan.synth.nets import CONDITIONAL, create_gan, sample_z
from sonogan.synth.state import batch_stats, load_checkpoint_file


def checkpoint_path(run: Path, checkpoint: str) -> Path:
    """'best' / 'last' -> run/checkpoints/<name>.pt; anything else is a path. best falls back to last."""
    if checkpoint in ("best", "last"):
        path = run / "checkpoints" / f"{checkpoint}.pt"
        if checkpoint == "best" and not path.is_file():
            path = run / "checkpoints" / "last.pt"
        return path
    return Path(checkpoint)


def load_generator(ckpt: dict) -> tuple[torch.nn.Module, GanConfig]:
    """Rebuild the EMA generator from a checkpoint (the checkpoint stores its own config)."""
    cfg = GanConfig.model_validate(ckpt["config"])
    G, _, _ = create_gan(cfg.family, cfg, num_classes=int(ckpt["num_classes"]))
    G.load_state_dict(ckpt["G_ema"])
    return G.eval(), cfg


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W) for grey or (N, H, W, 3) for RGB."""
    a = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


ImageBatch = Callable[[str, int, torch.Generator], torch.Tensor]
"""(class name, number of images, the sampling generator) -> images (m, C, S, S) in [-1, 1]."""


def check_n(n: int) -> None:
    if n < 1:
        raise SonoganInputError("--n", f"{n} images requested", "ask for at least 1")


def sample_gan(run: Path, n: int, out: Path, seed: int = 0, checkpoint: str = "best",
               progress: bool = False, classes: list[str] | None = None, batch: int = 64) -> Dataset:
    """Generate ``n`` images per sampled class from ``run`` into the new dataset folder ``out``.

    Per-class runs sample their class; conditional runs sample ``classes`` (default: the
    run's class, else the dataset's rare classes, else every class it was trained on).
    """
    run, out = Path(run), Path(out)
    check_n(n)
    path = checkpoint_path(run, checkpoint)
    ckpt = load_checkpoint_file(path)
    G, cfg = load_generator(ckpt)
    conditional = cfg.family in CONDITIONAL

    def make(cls: str, m: int, gen: torch.Generator) -> torch.Tensor:
        z = sample_z(G, m, gen)
        y = torch.full((m,), list(ckpt["classes"]).index(cls), dtype=torch.long) if conditional else None
        with batch_stats(G):
            return G(z, y)

    return write_synthetic(run, path, ckpt, out, n, seed, cfg.family, conditional, make, what="GAN",
                           classes=classes, progress=progress, batch=batch)


def write_synthetic(run: Path, path: Path, ckpt: dict, out: Path, n: int, seed: int, family: str,
                    conditional: bool, make: ImageBatch, what: str = "GAN", classes: list[str] | None = None,
                    progress: bool = False, batch: int = 64) -> Dataset:
    """The one synthetic-dataset writer of every generator family: ``n`` images per class from
    ``make`` (called in batches of ``batch`` with one generator seeded by ``seed``), written
    with provenance (``path`` = the checkpoint, hashed) into the new folder ``out``."""
    base = dict(ckpt["dataset_spec"]) if "dataset_spec" in ckpt else {"classes": list(ckpt["classes"])}
    # Same classes, rare classes and clinical variables as the source; no masks; a distinct name.
    spec = DatasetSpec.model_validate({**base, "name": f"{base.get('name', 'dataset')}-synthetic", "masks": "none",
                                       "description": f"synthetic images sampled from {what} run {run.resolve().name}"})
    run_class = ckpt.get("class_name", "")
    if not conditional:
        targets = [run_class]
    else:
        targets = classes or ([run_class] if run_class else (spec.rare_classes or list(ckpt["classes"])))
    unknown = [c for c in targets if c not in ckpt["classes"]]
    if unknown:
        raise SonoganInputError(path, f"classes {unknown} unknown to this {what}", f"use {ckpt['classes']}")
    out = ensure_new_dir(out, "synthetic dataset folder")
    sha = sha256_file(path)
    fold = ckpt.get("fold", "")
    synth_fold = "all" if fold is None else str(fold)  # fold None = all non-test images
    tag = re.sub(r"[^A-Za-z0-9-]+", "-", run.resolve().name) + f"_s{seed}"
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for cls in targets:
        (out / "images" / cls).mkdir(parents=True, exist_ok=True)
        starts = range(0, n, batch)
        for start in (track(starts, description=f"sampling {cls}") if progress else starts):
            m = min(batch, n - start)
            imgs = to_uint8(make(cls, m, gen))
            for k, img in enumerate(imgs, start=start):
                image_id = f"syn_{tag}_{cls}_{k:05d}" if conditional else f"syn_{tag}_{k:05d}"
                rel = f"images/{cls}/{image_id}.png"
                Image.fromarray(img).save(out / rel)
                rows.append({"image_id": image_id, "image": rel, "mask": "", "label": cls,
                             "patient_id": image_id, "source": "synthetic", "generator": family,
                             "checkpoint_sha256": sha, "synth_seed": str(seed),
                             "synth_fold": synth_fold, "synth_run": run.resolve().name,
                             "width": str(img.shape[1]), "height": str(img.shape[0])})
    table = pd.DataFrame(rows)
    for name in spec.clinical:  # a synthetic image has no patient: its clinical values are missing
        table[name] = ""
    return write_dataset(out, spec, table)
