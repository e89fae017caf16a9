"""``sonogan synth audit``: audit a sampled synthetic dataset against its fold's real training images.

The synthetic dataset's provenance names its fold (``synth_fold``) and classes; the real
images are that fold's TRAINING partition, read by the one fold loader at the preset the
generator was trained on (read from ``--gan RUN``'s run.json, or given as ``preset``), and
the synthetic images are read at the same preset, as the experiment's classifiers see them.
With ``--gan`` the generator's recorded (hashed) training ids are checked against the
class's training partition, so memorisation is measured against exactly the images it saw.

Writes a run folder: ``audit.json`` (every class), ``audit.html``, ``<class>/audit.json`` +
figures, and ``domain-encoder/`` when the domain encoder was trained for the audit.

Example:
    >>> audit_synthetic("runs/syn-f0", "runs/phantom", "runs/phantom/splits.json", AuditConfig(),
    ...                 "runs/audit-f0", gan_run="runs/gan-f0")                         # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from sonogan.audit.audit import AuditInputs, audit_class
from sonogan.audit.config import AuditConfig
from sonogan.audit.features import create_extractor, extractor_bf16, train_domain_encoder
from sonogan.audit.report import audit_section
from sonogan.data.manifest import load_dataset
from sonogan.errors import SonoganInputError
from sonogan.locations import work_dir
from sonogan.preprocess.fold import FoldData, Partition, load_fold, load_synthetic
from sonogan.report.html import render_report
from sonogan.runs import RunDir, write_json
from sonogan.synth.data import load_splits
from sonogan.synth.trainer import hashed_ids


def build_extractors(cfg: AuditConfig, train: Partition, class_names: list[str], encoder_dir: Path,
                     checkpoint: str | Path | None = None, progress: bool = False) -> dict[str, nn.Module]:
    """The configured extractors; ``domain`` from ``checkpoint`` (or the config's), else an
    encoder trained on ``train`` (the fold's real training partition) into ``encoder_dir``."""
    out = {}
    for name in cfg.extractors:
        ckpt = None
        if name == "domain":
            ckpt = checkpoint or cfg.domain_checkpoint
            if ckpt is None:
                e = cfg.domain_encoder
                ckpt = train_domain_encoder(train, class_names, encoder_dir, e.epochs, e.image_size, e.model,
                                            e.batch_size, e.lr, e.seed, progress, e.model_kwargs,
                                            extractor_bf16(e.precision, cfg.profile))
        out[name] = create_extractor(name, ckpt)
    return out


def class_inputs(fd: FoldData, syn: Partition, class_names: list[str], cls: str) -> AuditInputs:
    """One class's audit inputs: real = the fold's TRAINING images of ``cls`` only."""
    k = class_names.index(cls)
    real, fake = fd.train.select(fd.train.labels == k), syn.select(syn.labels == k)
    if min(len(real), len(fake)) < 2:
        raise SonoganInputError(f"class '{cls}'", f"{len(real)} real training and {len(fake)} synthetic images",
                                "the audit needs at least 2 of each; sample more or choose another fold")
    return AuditInputs(cls, real.images, real.ids, fake.images, fake.ids, fd.train.images)


def _fold_of(syn_manifest: Any, fold: int | None, where: Path) -> int | None:
    folds = sorted(set(syn_manifest["synth_fold"].astype(str)))
    if len(folds) != 1:
        raise SonoganInputError(where, f"mixes generators of folds {folds}", "audit one fold's samples at a time")
    own = None if folds[0] == "all" else int(folds[0])
    if fold is not None and fold != own:
        raise SonoganInputError("--fold", f"{fold}, but the synthetic images come from fold {folds[0]}",
                                "drop --fold (it is read from the samples' provenance)")
    return own


def _gan_info(gan_run: Path | None) -> dict[str, Any]:
    if gan_run is None:
        return {}
    path = Path(gan_run) / "run.json"
    if not path.is_file():
        raise SonoganInputError(gan_run, "not a generator run folder (no run.json)", "pass the folder of 'synth train'")
    return json.loads(path.read_text())


def check_gan_images(info: dict[str, Any], real_ids: list[str], cls: str, where: Path) -> None:
    """The generator saw exactly the class's training images (its ids are stored hashed)."""
    if info.get("class_name") not in ("", cls):
        return  # a per-class generator of another class: not this class's reference
    mine = set(hashed_ids(real_ids))
    seen = set(info.get("training_ids", []))
    if not info.get("class_name"):
        seen &= mine  # a conditional generator saw every class; this class's part must be all here
    if seen != mine:
        raise SonoganInputError(where, f"the generator's training images of '{cls}' differ from this fold's",
                                "pass the dataset, splits and fold the generator was trained on")


def audit_synthetic(synthetic: str | Path, dataset: str | Path, splits: str | Path, cfg: AuditConfig,
                    out: str | Path, fold: int | None = None, preset: str | None = None,
                    gan_run: str | Path | None = None, encoder: str | Path | None = None,
                    cache_dir: str | Path | None = None, progress: bool = False) -> Path:
    """Audit every class of the synthetic dataset ``synthetic``; returns the new run folder."""
    ds, syn_ds = load_dataset(dataset), load_dataset(synthetic)
    fold = _fold_of(syn_ds.manifest, fold, syn_ds.manifest_path)
    info = _gan_info(Path(gan_run) if gan_run else None)
    preset = preset or info.get("preset")
    if preset is None:
        raise SonoganInputError("--preset", "unknown preprocessing preset of the generator's images",
                                "pass --gan RUN (its run.json names it) or --preset NAME")
    classes = list(ds.spec.classes)
    fd = load_fold(ds, load_splits(splits, ds), fold, preset, allow_no_masks=True)
    syn = load_synthetic(syn_ds, preset, classes, fold)
    cache = Path(cache_dir) if cache_dir else work_dir(ds.root) / "cache" / "audit"
    run = RunDir.create(out, config=cfg, kind="audit")
    with run:
        run.set_info(dataset_name=ds.spec.name, synthetic=Path(synthetic).resolve().name, fold=fold, preset=preset)
        extractors = build_extractors(cfg, fd.train, classes, run.path / "domain-encoder", encoder, progress)
        records, folders = {}, []
        for cls in sorted(set(syn_ds.manifest["label"]), key=classes.index):
            inputs = class_inputs(fd, syn, classes, cls)
            if info:
                check_gan_images(info, inputs.real_ids, cls, Path(gan_run))
            run.log(f"auditing {cls}: {len(inputs.real)} real training, {len(inputs.synthetic)} synthetic images")
            records[cls] = audit_class(inputs, cfg, extractors, run.path / cls, cache, progress)
            folders.append((f"fold {'all' if fold is None else fold}, {cls}", run.path / cls))
        write_json(run.path / "audit.json", {"fold": fold, "preset": preset, "classes": records})
        render_report([audit_section(folders)], run.path / "audit.html", title=f"Audit of {Path(synthetic).name}")
    return run.path


def flagged_counts(run_path: Path) -> dict[str, tuple[int, int]]:
    """class -> (flagged, synthetic) from a finished audit run (for the command line)."""
    data = json.loads((Path(run_path) / "audit.json").read_text())
    return {c: (r["memorisation"]["n_flagged"], r["memorisation"]["n_synthetic"]) for c, r in data["classes"].items()}

