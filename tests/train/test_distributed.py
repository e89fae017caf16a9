"""DDP on CPU (gloo, 2 processes): the classifier and GAN loops give the single-process numbers.

Tolerance: weights and losses within ``ATOL`` (absolute) of the single-process run after a
few steps; the only differences are the order of float sums (gradient all-reduce, the
synchronised BatchNorm statistics), about 1e-7 per step. Rank 1 must not create, rename or
open for writing any file (only rank 0 writes); a run interrupted on every rank resumes from
rank 0's checkpoint to the uninterrupted result.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sonogan.synth.config import GanConfig
from sonogan.synth.data import RealImages
from sonogan.synth.trainer import fit_gan
from sonogan.train import distributed as ddp
from sonogan.train.config import AugmentConfig, ClassifierTrainConfig
from sonogan.train.loop import train_classifier

ATOL = 1e-4
WORLD = 2
TIMEOUT_S = 120


class Stop(Exception):
    """Raised on every rank to interrupt a distributed run."""


def _clf_cfg() -> ClassifierTrainConfig:
    # resnet10t has BatchNorm (SyncBatchNorm under DDP); 21 images in batches of 8: the last
    # batch of 5 splits 3 / 2, so the unequal-shard loss weighting is exercised; augmentation on
    return ClassifierTrainConfig(model="resnet10t", image_size=16, epochs=3, batch_size=8, optimizer="sgd",
                                 lr=0.01, patience=None, seed=3, device="cpu", num_threads=1,
                                 augment=AugmentConfig.frid_adar())


def _clf_data() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x, vx = torch.randn(21, 1, 16, 16, generator=g), torch.randn(6, 1, 16, 16, generator=g)
    return x, torch.arange(21) % 2, vx, torch.arange(6) % 2


def _gan_cfg(iterations: int) -> GanConfig:
    return GanConfig(ngf=4, ndf=4, z_dim=8, batch_size=4, iterations=iterations, checkpoint_every=3,
                     sample_every=3, log_every=1, quality_every=3, quality_samples=8,
                     diffaugment="color,translation,cutout", ema_decay=0.9, device="cpu")


def _gan_data() -> RealImages:
    g = torch.Generator().manual_seed(0)
    return RealImages(images=torch.rand(8, 1, 64, 64, generator=g) * 2 - 1, labels=torch.tensor([0, 1] * 4),
                      ids=[f"img-{k}" for k in range(8)], classes=["benign", "borderline"])


def _run_classifier(out: str, stop_at: int | None = None) -> dict:
    x, y, vx, vy = _clf_data()
    real_seed = ddp.seed_rank

    def seed_then_stop(seed: int, epoch: int) -> None:  # called on every rank at each epoch start
        if epoch == stop_at:
            raise Stop
        real_seed(seed, epoch)
    ddp.seed_rank = seed_then_stop
    try:
        res = train_classifier(_clf_cfg(), x, y, vx, vy, out, ["a", "b"])
    except Stop:
        return {}
    finally:
        ddp.seed_rank = real_seed
    return {"weights": res.model.state_dict(), "history": res.history}


def _run_gan(out: str, iterations: int, resume: bool) -> dict:
    out = Path(out)
    fit_gan(_gan_data(), _gan_cfg(iterations), out, resume=resume)
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True) if ddp.is_main() else {}
    return {"G": ckpt.get("G"), "D": ckpt.get("D"), "history": ckpt.get("history")}


def _spy_writes(log: list[str], harness: Path) -> None:
    """Record every file or folder rank > 0 creates, renames or opens for writing."""
    real_open, real_replace, real_mkdir = builtins.open, os.replace, os.mkdir

    def spy_open(file, mode="r", *a, **kw):  # noqa: ANN001, ANN202
        if any(c in str(mode) for c in "wax+") and harness not in Path(str(file)).parents:
            log.append(f"open {file}")
        return real_open(file, mode, *a, **kw)

    def spy_replace(src, dst, *a, **kw):  # noqa: ANN001, ANN202
        log.append(f"replace {dst}")
        return real_replace(src, dst, *a, **kw)

    def spy_mkdir(path, *a, **kw):  # noqa: ANN001, ANN202
        log.append(f"mkdir {path}")
        return real_mkdir(path, *a, **kw)

    builtins.open, os.replace, os.mkdir = spy_open, spy_replace, spy_mkdir


def _worker(harness: Path, jobs: list[list]) -> None:
    """One rank, started by torchrun (this file run as a script)."""
    torch.set_num_threads(1)
    assert ddp.init_from_env() and ddp.world_size() == WORLD
    writes: list[str] = []
    if ddp.rank() > 0:
        _spy_writes(writes, harness)
    results = [(_run_classifier if kind == "classifier" else _run_gan)(*args) for kind, *args in jobs]
    torch.save({"results": results, "writes": writes}, harness / f"rank{ddp.rank()}.pt")


def _torchrun(tmp_path: Path, jobs: list[list]) -> list[dict]:
    """Run ``jobs`` in WORLD gloo processes under torchrun; each rank's results and recorded writes."""
    harness = tmp_path / "harness"
    harness.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
           __file__, str(harness), json.dumps(jobs)]
    # a session of its own: a hung run is killed with all its ranks
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output[-4000:]
    return [torch.load(harness / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=ATOL, rtol=0), k


def test_shard_helpers_are_identities_in_one_process() -> None:
    x = torch.arange(6.0).view(6, 1)
    assert ddp.shard_bounds(6) == (0, 6) and ddp.shard_weight(6) == 1.0 and ddp.world_size() == 1
    assert ddp.shard_apply(lambda t: t * 2, x, 6).equal(x * 2) and ddp.all_sum(x) is x
    assert ddp.broadcast_flag(True) and ddp.wrap(torch.nn.BatchNorm1d(1), torch.device("cpu")).__class__ \
        is torch.nn.BatchNorm1d


@pytest.mark.slow
def test_classifier_ddp_equals_single_process_and_resumes(tmp_path) -> None:
    torch.set_num_threads(1)
    x, y, vx, vy = _clf_data()
    single = train_classifier(_clf_cfg(), x, y, vx, vy, tmp_path / "single", ["a", "b"])
    ranks = _torchrun(tmp_path, [["classifier", str(tmp_path / "ddp")], ["classifier", str(tmp_path / "cut"), 2],
                                 ["classifier", str(tmp_path / "cut")]])
    for r in ranks:
        full, cut, resumed = r["results"]
        assert cut == {}
        _assert_close(full["weights"], single.model.state_dict())
        _assert_close(resumed["weights"], full["weights"])
        for got in (full["history"], resumed["history"]):
            for a, b in zip(got, single.history, strict=True):
                assert abs(a["train_loss"] - b["train_loss"]) < ATOL and abs(a["val_loss"] - b["val_loss"]) < ATOL
                assert a["train_acc"] == pytest.approx(b["train_acc"]) and a["val_acc"] == b["val_acc"]
    assert ranks[1]["writes"] == []
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["best.pt", "history.json", "last.pt"]
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())["epochs"]) == 3


