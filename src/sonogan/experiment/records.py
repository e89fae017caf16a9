"""A fold's compact record, and the merge of fold records into the pooled numbers.

A long protocol (the MMOTU verdict: hours per fold on a CPU) runs fold by fold, perhaps on
different machines, and run folders are not kept. :func:`fold_record` takes from a run folder
what the pooled numbers need of one fold: every (arm, model[, seed]) validation and hold-out
probability, labels, ids and bootstrap groups (the arrays of ``folds/foldK/predictions.npz``),
the synthetic sets' audit summary and the software and machine it ran on. :func:`merge_records`
pools whichever folds' records exist with the protocol's own functions
(:func:`sonogan.experiment.results.pool_folds` and :func:`~sonogan.experiment.results.pooled_numbers`),
so merging the records of folds 0 and 1 gives the numbers of a run of folds 0 and 1 (tested).

A record's ``cost`` (wall time, peak memory, load) differs between reruns; everything else is
a function of the config, the splits and the software: a rerun of a fold reproduces it, and
``arrays_sha256`` lets two records be compared at a glance.

Example:
    >>> rec = fold_record("runs/bench/mmotu-verdict-fold0", 0)               # doctest: +SKIP
    >>> write_record(rec, "benchmarks/results/mmotu-verdict")                 # doctest: +SKIP
    >>> merged = merge_records([read_record(p) for p in sorted(folder.glob("fold*.json"))])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from sonogan import layout
from sonogan.config import load_config
from sonogan.data.manifest import load_dataset
from sonogan.errors import SonoganInputError
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.results import fold_arrays, pool_folds, pooled_numbers, primary_model, model_names
from sonogan.runs import save_npz_atomic, write_json

FORMAT = "sonogan-fold-record"
VERSION = 1
MACHINE_KEYS = ("dataset", "splits", "folds")  # paths of one machine, and which folds one run ran


def portable_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """The resolved config without the dataset and splits paths and the folds one run ran."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in MACHINE_KEYS}


def config_sha256(cfg: ExperimentConfig) -> str:
    """The config's identity across machines and fold-by-fold runs (:func:`portable_config`)."""
    return hashlib.sha256(json.dumps(portable_config(cfg), sort_keys=True).encode()).hexdigest()


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """A digest of the arrays' names, dtypes, shapes and bytes (a .npz file's bytes hold zip dates)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def audit_summary(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """One synthetic set's line of a record: fold.json's counts (sampled, curated, gated) and its
    audit's fidelity, diversity, quality and memorisation numbers (no ids, no figures)."""
    out = dict(info)
    folder = info.get("audit", {}).get("folder")
    if folder and (run_dir / folder / "audit.json").is_file():
        audit = json.loads((run_dir / folder / "audit.json").read_text())
        memorisation = {k: v for k, v in (audit.get("memorisation") or {}).items() if k != "flagged_ids"}
        out["audit_numbers"] = {"fidelity": audit.get("fidelity"), "diversity": audit.get("diversity"),
                                "quality": audit.get("quality"), "memorisation": memorisation}
    return out


def _precisions(run_dir: Path, fold: int) -> list[dict[str, Any]]:
    """The distinct precisions the fold's classifiers trained in (each history.json records its own)."""
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted(layout.fold_dir(run_dir, fold).glob("*/*/**/history.json")):
        described = json.loads(path.read_text()).get("precision")
        if described is not None:
            seen.setdefault(json.dumps(described, sort_keys=True), described)
    return list(seen.values())


