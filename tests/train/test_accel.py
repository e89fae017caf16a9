"""Precision and GPU settings: identities on CPU; the CUDA choices (dtype, scaler, layout, cuDNN
autotuning) by construction."""

from __future__ import annotations

import pytest
import torch

from sonogan.synth.config import GanConfig
from sonogan.train import accel

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_cpu_run_is_untouched() -> None:
    x = torch.randn(2, 3, 4, 4)
    model = torch.nn.Conv2d(3, 3, 1)
    assert accel.to_device(x, CPU) is x and accel.pinned(x, CPU) is x and not x.is_pinned()
    precision = accel.precision_for(CPU, amp=True)
    assert precision == accel.Precision(CPU, None, False)
    assert precision.model(model) is model and model.weight.is_contiguous() and precision.inputs(x) is x
    assert not precision.scaler().is_enabled() and not torch.is_autocast_enabled("cpu")
    with precision.autocast():  # float32 eager: no autocast context at all
        assert not torch.is_autocast_enabled("cpu")
    assert accel.compiled(model, False) is model


@pytest.mark.parametrize("bf16, dtype, scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_precision_is_bf16_where_supported(monkeypatch, bf16: bool, dtype: torch.dtype, scaled: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert accel.amp_dtype(CUDA) == dtype and accel.amp_dtype(CPU) == torch.float16
    precision = accel.precision_for(CUDA, amp=True)
    assert precision == accel.Precision(CUDA, dtype, True)
    assert precision.describe() == {"device": "cuda", "autocast": str(dtype)[6:], "memory_format": "channels_last",
                                    "compile": False, "reason": ""}
    assert precision.loss_scaling is scaled
    assert accel.precision_for(CUDA, amp=False, channels_last=False) == accel.Precision(CUDA, None, False)


def test_cudnn_autotuning_on_cuda_unless_determinism_is_asked(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    accel.setup_device(CPU)
    assert torch.backends.cudnn.benchmark is False
    accel.setup_device(CUDA)
    assert torch.backends.cudnn.benchmark is True
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    accel.setup_device(CUDA)
    assert torch.backends.cudnn.benchmark is False


def test_channels_last_layout_when_asked() -> None:
    x = accel.to_device(torch.randn(2, 3, 4, 4), CPU, channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last)
    precision = accel.Precision(CPU, None, channels_last=True)
    model = precision.model(torch.nn.Conv2d(3, 3, 1))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert precision.inputs(torch.randn(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)
    assert precision.inputs(torch.arange(2)).shape == (2,)  # labels keep their layout


def test_compile_option_refuses_the_double_backward_family() -> None:
    assert GanConfig(compile=True).compile
    with pytest.raises(ValueError, match="wgan-gp"):
        GanConfig(family="wgan-gp", compile=True)


@pytest.mark.slow
def test_compiled_classifier_trains_like_eager(tmp_path) -> None:
    """compile: true runs through torch.compile (inductor, ~1 min to compile on a CPU) to the eager numbers."""
    from sonogan.train.config import ClassifierTrainConfig
    from sonogan.train.loop import train_classifier

    x, y = torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 2
    runs = [train_classifier(ClassifierTrainConfig(image_size=16, epochs=2, batch_size=8, device="cpu", compile=c,
                                                   model_kwargs={"drop_rate": 0.0}, patience=None),
                             x, y, x, y, tmp_path / str(c), ["a", "b"]) for c in (False, True)]
    eager, comp = (r.model.state_dict() for r in runs)
    assert all(torch.allclose(eager[k], comp[k], atol=1e-6) for k in eager)
    assert runs[1].history[-1]["train_loss"] == pytest.approx(runs[0].history[-1]["train_loss"], abs=1e-6)


# ---- the CPU resolver (issue 17): flags, the measured table, reasons ----------------------------

BF16 = "fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16"
AMX = "fpu avx2 avx512f amx_tile amx_bf16"
PLAIN = "fpu sse2 avx2 fma avx512f avx512_vnni"
# a hand-written table, so the tests do not move when the lead replaces the provisional values
TABLE = {"netx": {160: {"fp32": 10.0, "fp32-cl": 18.0, "bf16": 13.0, "bf16-cl": 14.0},
                  224: {"fp32": 4.0, "fp32-cl": 5.0, "bf16": 6.0, "bf16-cl": 5.5}},
         "gan": {64: {"fp32": 50.0, "fp32-cl": 50.0, "bf16": 90.0, "bf16-cl": 100.0}},
         "close": {160: {"fp32": 10.0, "fp32-cl": 20.0, "bf16": 15.0, "bf16-cl": 20.5}}}


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setattr(accel, "CPU_SPEED", TABLE)


@pytest.mark.parametrize("flags, expected", [(BF16, "avx512_bf16"), (AMX, "amx_bf16"), (PLAIN, None), ("", None),
                                             ("FPU AVX512_BF16", "avx512_bf16"), ("avx512_bf16x", None)])
def test_native_bf16_is_read_from_the_flags(flags: str, expected: str | None) -> None:
    assert accel.bf16_flag(flags) == expected


@pytest.mark.parametrize("family, size, flags, dtype, channels_last", [
    ("netx", 160, BF16, None, True),             # fp32-cl 18 beats bf16-cl 14 and bf16 13
    ("netx", 224, BF16, torch.bfloat16, False),  # bf16 6 beats bf16-cl 5.5 and fp32-cl 5
    ("netx", 224, PLAIN, None, True),            # no native bf16: the best fp32 variant, fp32-cl 5
    ("netx", 200, AMX, torch.bfloat16, False),   # 200 px: nearest measured is 224
    ("netx", 96, BF16, None, True),              # 96 px: nearest measured is 160
    ("netx", 192, BF16, None, True),             # equidistant from 160 and 224: the smaller size
    ("gan", 64, BF16, torch.bfloat16, True),
    ("gan", 64, PLAIN, None, False),             # fp32 50 = fp32-cl 50: a tie keeps channels_first
    ("other", 160, BF16, None, False),           # not measured: the float32 default
    ("close", 160, BF16, None, True),            # bf16-cl 20.5 < 1.05 x fp32-cl 20: not clearly faster
])
def test_auto_takes_the_fastest_measured_variant_the_cpu_allows(table, family, size, flags, dtype,
                                                                channels_last) -> None:
    chosen = accel.resolve_precision(CPU, "auto", "auto", family=family, size=size, flags=flags)
    assert chosen == accel.Precision(CPU, dtype, channels_last)


def test_a_fixed_half_narrows_the_choice_of_the_other(table) -> None:
    fp32 = accel.resolve_precision(CPU, "fp32", "auto", family="gan", size=64, flags=BF16)
    assert fp32 == accel.Precision(CPU, None, False)  # 50 vs 50: channels_first
    cf = accel.resolve_precision(CPU, "auto", "channels_first", family="netx", size=160, flags=BF16)
    assert cf == accel.Precision(CPU, torch.bfloat16, False)  # bf16 13 beats fp32 10
    explicit = accel.resolve_precision(CPU, "bf16", "channels_last", family="other", size=64, flags=PLAIN)
    assert explicit == accel.Precision(CPU, torch.bfloat16, True)  # asked for: also without native bf16


def test_reasons_name_the_choice_the_source_and_the_cpu(table) -> None:
    def reason(*args: str, family: str = "netx", size: int = 160, flags: str = BF16, **kw) -> str:
        return accel.resolve_precision(CPU, *args, family=family, size=size, flags=flags, **kw).reason

    src = "benchmarks/results/cpu_speed.json"
    assert reason("auto", "auto", size=224) == \
        f"bf16 + channels_first: fastest for netx at 224 px in {src} on a CPU with avx512_bf16"
    assert reason("auto", "auto", flags=PLAIN) == \
        f"fp32 + channels_last: fastest for netx at 160 px in {src} on a CPU without native bf16 instructions"
    assert reason("fp32", "auto") == f"fp32 + channels_last: fastest for netx at 160 px in {src} (precision as configured)"
    assert reason("fp32", "channels_first") == "fp32 + channels_first: as configured"
    assert reason("bf16", "channels_last", flags=PLAIN) == ("bf16 + channels_last: as configured on a CPU without "
                                                           "native bf16 instructions (emulated: slower than fp32)")
    assert reason("auto", "auto", family="other") == \
        f"fp32 + channels_first: other is not measured in {src}, so the float32 default on a CPU with avx512_bf16"
    assert reason("fp32", "auto", family="other", layout_rule=(True, "the GAN rule")) == \
        f"fp32 + channels_last: other is not measured in {src}, so the float32 default; the GAN rule (precision as configured)"


def test_the_default_is_the_fp32_path_with_bit_identical_optimiser_kernels() -> None:
    chosen = accel.resolve_precision(CPU, family="efficientnet-lite0", size=160, flags=BF16)
    assert chosen == accel.Precision(CPU) and chosen.optimizer_kwargs() == {"foreach": True}
    assert accel.Precision(CPU, torch.bfloat16).optimizer_kwargs() == {"fused": True}
    assert accel.Precision(CUDA, torch.bfloat16).optimizer_kwargs() == {"foreach": True}


def test_foreach_optimisers_give_the_bits_of_the_per_parameter_loop() -> None:
    """Why foreach is on for fp32 runs: the same numbers as torch's default CPU loop (Adam, AdamW, SGD)."""
    def trained(make) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                    torch.nn.Linear(4 * 6 * 6, 3))
        opt = make(model.parameters())
        x, y = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 3
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    for make in (lambda p, **k: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-4, **k),
                 lambda p, **k: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05, **k),
                 lambda p, **k: torch.optim.SGD(p, lr=1e-2, momentum=0.9, nesterov=True, **k)):
        assert torch.equal(trained(lambda p: make(p, foreach=False)), trained(lambda p: make(p, foreach=True)))


