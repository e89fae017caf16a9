"""Leakage-free splits on hand-built in-memory datasets (no other module's files needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import Dataset, DatasetSpec, normalise_manifest
from sonogan.data.splits import Splits, check_partition_ids, make_splits, split_groups
from sonogan.errors import SonoganInputError

CLASSES = ["benign", "borderline", "malignant"]


def cohort(root: Path, n_patients: int = 300, seed: int = 0, n_dup_pairs: int = 12) -> tuple[Dataset, dict]:
    """300 patients (60/25/15 %), 1-3 images each, some cross-patient duplicate pairs, plus
    phantom-like synthetic rows for folds 0 and 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = CLASSES[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
        for k in range(int(rng.integers(1, 4))):
            rows.append({"image_id": f"p{p:03d}-{k}", "image": f"img/p{p:03d}-{k}.png", "label": label,
                         "patient_id": f"P{p:03d}", "source": "real"})
    real_ids = [r["image_id"] for r in rows]
    dups = {}
    for d in range(n_dup_pairs):
        a, b = rng.choice(len(real_ids), 2, replace=False)
        dups[f"d{d}"] = [real_ids[a], real_ids[b]]
    for s in range(20):
        rows.append({"image_id": f"syn-{s:02d}", "image": f"syn/{s}.png", "label": "borderline",
                     "patient_id": "", "source": "synthetic", "generator": "dcgan", "synth_fold": str(s % 2)})
    spec = DatasetSpec(name="toy", classes=CLASSES, rare_classes=["borderline"])
    return Dataset(root=root, spec=spec, manifest=normalise_manifest(pd.DataFrame(rows), spec)), dups


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    ds, dups = cohort(tmp_path_factory.mktemp("toy"))
    return ds, dups, make_splits(ds, n_folds=5, test_fraction=0.15, seed=0, duplicate_groups=dups)


def partitions(splits: Splits, k: int) -> dict[str, list[str]]:
    return {"train": splits.partition(k, "train"), "val": splits.partition(k, "val"), "test": splits.partition(k, "test")}


def test_no_patient_or_duplicate_group_crosses_partitions(made):
    ds, dups, splits = made
    patient = dict(zip(ds.manifest["image_id"], ds.manifest["patient_id"]))
    for k in range(splits.n_folds):
        parts = partitions(splits, k)
        where = {i: name for name, ids in parts.items() for i in ids}
        seen: dict[str, str] = {}
        for i, name in where.items():
            assert seen.setdefault(patient[i], name) == name, f"patient {patient[i]} in two partitions"
        for members in dups.values():
            assert len({where[i] for i in members}) == 1, f"duplicates {members} split across partitions"


def test_every_real_image_in_exactly_one_place(made):
    ds, _, splits = made
    real = set(ds.real()["image_id"])
    test = set(splits.test)
    vals = [set(f["val"]) for f in splits.folds]
    assert set(splits.groups) == real
    for i in real:
        in_val = [k for k, v in enumerate(vals) if i in v]
        assert (i in test) + len(in_val) == 1
        for k, f in enumerate(splits.folds):
            assert (i in f["train"]) == (i not in test and k not in in_val)
    assert abs(len(test) / len(real) - 0.15) < 0.05
    assert splits.partition(None, "train") == sorted(real - test)


def test_stratification_within_ten_points(made):
    ds, _, splits = made
    label = dict(zip(ds.manifest["image_id"], ds.manifest["label"]))
    real = list(splits.groups)
    overall = {c: np.mean([label[i] == c for i in real]) for c in CLASSES}
    parts = [splits.test] + [f["val"] for f in splits.folds] + [f["train"] for f in splits.folds]
    for ids in parts:
        for c in CLASSES:
            share = np.mean([label[i] == c for i in ids])
            assert abs(share - overall[c]) <= 0.10, (c, share, overall[c])
    counts = splits.meta["class_counts"]
    assert sum(counts["test"].values()) == len(splits.test)
    assert counts["folds"][2]["val"]["malignant"] == sum(label[i] == "malignant" for i in splits.folds[2]["val"])


def test_synthetic_rows_never_split(made):
    _, _, splits = made
    everything = set(splits.test).union(*[set(f["train"]) | set(f["val"]) for f in splits.folds])
    assert not any(i.startswith("syn-") for i in everything | set(splits.groups))


def test_check_partition_ids_guard(made):
    ds, _, splits = made
    check_partition_ids(ds, splits, 0, "train", splits.partition(0, "train") + ["syn-00", "syn-02"])
    check_partition_ids(ds, splits, 1, "val", splits.partition(1, "val"))
    with pytest.raises(SonoganInputError, match="synthetic image 'syn-00' in val"):
        check_partition_ids(ds, splits, 0, "val", ["syn-00"])
    with pytest.raises(SonoganInputError, match="synthetic"):
        check_partition_ids(ds, splits, 0, "test", ["syn-00"])
    with pytest.raises(SonoganInputError, match="generated for fold '1'"):
        check_partition_ids(ds, splits, 0, "train", ["syn-01"])
    with pytest.raises(SonoganInputError, match="not in this partition"):
        check_partition_ids(ds, splits, 0, "train", [splits.test[0]])
    with pytest.raises(SonoganInputError, match="not in this partition"):
        check_partition_ids(ds, splits, 0, "val", splits.partition(1, "val")[:1])
    with pytest.raises(SonoganInputError, match="not in the manifest"):
        check_partition_ids(ds, splits, 0, "train", ["ghost"])


def test_same_seed_identical_file_different_seed_differs(made, tmp_path, monkeypatch):
    ds, dups, _ = made
    paths = []
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        make_splits(ds, seed=seed, duplicate_groups=dups).save(tmp_path / f"{name}.json")
        paths.append(tmp_path / f"{name}.json")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    a, c = json.loads(paths[0].read_text()), json.loads(paths[2].read_text())
    assert a["test"] != c["test"] and a["folds"] != c["folds"]
    for key in ("seed", "n_folds", "test_fraction", "dataset_name", "manifest_sha256", "sonogan_version",
                "class_counts"):
        assert key in a


def test_save_refuses_overwrite_and_load_checks(made, tmp_path):
    ds, _, splits = made
    path = tmp_path / "splits.json"
    splits.save(path)
    with pytest.raises(SonoganInputError, match="already exists"):
        splits.save(path)
    data = json.loads(path.read_text())
    data["some_future_key"] = {"x": 1}
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(data))
    loaded = Splits.load(extra, ds)
    assert loaded.test == splits.test and loaded.folds == splits.folds and loaded.groups == splits.groups
    changed = Dataset(root=ds.root, spec=ds.spec, manifest=ds.manifest.copy())
    changed.manifest.loc[0, "label"] = "malignant" if changed.manifest.loc[0, "label"] != "malignant" else "benign"
    with pytest.raises(SonoganInputError, match="another version of the manifest"):
        Splits.load(path, changed)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SonoganInputError, match="not a sonogan splits file"):
        Splits.load(bad)


