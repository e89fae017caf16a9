"""train_gan / sample_gan on a tiny phantom with real splits and cache: leakage, provenance, errors."""

import copy
import json

from sonogan.synth.trainer import hashed_ids

import pytest

from sonogan.data.manifest import PROVENANCE_COLUMNS, load_dataset
from sonogan.data.splits import Splits, check_partition_ids
from sonogan.errors import SonoganInputError
from sonogan.synth import sample_gan, train_gan
from sonogan.synth.state import load_checkpoint_file


@pytest.fixture(scope="session")
def gan_run(phantom, tmp_path_factory):
    from sonogan.synth.config import GanConfig

    ds, splits = phantom
    cfg = GanConfig(ngf=4, ndf=4, z_dim=8, batch_size=4, iterations=2, checkpoint_every=2, sample_every=2,
                    quality_every=2, quality_samples=8, device="cpu")
    return train_gan(ds, splits, 1, "borderline", cfg, tmp_path_factory.mktemp("gan") / "run", progress=False)


def test_gan_sees_only_its_folds_training_images(phantom, gan_run):
    ds, splits_path = phantom
    splits = Splits.load(splits_path, ds)
    ids = json.loads((gan_run / "run.json").read_text())["training_ids"]
    labels = dict(zip(ds.manifest["image_id"], ds.manifest["label"]))
    train = set(splits.partition(1, "train"))
    expected = sorted(i for i in train if labels[i] == "borderline")
    assert sorted(ids) == sorted(hashed_ids(expected)) and len(ids) >= 2  # hashes: ids can be file names
    others = hashed_ids(splits.partition(1, "val") + splits.partition(1, "test"))
    assert not set(ids) & set(others)
    assert load_checkpoint_file(gan_run / "checkpoints" / "last.pt")["training_ids"] == ids


def test_sampled_dataset_has_provenance(phantom, gan_run, tmp_path):
    ds, splits_path = phantom
    syn = sample_gan(gan_run, 5, tmp_path / "syn", seed=3)
    m = load_dataset(tmp_path / "syn").manifest
    assert len(m) == 5 and set(m["source"]) == {"synthetic"} and set(m["label"]) == {"borderline"}
    assert all(c in m.columns for c in PROVENANCE_COLUMNS)
    assert set(m["generator"]) == {"dcgan"} and set(m["synth_fold"]) == {"1"} and set(m["synth_seed"]) == {"3"}
    assert set(m["synth_run"]) == {gan_run.name} and (m["patient_id"] == m["image_id"]).all()
    assert all(len(s) == 64 for s in m["checkpoint_sha256"])
    assert all((tmp_path / "syn" / p).is_file() for p in m["image"])
    assert syn.spec.classes == ds.spec.classes and syn.spec.masks == "none"
    assert syn.spec.rare_classes == ds.spec.rare_classes and syn.spec.name == f"{ds.spec.name}-synthetic"
    from sonogan.data.validate import validate_dataset

    assert validate_dataset(syn).n_images == 5  # a synthetic-only dataset passes the contract
    # the project's leakage guard accepts these rows as fold-1 training data of a merged table
    merged = copy.copy(ds)
    import pandas as pd
    merged.manifest = pd.concat([ds.manifest, m], ignore_index=True)
    check_partition_ids(merged, Splits.load(splits_path, ds), 1, "train", m["image_id"].tolist())
    # same seed -> same pixels; out folder never overwritten
    again = sample_gan(gan_run, 5, tmp_path / "syn2", seed=3)
    a = (tmp_path / "syn" / m["image"][0]).read_bytes()
    assert a == (tmp_path / "syn2" / again.manifest["image"][0]).read_bytes()
    with pytest.raises(SonoganInputError, match="already exists"):
        sample_gan(gan_run, 5, tmp_path / "syn", seed=3)


def test_bad_inputs_are_input_errors(phantom, tmp_path):
    from sonogan.synth.config import GanConfig

    ds, splits_path = phantom
    cfg = GanConfig(ngf=4, ndf=4, iterations=1)
    with pytest.raises(SonoganInputError, match="unknown class"):
        train_gan(ds, splits_path, 0, "teratoma", cfg, tmp_path / "a", progress=False)
    with pytest.raises(SonoganInputError, match="splits file not found"):
        train_gan(ds, tmp_path / "nope.json", 0, "borderline", cfg, tmp_path / "b", progress=False)
    with pytest.raises(SonoganInputError, match="unknown name"):
        train_gan(ds, splits_path, 0, "borderline", GanConfig(family="biggan"), tmp_path / "c", progress=False)
    splits = Splits.load(splits_path, ds)
    few = copy.deepcopy(splits)
    labels = dict(zip(ds.manifest["image_id"], ds.manifest["label"]))
    keep_one = [i for i in few.folds[0]["train"] if labels[i] == "borderline"][:1]
    few.folds[0]["train"] = [i for i in few.folds[0]["train"] if labels[i] != "borderline"] + keep_one
    with pytest.raises(SonoganInputError, match="at least 2 training images"):
        train_gan(ds, few, 0, "borderline", cfg, tmp_path / "d", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "d").exists()
