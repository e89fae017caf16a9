"""One fold of the protocol as tasks: the generators (train, sample, audit), every classifier of
every arm, and the fold's finish (ensembles, t-SNE features, ``fold.json``); an executor
(:mod:`sonogan.experiment.executors`) runs them. Each task rebuilds its inputs from a picklable
:class:`FoldJob`, writes its own piece of the run folder and resumes from what is there.

Example:
    >>> job = FoldJob(cfg, "runs/mmotu", "runs/mmotu/splits.json", "runs/exp", 0, ("borderline",))  # doctest: +SKIP
    >>> arm_task(job, cfg.arms()[0], 0)["val"].shape                                                # doctest: +SKIP
    (170, 8)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonogan import layout
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits
from sonogan.evaluate.calibration import expected_calibration_error
from sonogan.evaluate.metrics import classification_metrics
from sonogan.experiment.arms import Arm, pretraining_images, training_images
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.executors import Executor
from sonogan.experiment.features import save_tsne_features
from sonogan.experiment.results import ENSEMBLE, ENSEMBLE_EQUAL
from sonogan.experiment.results import primary_model, seed_average
from sonogan.experiment.synthesis import ALL_CLASSES, Synthetic, curate, synthesise, synthesise_all_classes
from sonogan.infer.calibration import (apply_temperature, calibration_scope, check_calibratable,
                                        fit_temperature_present)
from sonogan.infer.predictor import Predictor
from sonogan.models.checkpoint import set_calibration
from sonogan.models.ensemble import equal_weights, fit_fusion_weights, fuse, write_ensemble_file
from sonogan.preprocess.fold import FoldData, Normaliser, load_fold
from sonogan.preprocess.presets import get_preset
from sonogan.runs import RunDir, run_logger, save_npz_atomic, write_json
from sonogan.skipped import Skipped, attempt
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.loop import predict_proba, train_classifier


def train_arm(cfg: ExperimentConfig, clf_index: int, arm: Arm, fd: FoldData, syn: Synthetic,
              rare_indices: list[int], class_names: list[str], arm_dir: Path, progress: bool,
              seed: int | None = None) -> dict[str, np.ndarray]:
    """Train one classifier for one arm (or load its saved predictions) -> val/test probabilities.
    ``seed``: the classifier seed (default the experiment's); the classifier and the arm's draw of
    added images use ``seed + fold``."""
    pred_path = arm_dir / "predictions.npz"
    if pred_path.is_file():
        saved = np.load(pred_path)
        return {"val": saved["val"], "test": saved["test"], "temperature": saved["temperature"]}
    base = cfg.classifiers[clf_index]
    seed = (cfg.seed if seed is None else seed) + fd.fold
    update: dict[str, Any] = {"seed": seed, "device": cfg.device, "num_threads": cfg.num_threads}
    if arm.classic_augment:
        update["augment"] = cfg.classic_arm
    ccfg = base.model_copy(update=update)
    norm = {"fold": fd.normaliser, "imagenet": Normaliser.imagenet(), "lite": Normaliser.lite()}[ccfg.normalise]
    to_x = lambda imgs: norm(imgs, ccfg.in_chans, ccfg.image_size)  # noqa: E731
    images, labels = training_images(arm, fd.train, syn.all(), rare_indices, seed=seed,
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
    probs["temperature"] = np.array(fold_temperature(probs["val"], fd.val.labels))
    set_calibration(result.best_path, {"temperature": float(probs["temperature"]),
                                       "fitted_on": f"fold {fd.fold} validation predictions",
                                       **calibration_note(fd.val.labels, class_names)})
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
    by_model[ENSEMBLE]["temperature"] = np.array(fold_temperature(by_model[ENSEMBLE]["val"], val_y))
    if cfg.ensemble == "weighted":  # equal weights as the reference the fitted weights must beat
        by_model[ENSEMBLE_EQUAL], _ = fuse_members(cfg, members, val_y, "equal")
    write_ensemble_file(arm_dir / "ensemble.json", *seed_members(cfg, list(members), weights),
                        "validation log-loss" if cfg.ensemble == "weighted" else "equal weights",
                        temperature=float(by_model[ENSEMBLE]["temperature"]))
    return weights


def seed_members(cfg: ExperimentConfig, models: list[str], weights: list[float]) -> tuple[dict[str, Path], list[float]]:
    """The members of an arm's ``ensemble.json`` (relative paths) and their weights: each model's
    ``best.pt``, or with several classifier seeds each seed's, sharing its model's weight equally,
    so that the file predicts the seed-averaged probabilities the protocol evaluates."""
    seeds = cfg.seeds()
    if len(seeds) == 1:
        return {m: Path(m) / layout.BEST_FILE for m in models}, weights
    return ({f"{m}/seed-{s}": Path(m) / f"seed-{s}" / layout.BEST_FILE for m in models for s in seeds},
            [w / len(seeds) for w in weights for _ in seeds])


def _seed_averaged(by_seed: dict[int, dict[str, np.ndarray]], seeds: list[int], val_y: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """One model's seed-averaged validation and test probabilities, with the temperature fitted on
    the averaged validation ones; one seed's own arrays when there is one seed."""
    if len(seeds) == 1:
        return by_seed[seeds[0]]
    avg = {part: seed_average([by_seed[s][part] for s in seeds]) for part in ("val", "test")}
    avg["temperature"] = np.array(fold_temperature(avg["val"], val_y))
    return avg


def combine_seeds(job: "FoldJob", runs: dict[str, dict[str, dict[int, dict[str, np.ndarray]]]], val_y: np.ndarray
                  ) -> tuple[dict[str, dict[str, dict[str, np.ndarray]]], dict[str, np.ndarray], dict[str, list[float]]]:
    """From every (arm, model, seed)'s probabilities: the arm's predictions (each model's
    seed-averaged probabilities, fused when there are several classifiers: weights fitted on the
    averaged validation probabilities), each seed's own arrays for ``predictions.npz``
    (``arm|model|part|seed-S``, ensembles fused with the same weights; only with several seeds),
    and the fusion weights. Writes each arm's ``ensemble.json`` (several classifiers or seeds)."""
    cfg, seeds = job.cfg, job.cfg.seeds()
    preds: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    per_seed: dict[str, np.ndarray] = {}
    weights: dict[str, list[float]] = {}
    for arm, by_model in runs.items():
        arm_dir = layout.arm_dir(job.run, job.fold, arm)
        preds[arm] = {m: _seed_averaged(by_seed, seeds, val_y) for m, by_seed in by_model.items()}
        if len(cfg.classifiers) > 1:
            weights[arm] = _fuse_arm(cfg, arm_dir, preds[arm], val_y)
        elif len(seeds) > 1:  # one classifier: its seeds are the ensemble that predicts the arm's numbers
            (model,) = by_model
            write_ensemble_file(arm_dir / layout.ENSEMBLE_FILE, *seed_members(cfg, [model], [1.0]), "equal weights",
                                temperature=float(preds[arm][model]["temperature"]))
        if len(seeds) == 1:
            continue
        for s in seeds:
            members = {m: by_seed[s] for m, by_seed in by_model.items()}
            if arm in weights:
                ordered = [members[m]["val"] for m in by_model], [members[m]["test"] for m in by_model]
                members[ENSEMBLE] = {part: fuse(ps, weights[arm]) for part, ps in zip(("val", "test"), ordered)}
                if ENSEMBLE_EQUAL in preds[arm]:
                    members[ENSEMBLE_EQUAL] = {part: fuse(ps, equal_weights(len(by_model)))
                                               for part, ps in zip(("val", "test"), ordered)}
            per_seed.update({f"{arm}|{m}|{part}|seed-{s}": p[part] for m, p in members.items() for part in ("val", "test")})
    return preds, per_seed, weights


def curate_with_baseline(cfg: ExperimentConfig, syn: Synthetic, run: str | Path, fold: int,
                         name: str = "curation.json") -> Synthetic:
    """Score each class's synthetic images with the fold's baseline classifier (real training
    images only; the first classifier seed's) through its Predictor, and keep the most confident
    ``n_per_class``. Scored once: the kept ids go to ``name`` in the fold folder, which the fold's
    later tasks read back."""
    path = layout.fold_dir(run, fold) / name
    if path.is_file():
        saved = json.loads(path.read_text())
        return Synthetic(by_class={c: p.select(np.isin(p.ids, saved["kept"][c])) for c, p in syn.by_class.items()},
                         info={c: {**v, "curation": saved["info"][c]} for c, v in syn.info.items()})
    seeds = cfg.seeds()
    first = layout.seed_model_dir(run, fold, "baseline", cfg.classifiers[0].model, seeds[0] if len(seeds) > 1 else None)
    predictor = Predictor.load(first / layout.BEST_FILE)
    probs = {cls: predictor.predict_pixels(part.images) for cls, part in syn.by_class.items()}
    out = curate(syn, probs, keep=cfg.synthetic.n_per_class)
    write_json(path, {"kept": {c: p.ids for c, p in out.by_class.items()},
                      "info": {c: v["curation"] for c, v in out.info.items()}})
    return out


def fold_temperature(val_probs: np.ndarray, val_y: np.ndarray) -> float:
    """The temperature fitted on validation probabilities, on the classes present; 1 (no scaling)
    when fewer than 2 are (the record says so: :func:`calibration_note`)."""
    t = attempt(fit_temperature_present, np.log(np.clip(val_probs, 1e-12, 1)), val_y)
    return 1.0 if isinstance(t, Skipped) else t


def calibration_note(val_y: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """What a calibration record adds when validation lacks a class: the classes T was fitted on
    and those absent, or (fewer than 2 present) ``skipped`` with the reason; {} otherwise."""
    scope = calibration_scope(val_y, class_names)
    if not scope["absent_from_validation"]:
        return {}
    check = attempt(check_calibratable, val_y)
    return {**scope, "skipped": {"temperature": check.reason}} if isinstance(check, Skipped) else scope


def calibration_summary(p: dict[str, np.ndarray], val_y: np.ndarray, test_y: np.ndarray,
                        class_names: list[str]) -> dict[str, Any]:
    """The fitted temperature and the hold-out ECE before / after it (T was fitted on validation);
    a skipped fit has temperature and calibrated ECE null and its reason under ``skipped``."""
    note = calibration_note(val_y, class_names)
    ece = expected_calibration_error(test_y, p["test"])
    if "skipped" in note:
        return {"temperature": None, "ece_test": ece, "ece_test_calibrated": None, **note}
    t = float(p["temperature"])
    return {"temperature": t, "ece_test": ece,
            "ece_test_calibrated": expected_calibration_error(test_y, apply_temperature(p["test"], t)), **note}


def fold_summary(fold: int, preds: dict[str, dict[str, dict[str, np.ndarray]]], val_y: np.ndarray,
                 model: str, class_names: list[str], rare: list[str]) -> list[str]:
    """One line per arm with this fold's validation numbers, printed as each fold ends."""
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
        return layout.fold_dir(self.run, self.fold)

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


def fold_synthetic(job: FoldJob, ds: Dataset, fd: FoldData, which: str = "rare") -> Synthetic:
    """The fold's synthetic images as the arms use them (``which``: the rare-class generators'
    or, ``all``, the all-class GAN's): trained and sampled by :func:`synth_task` (read back here),
    then curated when configured (the baseline has trained by then)."""
    if which == "all":
        syn = synthesise_all_classes(job.cfg, ds, fd, job.fold_dir, job.progress, job.log)
        name = f"curation-{ALL_CLASSES}.json"
    else:
        syn = synthesise(job.cfg, ds, fd, job.fold_dir, list(job.rare), job.progress, job.log)
        name = "curation.json"
    curated = job.cfg.synthetic.curate is not None
    return curate_with_baseline(job.cfg, syn, job.run, job.fold, name) if curated else syn


def synth_task(job: FoldJob) -> None:
    """Task: train (or resume) the fold's generators and sample them into the run folder."""
    ds, fd = job.inputs()
    synthesise(job.cfg, ds, fd, job.fold_dir, list(job.rare), job.progress, job.log)
    synthesise_all_classes(job.cfg, ds, fd, job.fold_dir, job.progress, job.log)


def arm_task(job: FoldJob, arm: Arm, clf_index: int, seed: int | None = None) -> dict[str, np.ndarray]:
    """Task: one classifier of one arm, for one classifier seed (None: the experiment's only one),
    or its saved predictions -> val/test probabilities."""
    ds, fd = job.inputs()
    syn = fold_synthetic(job, ds, fd, arm.synthetic_set) if arm.needs_synthetic else Synthetic()
    model = job.cfg.classifiers[clf_index].model
    job.log(f"fold {job.fold}: {arm.name} / {model}" + (f" / seed {seed}" if seed is not None else ""))
    return train_arm(job.cfg, clf_index, arm, fd, syn, job.rare_indices(ds), ds.spec.classes,
                     layout.seed_model_dir(job.run, job.fold, arm.name, model, seed), job.progress, seed=seed)


def submit_fold(executor: Executor, job: FoldJob) -> list[tuple[str, str, int, Any]]:
    """Submit the fold's tasks: generators -> baseline -> the other arms (those with synthetic
    images wait for the generators, and for the baseline when it curates them); one task per
    arm, classifier and classifier seed. Returns (arm, model, seed, handle) in report order."""
    cfg = job.cfg
    arms = cfg.arms()
    cpus, gpus = executor_resources(cfg)
    synth = (executor.submit(synth_task, (job,), cpus=cpus, gpus=gpus)
             if any(a.needs_synthetic for a in arms) else None)
    handles: list[tuple[str, str, int, Any]] = []
    baseline: list[Any] = []
    seeds = cfg.seeds()
    for arm in arms:
        after = [synth] + (baseline[:1] if cfg.synthetic.curate is not None else []) if arm.needs_synthetic else []
        for i, clf in enumerate(cfg.classifiers):
            for s in seeds:  # one seed keeps the model folder of runs before seeds (seed None)
                handle = executor.submit(arm_task, (job, arm, i, s if len(seeds) > 1 else None), after=after,
                                         cpus=cpus, gpus=gpus)
                handles.append((arm.name, clf.model, s, handle))
                if arm.kind == "baseline":
                    baseline.append(handle)
    return handles


def executor_resources(cfg: ExperimentConfig) -> tuple[float, float]:
    """CPUs and GPUs one task asks a Ray cluster for: its torch threads, and a GPU share."""
    return float(cfg.num_threads), cfg.gpus_per_task


def finish_fold(job: FoldJob, runs: dict[str, dict[str, dict[int, dict[str, np.ndarray]]]]) -> dict[str, Any]:
    """The fold's seed averages and ensembles (``runs``: arm -> model -> seed -> probabilities),
    t-SNE features, predictions.npz and ``folds/foldK/fold.json``."""
    cfg = job.cfg
    ds, fd = job.inputs()
    syn = fold_synthetic(job, ds, fd) if any(a.needs_synthetic for a in cfg.arms()) else Synthetic()
    preds, per_seed, weights = combine_seeds(job, runs, fd.val.labels)
    if cfg.evaluation.tsne and syn.by_class:
        save_tsne_features(cfg, fd, syn, job.fold_dir)
    save_npz_atomic(job.fold_dir / "predictions.npz", **{"y|val": fd.val.labels, "y|test": fd.test.labels},
                    **{f"{arm}|{model}|{part}": p[part] for arm, by_model in preds.items()
                       for model, p in by_model.items() for part in ("val", "test")}, **per_seed)
    calibration = {arm: {model: calibration_summary(p, fd.val.labels, fd.test.labels, list(ds.spec.classes))
                         for model, p in by_model.items()
                         if "temperature" in p} for arm, by_model in preds.items()}
    record = {"fold": job.fold, "val_ids": fd.val.ids, "test_ids": fd.test.ids, "n_train_real": len(fd.train),
              "train_class_counts": np.bincount(fd.train.labels, minlength=len(ds.spec.classes)).tolist(),
              "normaliser": fd.normaliser.to_dict(), "synthetic": syn.info, "fusion_weights": weights,
              **({"synthetic_all_classes": fold_synthetic(job, ds, fd, "all").info} if cfg.all_classes_gan else {}),
              **({"classifier_seeds": cfg.seeds()} if len(cfg.seeds()) > 1 else {}),
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
            results = executor.gather([h for *_, h in pending[k]])
            runs: dict[str, dict[str, dict[int, dict[str, np.ndarray]]]] = {}
            for (arm, model, seed, _), p in zip(pending[k], results):
                runs.setdefault(arm, {}).setdefault(model, {})[seed] = p
            records.append(finish_fold(job, runs))
        else:
            records.append(json.loads((job.fold_dir / "fold.json").read_text()))
        for line in records[-1]["summary"]:
            run.log(line)
            echo(line)
    return records
