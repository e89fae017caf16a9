"""The lesion loop: a killed run resumes to the same weights; checkpoints rebuild their model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.lesion.config import LesionTrainConfig
from sonogan.lesion.train import load_lesion, predict, read_lesion, train_lesion
from sonogan.models.multitask import LesionModelConfig

MCFG = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs="multitask", num_classes=2)


def _data(n: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"image": torch.randn(n, 1, 32, 32, generator=g), "mask": (torch.rand(n, 1, 32, 32, generator=g) > .5).float(),
            "has_mask": torch.tensor([True, False] * (n // 2)), "label": torch.arange(n) % 2}


def test_a_changed_config_is_refused_and_runs_repeat_exactly(tmp_path: Path) -> None:
    tcfg = LesionTrainConfig(image_size=32, epochs=2, batch_size=4)
    full = train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path / "a")
    one = train_lesion(MCFG, tcfg.model_copy(update={"epochs": 1}), "multitask", {}, _data(), _data(4), tmp_path / "b")
    assert len(one.history) == 1
    # the "killed" run's last.pt was written for a 1-epoch config: a 2-epoch resume refuses it
    with pytest.raises(SonoganInputError, match="another config"):
        train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path / "b")
    # same config + seed on CPU = same numbers
    again = train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path / "c")
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in full.history]


class _Stop(Exception):
    pass


def _stop_after(k: int):
    def hook(epoch: int, record: dict) -> None:  # kill the run right after epoch k's files are written
        if epoch == k:
            raise _Stop
    return hook


def test_resume_continues_mid_run(tmp_path: Path) -> None:
    # every task kind on the loop itself: tests/train/test_supervised.py; here the lesion entry point
    tcfg = LesionTrainConfig(image_size=32, epochs=3, batch_size=4)
    full = train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path / "full")
    with pytest.raises(_Stop):
        train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path / "cut", on_epoch_end=_stop_after(1))
    resumed = train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path / "cut")
    assert resumed.history == full.history and resumed.best_epoch == full.best_epoch
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_truncated_last_pt_is_one_line_naming_the_file(tmp_path: Path) -> None:
    tcfg = LesionTrainConfig(image_size=32, epochs=2, batch_size=4)
    with pytest.raises(_Stop):
        train_lesion(MCFG, tcfg, "multitask", {}, _data(), None, tmp_path, on_epoch_end=_stop_after(1))
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:200])
    with pytest.raises(SonoganInputError) as err:
        train_lesion(MCFG, tcfg, "multitask", {}, _data(), None, tmp_path)
    assert str(last) in str(err.value) and "truncated" in str(err.value) and "delete last.pt" in str(err.value)
    assert "\n" not in str(err.value)


def test_checkpoint_rebuilds_the_model(tmp_path: Path) -> None:
    tcfg = LesionTrainConfig(image_size=32, epochs=1, batch_size=4)
    res = train_lesion(MCFG, tcfg, "multitask", {}, _data(), _data(4), tmp_path, meta={"class_names": ["a", "b"]})
    model, meta = load_lesion(tmp_path / "best.pt")
    assert meta["class_names"] == ["a", "b"] and meta["model_config"]["outputs"] == "multitask"
    x = _data(4)
    assert (predict(model, x)["proba"] == predict(res.model, x)["proba"]).all()
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(SonoganInputError, match="not a sonogan lesion"):
        read_lesion(tmp_path / "x.pt")


def test_init_state_loads_matching_tensors_and_leaves_a_new_head_fresh(tmp_path: Path) -> None:
    tcfg = LesionTrainConfig(image_size=32, epochs=1, batch_size=4, lr=1e-9)
    pre = train_lesion(MCFG.model_copy(update={"num_classes": 3}), tcfg, "multitask", {},
                       dict(_data(), label=torch.arange(8) % 3), None, tmp_path / "pre",
                       meta={"class_names": ["a", "b", "c"]})
    state = pre.model.state_dict()
    tuned = train_lesion(MCFG, tcfg, "multitask", {}, _data(), None, tmp_path / "tuned", init_state=state).model.state_dict()
    enc = [k for k in tuned if k.startswith("backbone.encoder.") and k.endswith("weight")]
    assert enc and all(torch.allclose(tuned[k], state[k], atol=1e-6) for k in enc)   # lr ~0: still the pre-trained ones
    assert tuned["head.mlp.3.weight"].shape != state["head.mlp.3.weight"].shape      # 2 vs 3 classes: fresh
