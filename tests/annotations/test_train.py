"""Remover training on a clean phantom: it improves the annotated region on held-out pairs,
resumes exactly, keeps to the training partition, and the clean-image filter works."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan.annotations.images import load_clean_images, marker_fraction
from sonogan.annotations.train import RemoverTask, RemoverTrainConfig, fit, train_remover
from sonogan.config import load_config
from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.models.remover import REMOVERS, build_nets

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "annotations"


def test_tiny_training_improves_the_annotated_region(clean_phantom, tmp_path, tiny_cfg):
    path = train_remover(clean_phantom, tmp_path / "run", tiny_cfg(iterations=40))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert path.is_file() and m["n_pairs"] == 16
    assert m["after"]["region_psnr"] > m["before"]["region_psnr"] + 1.0     # ~11.5 -> ~14 dB
    assert m["after"]["region_mae"] < m["before"]["region_mae"]
    # the detector is scored on both images of every held-out pair: a count out of 2 * 16
    correct = m["detector_accuracy"] * 2 * m["n_pairs"]
    assert correct == round(correct)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "completed" and run["kind"] == "annotation-remover" and run["splits_sha256"]
    ds = load_dataset(clean_phantom)
    train_ids = Splits.load(clean_phantom / "splits.json", ds).partition(0, "train")
    assert m["n_train_images"] == len(train_ids)


class _Killed(Exception):
    pass


def test_resume_continues_exactly(clean_phantom, tmp_path, tiny_cfg):
    ds = load_dataset(clean_phantom)
    data = load_clean_images(ds, Splits.load(clean_phantom / "splits.json", ds).partition(0, "train"), 64)
    cfg = tiny_cfg(iterations=25, checkpoint_every=10)   # periods of 10, 10 and 5 iterations
    straight, _, history = fit(data, cfg, tmp_path / "straight", log=lambda _: None)
    assert [h["iteration"] for h in history] == [10, 20, 25]

    def kill_after_20(line: str) -> None:  # the log line of a checkpoint comes after its files
        if line.startswith("iteration 20:"):
            raise _Killed

    with pytest.raises(_Killed):
        fit(data, cfg, tmp_path / "killed", log=kill_after_20)
    lines: list[str] = []
    resumed, _, history2 = fit(data, cfg, tmp_path / "killed", resume=True, log=lines.append)
    assert lines[0] == "resumed at iteration 20" and history2 == history
    for (key, value), value2 in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(value, value2), key
    # the same folder with another config: refused in one line
    with pytest.raises(SonoganInputError, match="another config"):
        fit(data, cfg.model_copy(update={"lr": 0.01}), tmp_path / "killed", resume=True, log=lines.append)


def test_one_adam_over_both_nets_is_two_separate_steps(tiny_cfg):
    """The loop steps remover and detector with one Adam (a parameter group each) on the sum of
    their losses; as they share no parameter, that is the two separate Adam steps it replaced."""
    cfg = tiny_cfg(lr=1e-3, detector_lr=3e-3)
    torch.manual_seed(0)
    nets = torch.nn.ModuleDict(dict(zip(("remover", "detector"), build_nets(cfg.remover))))
    twin = copy.deepcopy(nets)
    g = torch.Generator().manual_seed(1)
    batch = {"annotated": torch.rand(4, 3, 32, 32, generator=g), "clean": torch.rand(4, 3, 32, 32, generator=g),
             "mask": (torch.rand(4, 1, 32, 32, generator=g) > 0.9).float()}
    task = RemoverTask(cfg.loss)
    one = torch.optim.Adam([{"params": nets["remover"].parameters(), "lr": cfg.lr},
                            {"params": nets["detector"].parameters(), "lr": cfg.detector_lr}])
    two = [torch.optim.Adam(twin["remover"].parameters(), lr=cfg.lr),
           torch.optim.Adam(twin["detector"].parameters(), lr=cfg.detector_lr)]
    for step in range(2):
        torch.manual_seed(step)  # the same dropout masks on both sides
        loss, sums = task.batch_loss(nets, batch)
        one.zero_grad()
        loss.backward()
        one.step()
        # the old loop: the remover's loss and step, then the detector's
        torch.manual_seed(step)
        pred, gate = twin["remover"].restore(batch["annotated"])
        rem_loss = task.loss_fn(pred, batch["clean"], batch["mask"], gate)
        two[0].zero_grad()
        rem_loss.backward()
        two[0].step()
        det_loss = task.ce(twin["detector"](torch.cat([batch["annotated"][:2], batch["clean"][2:]])),
                           torch.tensor([1, 1, 0, 0]))
        two[1].zero_grad()
        det_loss.backward()
        two[1].step()
        assert float(sums["loss"][0]) == float(rem_loss) and float(sums["detector_loss"][0]) == float(det_loss)
    for (key, a), b in zip(nets.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), key


def test_marker_fraction_and_the_clean_filter(clean_phantom):
    img = np.full((10, 10, 3), 80, np.uint8)
    img[0, :5] = (255, 230, 0)                      # 5 yellow pixels of 100
    img[1, :5] = (0, 0, 255)                        # blue: not a marker colour
    assert marker_fraction(img) == pytest.approx(0.05)
    ds = load_dataset(clean_phantom)
    ids = Splits.load(clean_phantom / "splits.json", ds).partition(0, "train")
    kept = load_clean_images(ds, ids, 32, max_marker=0.0)          # grey phantom: no marker colour at all
    assert kept.ids == ids and kept.images[0].shape == (32, 32, 3) and kept.masks[0].any()
    with pytest.raises(SonoganInputError, match="no clean image left"):
        load_clean_images(ds, ids, 32, max_marker=-1.0)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_remover_configs_parse(path):
    cfg = load_config(RemoverTrainConfig, path)
    assert cfg.remover.model in REMOVERS and cfg.loss.alpha == 300.0


def test_resume_uses_the_runs_own_config_and_refuses_another(clean_phantom, tmp_path, tiny_cfg, cli):
    cfg = tiny_cfg(iterations=10, checkpoint_every=5, eval_pairs=4)
    train_remover(clean_phantom, tmp_path / "run", cfg)
    with pytest.raises(SonoganInputError, match="started with another config"):
        train_remover(clean_phantom, tmp_path / "run", cfg.model_copy(update={"lr": 0.01}), resume=True)
    code, out, err = cli(["annotations", "train", "--resume", str(tmp_path / "run")])
    assert code == 0, err
    assert "resumed at iteration 10" in (tmp_path / "run" / "log.txt").read_text()
