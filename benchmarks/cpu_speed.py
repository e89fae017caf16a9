"""Training throughput on this CPU: fp32 vs channels_last vs bf16 autocast vs both vs compiled.

Models (the ones the real protocol trains): EfficientNet-Lite0 at 160 and 224 px (3-channel ROI,
8 classes), the 64-px DCGAN (one D step + one G step), and the Lite0-U-Net segmenter at 160 px
(Dice + BCE). One training step = forward, loss in fp32, backward, AdamW (foreach) step; the GAN
uses its own Adam pair. Every variant is measured round-robin in one process, repeat after
repeat, so the machine's noise hits all variants alike: read the ratios, not the absolute
numbers. Master weights and optimizer state stay fp32 in every variant (autocast only casts
the matmuls / convolutions).

Writes benchmarks/results/cpu_speed.json with the median img/s per (model, threads, variant),
the ratio to fp32 NCHW, and the load average, thread count, torch version and CPU flags.

Example:
    python benchmarks/cpu_speed.py                      # 1 and 2 threads, 5 repeats, no compile
    python benchmarks/cpu_speed.py --compile --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from sonogan.experiment.records import cpu_model
from sonogan.models.classifiers import create_classifier
from sonogan.models.segmentation import create_segmenter
from sonogan.synth.config import GanConfig
from sonogan.synth.nets.dcgan import dcgan_nets
from sonogan.train.accel import bf16_flag, host_cpu_flags
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.loop import train_classifier

OUT = Path(__file__).resolve().parent / "results" / "cpu_speed.json"
VARIANTS = ("fp32", "fp32-cl", "bf16", "bf16-cl")


def cpu_flags() -> list[str]:
    """The vector-instruction flags of this CPU (the resolver's own reading of /proc/cpuinfo)."""
    return sorted(f for f in host_cpu_flags().split() if f.startswith(("avx512", "amx", "avx2", "fma")))


def supervised_step(model: torch.nn.Module, x: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor],
                    channels_last: bool, bf16: bool, compile_: bool) -> Callable[[], None]:
    """One training step of ``model`` on the batch ``x``: forward (autocast when ``bf16``), the loss in
    fp32 on the float logits, backward, AdamW (foreach)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = loss_fn(logits.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def classifier_step(size: int, batch: int, channels_last: bool, bf16: bool, compile_: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_classifier("efficientnet-lite0", num_classes=8, in_chans=3)
    y = torch.randint(0, 8, (batch,))
    return supervised_step(model, torch.randn(batch, 3, size, size), lambda logits: F.cross_entropy(logits, y),
                           channels_last, bf16, compile_)


def segmenter_step(size: int, batch: int, channels_last: bool, bf16: bool, compile_: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = create_segmenter("efficientnet-lite0-unet", in_chans=3)
    y = (torch.rand(batch, 1, size, size) > 0.7).float()

    def dice_bce(logits: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(logits)
        dice = 1 - (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
        return F.binary_cross_entropy_with_logits(logits, y) + dice
    return supervised_step(model, torch.randn(batch, 3, size, size), dice_bce, channels_last, bf16, compile_)


def gan_step(batch: int, channels_last: bool, bf16: bool, compile_: bool, width: int = 64) -> Callable[[], None]:
    torch.manual_seed(0)
    cfg = GanConfig(family="dcgan", batch_size=batch, ngf=width, ndf=width)
    G, D = dcgan_nets(cfg)
    real = torch.randn(batch, cfg.channels, cfg.resolution, cfg.resolution)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        real = real.contiguous(memory_format=torch.channels_last)
    g_net, d_net = (torch.compile(G), torch.compile(D)) if compile_ else (G, D)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=True)
    ones, zeros = torch.ones(batch), torch.zeros(batch)

    def step() -> None:
        z = torch.randn(batch, cfg.z_dim)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fake = g_net(z)
            d_real, d_fake = d_net(real), d_net(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(d_real.float().flatten(), ones)
                  + F.binary_cross_entropy_with_logits(d_fake.float().flatten(), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            d_gen = d_net(fake)
        loss_g = F.binary_cross_entropy_with_logits(d_gen.float().flatten(), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return step


MODELS: dict[str, tuple[int, Callable[..., Callable[[], None]]]] = {
    "lite0-160": (32, lambda b, cl, bf, c: classifier_step(160, b, cl, bf, c)),
    "lite0-224": (32, lambda b, cl, bf, c: classifier_step(224, b, cl, bf, c)),
    "dcgan-64": (64, gan_step),
    "dcgan-64-w32": (32, lambda b, cl, bf, c: gan_step(b, cl, bf, c, width=32)),  # the verdict's GANs (ngf = ndf = 32)
    "lite0-unet-160": (16, lambda b, cl, bf, c: segmenter_step(160, b, cl, bf, c)),
}


def timed(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


# The MMOTU recipe of configs/mmotu-strong.yaml (augmentation, EMA, cosine, layer decay), one epoch
LOOP_RECIPE = dict(model="efficientnet-lite0", in_chans=3, image_size=160, epochs=1, batch_size=32,
                   optimizer="adamw", lr=0.002, weight_decay=0.05, layer_decay=0.8, schedule="cosine",
                   label_smoothing=0.1, ema_decay=0.98, loss="ce", patience=None, keep="last",
                   augment={"hflip": True, "rotation": 10.0, "translate": 0.05, "scale": [0.9, 1.1],
                            "brightness": 0.2, "contrast": 0.2})
LOOP_VARIANTS = {"fp32": ("fp32", "channels_first"), "fp32-cl": ("fp32", "channels_last"),
                 "bf16": ("bf16", "channels_first"), "bf16-cl": ("bf16", "channels_last"),
                 "auto": ("auto", "auto")}


def measure_loop(threads: int, repeats: int, n_images: int, tmp: Path) -> dict:
    """The whole training loop (data, augmentation, forward, backward, optimizer, EMA, checkpoint)
    for one epoch of ``n_images`` Lite0-160 images, per precision; ``outside_step`` is the share of
    the loop's time per image not spent in the bare step measured by :func:`classifier_step`."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_images, 3, 160, 160, generator=gen)
    y = torch.randint(0, 8, (n_images,), generator=gen)
    names = [f"c{i}" for i in range(8)]
    times: dict[str, list[float]] = {v: [] for v in LOOP_VARIANTS}
    for r in range(repeats):
        for v, (precision, layout) in LOOP_VARIANTS.items():
            cfg = ClassifierTrainConfig(**LOOP_RECIPE, precision=precision, memory_format=layout)
            start = time.perf_counter()
            train_classifier(cfg, x, y, None, None, tmp / f"{v}-{threads}-{r}", names, resume=False)
            times[v].append(time.perf_counter() - start)
        print(f"  loop lite0-160 {threads}t repeat {r + 1}/{repeats}: "
              + ", ".join(f"{v} {n_images / t[-1]:.1f}" for v, t in times.items()), flush=True)
    med = {v: statistics.median(t) for v, t in times.items()}
    return {"images": n_images, "threads": threads,
            "img_per_s": {v: round(n_images / m, 2) for v, m in med.items()},
            "ratio_vs_fp32": {v: round(med["fp32"] / m, 2) for v, m in med.items()}}


