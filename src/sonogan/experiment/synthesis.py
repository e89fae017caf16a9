"""One generator per rare class and fold, trained on the fold's training pixels already in
memory, then sampled into the run folder and audited (``folds/foldK/audit/<class>/``); the
memorisation gate drops flagged near-copies of training images before curation and training
(``audit.gate``, on by default). Resumable after a kill at any instant.

Example:
    >>> syn = synthesise(cfg, ds, fd, fold_dir, ["borderline"], progress=False, log=print)  # doctest: +SKIP
    >>> syn.by_class["borderline"].images.shape                                             # doctest: +SKIP
    (60, 64, 64, 1)
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from sonogan import layout
from sonogan.audit.audit import audit_class
from sonogan.audit.memorisation import exclude_flagged
from sonogan.audit.report import load_audit
from sonogan.audit.run import build_extractors, class_inputs
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.errors import SonoganInputError
from sonogan.experiment.config import ExperimentConfig
from sonogan.preprocess.fold import FoldData, Partition, load_synthetic
from sonogan.preprocess.presets import get_preset
from sonogan.synth.config import GanConfig
from sonogan.synth.diffusion import fit_diffusion, sample_diffusion
from sonogan.synth.diffusion_config import DiffusionConfig
from sonogan.synth.data import real_images
from sonogan.synth.sample import sample_gan
from sonogan.synth.trainer import fit_gan, gan_meta, hashed_ids


@dataclass
class Synthetic:
    """Sampled images of each rare class (training partitions only) and what made them."""

    by_class: dict[str, Partition] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def all(self) -> Partition | None:
        """Every class's synthetic images in one partition (rare-class order), or None."""
        parts = list(self.by_class.values())
        if not parts:
            return None
        return Partition(sum((p.ids for p in parts), []), np.concatenate([p.images for p in parts]),
                         np.concatenate([p.masks for p in parts]), np.concatenate([p.labels for p in parts]),
                         pd.DataFrame(index=range(sum(len(p) for p in parts))))


def gan_config(cfg: ExperimentConfig, fold: int, class_index: int,
               base: GanConfig | None = None) -> GanConfig | DiffusionConfig:
    """The experiment's generator config (GAN or diffusion; ``base``: another GAN config, e.g.
    ``all_classes_gan``), bound to the classifier's preset (its size when that is 64 or 128 px,
    else the generator config's own resolution), with a per-(fold, class) seed."""
    preset = get_preset(cfg.preset)
    if base is None:
        base = cfg.diffusion if cfg.generator == "diffusion" else cfg.gan
    resolution = preset.size if preset.size in (64, 128) else base.resolution
    return base.model_copy(update={"preset": cfg.preset, "resolution": resolution,
                                      "channels": preset.channels, "device": cfg.device,
                                      "seed": cfg.seed * 1000 + fold * 10 + class_index})


def _finished(run_dir: Path) -> bool:
    info = run_dir / "run.json"
    return info.is_file() and json.loads(info.read_text()).get("status") == "completed"


def train_class_gan(cfg: ExperimentConfig, ds: Dataset, fd: FoldData, cls: str | None, gan_dir: Path,
                    progress: bool, log: Callable[[str], None], init: Path | None = None,
                    iterations: int | None = None, base: GanConfig | None = None) -> None:
    """Train (or continue) the generator of ``cls`` (None: every class) on the fold's training
    pixels in memory; ``init``: a GAN checkpoint to start from; ``base``: a GAN config other
    than the experiment's generator."""
    assert fd.fold is not None
    k = ds.spec.class_index(cls) if cls else len(ds.spec.classes)
    gcfg = gan_config(cfg, fd.fold, k, base)
    if iterations is not None:
        gcfg = gcfg.model_copy(update={"iterations": iterations})
    if gan_dir.exists() and not (gan_dir / "run.json").is_file():
        shutil.rmtree(gan_dir)  # killed while its folder was being created, inside our own run folder
    resume = (gan_dir / "run.json").is_file()
    log(f"fold {fd.fold}: GAN for {cls or 'all classes'} ({'resume' if resume else 'start'})")
    real = real_images(fd.train, list(ds.spec.classes), cls, gcfg.channels, gcfg.resolution,
                       where=f"fold {fd.fold} training partition")
    meta = gan_meta(ds, fd.fold, cls, gcfg)
    if isinstance(gcfg, DiffusionConfig):
        fit_diffusion(real, gcfg, gan_dir, resume=resume, progress=progress, meta=meta)
    else:
        fit_gan(real, gcfg, gan_dir, resume=resume, progress=progress, meta=meta, init=init)


