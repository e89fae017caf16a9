"""GAN training speed: sonogan's loop vs a straightforward reference loop (CPU, ms/iteration).

Reference = the classic PyTorch DCGAN example structure: torchvision ``ImageFolder`` over PNGs
on disk + ``DataLoader`` (batch 64, shuffle), the same dcgan G/D, BCE-with-logits, and
``.item()`` on both losses every step. Ours = :func:`sonogan.synth.fit_gan` with preloaded
tensors, device-side loss sums read every ``log_every`` steps, the automatic memory format
(channels_last where it measured faster) and an EMA copy of G (extra work the reference does
not do). On CPU both loops are dominated by the same convolutions, so the gains come from the
memory format and from skipping image decoding, not from the sync removal (which matters on GPU). Images: MMOTU high_grade_serous + more (grey, pre-resized
PNGs so the reference does not pay JPEG decode of 512-px files), or random PNGs without MMOTU.

Each configuration runs ours and the reference alternately ``--repeats`` times; the minimum
ms/iteration over repeats is reported (the CPU is shared, the minimum is the least disturbed).

Example:
    $ .venv/bin/python benchmarks/gan_speed.py --iters 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from sonogan.synth import GanConfig, create_gan, fit_gan, sample_z
from sonogan.synth.data import RealImages

ROOT = Path(__file__).resolve().parents[1]
MMOTU = ROOT / ".." / "shared" / "datasets" / "mmotu-2d"
N_IMAGES = 128
BATCH = 64


def write_pngs(folder: Path, size: int) -> None:
    """``folder/img/*.png``: N grey images at ``size`` px (MMOTU when present)."""
    (folder / "img").mkdir(parents=True)
    if (MMOTU / "manifest.csv").is_file():
        paths = pd.read_csv(MMOTU / "manifest.csv")["image"].tolist()[:N_IMAGES]
        for k, rel in enumerate(paths):
            Image.open(MMOTU / rel).convert("L").resize((size, size), Image.BILINEAR).save(folder / "img" / f"{k}.png")
    else:
        rng = np.random.default_rng(0)
        for k in range(N_IMAGES):
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / "img" / f"{k}.png")


def reference_loop(folder: Path, cfg: GanConfig, warmup: int, iters: int) -> float:
    """The classic example's loop; returns ms/iteration over ``iters`` after ``warmup``."""
    tf = transforms.Compose([transforms.Grayscale(1), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    loader = DataLoader(datasets.ImageFolder(str(folder), transform=tf), batch_size=BATCH, shuffle=True,
                        num_workers=0, drop_last=True)
    G, D, _ = create_gan("dcgan", cfg)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    step, t_start = 0, 0.0
    while step < warmup + iters:
        for real, _ in loader:
            if step == warmup:
                t_start = time.perf_counter()
            if step == warmup + iters:
                break
            D.zero_grad()
            out = D(real)
            err_real = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            err_real.backward()
            fake = G(sample_z(G, BATCH, gen))
            out = D(fake.detach())
            err_fake = F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
            err_fake.backward()
            opt_d.step()
            G.zero_grad()
            out = D(fake)
            err_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            err_g.backward()
            opt_g.step()
            _ = (err_real + err_fake).item(), err_g.item()  # per-step host sync, as in the example
            step += 1
    return 1000 * (time.perf_counter() - t_start) / iters


def our_loop(folder: Path, cfg: GanConfig, warmup: int, iters: int, out: Path) -> float:
    """sonogan's fit_gan on the same images (preloaded); ms/iteration between loss reads."""
    imgs = [np.asarray(Image.open(p)) for p in sorted((folder / "img").glob("*.png"))]
    x = torch.from_numpy(np.stack(imgs)).unsqueeze(1).float() / 127.5 - 1
    real = RealImages(images=x, labels=torch.zeros(len(x), dtype=torch.long),
                      ids=[str(k) for k in range(len(x))], classes=["a", "b"])
    big = 10 ** 6  # no grids/checks/checkpoints inside the timed window
    cfg = cfg.model_copy(update=dict(iterations=warmup + iters, log_every=warmup, checkpoint_every=big,
                                     sample_every=big, quality_every=big, quality_samples=64))
    run = fit_gan(real, cfg, out)
    return json.loads((run / "metrics.json").read_text())["ms_per_iteration_steady"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: the 2 shared cores make more threads slower and noisier)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gan_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # None = our automatic memory format (channels_last on CPU at 128 px or widths >= 64);
    # the forced-contiguous row shows what the automatic choice is worth.
    setups = [("64px ngf=ndf=64", 64, 64, None), ("64px ngf=ndf=64, ours forced contiguous", 64, 64, False),
              ("64px ngf=ndf=32", 64, 32, None), ("128px ngf=ndf=32", 128, 32, None)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in (64, 128):
            write_pngs(tmp / f"png{size}", size)
        for name, size, width, cl in setups:
            cfg = GanConfig(family="dcgan", resolution=size, ngf=width, ndf=width, batch_size=BATCH,
                            device="cpu", ema_decay=0.999, channels_last=cl, diffaugment="")
            ours, ref = [], []
            for r in range(args.repeats):
                ours.append(our_loop(tmp / f"png{size}", cfg, args.warmup, args.iters, tmp / f"run-{name}-{r}"))
                ref.append(reference_loop(tmp / f"png{size}", cfg, args.warmup, args.iters))
            row = {"setup": name, "ours_ms": round(min(ours), 1), "reference_ms": round(min(ref), 1),
                   "speedup": round(min(ref) / min(ours), 2), "ours_all": ours, "reference_all": ref}
            rows.append(row)
            print(f"{name}: ours {row['ours_ms']} ms/it, reference {row['reference_ms']} ms/it", flush=True)
    result = {"what": "DCGAN training ms/iteration on CPU, batch 64, min over repeats",
              "iters": args.iters, "warmup": args.warmup, "repeats": args.repeats,
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\n| setup | sonogan loop (ms/it) | reference loop (ms/it) | speed-up |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['ours_ms']} | {r['reference_ms']} | {r['speedup']}x |")


def gan_speed_block(r: dict) -> str:
    names = {"ours forced contiguous": "ours without channels_last"}
    rows = ["| setup | sonogan | reference | speed-up |", "|---|---|---|---|"]
    for row in r["rows"]:
        setup = row["setup"].replace("ngf=ndf=", "ngf = ndf = ").replace("px", " px")
        for old, new in names.items():
            setup = setup.replace(old, new)
        rows.append(f"| {setup} | {row['ours_ms']:.1f} | {row['reference_ms']:.1f} | {row['speedup']:.2f}x |")
    return (f"GAN training loop vs the classic PyTorch DCGAN example (`python benchmarks/gan_speed.py`, batch 64, "
            f"{r['threads']} thread, ms per iteration, min of {r['repeats']} repeats):\n\n" + "\n".join(rows))


README_BLOCKS = {"gan-speed": ("gan_speed.json", gan_speed_block)}

if __name__ == "__main__":
    main()
