"""Run the flagship protocol, fold by fold, resumable.

For each fold of the saved splits: train one GAN per rare class on that fold's real
training images -> sample -> train every classifier once per arm with identical seeds
(baseline = real only; augmented = real + synthetic; optional classic-augmentation,
synthetic-count sweep, count-matched oversampling and synthetic-pretrain-then-real-fine-tune
arms) -> predict the fold's validation images and the hold-out test
(real images only). Every finished piece is written to disk, so an interrupted run
continues where it stopped (``resume=True``). Then :mod:`sonogan.experiment.results`
computes metrics, CIs and paired gains and :mod:`sonogan.experiment.report` writes the report.

Example:
    >>> from sonogan.config import load_config
    >>> cfg = load_config(ExperimentConfig, "configs/demo.yaml")        # doctest: +SKIP
    >>> run_experiment(cfg, "runs/demo-exp")                           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonogan.config import load_config
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits, make_splits
from sonogan.data.validate import ValidationReport, validate_dataset
from sonogan.errors import SonoganInputError
from sonogan.experiment.arms import Arm, pretraining_images, training_images
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.executors import Executor, make_executor
from sonogan.experiment.features import save_tsne_features
from sonogan.experiment.results import ENSEMBLE, ENSEMBLE_EQUAL
from sonogan.experiment.synthesis import Synthetic, curate, synthesise
from sonogan.evaluate.calibration import expected_calibration_error
from sonogan.infer.calibration import apply_temperature, fit_temperature
from sonogan.infer.model_card import write_model_card
from sonogan.infer.predictor import Predictor
from sonogan.models.checkpoint import set_calibration
from sonogan.locations import work_dir
from sonogan.models.ensemble import equal_weights, fit_fusion_weights, fuse, write_ensemble_file
from sonogan.preprocess.cache import build_cache, read_info
from sonogan.preprocess.fold import FoldData, Normaliser, load_fold
from sonogan.preprocess.presets import get_preset
from sonogan.runs import RunDir, run_logger, save_npz_atomic, write_json
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.loop import predict_proba, train_classifier


def prepare_phantom(cfg: ExperimentConfig, run: RunDir, progress: bool) -> Dataset:
    """The phantom of a config without a dataset, generated inside the run folder (once)."""
    root = run.path / "dataset"
    if (root / "manifest.csv").is_file():
        return load_dataset(root)
    if root.exists():  # an interrupted generation inside our own run folder: start it again
        shutil.rmtree(root)
    from sonogan.phantom import generate_phantom

    assert cfg.phantom is not None
    return generate_phantom(root, cfg.phantom, progress=progress)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_splits(cfg: ExperimentConfig, ds: Dataset, duplicate_groups: dict[str, list[str]] | None = None) -> tuple[Splits, Path]:
    """The saved splits, made and saved once when none exist yet (in the dataset's work folder,
    never inside a read-only dataset). A saved file made with other split settings than the
    config's ``split:`` section is refused instead of silently winning."""
    path = Path(cfg.splits) if cfg.splits else work_dir(ds.root) / "splits.json"
    if path.is_file():
        splits = Splits.load(path, ds)
        made = {"folds": splits.n_folds, "test_fraction": splits.test_fraction, "seed": splits.seed}
        want = {"folds": cfg.split.folds, "test_fraction": cfg.split.test_fraction, "seed": cfg.split.seed}
        if not cfg.splits and made != want:
            raise SonoganInputError(path, f"was made with {made} but the config's split: says {want}",
                                    "make the config's split: match the file, point splits: at the file on purpose, "
                                    "or move the file away to make new splits")
        return splits, path
    if cfg.splits:
        raise SonoganInputError(path, "splits file not found", "run 'sonogan data split' or fix the 'splits' path")
    splits = make_splits(ds, n_folds=cfg.split.folds, test_fraction=cfg.split.test_fraction, seed=cfg.split.seed,
                         duplicate_groups=duplicate_groups)
    splits.save(path)
    return splits, path