@pytest.mark.slow
def test_gan_ddp_equals_single_process_and_resumes(tmp_path) -> None:
    torch.set_num_threads(1)
    fit_gan(_gan_data(), _gan_cfg(6), tmp_path / "single")
    single = torch.load(tmp_path / "single" / "checkpoints" / "last.pt", weights_only=True)
    ranks = _torchrun(tmp_path, [["gan", str(tmp_path / "ddp"), 6, False], ["gan", str(tmp_path / "cut"), 3, False],
                                 ["gan", str(tmp_path / "cut"), 6, True]])
    full, _, resumed = ranks[0]["results"]
    for got in (full, resumed):
        _assert_close(got["G"], single["G"])
        _assert_close(got["D"], single["D"])
        for a, b in zip(got["history"], single["history"], strict=True):
            assert abs(a["d_loss"] - b["d_loss"]) < ATOL and abs(a["g_loss"] - b["g_loss"]) < ATOL
    assert ranks[1]["writes"] == []
    assert (tmp_path / "ddp" / "metrics.json").is_file() and (tmp_path / "ddp" / "grids").is_dir()


def test_gan_batch_must_split_evenly(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(ddp, "world_size", lambda: 3)
    with pytest.raises(Exception, match="split evenly"):
        fit_gan(_gan_data(), _gan_cfg(1), tmp_path / "gan")
    assert not (tmp_path / "gan").exists()


if __name__ == "__main__":  # a rank started by _torchrun
    _worker(Path(sys.argv[1]), json.loads(sys.argv[2]))
