"""The main job end to end on the built-in phantom: what ``make demo`` runs.

phantom -> validate (the import contract) -> split -> preprocess -> inspect -> the flagship
experiment (GAN per fold on the rare class, baseline vs augmented classifiers, CIs, report),
all inside one numbered run folder that records config, seed, commit and versions.

Example:
    >>> from sonogan.config import load_config
    >>> from sonogan.experiment.config import ExperimentConfig
    >>> cfg = load_config(ExperimentConfig, "configs/demo.yaml")    # doctest: +SKIP
    >>> run_dir = run_demo("runs", cfg)                             # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from sonogan.data.inspect import inspect_dataset
from sonogan.data.splits import make_splits
from sonogan.data.validate import validate_dataset
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.protocol import run_experiment
from sonogan.locations import splits_file
from sonogan.phantom import PhantomConfig, generate_phantom
from sonogan.preprocess.cache import build_cache
from sonogan.runs import RunDir, next_run_dir


def run_demo(out_parent: str | Path, cfg: ExperimentConfig, progress: bool = True,
             experiment: bool = True) -> Path:
    """Run the demo into ``out_parent/demo-NNN`` and return that folder.

    ``experiment=False`` stops after the data steps (phantom .. inspect).
    """

    # finished on success; marked failed / interrupted (and unlocked) otherwise
    with RunDir.create(next_run_dir(out_parent, "demo"), seed=cfg.seed, config=cfg, kind="demo") as run:
        timings: dict[str, float] = {}

        def step(name: str, fn: Callable[[], Any]) -> Any:  # time each stage: the demo doubles as a smoke benchmark
            start = time.perf_counter()
            result = fn()
            timings[name] = round(time.perf_counter() - start, 2)
            run.log(f"{name}: {timings[name]} s")
            return result

        phantom_cfg = cfg.phantom or PhantomConfig()
        ds = step("phantom", lambda: generate_phantom(run.path / "dataset", phantom_cfg, progress=progress))
        report = step("validate", lambda: validate_dataset(ds, progress=progress))
        splits = step("split", lambda: make_splits(ds, n_folds=cfg.split.folds, test_fraction=cfg.split.test_fraction,
                                                   seed=cfg.split.seed, duplicate_groups=report.duplicate_groups))
        splits_path = splits_file(ds.root)
        splits.save(splits_path)
        cache = step("preprocess", lambda: build_cache(ds, cfg.preset, progress=progress))
        summary = step("inspect", lambda: inspect_dataset(ds, run.path / "inspect", progress=progress,
                                                                   report=report))
        metrics: dict[str, Any] = {
            "dataset": {"n_images": report.n_images, "n_patients": report.n_patients, "warnings": report.warnings},
            "splits": {"test": len(splits.test), "folds": [{k: len(v) for k, v in f.items()} for f in splits.folds]},
            "cache": cache.relative_to(run.path).as_posix(),  # no path of this machine in shared results
            "inspect": summary,
        }
        if experiment:
            exp_cfg = cfg.model_copy(update={"dataset": str(ds.root.resolve()), "phantom": None,
                                             "splits": str(splits_path.resolve())})
            exp_dir = step("experiment", lambda: run_experiment(exp_cfg, run.path / "experiment", progress=progress,
                                                                     report=report, echo=print if progress else None))
            metrics["experiment"] = {"report": (exp_dir / "report.html").relative_to(run.path).as_posix(),
                                     "metrics": (exp_dir / "metrics.json").relative_to(run.path).as_posix()}
        metrics["timings_s"] = timings
        run.write_metrics(metrics)
    return run.path