def test_too_few_groups_names_the_class(tmp_path):
    ds, _ = cohort(tmp_path, n_patients=300, n_dup_pairs=0)
    m = ds.manifest
    mal = m[(m["label"] == "malignant") & (m["source"] == "real")]["patient_id"].unique()
    keep = m[~m["patient_id"].isin(mal[5:])]  # 5 malignant patients: need 6 for test + 5 folds
    small = Dataset(root=tmp_path, spec=ds.spec, manifest=keep.reset_index(drop=True))
    with pytest.raises(SonoganInputError, match="class 'malignant' has 5 patient groups.*fewer folds"):
        make_splits(small, n_folds=5, duplicate_groups={})
    ok = make_splits(small, n_folds=4, duplicate_groups={})
    assert all(any(ok.groups[i] in set(mal) for i in f["val"]) for f in ok.folds)


def test_union_find_merges_patients_through_duplicates():
    real = pd.DataFrame({"image_id": ["a", "b", "c", "d", "e"], "patient_id": ["P3", "P3", "P2", "P1", "P9"]})
    groups = split_groups(real, {"g1": ["b", "c"], "g2": ["c", "d"], "g3": ["syn-1", "e"]})
    assert groups == {"a": "P1", "b": "P1", "c": "P1", "d": "P1", "e": "P9"}


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9, -0.1])
def test_test_fraction_must_be_in_0_to_half(tmp_path, fraction):
    ds, _ = cohort(tmp_path, n_patients=60, n_dup_pairs=0)
    with pytest.raises(SonoganInputError, match=rf"test fraction {fraction} is not in \(0, 0.5\)"):
        make_splits(ds, test_fraction=fraction, duplicate_groups={})


def test_default_duplicate_groups_come_from_the_images(tmp_path, dh):
    from sonogan.data.manifest import load_dataset, write_dataset

    root = tmp_path / "ds"
    spec, df = dh.make_dataset(root, n_per_class=6)
    write_dataset(root, spec, df.assign(patient_id=df["image_id"]))  # one patient per image
    # malignant-0 is replaced by a byte copy of benign-1: the two must share a split group
    (root / "images/malignant/malignant-0.png").write_bytes((root / "images/benign/benign-1.png").read_bytes())
    splits = make_splits(load_dataset(root), n_folds=2, test_fraction=0.3, seed=0)
    assert splits.meta["duplicate_groups_from"] == "find_duplicate_groups"
    assert splits.meta["n_duplicate_groups_used"] == 1
    assert splits.groups["malignant-0"] == splits.groups["benign-1"] == "benign-1"
    assert len(set(splits.groups.values())) == 11