def pretrained_gan(cfg: ExperimentConfig, ds: Dataset, fd: FoldData, fold_dir: Path, progress: bool,
                   log: Callable[[str], None]) -> Path | None:
    """``gan_pretrain`` iterations of one GAN on every class of the fold's training images (the
    rare-class GANs fine-tune from it); None when off."""
    if not cfg.gan_pretrain:
        return None
    pre_dir = fold_dir / "gan-pretrain"
    if not _finished(pre_dir):
        train_class_gan(cfg, ds, fd, None, pre_dir, progress, log, iterations=cfg.gan_pretrain)
    _check_gan_saw_only_train(pre_dir, fd)
    return pre_dir / "checkpoints" / "last.pt"


def _check_gan_saw_only_train(gan_dir: Path, fd: FoldData) -> int:
    """Belt and braces: the generator's recorded (hashed) ids are all in the fold's training partition."""
    seen = json.loads((gan_dir / "run.json").read_text()).get("training_ids", [])
    leaked = sorted(set(seen) - set(hashed_ids(fd.train.ids)))
    if leaked:
        raise RuntimeError(f"GAN {gan_dir} saw {len(leaked)} images outside fold {fd.fold}'s training partition")
    return len(seen)


def n_wanted(cfg: ExperimentConfig) -> int:
    """Synthetic images per class that curation / the arms draw from."""
    return math.ceil(cfg.synthetic.n_per_class * cfg.synthetic.sample_factor)


def gated(cfg: ExperimentConfig) -> bool:
    return cfg.audit.enabled and cfg.audit.gate


def sample_class(cfg: ExperimentConfig, gan_dir: Path, syn_dir: Path, fold: int,
                 classes: list[str] | None = None, diffusion: bool | None = None) -> Dataset:
    """The sampled dataset of one GAN (``classes``: every class of a conditional one), made once
    (a half-written one is sampled again); ``diffusion``: whether it is a diffusion model
    (default: the experiment's generator)."""
    if (syn_dir / "manifest.csv").is_file():
        return load_dataset(syn_dir)
    if syn_dir.exists():
        shutil.rmtree(syn_dir)  # killed while sampling, inside our own run folder
    n = math.ceil(n_wanted(cfg) * (1 + (cfg.audit.gate_headroom if gated(cfg) else 0.0)))
    diffusion = cfg.generator == "diffusion" if diffusion is None else diffusion
    sample = sample_diffusion if diffusion else sample_gan
    return sample(gan_dir, n, syn_dir, seed=cfg.seed + fold, checkpoint=cfg.synthetic.checkpoint, classes=classes)


def _split_by_class(part: Partition, class_names: list[str]) -> dict[str, Partition]:
    return {class_names[k]: part.select(part.labels == k) for k in np.unique(part.labels)}


def synthesise(cfg: ExperimentConfig, ds: Dataset, fd: FoldData, fold_dir: Path, rare: list[str],
               progress: bool, log: Callable[[str], None]) -> Synthetic:
    """Train (or resume) the generators of this fold and sample them: one per rare class, or one
    class-conditional generator for every class (``synthetic.classes: all``)."""
    if fd.fold is None:
        raise SonoganInputError("folds", "the protocol trains generators per fold", "run it on numbered folds")
    out = Synthetic()
    targets = [None] if cfg.synthetic.classes == "all" else rare
    init = pretrained_gan(cfg, ds, fd, fold_dir, progress, log)
    for cls in targets:
        name = cls or "all"
        gan_dir = fold_dir / f"gan-{name}"
        if not _finished(gan_dir):
            train_class_gan(cfg, ds, fd, cls, gan_dir, progress, log, init=init)
        _add_samples(cfg, ds, fd, gan_dir, fold_dir / f"synthetic-{name}", None if cls else list(ds.spec.classes),
                     cfg.generator == "diffusion", fold_dir / "audit", out, log)
    return out


ALL_CLASSES = "all-classes"  # the folders of the 'all-classes' arm's generator: gan-, synthetic-, audit/


def synthesise_all_classes(cfg: ExperimentConfig, ds: Dataset, fd: FoldData, fold_dir: Path, progress: bool,
                           log: Callable[[str], None]) -> Synthetic:
    """The 'all-classes' arm's images: ``all_classes_gan`` (class-conditional) trained on every
    class of the fold's training images and sampled for every class, audited in
    ``audit/all-classes/<class>/``; empty when the config has no such arm."""
    out = Synthetic()
    if cfg.all_classes_gan is None:
        return out
    gan_dir = fold_dir / f"gan-{ALL_CLASSES}"
    if not _finished(gan_dir):
        train_class_gan(cfg, ds, fd, None, gan_dir, progress, log, base=cfg.all_classes_gan)
    _add_samples(cfg, ds, fd, gan_dir, fold_dir / f"synthetic-{ALL_CLASSES}", list(ds.spec.classes), False,
                 fold_dir / "audit" / ALL_CLASSES, out, log)
    return out