def measure(model: str, threads: int, variants: list[str], repeats: int, steps: int) -> dict:
    torch.set_num_threads(threads)
    batch, factory = MODELS[model]
    built = {}
    compile_s = {}
    for v in variants:
        start = time.perf_counter()
        built[v] = factory(batch, v.endswith("-cl") or v == "compiled", v.startswith("bf16"), v == "compiled")
        built[v]()  # warm-up (for compiled: the compilation itself)
        built[v]()
        compile_s[v] = round(time.perf_counter() - start, 1)
    times = {v: [] for v in variants}
    for r in range(repeats):  # round-robin: noise hits every variant alike
        for v in variants:
            times[v].append(timed(built[v], steps))
        print(f"  {model} {threads}t repeat {r + 1}/{repeats}: "
              + ", ".join(f"{v} {batch / times[v][-1]:.1f}" for v in variants), flush=True)
    med = {v: statistics.median(t) for v, t in times.items()}
    base = med.get("fp32")
    return {"batch": batch, "threads": threads,
            "img_per_s": {v: round(batch / m, 2) for v, m in med.items()},
            "step_ms": {v: round(1000 * m, 1) for v, m in med.items()},
            "ratio_vs_fp32": {v: round(base / m, 2) for v, m in med.items()} if base else {},
            "first_two_steps_s": compile_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (inductor), minutes of warm-up")
    parser.add_argument("--loop-images", type=int, default=128,
                        help="images per epoch of the whole-loop measurement (0 = skip it)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    variants = list(VARIANTS) + (["compiled"] if args.compile else [])
    load_before = os.getloadavg()
    results = {}
    for model in args.models.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            results[f"{model}@{threads}t"] = measure(model, threads, variants, args.repeats, args.steps)
    loops = {}
    if args.loop_images:
        with tempfile.TemporaryDirectory() as tmp:
            for threads in (int(t) for t in args.threads.split(",")):
                loop = measure_loop(threads, args.repeats, args.loop_images, Path(tmp))
                step = results.get(f"lite0-160@{threads}t")
                if step:  # the share of a loop image's time spent outside the bare step, per variant
                    loop["outside_step"] = {v: round(1 - loop["img_per_s"][v] / step["img_per_s"][v], 2)
                                            for v in VARIANTS if v in step["img_per_s"]}
                loops[f"lite0-160@{threads}t"] = loop
    out = {"benchmark": "cpu_speed", "variants": variants, "results": results, "loop": loops,
           "compiled_variant": "bf16 autocast off, channels_last on" if args.compile else None,
           "load_avg_before": [round(x, 2) for x in load_before],
           "load_avg_after": [round(x, 2) for x in os.getloadavg()],
           "torch": torch.__version__, "cpu": cpu_model(), "cpu_flags": cpu_flags(),
           "bf16_native": bf16_flag(host_cpu_flags()) is not None,
           "cpus": os.cpu_count(), "repeats": args.repeats, "steps_per_repeat": args.steps}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"written {args.out}")
    return 0


def cpu_speed_block(r: dict) -> str:
    """README block: img/s per model, thread count and variant, with the ratio to fp32 NCHW."""
    variants = r["variants"]
    load = r["load_avg_before"][0], r["load_avg_after"][0]
    lines = [f"Training throughput on this CPU (`python benchmarks/cpu_speed.py`, {r['cpu']}, torch {r['torch']}, "
             f"native bf16: {'yes' if r['bf16_native'] else 'no'}; img/s, median of {r['repeats']} round-robin "
             f"repeats in one process, ratio to fp32 NCHW in brackets; 1-min load average {load[0]:.1f} before, "
             f"{load[1]:.1f} after):", "",
             "| model @ threads (batch) | " + " | ".join(variants) + " |",
             "|---|" + "---|" * len(variants)]
    for key, m in r["results"].items():
        cells = [f"{m['img_per_s'][v]:.1f} ({m['ratio_vs_fp32'][v]:.2f}x)" for v in variants]
        lines.append(f"| {key.replace('@', ' @ ')} ({m['batch']}) | " + " | ".join(cells) + " |")
    if r.get("loop"):
        loop_variants = list(next(iter(r["loop"].values()))["img_per_s"])
        lines += ["", "The whole training loop (data, augmentation, optimizer, EMA, checkpoint; one epoch of the "
                  "MMOTU recipe, Lite0 160 px): img/s (ratio to fp32), and the share of the time outside the bare "
                  "step above:", "",
                  "| loop @ threads (images) | " + " | ".join(loop_variants) + " |",
                  "|---|" + "---|" * len(loop_variants)]
        for key, m in r["loop"].items():
            outside = m.get("outside_step", {})
            cells = [f"{m['img_per_s'][v]:.1f} ({m['ratio_vs_fp32'][v]:.2f}x"
                     + (f"; {100 * outside[v]:.0f} % outside" if v in outside else "") + ")" for v in loop_variants]
            lines.append(f"| {key.replace('@', ' @ ')} ({m['images']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


README_BLOCKS = {"cpu-speed": ("cpu_speed.json", cpu_speed_block)}


if __name__ == "__main__":
    sys.exit(main())