def train_arm(cfg: ExperimentConfig, clf_index: int, arm: Arm, fd: FoldData, syn: Synthetic,
              rare_indices: list[int], class_names: list[str], arm_dir: Path, progress: bool) -> dict[str, np.ndarray]:
    """Train one classifier for one arm (or load its saved predictions) -> val/test probabilities."""
    pred_path = arm_dir / "predictions.npz"
    if pred_path.is_file():
        saved = np.load(pred_path)
        return {"val": saved["val"], "test": saved["test"], "temperature": saved["temperature"]}
    base = cfg.classifiers[clf_index]
    update: dict[str, Any] = {"seed": cfg.seed + fd.fold, "device": cfg.device, "num_threads": cfg.num_threads}
    if arm.classic_augment:
        update["augment"] = cfg.classic_arm
    ccfg = base.model_copy(update=update)
    norm = {"fold": fd.normaliser, "imagenet": Normaliser.imagenet(), "lite": Normaliser.lite()}[ccfg.normalise]
    to_x = lambda imgs: norm(imgs, ccfg.in_chans, ccfg.image_size)  # noqa: E731
    images, labels = training_images(arm, fd.train, syn.all(), rare_indices, seed=cfg.seed + fd.fold,
                                     ratio=cfg.synthetic.ratio)
    val_x, val_y = to_x(fd.val.images), torch.from_numpy(fd.val.labels)
    if arm.kind == "pretrain":
        ccfg = pretrain_on_synthetic(cfg, ccfg, fd, syn, to_x, val_x, val_y, class_names, arm_dir, progress)
    result = train_classifier(ccfg, to_x(images), torch.from_numpy(labels), val_x, val_y, arm_dir, class_names,
                              progress=progress, resume=True, normaliser=norm,
                              preprocess=get_preset(cfg.preset).model_dump(mode="json"),
                              description=f"fold {fd.fold} {arm.name} {ccfg.model}")
    probs = {part: predict_proba(result.model, x, tta=ccfg.tta) for part, x in (("val", val_x),
                                                                                ("test", to_x(fd.test.images)))}
    # temperature scaling fitted on this fold's validation predictions; the saved probabilities
    # stay raw (every metric uses them), the checkpoint carries T for the Predictor
    probs["temperature"] = np.array(fit_temperature(np.log(np.clip(probs["val"], 1e-12, 1)), fd.val.labels))
    set_calibration(result.best_path, {"temperature": float(probs["temperature"]),
                                       "fitted_on": f"fold {fd.fold} validation predictions"})
    save_npz_atomic(pred_path, **probs)
    return probs


def pretrain_on_synthetic(cfg: ExperimentConfig, ccfg: ClassifierTrainConfig, fd: FoldData, syn: Synthetic,
                          to_x, val_x: torch.Tensor, val_y: torch.Tensor, class_names: list[str], arm_dir: Path,
                          progress: bool) -> ClassifierTrainConfig:
    """Stage 1 of the 'synthetic-pretrain' arm (in ``arm_dir/pretrain``, resumable); returns the
    stage-2 config: fine-tune those weights on the real training images at a lower lr."""
    stage = cfg.synthetic.pretrain_finetune
    assert stage is not None
    images, labels = pretraining_images(fd.train, syn.all())
    pre_cfg = ccfg.model_copy(update={"epochs": stage.epochs or ccfg.epochs})
    pre = train_classifier(pre_cfg, to_x(images), torch.from_numpy(labels), val_x, val_y, arm_dir / "pretrain",
                           class_names, progress=progress, resume=True,
                           description=f"fold {fd.fold} synthetic pre-training {ccfg.model}")
    # the pre-trained checkpoint replaces the ImageNet start (it began from it)
    return ccfg.model_copy(update={"epochs": stage.finetune_epochs, "lr": ccfg.lr * stage.finetune_lr_factor,
                                   "pretrained": False, "weights_path": str(pre.best_path)})


