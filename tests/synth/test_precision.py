"""The precision switch of the GAN and diffusion loops (issue 17): bf16 close to fp32,
repeatable, exact resume on the fast path, what run.json and the checkpoints record, and the
older channels_last field read as memory_format."""

from __future__ import annotations

import json

import pytest
import torch

from sonogan.synth.config import GanConfig
from sonogan.synth.diffusion import fit_diffusion
from sonogan.synth.diffusion_config import DiffusionConfig
from sonogan.synth.state import gan_precision, load_checkpoint_file
from sonogan.synth.trainer import fit_gan
from sonogan.train import accel

CPU = torch.device("cpu")
FAST = {"precision": "bf16", "memory_format": "channels_last"}


def _last(run) -> dict:
    return load_checkpoint_file(run / "checkpoints" / "last.pt")


def test_bf16_gan_is_close_to_fp32_and_repeats_exactly(tmp_path, tiny_real, tiny_cfg) -> None:
    fp32 = _last(fit_gan(tiny_real, tiny_cfg(precision="fp32"), tmp_path / "fp32"))
    bf16 = _last(fit_gan(tiny_real, tiny_cfg(**FAST), tmp_path / "bf16"))
    again = _last(fit_gan(tiny_real, tiny_cfg(**FAST), tmp_path / "again"))
    assert bf16["history"] == again["history"]  # same config + seed + precision + threads
    assert all(torch.equal(bf16["G"][k], again["G"][k]) for k in bf16["G"])
    assert bf16["history"] != fp32["history"]
    for a, b in zip(fp32["history"], bf16["history"]):
        assert b["d_loss"] == pytest.approx(a["d_loss"], abs=0.05)
        assert b["g_loss"] == pytest.approx(a["g_loss"], abs=0.05)
    assert all(v.dtype == torch.float32 for v in bf16["G"].values() if v.is_floating_point())  # fp32 masters


def test_the_fast_path_resumes_exactly(tmp_path, tiny_real, tiny_cfg) -> None:
    full = _last(fit_gan(tiny_real, tiny_cfg(**FAST), tmp_path / "full"))
    part = fit_gan(tiny_real, tiny_cfg(iterations=3, **FAST), tmp_path / "part")
    resumed = _last(fit_gan(tiny_real, tiny_cfg(iterations=6, **FAST), part, resume=True))
    assert resumed["iteration"] == 6 and resumed["history"] == full["history"]
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(full[net][k], resumed[net][k]) for k in full[net]), net
    assert resumed["opt_g"]["param_groups"][0]["fused"] is True  # fused Adam on the CPU bf16 path


def test_run_json_and_checkpoints_record_the_precision(tmp_path, tiny_real, tiny_cfg, monkeypatch) -> None:
    monkeypatch.setattr(accel, "host_cpu_flags", lambda: "avx2 avx512f avx512_bf16")
    run = fit_gan(tiny_real, tiny_cfg(iterations=3, precision="auto", memory_format="auto"), tmp_path / "run")
    expected = {"device": "cpu", "autocast": "float32", "memory_format": "channels_first", "compile": False,
                "reason": "fp32 + channels_first: dcgan (ngf 4, ndf 4) is not measured in "
                          "benchmarks/results/cpu_speed.json, so the float32 default; channels_first by the GAN "
                          "layout rule (channels_last at 128 px or widths >= 64) on a CPU with avx512_bf16"}
    assert json.loads((run / "run.json").read_text())["precision"] == expected
    assert _last(run)["precision"] == expected


def test_gan_layout_keeps_the_older_rule_and_field() -> None:
    narrow, wide = GanConfig(ngf=32, ndf=32, device="cpu"), GanConfig(device="cpu")
    assert not gan_precision(narrow, CPU).channels_last  # the defaults: as before issue 17
    assert gan_precision(wide, CPU) == accel.Precision(CPU, None, True)
    assert gan_precision(GanConfig(ngf=32, ndf=32, resolution=128), CPU).channels_last
    assert GanConfig(channels_last=False).layout == "channels_first"
    assert not gan_precision(GanConfig(channels_last=False), CPU).channels_last
    assert GanConfig(channels_last=True, memory_format="channels_last").layout == "channels_last"
    with pytest.raises(ValueError, match="contradicts memory_format"):
        GanConfig(channels_last=True, memory_format="channels_first")


def test_bf16_diffusion_trains_close_to_fp32_and_records_it(tmp_path, tiny_real) -> None:
    def run(name: str, **kw) -> dict:
        cfg = DiffusionConfig(widths=(8, 16), norm_groups=8, batch_size=2, iterations=4, checkpoint_every=4,
                              sample_every=100, log_every=1, sample_steps=2, train_timesteps=10, device="cpu", **kw)
        out = fit_diffusion(tiny_real, cfg, tmp_path / name)
        return {"info": json.loads((out / "run.json").read_text()),
                "ckpt": torch.load(out / "checkpoints" / "last.pt", weights_only=True)}

    fp32, bf16 = run("fp32"), run("bf16", **FAST)
    assert fp32["info"]["precision"]["autocast"] == "float32"
    assert bf16["info"]["precision"] == bf16["ckpt"]["precision"]
    assert (bf16["info"]["precision"]["autocast"], bf16["info"]["precision"]["memory_format"]) == \
        ("bfloat16", "channels_last")
    for a, b in zip(fp32["ckpt"]["history"], bf16["ckpt"]["history"]):
        assert b["loss"] == pytest.approx(a["loss"], abs=0.05)


def test_auto_uses_the_measured_narrow_dcgan_row_for_the_dcgan_nets(monkeypatch) -> None:
    """ngf = ndf = 32 (the verdict's GANs) is measured as dcgan-w32; cgan trains the same nets."""
    monkeypatch.setattr(accel, "host_cpu_flags", lambda: "avx2 avx512f avx512_bf16")
    for family in ("dcgan", "cgan"):
        chosen = gan_precision(GanConfig(family=family, ngf=32, ndf=32, precision="auto", memory_format="auto",
                                         device="cpu"), CPU)
        row = accel.CPU_SPEED["dcgan-w32"][64]
        fastest = max(row, key=row.__getitem__)
        assert (chosen.autocast_dtype is not None, chosen.channels_last) == (fastest.startswith("bf16"),
                                                                            fastest.endswith("-cl"))
        assert "dcgan-w32 at 64 px" in chosen.reason
    fp32 = gan_precision(GanConfig(ngf=32, ndf=32, device="cpu"), CPU)
    assert fp32 == accel.Precision(CPU, None, False)  # the float32 default keeps the older rule