def test_cuda_keeps_its_policy(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    chosen = accel.resolve_precision(CUDA, "fp32", "channels_first", family="netx", size=160)
    assert chosen == accel.Precision(CUDA, torch.bfloat16, True)  # precision_for(amp=True): unchanged
    assert chosen.reason.startswith("CUDA: bfloat16 + channels_last")
    own = accel.Precision(CUDA, torch.float16)
    assert accel.resolve_precision(CUDA, "bf16", "auto", family="netx", size=160, cuda=own, compile=True) == \
        accel.Precision(CUDA, torch.float16, False, compile=True)


def test_every_measured_row_has_every_variant() -> None:
    variants = {"fp32", "fp32-cl", "bf16", "bf16-cl"}  # benchmarks/cpu_speed.py's
    assert all(set(row) == variants for rows in accel.CPU_SPEED.values() for row in rows.values())


def test_float32_outputs_cast_tensors_and_tuples() -> None:
    one = accel.Float32Outputs(torch.nn.Identity())
    assert one(torch.ones(2, dtype=torch.bfloat16)).dtype == torch.float32
    pair = accel.Float32Outputs(torch.nn.Module())
    pair.module.forward = lambda x: (x, x)
    assert [t.dtype for t in pair(torch.ones(2, dtype=torch.bfloat16))] == [torch.float32, torch.float32]