def fuse_members(cfg: ExperimentConfig, members: dict[str, dict[str, np.ndarray]], val_y: np.ndarray,
                 ensemble: str) -> tuple[dict[str, np.ndarray], list[float]]:
    """Weighted fusion (weights fitted on validation log-loss) or equal weights."""
    names = list(members)
    val = [members[m]["val"] for m in names]
    w = fit_fusion_weights(val, val_y, objective="log_loss") if ensemble == "weighted" else equal_weights(len(names))
    return {"val": fuse(val, w), "test": fuse([members[m]["test"] for m in names], w)}, [float(v) for v in w]


def _fuse_arm(cfg: ExperimentConfig, arm_dir: Path, by_model: dict[str, dict[str, np.ndarray]],
              val_y: np.ndarray) -> list[float]:
    """Add the fused ensemble (and the equal-weight reference) to ``by_model``; write ensemble.json."""
    members = dict(by_model)
    by_model[ENSEMBLE], weights = fuse_members(cfg, members, val_y, cfg.ensemble)
    by_model[ENSEMBLE]["temperature"] = np.array(
        fit_temperature(np.log(np.clip(by_model[ENSEMBLE]["val"], 1e-12, 1)), val_y))
    if cfg.ensemble == "weighted":  # equal weights as the reference the fitted weights must beat
        by_model[ENSEMBLE_EQUAL], _ = fuse_members(cfg, members, val_y, "equal")
    write_ensemble_file(arm_dir / "ensemble.json", {m: Path(m) / "best.pt" for m in members}, weights,
                        "validation log-loss" if cfg.ensemble == "weighted" else "equal weights",
                        temperature=float(by_model[ENSEMBLE]["temperature"]))
    return weights


def curate_with_baseline(cfg: ExperimentConfig, syn: Synthetic, fold_dir: Path) -> Synthetic:
    """Score each class's synthetic images with the fold's baseline classifier (real training
    images only) through its Predictor, and keep the most confident ``n_per_class``."""
    predictor = Predictor.load(fold_dir / "baseline" / cfg.classifiers[0].model / "best.pt")
    probs = {cls: predictor.predict_pixels(part.images) for cls, part in syn.by_class.items()}
    return curate(syn, probs, keep=cfg.synthetic.n_per_class)


def calibration_summary(p: dict[str, np.ndarray], test_y: np.ndarray) -> dict[str, float]:
    """The fitted temperature and the hold-out ECE before / after it (T was fitted on validation)."""
    t = float(p["temperature"])
    return {"temperature": t, "ece_test": expected_calibration_error(test_y, p["test"]),
            "ece_test_calibrated": expected_calibration_error(test_y, apply_temperature(p["test"], t))}


def fold_summary(fold: int, preds: dict[str, dict[str, dict[str, np.ndarray]]], val_y: np.ndarray,
                 model: str, class_names: list[str], rare: list[str]) -> list[str]:
    """One line per arm with this fold's validation numbers, printed as each fold ends."""
    from sonogan.evaluate.metrics import classification_metrics

    lines = []
    for arm, by_model in preds.items():
        m = classification_metrics(val_y, by_model[model]["val"], class_names)
        rare_f1 = "  ".join(f"F1 {c} {m[f'f1/{c}']:.3f}" for c in rare)
        lines.append(f"fold {fold} val  {arm:<12} accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  {rare_f1}")
    return lines


@dataclass(frozen=True)
class FoldJob:
    """What a task of one fold needs to rebuild its inputs in any process (picklable)."""

    cfg: ExperimentConfig
    dataset: str
    splits: str
    run: str
    fold: int
    rare: tuple[str, ...]
    progress: bool = False

    @property
    def fold_dir(self) -> Path:
        return Path(self.run) / "folds" / f"fold{self.fold}"

    def inputs(self) -> tuple[Dataset, FoldData]:
        torch.set_num_threads(self.cfg.num_threads)
        return _fold_inputs(self.dataset, self.splits, self.fold, self.cfg.preset, self.cfg.allow_no_masks)

    def log(self, line: str) -> None:
        run_logger(self.run).info(line)

    def rare_indices(self, ds: Dataset) -> list[int]:
        """The classes that get synthetic images: the rare ones, or every class (``classes: all``),
        which the count-matched control then re-draws."""
        if self.cfg.synthetic.classes == "all":
            return list(range(len(ds.spec.classes)))
        return [ds.spec.class_index(c) for c in self.rare]


