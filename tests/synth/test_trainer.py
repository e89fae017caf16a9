"""The one loop: run folder, determinism, identical continuation after resume, stopping rule."""

import json
import shutil

import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.synth.state import load_checkpoint_file
from sonogan.synth.trainer import fit_gan, hashed_ids

STATE_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d")


def _assert_same(a: dict, b: dict) -> None:
    for key in STATE_KEYS:
        sa, sb = a[key], b[key]
        if key.startswith("opt"):
            sa = {k: v["exp_avg"] for k, v in sa["state"].items()}
            sb = {k: v["exp_avg"] for k, v in sb["state"].items()}
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{key}.{k} differs"


def test_run_folder_contents(tmp_path, tiny_real, tiny_cfg):
    run = fit_gan(tiny_real, tiny_cfg(), tmp_path / "run")
    for name in ("config.yaml", "run.json", "log.txt", "metrics.json", "losses.json", "loss_curves.png",
                 "final_vs_real.png", "checkpoints/last.pt", "checkpoints/best.pt",
                 "grids/iter_000003.png", "grids/iter_000006.png"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["training_ids"] == hashed_ids(tiny_real.ids) and info["status"] == "completed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iterations"] == 6 and [q["iteration"] for q in metrics["fd_curve"]] == [3, 6]
    ckpt = load_checkpoint_file(run / "checkpoints" / "last.pt")  # weights_only=True loads it
    assert ckpt["iteration"] == 6 and ckpt["training_ids"] == hashed_ids(tiny_real.ids)
    assert set(ckpt["rng"]) == {"torch", "numpy"} and ckpt["config"]["ngf"] == 4
    assert [h["iteration"] for h in ckpt["history"]] == [2, 3, 4, 6]


def test_same_seed_is_identical_and_other_seed_differs(tmp_path, tiny_real, tiny_cfg):
    a = fit_gan(tiny_real, tiny_cfg(), tmp_path / "a")
    b = fit_gan(tiny_real, tiny_cfg(), tmp_path / "b")
    c = fit_gan(tiny_real, tiny_cfg(seed=1), tmp_path / "c")
    ca, cb, cc = (load_checkpoint_file(r / "checkpoints" / "last.pt") for r in (a, b, c))
    _assert_same(ca, cb)
    assert ca["history"] == cb["history"]
    assert not torch.equal(ca["G"]["project.weight"], cc["G"]["project.weight"])


@pytest.mark.parametrize("family", ["dcgan", "wgan-gp", "acgan"])
def test_resume_gives_identical_continuation(tmp_path, tiny_real, tiny_cfg, family):
    kw = {"family": family, "n_critic": 2 if family == "wgan-gp" else 1}
    full = fit_gan(tiny_real, tiny_cfg(**kw), tmp_path / "full")
    part = fit_gan(tiny_real, tiny_cfg(iterations=3, **kw), tmp_path / "part")
    assert load_checkpoint_file(part / "checkpoints" / "last.pt")["iteration"] == 3
    fit_gan(tiny_real, tiny_cfg(iterations=6, **kw), part, resume=True)
    a = load_checkpoint_file(full / "checkpoints" / "last.pt")
    b = load_checkpoint_file(part / "checkpoints" / "last.pt")
    assert b["iteration"] == 6
    _assert_same(a, b)
    assert a["history"] == b["history"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_resume_after_a_kill_before_the_first_checkpoint_starts_over(tmp_path, tiny_real, tiny_cfg):
    full = fit_gan(tiny_real, tiny_cfg(), tmp_path / "full")
    killed = tmp_path / "killed"  # as left by a kill -9 during the first iterations: run.json, no checkpoint
    fit_gan(tiny_real, tiny_cfg(), killed)
    for leftover in ("checkpoints", "grids"):
        shutil.rmtree(killed / leftover)
    (killed / "metrics.json").unlink()
    fit_gan(tiny_real, tiny_cfg(), killed, resume=True)
    _assert_same(load_checkpoint_file(full / "checkpoints" / "last.pt"),
                 load_checkpoint_file(killed / "checkpoints" / "last.pt"))


def test_resume_refuses_other_training_images(tmp_path, tiny_real, tiny_cfg):
    run = fit_gan(tiny_real, tiny_cfg(iterations=3), tmp_path / "r")
    tiny_real.ids[0] = "someone-else"
    with pytest.raises(SonoganInputError, match="training images differ"):
        fit_gan(tiny_real, tiny_cfg(iterations=6), run, resume=True)


def test_early_stopping_after_patience(tmp_path, tiny_real, tiny_cfg):
    # lr 0 freezes G: the distance never improves after the first check -> stop after 2 more checks.
    cfg = tiny_cfg(iterations=40, quality_every=2, checkpoint_every=50, patience=2, lr_g=1e-12, lr_d=1e-12,
                   ema_decay=0.0, diffaugment="")
    run = fit_gan(tiny_real, cfg, tmp_path / "stop")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["iterations"] < 40
    assert load_checkpoint_file(run / "checkpoints" / "last.pt")["iteration"] == metrics["iterations"]
    assert (run / "checkpoints" / "best.pt").is_file()


def test_out_folder_is_never_overwritten(tmp_path, tiny_real, tiny_cfg):
    run = fit_gan(tiny_real, tiny_cfg(iterations=2), tmp_path / "r")
    with pytest.raises(SonoganInputError, match="already exists"):
        fit_gan(tiny_real, tiny_cfg(iterations=2), run)


def test_init_from_another_run_and_refuse_one_that_does_not_fit(tmp_path, tiny_real, tiny_cfg):
    base = fit_gan(tiny_real, tiny_cfg(), tmp_path / "base")
    tuned = fit_gan(tiny_real, tiny_cfg(), tmp_path / "tuned", init=base / "checkpoints" / "last.pt")
    fresh = fit_gan(tiny_real, tiny_cfg(), tmp_path / "fresh")
    a, b = (load_checkpoint_file(r / "checkpoints" / "last.pt")["G"] for r in (tuned, fresh))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # same seed, other start: other weights
    info = json.loads((tuned / "run.json").read_text())
    assert info["init_from"] == "base"
    wide = fit_gan(tiny_real, tiny_cfg(ngf=8), tmp_path / "wide")
    with pytest.raises(SonoganInputError, match="does not fit"):
        fit_gan(tiny_real, tiny_cfg(), tmp_path / "bad", init=wide / "checkpoints" / "last.pt")
    assert not (tmp_path / "bad").exists()  # refused before any folder was made
