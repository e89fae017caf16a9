"""Run the flagship protocol, fold by fold, resumable.

For each fold of the saved splits: train one GAN per rare class on that fold's real
training images -> sample -> train every classifier once per arm with identical seeds
(baseline = real only; augmented = real + synthetic; optional classic-augmentation and
synthetic-count sweep arms) -> predict the fold's validation images and the hold-out test
(real images only). Every finished piece is written to disk, so an interrupted run
continues where it stopped (``resume=True``). Then :mod:`sonogan.experiment.results`
computes metrics, CIs and paired gains and :mod:`sonogan.experiment.report` writes the report.

Example:
    >>> from sonogan.config import load_config
    >>> cfg = load_config(ExperimentConfig, "configs/demo.yaml")        # doctest: +SKIP
    >>> run_experiment(cfg, "runs/demo-exp")                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonogan.config import load_config
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits, make_splits
from sonogan.data.validate import ValidationReport, validate_dataset
from sonogan.errors import SonoganInputError
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.fold_data import FoldData, load_fold, load_synthetic, to_model_input
from sonogan.experiment.results import ENSEMBLE, ENSEMBLE_EQUAL
from sonogan.models.ensemble import equal_weights, fit_fusion_weights, fuse
from sonogan.preprocess.cache import build_cache
from sonogan.preprocess.presets import get_preset
from sonogan.runs import RunDir, write_json
from sonogan.synth.config import GanConfig
from sonogan.synth.sample import sample_gan
from sonogan.synth.trainer import train_gan
from sonogan.train.loop import predict_proba, train_classifier
from sonogan.train.mixing import mix_real_synthetic



def _finished(run_dir: Path) -> bool:
    info = run_dir / "run.json"
    return info.is_file() and json.loads(info.read_text()).get("status") == "completed"


def prepare_dataset(cfg: ExperimentConfig, run: RunDir, progress: bool) -> Dataset:
    """The configured dataset, or the phantom generated inside the run folder (once)."""
    if cfg.dataset is not None:
        return load_dataset(cfg.dataset)
    root = run.path / "dataset"
    if (root / "manifest.csv").is_file():
        return load_dataset(root)
    if root.exists():  # an interrupted generation inside our own run folder: start it again
        shutil.rmtree(root)
    from sonogan.phantom import generate_phantom

    assert cfg.phantom is not None
    return generate_phantom(root, cfg.phantom, progress=progress)


def prepare_splits(cfg: ExperimentConfig, ds: Dataset, duplicate_groups: dict[str, list[str]] | None = None) -> Splits:
    """Load the saved splits; make and save them once when none exist yet (reusing the duplicate
    groups validation already found, so no image is decoded twice)."""
    path = Path(cfg.splits) if cfg.splits else ds.root / "splits.json"
    if path.is_file():
        return Splits.load(path, ds)
    if cfg.splits:
        raise SonoganInputError(path, "splits file not found", "run 'sonogan data split' or fix the 'splits' path")
    splits = make_splits(ds, n_folds=cfg.split.folds, test_fraction=cfg.split.test_fraction, seed=cfg.split.seed,
                         duplicate_groups=duplicate_groups)
    splits.save(path)
    return splits


def gan_config(cfg: ExperimentConfig, fold: int, class_index: int) -> GanConfig:
    """The experiment's GAN config, bound to the classifier's preset, with a per-(fold, class) seed."""
    preset = get_preset(cfg.preset)
    if preset.size not in (64, 128):
        raise SonoganInputError("preset", f"'{cfg.preset}' is {preset.size} px; GANs run at 64 or 128",
                                "use a 64 or 128 px preset")
    return cfg.gan.model_copy(update={"preset": cfg.preset, "resolution": preset.size,
                                      "channels": preset.channels, "device": cfg.device,
                                      "seed": cfg.seed * 1000 + fold * 10 + class_index})


def synthesise(cfg: ExperimentConfig, ds: Dataset, splits: Splits, fold: int, fold_dir: Path,
               rare: list[str], progress: bool, log) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train (or resume) one GAN per rare class on this fold and sample it; returns uint8 images + labels."""
    images, labels, info = [], [], {}
    train_ids = set(splits.partition(fold, "train"))
    for cls in rare:
        k = ds.spec.class_index(cls)
        gan_dir = fold_dir / f"gan-{cls}"
        if not _finished(gan_dir):
            log(f"fold {fold}: GAN for {cls} ({'resume' if gan_dir.exists() else 'start'})")
            train_gan(ds, splits, fold, cls, gan_config(cfg, fold, k), gan_dir,
                      resume=(gan_dir / "run.json").is_file(), progress=progress)
        seen = json.loads((gan_dir / "run.json").read_text()).get("training_ids", [])
        leaked = sorted(set(seen) - train_ids)
        if leaked:  # belt and braces: the GAN must only ever have seen this fold's training images
            raise RuntimeError(f"GAN {gan_dir} saw images outside fold {fold}'s training partition: {leaked[:5]}")
        n = math.ceil(cfg.synthetic.n_per_class * cfg.synthetic.sample_factor)
        syn_dir = fold_dir / f"synthetic-{cls}"
        if (syn_dir / "manifest.csv").is_file():
            syn_ds = load_dataset(syn_dir)
        else:
            if syn_dir.exists():
                shutil.rmtree(syn_dir)  # half-written sample inside our own run folder
            syn_ds = sample_gan(gan_dir, n, syn_dir, seed=cfg.seed + fold, checkpoint=cfg.synthetic.checkpoint)
        x, y = load_synthetic(syn_ds, cfg.preset, ds.spec.classes, fold)
        images.append(x)
        labels.append(y)
        info[cls] = {"gan_run": str(gan_dir.relative_to(fold_dir.parent.parent)), "n_sampled": len(y),
                     "n_gan_training_images": len(seen)}
    return np.concatenate(images), np.concatenate(labels), info