@lru_cache(maxsize=1)
def _fold_inputs(dataset: str, splits: str, fold: int, preset: str, allow_no_masks: bool) -> tuple[Dataset, FoldData]:
    """The fold's data, loaded once per process (the local executor's tasks share it)."""
    ds = load_dataset(dataset)
    return ds, load_fold(ds, Splits.load(splits, ds), fold, preset, allow_no_masks=allow_no_masks)


def fold_synthetic(job: FoldJob, ds: Dataset, fd: FoldData) -> Synthetic:
    """The fold's synthetic images as the arms use them: trained and sampled by :func:`synth_task`
    (read back here), then curated when configured (the baseline has trained by then)."""
    syn = synthesise(job.cfg, ds, fd, job.fold_dir, list(job.rare), job.progress, job.log)
    return curate_with_baseline(job.cfg, syn, job.fold_dir) if job.cfg.synthetic.curate is not None else syn


def synth_task(job: FoldJob) -> None:
    """Task: train (or resume) the fold's generators and sample them into the run folder."""
    ds, fd = job.inputs()
    synthesise(job.cfg, ds, fd, job.fold_dir, list(job.rare), job.progress, job.log)


def arm_task(job: FoldJob, arm: Arm, clf_index: int) -> dict[str, np.ndarray]:
    """Task: one classifier of one arm (or its saved predictions) -> val/test probabilities."""
    ds, fd = job.inputs()
    syn = fold_synthetic(job, ds, fd) if arm.needs_synthetic else Synthetic()
    model = job.cfg.classifiers[clf_index].model
    job.log(f"fold {job.fold}: {arm.name} / {model}")
    return train_arm(job.cfg, clf_index, arm, fd, syn, job.rare_indices(ds), ds.spec.classes,
                     job.fold_dir / arm.name / model, job.progress)


def submit_fold(executor: Executor, job: FoldJob) -> list[tuple[str, str, Any]]:
    """Submit the fold's tasks: generators -> baseline -> the other arms (those with synthetic
    images wait for the generators, and for the baseline when it curates them). Returns
    (arm, model, handle) in report order."""
    cfg = job.cfg
    arms = cfg.arms()
    cpus, gpus = executor_resources(cfg)
    synth = (executor.submit(synth_task, (job,), cpus=cpus, gpus=gpus)
             if any(a.needs_synthetic for a in arms) else None)
    handles: list[tuple[str, str, Any]] = []
    baseline: list[Any] = []
    for arm in arms:
        after = [synth] + (baseline[:1] if cfg.synthetic.curate is not None else []) if arm.needs_synthetic else []
        for i, clf in enumerate(cfg.classifiers):
            handle = executor.submit(arm_task, (job, arm, i), after=after, cpus=cpus, gpus=gpus)
            handles.append((arm.name, clf.model, handle))
            if arm.kind == "baseline":
                baseline.append(handle)
    return handles


def executor_resources(cfg: ExperimentConfig) -> tuple[float, float]:
    """CPUs and GPUs one task asks a Ray cluster for: its torch threads, and a GPU share."""
    return float(cfg.num_threads), cfg.gpus_per_task


