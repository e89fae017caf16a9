"""A saved classifier rebuilds itself exactly from the file."""

from __future__ import annotations

import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.checkpoint import load_classifier, save_classifier
from sonogan.models.classifiers import create_classifier
from sonogan.preprocess.fold import Normaliser


@pytest.mark.parametrize("name,kw", [("frid-adar-cnn", {"drop_rate": 0.3}), ("resnet10t", {})])
def test_round_trip_rebuilds_identical_model(tmp_path, name: str, kw: dict) -> None:
    torch.manual_seed(1)
    model = create_classifier(name, num_classes=4, in_chans=1, **kw).eval()
    path = save_classifier(tmp_path / "m.pt", model, name, 4, 1, ["a", "b", "c", "d"],
                           preprocess={"preset": "roi64"}, normaliser=Normaliser((0.4,), (0.2,)), image_size=64,
                           extra={"epoch": 3})
    loaded, meta = load_classifier(path)
    x = torch.randn(3, 1, 64, 64)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert meta["class_names"] == ["a", "b", "c", "d"]
    assert Normaliser.from_dict(meta["normaliser"]) == Normaliser((0.4,), (0.2,))
    assert meta["input"] == {"in_chans": 1, "image_size": 64, "tta": "none"}
    assert meta["preprocess"] == {"preset": "roi64"} and meta["extra"] == {"epoch": 3}
    assert meta["config"]["model_kwargs"] == kw
    if name == "frid-adar-cnn":
        assert loaded.drop.p == 0.3


def test_bad_files_raise_input_errors(tmp_path) -> None:
    with pytest.raises(SonoganInputError, match="not found"):
        load_classifier(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SonoganInputError, match="not a sonogan checkpoint|empty, truncated or corrupt"):
        load_classifier(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    with pytest.raises(SonoganInputError, match="not a sonogan"):
        load_classifier(plain)
    with pytest.raises(SonoganInputError, match="class names"):
        save_classifier(tmp_path / "x.pt", create_classifier("frid-adar-cnn", 3), "frid-adar-cnn", 3, 1, ["a"])


def test_format_1_files_still_load(tmp_path) -> None:
    model = create_classifier("frid-adar-cnn", num_classes=2, in_chans=1).eval()
    path = save_classifier(tmp_path / "m.pt", model, "frid-adar-cnn", 2, 1, ["a", "b"],
                           extra={"train_config": {"image_size": 64}})
    blob = torch.load(path, weights_only=True)
    del blob["normaliser"], blob["input"]
    blob.update(format_version=1, norm=[0.4, 0.2])
    torch.save(blob, path)
    _, meta = load_classifier(path)
    assert meta["normaliser"] == {"mean": [0.4], "std": [0.2], "offset": 0.0}
    assert meta["input"] == {"in_chans": 1, "image_size": 64, "tta": "none"}