def training_images(cfg: ExperimentConfig, arm: str, fd: FoldData, syn: tuple[np.ndarray, np.ndarray] | None,
                    rare_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 training images + labels of one arm: the fold's real images, plus synthetic images
    (augmented / synthetic-N) or oversampled real rare-class copies (classic-N)."""
    images, labels = fd.train_images, fd.train_y
    seed = cfg.seed + fd.fold
    n_copies = cfg.n_classic(arm)
    if n_copies:  # classic-N: N random copies of each rare class's real images; the arm's augmentation varies them
        rng = np.random.default_rng(seed)
        picks = [rng.choice(np.flatnonzero(labels == c), n_copies, replace=True) for c in rare_indices]
        idx = np.concatenate(picks)
        return np.concatenate([images, images[idx]]), np.concatenate([labels, labels[idx]])
    if syn is None or not cfg.n_synthetic(arm):
        return images, labels
    syn_x, syn_y = syn
    present = [int(c) for c in np.unique(syn_y)]
    if arm == "augmented" and cfg.synthetic.mode != "count":
        x, y, _ = mix_real_synthetic(images, labels, syn_x, syn_y, mode=cfg.synthetic.mode, ratio=cfg.synthetic.ratio,
                                     seed=seed, classes=present)
    else:
        x, y, _ = mix_real_synthetic(images, labels, syn_x, syn_y, mode="count",
                                     n={c: cfg.n_synthetic(arm) for c in present}, seed=seed)
    return x, y


def train_arm(cfg: ExperimentConfig, clf_index: int, arm: str, fd: FoldData, syn: tuple[np.ndarray, np.ndarray] | None,
              rare_indices: list[int], class_names: list[str], arm_dir: Path, progress: bool) -> dict[str, np.ndarray]:
    """Train one classifier for one arm (or load its saved predictions) -> val/test probabilities."""
    pred_path = arm_dir / "predictions.npz"
    if pred_path.is_file():
        saved = np.load(pred_path)
        return {"val": saved["val"], "test": saved["test"]}
    base = cfg.classifiers[clf_index]
    update: dict[str, Any] = {"seed": cfg.seed + fd.fold, "device": cfg.device}
    if cfg.num_threads:
        update["num_threads"] = cfg.num_threads
    if arm == "classic" or arm.startswith("classic-"):
        update["augment"] = cfg.classic_arm
    ccfg = base.model_copy(update=update)
    to_x = lambda imgs: to_model_input(imgs, fd.mean, fd.std, ccfg.in_chans, ccfg.image_size)  # noqa: E731
    images, labels = training_images(cfg, arm, fd, syn, rare_indices)
    train_x, train_y = to_x(images), torch.from_numpy(labels)
    val_x, val_y = to_x(fd.val_images), torch.from_numpy(fd.val_y)
    result = train_classifier(ccfg, train_x, train_y, val_x, val_y, arm_dir, class_names, progress=progress,
                              resume=True, norm=(fd.mean, fd.std),
                              preprocess=get_preset(cfg.preset).model_dump(mode="json"))
    probs = {"val": predict_proba(result.model, val_x), "test": predict_proba(result.model, to_x(fd.test_images))}
    np.savez(pred_path, **probs)
    return probs


def fuse_members(cfg: ExperimentConfig, members: dict[str, dict[str, np.ndarray]], val_y: np.ndarray) -> tuple[dict[str, np.ndarray], list[float]]:
    """Weighted fusion (weights fitted on validation log-loss) or equal weights."""
    names = list(members)
    val = [members[m]["val"] for m in names]
    w = fit_fusion_weights(val, val_y, objective="log_loss") if cfg.ensemble == "weighted" else equal_weights(len(names))
    return {"val": fuse(val, w), "test": fuse([members[m]["test"] for m in names], w)}, [float(v) for v in w]


def run_fold(cfg: ExperimentConfig, ds: Dataset, splits: Splits, fold: int, run: RunDir, rare: list[str],
             progress: bool) -> dict[str, Any]:
    """One fold: GANs, all arms x classifiers, ensemble; writes ``folds/foldK/fold.json``."""
    fold_dir = run.path / "folds" / f"fold{fold}"
    done = fold_dir / "fold.json"
    if done.is_file():
        return json.loads(done.read_text())
    fold_dir.mkdir(parents=True, exist_ok=True)
    fd = load_fold(ds, splits, fold, cfg.preset)
    arms = cfg.arms()
    needs_syn = any(cfg.n_synthetic(a) for a in arms)
    rare_idx = [ds.spec.class_index(c) for c in rare]
    syn_x, syn_y, syn_info = synthesise(cfg, ds, splits, fold, fold_dir, rare, progress, run.log) if needs_syn \
        else (None, None, {})
    preds: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    weights: dict[str, list[float]] = {}
    for arm in arms:
        preds[arm] = {}
        for i, clf in enumerate(cfg.classifiers):
            run.log(f"fold {fold}: {arm} / {clf.model}")
            preds[arm][clf.model] = train_arm(cfg, i, arm, fd, (syn_x, syn_y) if needs_syn else None, rare_idx,
                                              ds.spec.classes, fold_dir / arm / clf.model, progress)
        if len(cfg.classifiers) > 1:
            members = dict(preds[arm])
            preds[arm][ENSEMBLE], weights[arm] = fuse_members(cfg, members, fd.val_y)
            if cfg.ensemble == "weighted":  # equal weights as the reference the fitted weights must beat
                preds[arm][ENSEMBLE_EQUAL], _ = fuse_members(cfg.model_copy(update={"ensemble": "equal"}), members, fd.val_y)
            write_json(fold_dir / arm / "ensemble.json", {
                "members": {m: str(fold_dir / arm / m / "best.pt") for m in members}, "weights": weights[arm],
                "objective": "validation log-loss" if cfg.ensemble == "weighted" else "equal weights"})
    np.savez(fold_dir / "predictions.npz",
             **{f"{arm}|{model}|{part}": p[part] for arm, by_model in preds.items()
                for model, p in by_model.items() for part in ("val", "test")})
    record = {"fold": fold, "val_ids": fd.val_ids, "test_ids": fd.test_ids, "n_train_real": len(fd.train_ids),
              "train_class_counts": np.bincount(fd.train_y, minlength=len(ds.spec.classes)).tolist(),
              "zscore": {"mean": fd.mean, "std": fd.std}, "synthetic": syn_info, "fusion_weights": weights,
              "members": [c.model for c in cfg.classifiers]}
    write_json(done, record)
    return record


def run_experiment(cfg: ExperimentConfig | None, out: str | Path, resume: bool = False, progress: bool = True,
                   report: ValidationReport | None = None) -> Path:
    """Run (or with ``resume=True`` continue) the protocol into the run folder ``out``.

    ``report``: a validation report of the configured dataset made by the caller (the demo),
    so the images are not decoded a second time."""
    from sonogan.experiment.report import write_report
    from sonogan.experiment.results import compute_results, pool_predictions

    out = Path(out)
    if resume:
        run = RunDir.resume(out)
        cfg = load_config(ExperimentConfig, out / "config.yaml")
    else:
        if cfg is None:
            raise SonoganInputError("experiment", "no config given", "pass a config YAML")
        run = RunDir.create(out, seed=cfg.seed, config=cfg, kind="experiment")
    assert cfg is not None
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ds = prepare_dataset(cfg, run, progress)
    report = report or validate_dataset(ds)
    splits = prepare_splits(cfg, ds, report.duplicate_groups)
    build_cache(ds, cfg.preset, progress=progress)
    rare = cfg.rare_classes or ds.spec.rare_classes
    unknown = [c for c in rare if c not in ds.spec.classes]
    if not rare or unknown:
        raise SonoganInputError("rare_classes", f"{'unknown classes ' + str(unknown) if unknown else 'none given'}",
                                f"name rare classes from {ds.spec.classes} in the config or dataset.yaml")
    folds = cfg.folds if cfg.folds is not None else list(range(splits.n_folds))
    bad = [k for k in folds if not 0 <= k < splits.n_folds]
    if bad:
        raise SonoganInputError("folds", f"folds {bad} do not exist", f"use 0..{splits.n_folds - 1}")
    run.set_info(dataset=str(ds.root.resolve()), rare_classes=rare, folds=folds,
                 patients_known=ds.spec.patients_known, data_warnings=report.warnings)
    records = []
    for k in folds:
        records.append(run_fold(cfg, ds, splits, k, run, rare, progress))
        run.log(f"fold {k} done")
    pooled = pool_predictions(cfg, ds, records, run.path)  # loaded once, used by the numbers and the figures
    results = compute_results(cfg, ds, pooled, records, rare)
    run.write_metrics(results)
    write_report(cfg, ds, run, results, records, rare, test=pooled[1])
    run.finish()
    return run.path