def finish_fold(job: FoldJob, preds: dict[str, dict[str, dict[str, np.ndarray]]]) -> dict[str, Any]:
    """The fold's ensembles, t-SNE features, predictions.npz and ``folds/foldK/fold.json``."""
    from sonogan.experiment.results import primary_model

    cfg = job.cfg
    ds, fd = job.inputs()
    syn = fold_synthetic(job, ds, fd) if any(a.needs_synthetic for a in cfg.arms()) else Synthetic()
    weights: dict[str, list[float]] = {}
    if len(cfg.classifiers) > 1:
        for arm in preds:
            weights[arm] = _fuse_arm(cfg, job.fold_dir / arm, preds[arm], fd.val.labels)
    if cfg.evaluation.tsne and syn.by_class:
        save_tsne_features(cfg, fd, syn, job.fold_dir)
    save_npz_atomic(job.fold_dir / "predictions.npz", **{"y|val": fd.val.labels, "y|test": fd.test.labels},
                    **{f"{arm}|{model}|{part}": p[part] for arm, by_model in preds.items()
                       for model, p in by_model.items() for part in ("val", "test")})
    calibration = {arm: {model: calibration_summary(p, fd.test.labels) for model, p in by_model.items()
                         if "temperature" in p} for arm, by_model in preds.items()}
    record = {"fold": job.fold, "val_ids": fd.val.ids, "test_ids": fd.test.ids, "n_train_real": len(fd.train),
              "train_class_counts": np.bincount(fd.train.labels, minlength=len(ds.spec.classes)).tolist(),
              "normaliser": fd.normaliser.to_dict(), "synthetic": syn.info, "fusion_weights": weights,
              "members": [c.model for c in cfg.classifiers], "calibration": calibration,
              "summary": fold_summary(job.fold, preds, fd.val.labels, primary_model(cfg), ds.spec.classes,
                                      list(job.rare))}
    write_json(job.fold_dir / "fold.json", record)
    return record


def run_folds(cfg: ExperimentConfig, ds: Dataset, splits_path: Path, folds: list[int], run: RunDir,
              rare: list[str], progress: bool, executor: Executor, echo) -> list[dict[str, Any]]:
    """Every fold's tasks submitted to ``executor``; each fold finished (and its summary echoed)
    as soon as its tasks are done. A fold with ``fold.json`` is read back, not run."""
    jobs = {k: FoldJob(cfg, str(ds.root), str(splits_path), str(run.path), k, tuple(rare),
                       progress and executor.name == "local") for k in folds}
    pending = {}
    for k, job in jobs.items():
        if not (job.fold_dir / "fold.json").is_file():
            job.fold_dir.mkdir(parents=True, exist_ok=True)
            pending[k] = submit_fold(executor, job)
    records = []
    for k, job in jobs.items():
        if k in pending:
            results = executor.gather([h for _, _, h in pending[k]])
            preds: dict[str, dict[str, dict[str, np.ndarray]]] = {}
            for (arm, model, _), p in zip(pending[k], results):
                preds.setdefault(arm, {})[model] = p
            records.append(finish_fold(job, preds))
        else:
            records.append(json.loads((job.fold_dir / "fold.json").read_text()))
        for line in records[-1]["summary"]:
            run.log(line)
            echo(line)
    return records


def check_experiment(cfg: ExperimentConfig, ds: Dataset, n_folds: int) -> list[str]:
    """Everything about the config that depends on the dataset, checked before any work: rare
    classes and folds. Returns the rare classes."""
    rare = cfg.rare_classes or ds.spec.rare_classes
    unknown = [c for c in rare if c not in ds.spec.classes]
    if not rare or unknown:
        raise SonoganInputError("rare_classes", f"{'unknown classes ' + str(unknown) if unknown else 'none given'}",
                                f"name rare classes from {ds.spec.classes} in the config or dataset.yaml")
    bad = [k for k in (cfg.folds or []) if not 0 <= k < n_folds]
    if bad:
        raise SonoganInputError("folds", f"folds {bad} do not exist", f"use 0..{n_folds - 1}")
    return rare