def _add_samples(cfg: ExperimentConfig, ds: Dataset, fd: FoldData, gan_dir: Path, syn_dir: Path,
                 classes: list[str] | None, diffusion: bool, audit_root: Path, out: Synthetic,
                 log: Callable[[str], None]) -> None:
    """Sample one trained generator (once), audit and gate each class's samples, add them to ``out``."""
    assert fd.fold is not None
    fold_dir = syn_dir.parent
    n_seen = _check_gan_saw_only_train(gan_dir, fd)
    syn_ds = sample_class(cfg, gan_dir, syn_dir, fd.fold, classes=classes, diffusion=diffusion)
    part = load_synthetic(syn_ds, cfg.preset, ds.spec.classes, fd.fold)
    for c, p in _split_by_class(part, list(ds.spec.classes)).items():
        out.info[c] = {"gan_run": gan_dir.relative_to(layout.run_of_fold(fold_dir)).as_posix(),
                       "n_sampled": len(p), "n_gan_training_images": n_seen}
        out.by_class[c] = audit_and_gate(cfg, ds, fd, c, p, fold_dir, out.info[c], log, audit_root)


def audit_and_gate(cfg: ExperimentConfig, ds: Dataset, fd: FoldData, cls: str, part: Partition, fold_dir: Path,
                   info: dict[str, Any], log: Callable[[str], None], audit_root: Path | None = None) -> Partition:
    """Audit one class's samples against the fold's TRAINING images of that class (once: a saved
    ``audit.json`` in ``audit_root/<cls>``, default ``fold_dir/audit``, is read back) and, with
    ``audit.gate``, drop the flagged near-copies; the counts go into ``info``."""
    if not cfg.audit.enabled:
        return part
    audit_dir = (audit_root or fold_dir / "audit") / cls
    if (audit_dir / "audit.json").is_file():
        record = load_audit(audit_dir / "audit.json")
    else:
        log(f"fold {fd.fold}: auditing {len(part)} synthetic {cls} images")
        names = list(ds.spec.classes)
        extractors = build_extractors(cfg.audit, fd.train, names, fold_dir / "audit" / "domain-encoder")
        record = audit_class(class_inputs(fd, part, names, cls), cfg.audit, extractors, audit_dir,
                             cache_dir=fold_dir / "audit" / "cache")
    flagged = record["memorisation"]["flagged_ids"]
    kept, removed = exclude_flagged(part, flagged) if cfg.audit.gate else (part, 0)
    want = n_wanted(cfg)
    if len(kept) > want:  # the headroom sampled for the gate: keep the first unflagged ones, in sample order
        kept = kept.select(np.arange(len(kept)) < want)
    elif removed and len(kept) < want:
        log(f"fold {fd.fold}: the audit gate excluded {removed} {cls} near-copies and left {len(kept)} of the "
            f"{want} synthetic images wanted (raise audit.gate_headroom or train the generator longer)")
    info["audit"] = {"folder": audit_dir.relative_to(layout.run_of_fold(fold_dir)).as_posix(), "flagged": len(flagged),
                     "excluded_from_training": removed, "gate": cfg.audit.gate}
    return kept


def curate(syn: Synthetic, probs: dict[str, np.ndarray], keep: int) -> Synthetic:
    """Keep, per class, the ``keep`` samples whose probability of their own class (under a
    classifier trained on the fold's REAL training images only) is highest; the rejected
    fraction goes into ``info``. ``probs[class]`` holds that classifier's (N, C) probabilities
    of ``syn.by_class[class]``: only synthetic images are ever scored here."""
    out = Synthetic(info={c: dict(v) for c, v in syn.info.items()})
    for cls, part in syn.by_class.items():
        own = probs[cls][np.arange(len(part)), part.labels]
        order = np.argsort(-own, kind="stable")[:keep]
        out.by_class[cls] = part.select(np.sort(order))
        out.info[cls]["curation"] = {"kept": int(len(order)), "sampled": len(part),
                                     "rejected_fraction": round(1 - len(order) / max(len(part), 1), 4),
                                     "min_kept_confidence": float(own[order].min()) if len(order) else None}
    return out