def fold_record(run_dir: str | Path, fold: int) -> dict[str, Any]:
    """Fold ``fold`` of a finished (or fold-finished) experiment run folder as a compact record;
    its ``arrays`` (numpy) go to a ``.npz`` beside the JSON (:func:`write_record`)."""
    run_dir = Path(run_dir)
    fdir = layout.fold_dir(run_dir, fold)
    if not (fdir / "fold.json").is_file():
        raise SonoganInputError(fdir, "this fold has not finished (no fold.json)",
                                f"finish it first: sonogan experiment --resume {run_dir}")
    cfg = load_config(ExperimentConfig, run_dir / layout.CONFIG_FILE)
    info = layout.read_info(run_dir)
    done = json.loads((fdir / "fold.json").read_text())
    ds = load_dataset(cfg.dataset if cfg.dataset is not None else run_dir / "dataset")
    with np.load(fdir / "predictions.npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    known = ds.spec.patients_known
    test_groups = ds.patient_groups(done["test_ids"])
    synthetic = {"rare": {c: audit_summary(run_dir, v) for c, v in done.get("synthetic", {}).items()},
                 "all_classes": {c: audit_summary(run_dir, v) for c, v in done.get("synthetic_all_classes", {}).items()}}
    return {
        "format": FORMAT, "version": VERSION, "fold": fold, "config_sha256": config_sha256(cfg),
        "config": portable_config(cfg), "splits_sha256": info.get("splits_sha256"),
        "dataset": ds.spec.name, "class_names": list(ds.spec.classes), "rare_classes": info["rare_classes"],
        "patients_known": known, "arms": cfg.arm_names(), "models": model_names(cfg),
        "primary_model": primary_model(cfg), "classifier_seeds": cfg.seeds(),
        "val_ids": done["val_ids"], "test_ids": done["test_ids"],
        # the bootstrap's resampling units: patients when known, else each image is its own case
        "val_groups": ds.patient_groups(done["val_ids"]).tolist() if known else list(done["val_ids"]),
        "test_groups": None if test_groups is None else test_groups.tolist(),
        "synthetic": synthetic,
        "environment": {"git_commit": info.get("git_commit"), "versions": info.get("versions"),
                        "num_threads": cfg.num_threads, "precision": _precisions(run_dir, fold),
                        "cpu_model": cpu_model(), "device": cfg.device},
        "cost": {"run_started": info.get("started"), "run_finished": info.get("finished")},
        "arrays_sha256": arrays_sha256(arrays), "arrays": arrays,
    }


def record_stem(record: dict[str, Any]) -> str:
    """``foldK``, or ``foldK-seedS`` for the record of one classifier seed of fold K."""
    chunk = record.get("seed_chunk")
    return f"fold{record['fold']}" + ("" if chunk is None else f"-seed{chunk}")


def write_record(record: dict[str, Any], folder: str | Path) -> Path:
    """``folder/foldK.json`` (+ ``foldK.npz``: the arrays; ``foldK-seedS`` for one seed's record);
    an existing record is never replaced by a different one (a rerun that reproduces it exactly
    is fine)."""
    folder = Path(folder)
    path = folder / f"{record_stem(record)}.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("arrays_sha256") != record["arrays_sha256"] or old.get("config_sha256") != record["config_sha256"]:
            raise SonoganInputError(path, "a different record of this fold exists (other predictions or config)",
                                    "move it away first if the new run should replace it")
    folder.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(path.with_suffix(".npz"), **record["arrays"])
    write_json(path, {k: v for k, v in record.items() if k != "arrays"})
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """A record written by :func:`write_record`, its arrays loaded and checked against their digest."""
    path = Path(path)
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT:
        raise SonoganInputError(path, "not a sonogan fold record", "pass a foldK.json written by mmotu_verdict.py")
    with np.load(path.with_suffix(".npz")) as saved:
        record["arrays"] = {k: saved[k] for k in saved.files}
    if arrays_sha256(record["arrays"]) != record["arrays_sha256"]:
        raise SonoganInputError(path.with_suffix(".npz"), "its arrays do not match the record's arrays_sha256",
                                "restore the .npz committed with this record")
    return record


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The pooled numbers of whichever folds' records are given (any order; one config, one
    splits file): the same dict as ``metrics.json``'s numbers for a run of those folds, plus
    ``folds`` and each record's environment and cost."""
    if not records:
        raise SonoganInputError("fold records", "none given", "run a fold first (mmotu_verdict.py --fold K)")
    records = sorted(records, key=lambda r: r["fold"])
    first = records[0]
    for rec in records[1:]:
        for key in ("config_sha256", "splits_sha256", "test_ids"):
            if rec[key] != first[key]:
                raise SonoganInputError(f"fold {rec['fold']}'s record", f"its {key} differs from fold {first['fold']}'s",
                                        "pool only folds run with the same config and splits")
    cfg = ExperimentConfig.model_validate(first["config"])
    per_fold = [fold_arrays(cfg, r["arrays"], r["fold"]) for r in records]
    test_groups = None if first["test_groups"] is None else np.array(first["test_groups"])
    pooled = pool_folds(cfg, per_fold, [np.array(r["val_groups"]) for r in records], test_groups,
                        first["patients_known"])
    numbers = pooled_numbers(cfg, first["class_names"], first["patients_known"], pooled, first["rare_classes"])
    return {**numbers, "config_sha256": first["config_sha256"], "dataset": first["dataset"],
            "synthetic_arms": [a.name for a in cfg.arms() if a.needs_synthetic],
            "environment": {r["fold"]: r["environment"] for r in records},
            "cost": {r["fold"]: r["cost"] for r in records},
            "synthetic": {r["fold"]: r["synthetic"] for r in records}}