def run_experiment(cfg: ExperimentConfig | None, out: str | Path, resume: bool = False, progress: bool = True,
                   report: ValidationReport | None = None, echo=None, executor: Executor | str = "local",
                   address: str | None = None) -> Path:
    """Run (or with ``resume=True`` continue) the protocol into the run folder ``out``.

    ``report``: a validation report of the configured dataset made by the caller (the demo),
    so the images are not decoded a second time. ``echo``: called with each per-fold summary
    line (the CLI prints them). ``executor``: ``local``, ``ray`` (``address``: a cluster to join)
    or an :class:`Executor`; the numbers do not depend on it. A failure marks the run folder failed; ``resume=True`` continues it.
    """
    out = Path(out)
    if resume:
        cfg = load_config(ExperimentConfig, out / "config.yaml")
    if cfg is None:
        raise SonoganInputError("experiment", "no config given", "pass a config YAML")
    # a missing or broken dataset fails here, before any run folder exists
    ds = load_dataset(cfg.dataset) if cfg.dataset is not None else None
    torch.set_num_threads(cfg.num_threads)
    run = RunDir.resume(out) if resume else RunDir.create(out, seed=cfg.seed, config=cfg, kind="experiment")
    with run:
        ex = make_executor(executor, address=address) if isinstance(executor, str) else executor
        try:
            run.set_info(executor=ex.name)
            _run(cfg, run, ds if ds is not None else prepare_phantom(cfg, run, progress), progress, report,
                 echo or (lambda line: None), ex)
        finally:
            if isinstance(executor, str):
                ex.close()
    return run.path


def rewrite_report(run_dir: str | Path) -> Path:
    """Draw a finished run's report again from its saved files (no model runs), e.g. after
    ``sonogan study export`` put the reader study's ``reader_study.json`` into the run folder."""
    from sonogan.experiment.report import write_report
    from sonogan.experiment.results import pool_predictions

    run_dir = Path(run_dir)
    cfg = load_config(ExperimentConfig, run_dir / "config.yaml")
    ds = load_dataset(cfg.dataset if cfg.dataset is not None else run_dir / "dataset")
    with RunDir.resume(run_dir) as run:
        if not (run_dir / "metrics.json").is_file():
            raise SonoganInputError(run_dir, "has no metrics.json (the run has not finished)",
                                    f"finish it first: sonogan experiment --resume {run_dir}")
        folds = run.info.get("folds") or []
        records = [json.loads((run_dir / "folds" / f"fold{k}" / "fold.json").read_text()) for k in folds]
        results = json.loads((run_dir / "metrics.json").read_text())
        pooled = pool_predictions(cfg, ds, records, run.path)
        return write_report(cfg, ds, run, results, records, run.info["rare_classes"], test=pooled[1])


def _run(cfg: ExperimentConfig, run: RunDir, ds: Dataset, progress: bool, report: ValidationReport | None,
         echo, executor: Executor) -> None:
    from sonogan.experiment.report import write_report
    from sonogan.experiment.results import compute_results, pool_predictions

    report = report or validate_dataset(ds)
    splits, splits_path = prepare_splits(cfg, ds, report.duplicate_groups)
    splits_sha = file_sha256(splits_path)
    if run.info.get("splits_sha256") not in (None, splits_sha):
        raise SonoganInputError(splits_path, "changed since this run started (its sha256 differs from run.json's)",
                                "restore the original splits file, or start a new run")
    rare = check_experiment(cfg, ds, splits.n_folds)
    info = read_info(build_cache(ds, cfg.preset, progress=progress, allow_no_masks=cfg.allow_no_masks))
    if info["n_roi_fallback"]:  # said on the command line, not only in the cache's info.json
        line = (f"{info['n_roi_fallback']} of {info['n_real']} images have no lesion mask: the '{cfg.preset}' "
                "lesion ROI falls back to the whole scan area for them")
        run.log(line)
        echo(line)
    folds = cfg.folds if cfg.folds is not None else list(range(splits.n_folds))
    run.set_info(dataset_name=ds.spec.name, rare_classes=rare, folds=folds,
                 splits_file=splits_path.name, splits_sha256=splits_sha,
                 patients_known=ds.spec.patients_known, data_warnings=report.warnings)
    records = run_folds(cfg, ds, splits_path, folds, run, rare, progress, executor, echo)
    pooled = pool_predictions(cfg, ds, records, run.path)  # loaded once, used by the numbers and the figures
    results = compute_results(cfg, ds, pooled, records, rare)
    results["splits"] = {"file": splits_path.name, "sha256": splits_sha}
    run.write_metrics(results)
    write_report(cfg, ds, run, results, records, rare, test=pooled[1])
    # model_card.md/.json + training_hashes.csv (sonogan evaluate's duplicate check reads them)
    write_model_card(run.path)
