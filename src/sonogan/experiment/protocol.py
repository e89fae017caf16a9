"""Run the flagship protocol, fold by fold, resumable.

For each fold of the saved splits (its tasks: :mod:`sonogan.experiment.fold_tasks`): train
one GAN per rare class on that fold's real training images -> sample -> train every classifier once per arm with identical seeds
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

import json
from pathlib import Path

import torch

from sonogan.config import load_config
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits, prepare_splits
from sonogan.data.validate import ValidationReport, validate_dataset
from sonogan.errors import SonoganInputError
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.executors import Executor, make_executor
from sonogan.experiment.fold_tasks import run_folds
from sonogan.experiment.report import write_report
from sonogan.experiment.results import compute_results, pool_predictions
from sonogan.infer.model_card import write_model_card
from sonogan.layout import fold_dir, keep_splits, resume_config
from sonogan.phantom import prepare_phantom
from sonogan.preprocess.cache import build_cache, read_info
from sonogan.runs import RunDir
from sonogan.train.loop import classifier_precision


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
        cfg = resume_config(out, ExperimentConfig)
    if cfg is None:
        raise SonoganInputError("experiment", "no config given", "pass a config YAML")
    # a missing or broken dataset fails here, before any run folder exists
    ds = load_dataset(cfg.dataset) if cfg.dataset is not None else None
    torch.set_num_threads(cfg.num_threads)
    with RunDir.resume(out) if resume else RunDir.create(out, seed=cfg.seed, config=cfg, kind="experiment") as run:
        ex = make_executor(executor, address=address) if isinstance(executor, str) else executor
        try:
            run.set_info(executor=ex.name)
            _run(cfg, run, ds if ds is not None else prepare_phantom(cfg.phantom, run, progress), progress, report,
                 echo or (lambda line: None), ex)
        finally:
            if isinstance(executor, str):
                ex.close()
    return run.path


def rewrite_report(run_dir: str | Path) -> Path:
    """Draw a finished run's report again from its saved files (no model runs), e.g. after
    ``sonogan study export`` put the reader study's ``reader_study.json`` into the run folder."""
    run_dir = Path(run_dir)
    cfg = load_config(ExperimentConfig, run_dir / "config.yaml")
    ds = load_dataset(cfg.dataset if cfg.dataset is not None else run_dir / "dataset")
    with RunDir.resume(run_dir) as run:
        if not (run_dir / "metrics.json").is_file():
            raise SonoganInputError(run_dir, "has no metrics.json (the run has not finished)",
                                    f"finish it first: sonogan experiment --resume {run_dir}")
        folds = run.info.get("folds") or []
        records = [json.loads((fold_dir(run_dir, k) / "fold.json").read_text()) for k in folds]
        results = json.loads((run_dir / "metrics.json").read_text())
        pooled = pool_predictions(cfg, ds, records, run.path)
        return write_report(cfg, ds, run, results, records, run.info["rare_classes"], test=pooled[1])


def _run(cfg: ExperimentConfig, run: RunDir, ds: Dataset, progress: bool, report: ValidationReport | None,
         echo, executor: Executor) -> None:
    report = report or validate_dataset(ds)
    # the run's own copy: a resumed run continues on the splits it started with
    splits_path = keep_splits(run, lambda: prepare_splits(ds, cfg.split, cfg.splits, report.duplicate_groups)[1])
    splits, splits_sha = Splits.load(splits_path, ds), run.info["splits_sha256"]
    rare = check_experiment(cfg, ds, splits.n_folds)
    info = read_info(build_cache(ds, cfg.preset, progress=progress, allow_no_masks=cfg.allow_no_masks))
    if info["n_roi_fallback"]:  # said on the command line, not only in the cache's info.json
        line = (f"{info['n_roi_fallback']} of {info['n_real']} images have no lesion mask: the '{cfg.preset}' "
                "lesion ROI falls back to the whole scan area for them")
        run.log(line)
        echo(line)
    folds = cfg.folds if cfg.folds is not None else list(range(splits.n_folds))
    run.set_info(dataset_name=ds.spec.name, rare_classes=rare, folds=folds,
                 patients_known=ds.spec.patients_known, data_warnings=report.warnings,
                 # each classifier's precision and why (each GAN run's run.json holds its own)
                 precision={c.model: classifier_precision(c.model_copy(update={"device": cfg.device})).describe()
                            for c in cfg.classifiers})
    records = run_folds(cfg, ds, splits_path, folds, run, rare, progress, executor, echo)
    pooled = pool_predictions(cfg, ds, records, run.path)  # loaded once, used by the numbers and the figures
    results = compute_results(cfg, ds, pooled, records, rare)
    results["splits"] = {"file": splits_path.name, "sha256": splits_sha}
    run.write_metrics(results)
    write_report(cfg, ds, run, results, records, rare, test=pooled[1])
    # model_card.md/.json + training_hashes.csv (sonogan evaluate's duplicate check reads them)
    write_model_card(run.path)
