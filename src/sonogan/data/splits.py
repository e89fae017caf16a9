"""Leakage-free splits: patient-grouped, class-stratified hold-out test + k folds, saved once.

Only real rows are split. Images of one patient, and images in one duplicate group (exact or
near duplicates, :mod:`sonogan.data.duplicates`), are merged into one *split group* by
:func:`~sonogan.data.duplicates.union_find`, so a patient or a duplicate never sits in two partitions. A group's label is the
majority label of its images (ties: the class listed first in dataset.yaml).

Hold-out test: ``test_fraction`` of each class's groups (at least one). Folds:
``StratifiedGroupKFold(n_folds, shuffle, seed)`` over the remaining images; fold k's val is
part k and its train the other parts. With the defaults (5 folds, 0.15) the shares are
train 68 % / val 17 % / test 15 % of the groups (val = 1/5 of the remaining 85 %).

``splits.json`` is a pure function of the dataset, the parameters and the seed: the same
inputs give a byte-identical file (no wall-clock time is stored; run folders record when).

Example:
    >>> real = pd.DataFrame({"image_id": ["a", "b", "c"], "patient_id": ["P2", "P1", "P3"]})
    >>> split_groups(real, {"near-0001": ["a", "c"]})   # a's and c's patients become one group
    {'a': 'P2', 'b': 'P1', 'c': 'P2'}
    >>> ds = load_dataset("runs/phantom")                       # doctest: +SKIP
    >>> splits = make_splits(ds, n_folds=5, test_fraction=0.15, seed=0)   # doctest: +SKIP
    >>> splits.save(ds.root / "splits.json")                    # doctest: +SKIP
    >>> train = Splits.load(ds.root / "splits.json", ds).partition(0, "train")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from pydantic import Field

import sonogan
from sonogan.config import StrictModel
from sonogan.data.duplicates import find_duplicate_groups, union_find
from sonogan.data.manifest import Dataset
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file

PARTITIONS = ("train", "val", "test")


@dataclass
class Splits:
    """Test ids, per-fold train/val ids (real images only) and each image's split group."""

    seed: int
    n_folds: int
    test_fraction: float
    dataset_name: str
    manifest_sha256: str
    test: list[str]
    folds: list[dict[str, list[str]]]
    groups: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)  # class counts, version, created, ...

    def partition(self, fold: int | None, name: Literal["train", "val", "test"]) -> list[str]:
        """Image ids of one partition. ``fold=None`` with ``"train"`` = every non-test image
        (for a final model trained on the whole development set); ``"test"`` ignores ``fold``."""
        if name == "test":
            return list(self.test)
        if name not in ("train", "val"):
            raise SonoganInputError(f"partition '{name}'", "unknown partition", "use train, val or test")
        if fold is None:
            if name == "val":
                raise SonoganInputError("partition 'val'", "val needs a fold number", f"pass a fold 0..{self.n_folds - 1}")
            return sorted(self.folds[0]["train"] + self.folds[0]["val"])
        if not 0 <= fold < self.n_folds:
            raise SonoganInputError(f"fold {fold}", "fold out of range", f"use a fold 0..{self.n_folds - 1}")
        return list(self.folds[fold][name])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seed": self.seed, "n_folds": self.n_folds, "test_fraction": self.test_fraction,
            "dataset_name": self.dataset_name, "manifest_sha256": self.manifest_sha256,
        }
        out.update(self.meta)
        out.update({"test": self.test, "folds": self.folds, "groups": self.groups})
        return out

    def save(self, path: Path) -> None:
        """Write JSON; refuse to overwrite (splits are made once and reused)."""
        path = Path(path)
        if path.exists():
            raise SonoganInputError(path, "splits file already exists (splits are made once and reused)",
                                    "reuse it, or write to a new file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, ds: Dataset | None = None) -> "Splits":
        """Read a splits file; with ``ds``, check it was made for this manifest."""
        path = Path(path)
        if not path.is_file():
            raise SonoganInputError(path, "splits file not found", "run 'sonogan data split DATASET' first")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = ("seed", "n_folds", "test_fraction", "dataset_name", "manifest_sha256", "test", "folds", "groups")
            splits = cls(**{k: data[k] for k in known},
                         meta={k: v for k, v in data.items() if k not in known})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SonoganInputError(path, f"not a sonogan splits file ({type(exc).__name__}: {exc})",
                                    "re-create it with 'sonogan data split'") from None
        if ds is not None:
            if manifest_sha256(ds) != splits.manifest_sha256:
                raise SonoganInputError(path, f"splits were made for another version of the manifest of "
                                        f"'{splits.dataset_name}' (real rows' ids, labels or patients changed)",
                                        "make new splits with 'sonogan data split --out NEW.json'")
            real = set(ds.real()["image_id"])
            unknown = [i for i in splits.groups if i not in real]
            if unknown:
                raise SonoganInputError(path, f"{len(unknown)} image ids are not real rows of the dataset "
                                        f"(first: {unknown[0]})", "make new splits with 'sonogan data split'")
        return splits


def manifest_sha256(ds: Dataset) -> str:
    """sha256 over the real rows' (image_id, label, patient_id), sorted by image_id."""
    real = ds.real().sort_values("image_id")
    h = hashlib.sha256()
    for image_id, label, patient in real[["image_id", "label", "patient_id"]].itertuples(index=False):
        h.update(f"{image_id}\t{label}\t{patient}\n".encode())
    return h.hexdigest()


def split_groups(real: pd.DataFrame, duplicate_groups: dict[str, list[str]]) -> dict[str, str]:
    """image_id -> split group: union-find over shared patient ids and duplicate groups. The
    group is named after the smallest patient id in it, so names are stable."""
    patient_of = dict(zip(real["image_id"], real["patient_id"]))
    links = [[patient_of[i] for i in members if i in patient_of]  # synthetic ids are ignored
             for members in duplicate_groups.values()]
    root = union_find(links, patient_of.values())
    return {i: root[p] for i, p in sorted(patient_of.items())}


def _group_labels(labels: dict[str, str], groups: dict[str, str], classes: list[str]) -> dict[str, str]:
    votes: dict[str, Counter] = {}
    for image_id, g in groups.items():
        votes.setdefault(g, Counter())[labels[image_id]] += 1
    order = {c: k for k, c in enumerate(classes)}
    return {g: min(c, key=lambda lab: (-c[lab], order.get(lab, len(order)), lab)) for g, c in sorted(votes.items())}


def _class_counts(ids: list[str], labels: dict[str, str], classes: list[str]) -> dict[str, int]:
    c = Counter(labels[i] for i in ids)
    return {k: int(c.get(k, 0)) for k in classes}


def make_splits(ds: Dataset, n_folds: int = 5, test_fraction: float = 0.15, seed: int = 0,
                duplicate_groups: dict[str, list[str]] | None = None) -> Splits:
    """Patient-grouped, duplicate-aware, class-stratified hold-out test + ``n_folds`` folds.

    ``duplicate_groups`` (group id -> image ids) defaults to
    ``sonogan.data.duplicates.find_duplicate_groups(ds)``.
    """
    where = f"dataset '{ds.spec.name}'"
    if n_folds < 2:
        raise SonoganInputError(where, f"n_folds={n_folds}", "use at least 2 folds")
    if not 0.0 < test_fraction < 0.5:  # half or more held out leaves too little to train on
        raise SonoganInputError(where, f"test fraction {test_fraction} is not in (0, 0.5)",
                                "use a fraction above 0 and below 0.5, e.g. --test 0.15")
    real = ds.real()
    if real.empty:
        raise SonoganInputError(ds.manifest_path, "no real rows to split", "import real images first")
    if real["image_id"].duplicated().any():
        raise SonoganInputError(ds.manifest_path, "duplicate image_id values", "make image ids unique")
    dup_source = "argument"
    if duplicate_groups is None:
        dup_source = "find_duplicate_groups"
        duplicate_groups = find_duplicate_groups(ds)
    labels = dict(zip(real["image_id"], real["label"]))
    groups = split_groups(real, duplicate_groups)
    group_label = _group_labels(labels, groups, ds.spec.classes)

    # per-class group counts: each class needs one group in test and one in each fold's val
    by_class: dict[str, list[str]] = {}
    for g, lab in group_label.items():
        by_class.setdefault(lab, []).append(g)
    need = max(n_folds + 1, ds.spec.min_patients_per_class)
    for lab in sorted(by_class, key=lambda c: ds.spec.classes.index(c) if c in ds.spec.classes else 0):
        if len(by_class[lab]) < need:
            raise SonoganInputError(
                where, f"class '{lab}' has {len(by_class[lab])} patient groups, fewer than the {need} needed "
                f"(one in test and one in each of {n_folds} folds' val)",
                f"use fewer folds (--folds {max(2, len(by_class[lab]) - 1)}) or add more patients of '{lab}'")

    # Hold-out: per class, shuffle its groups and take round(fraction * n), at least 1. Hand-written
    # because sklearn's StratifiedShuffleSplit may give a tiny class no test group at all.
    rng = np.random.default_rng(seed)
    test_groups: set[str] = set()
    for lab in sorted(by_class):
        members = sorted(by_class[lab])
        k = min(len(members) - n_folds, max(1, int(round(test_fraction * len(members)))))
        test_groups.update(members[j] for j in rng.permutation(len(members))[:k])
    ids = sorted(groups)
    test = [i for i in ids if groups[i] in test_groups]
    dev = [i for i in ids if groups[i] not in test_groups]

    # StratifiedGroupKFold seeds its shuffle with an int; derive it from the seed (not global state)
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    dev_arr = np.array(dev)
    folds = []
    for train_idx, val_idx in sgkf.split(dev_arr, [labels[i] for i in dev], [groups[i] for i in dev]):
        folds.append({"train": sorted(dev_arr[train_idx].tolist()), "val": sorted(dev_arr[val_idx].tolist())})
    for k, f in enumerate(folds):
        missing = [c for c in by_class if c not in {labels[i] for i in f["val"]}]
        if missing:
            raise SonoganInputError(where, f"fold {k} val has no image of class '{missing[0]}' "
                                    "(patient groups too few or too uneven in size)",
                                    "use fewer folds or add more patients of that class")

    classes = list(ds.spec.classes) + sorted(set(labels.values()) - set(ds.spec.classes))
    meta = {
        "class_counts": {
            "all": _class_counts(ids, labels, classes), "test": _class_counts(test, labels, classes),
            "folds": [{p: _class_counts(f[p], labels, classes) for p in ("train", "val")} for f in folds]},
        "n_images": len(ids), "n_groups": len(group_label),
        "n_duplicate_groups_used": sum(1 for m in duplicate_groups.values() if len([i for i in m if i in labels]) > 1),
        "duplicate_groups_from": dup_source, "patients_known": ds.spec.patients_known,
        "sonogan_version": sonogan.__version__,
    }
    return Splits(seed=seed, n_folds=n_folds, test_fraction=test_fraction, dataset_name=ds.spec.name,
                  manifest_sha256=manifest_sha256(ds), test=test, folds=folds, groups=groups, meta=meta)


class SplitParams(StrictModel):
    """How a protocol's splits are made when none are saved yet (a config's ``split:`` section)."""

    folds: int = Field(5, ge=2)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    seed: int = 0


def prepare_splits(ds: Dataset, params: SplitParams, splits: str | None = None,
                   duplicate_groups: dict[str, list[str]] | None = None) -> tuple[Splits, Path]:
    """The saved splits of ``ds`` (``splits``: a config's explicit file), made and saved once when
    none exist yet (where :func:`~sonogan.locations.splits_file` says: never inside a read-only
    dataset). A saved file made with other settings than ``params`` is refused instead of
    silently winning, unless the config named that file on purpose."""
    path = Path(splits) if splits else splits_file(ds.root)
    if path.is_file():
        loaded = Splits.load(path, ds)
        made = {"folds": loaded.n_folds, "test_fraction": loaded.test_fraction, "seed": loaded.seed}
        want = {"folds": params.folds, "test_fraction": params.test_fraction, "seed": params.seed}
        if not splits and made != want:
            raise SonoganInputError(path, f"was made with {made} but the config's split: says {want}",
                                    "make the config's split: match the file, point splits: at the file on purpose, "
                                    "or move the file away to make new splits")
        return loaded, path
    if splits:
        raise SonoganInputError(path, "splits file not found", "run 'sonogan data split' or fix the 'splits' path")
    made_now = make_splits(ds, n_folds=params.folds, test_fraction=params.test_fraction, seed=params.seed,
                           duplicate_groups=duplicate_groups)
    made_now.save(path)
    return made_now, path


def check_partition_ids(ds: Dataset, splits: Splits, fold: int | None, name: str, ids: list[str]) -> None:
    """The leakage guard every consumer calls before using ``ids`` as partition ``name`` of ``fold``.

    Raises SonoganInputError if an id is unknown, if a synthetic id is used outside "train",
    if a synthetic row was generated for another fold (its ``synth_fold`` must equal ``fold``,
    or be "all" when ``fold`` is None), or if a real id is not in that partition.
    """
    where = f"{name} partition of fold {fold}"
    allowed = set(splits.partition(fold, name))  # type: ignore[arg-type]
    m = ds.manifest
    source = dict(zip(m["image_id"], m["source"]))
    synth_fold = dict(zip(m["image_id"], m["synth_fold"]))
    expected_fold = "all" if fold is None else str(fold)
    for i in ids:
        if i not in source:
            raise SonoganInputError(where, f"image_id '{i}' is not in the manifest", "check the dataset and splits")
        if source[i] == "synthetic":
            if name != "train":
                raise SonoganInputError(where, f"synthetic image '{i}' in {name}",
                                        "synthetic images are for training only; evaluate on real images")
            if str(synth_fold[i]) != expected_fold:
                raise SonoganInputError(where, f"synthetic image '{i}' was generated for fold "
                                        f"'{synth_fold[i]}', not {expected_fold}",
                                        "use only synthetic rows made from this fold's training images")
        elif i not in allowed:
            raise SonoganInputError(where, f"real image '{i}' is not in this partition",
                                    "take ids from Splits.partition(fold, name)")
