"""The main job end to end on the built-in phantom: what ``make demo`` runs.

phantom -> validate (the import contract) -> split -> preprocess -> inspect, all inside one
numbered run folder that records config, seed, commit and versions.

Example:
    >>> from sonogan.demo import DemoConfig, run_demo
    >>> run_dir = run_demo("runs", DemoConfig())        # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from sonogan.config import StrictModel
from sonogan.data.phantom import PhantomConfig
from sonogan.runs import RunDir, next_run_dir


class DemoConfig(StrictModel):
    seed: int = 0
    phantom: PhantomConfig = Field(default_factory=PhantomConfig)
    folds: int = 5
    test_fraction: float = 0.15
    presets: list[str] = Field(default_factory=lambda: ["flagship-64", "gan-64"])


def run_demo(out_parent: str | Path, cfg: DemoConfig, progress: bool = True) -> Path:
    """Run the demo into ``out_parent/demo-NNN`` and return that folder."""
    from sonogan.data.inspect import inspect_dataset
    from sonogan.data.phantom import generate_phantom
    from sonogan.data.splits import make_splits
    from sonogan.data.validate import validate_dataset
    from sonogan.preprocess.cache import build_cache

    run = RunDir.create(next_run_dir(out_parent, "demo"), seed=cfg.seed, config=cfg, kind="demo")
    timings: dict[str, float] = {}

    def step(name: str, fn):  # time each stage and log it: the demo doubles as a smoke benchmark
        start = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - start, 2)
        run.log(f"{name}: {timings[name]} s")
        return result

    phantom_cfg = cfg.phantom.model_copy(update={"seed": cfg.seed})
    ds = step("phantom", lambda: generate_phantom(run.path / "dataset", phantom_cfg, progress=progress))
    report = step("validate", lambda: validate_dataset(ds, progress=progress))
    splits = step("split", lambda: make_splits(ds, n_folds=cfg.folds, test_fraction=cfg.test_fraction,
                                               seed=cfg.seed))
    splits.save(ds.root / "splits.json")
    caches = {p: str(step(f"preprocess:{p}", lambda p=p: build_cache(ds, p, progress=progress)))
              for p in cfg.presets}
    summary = step("inspect", lambda: inspect_dataset(ds, run.path / "inspect", progress=progress))
    run.write_metrics({
        "dataset": {"n_images": report.n_images, "n_patients": report.n_patients,
                    "warnings": report.warnings},
        "splits": {"test": len(splits.test), "folds": [{k: len(v) for k, v in f.items()} for f in splits.folds]},
        "caches": caches,
        "inspect": summary,
        "timings_s": timings,
    })
    run.finish()
    return run.path
