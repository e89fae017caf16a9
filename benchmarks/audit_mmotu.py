"""Audit an MMOTU generator: one rare class of fold 0, CPU-sized, with a planted-copy control.

Trains (or reuses) a 64-px grey DCGAN with DiffAugment on fold 0's high_grade_serous TRAINING
images (the lesion ROI preset ``gan-64``), samples it, and runs ``sonogan synth audit`` on the
samples (domain encoder trained for the audit + offline ImageNet EfficientNet-Lite0). A second
audit adds augmented copies of real training images (a seed the calibration never used) to
the samples, to show how many near-copies the memorisation gate catches. Writes
benchmarks/results/audit_mmotu.json and docs/img/audit-mmotu-*.png; 1 torch thread.

Example:
    python benchmarks/audit_mmotu.py                       # ~10 min on one CPU thread
    python benchmarks/audit_mmotu.py --iterations 300      # a quicker, weaker generator
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MMOTU = REPO.parent / "shared" / "datasets" / "mmotu-2d"
RESULT = REPO / "benchmarks" / "results" / "audit_mmotu.json"
IMG = REPO / "docs" / "img"
CLASS, FOLD, PRESET, N_PLANTED = "high_grade_serous", 0, "gan-64", 12


def train_and_sample(ds_dir: Path, work: Path, iterations: int, n: int) -> tuple[Path, Path, bool]:
    """The GAN run and its samples, and whether a finished run of this size was reused."""
    from sonogan.synth.config import GanConfig
    from sonogan.synth.sample import sample_gan
    from sonogan.synth.trainer import train_gan

    gan, syn = work / f"gan-{CLASS}-f{FOLD}-{iterations}", work / f"syn-{CLASS}-f{FOLD}-{iterations}"
    done = (gan / "run.json").is_file() and json.loads((gan / "run.json").read_text())["status"] == "completed"
    if not done:
        if gan.exists():
            shutil.rmtree(gan)  # an unfinished run of this script, in its own work folder
        cfg = GanConfig(family="dcgan", resolution=64, channels=1, ngf=32, ndf=32, batch_size=32,
                        iterations=iterations, diffaugment="color,translation,cutout", ema_decay=0.99,
                        checkpoint_every=250, sample_every=250, quality_every=250, quality_samples=128,
                        patience=0, preset=PRESET, device="cpu", seed=0)
        train_gan(ds_dir, ds_dir / "splits.json", FOLD, CLASS, cfg, gan, progress=True)
    if not (syn / "manifest.csv").is_file():
        if syn.exists():
            shutil.rmtree(syn)
        sample_gan(gan, n, syn, seed=0)
    return gan, syn, done


def planted_control(run: Path, ds_dir: Path, syn: Path, out: Path) -> dict[str, Any]:
    """Audit the samples plus augmented copies of real training images; how many copies are caught."""
    import numpy as np

    from sonogan.audit.audit import audit_class
    from sonogan.audit.config import AuditConfig
    from sonogan.audit.features import create_extractor
    from sonogan.audit.memorisation import augmented_copies
    from sonogan.audit.run import class_inputs
    from sonogan.config import load_config
    from sonogan.data.manifest import load_dataset
    from sonogan.preprocess.fold import load_fold, load_synthetic
    from sonogan.synth.data import load_splits

    cfg = load_config(AuditConfig, run / "config.yaml")
    ds = load_dataset(ds_dir)
    fd = load_fold(ds, load_splits(ds_dir / "splits.json", ds), FOLD, PRESET)
    samples = load_synthetic(load_dataset(syn), PRESET, ds.spec.classes, FOLD)
    inputs = class_inputs(fd, samples, ds.spec.classes, CLASS)
    pick = np.random.default_rng(123).permutation(len(inputs.real))[:N_PLANTED]
    planted = augmented_copies(inputs.real[pick], copies=1, seed=12345)  # not the calibration's seed
    inputs.synthetic = np.concatenate([inputs.synthetic, planted])
    planted_ids = [f"planted-{inputs.real_ids[i]}" for i in pick]
    inputs.synthetic_ids = inputs.synthetic_ids + planted_ids
    extractors = {name: create_extractor(name, run / "domain-encoder" / "best.pt" if name == "domain" else None)
                  for name in cfg.extractors}
    record = audit_class(inputs, cfg, extractors, out, cache_dir=run.parent / "cache")
    flagged = set(record["memorisation"]["flagged_ids"])
    return {"n_planted": N_PLANTED, "planted_caught": len(flagged & set(planted_ids)),
            "genuine_flagged": len(flagged - set(planted_ids)), "spaces": record["memorisation"]["spaces"],
            "figure": record["figures"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(REPO / "runs" / "bench" / "mmotu"),
                        help="MMOTU imported by 'sonogan data import ... --format mmotu' (with splits.json)")
    parser.add_argument("--work", default=str(REPO / "runs" / "bench" / "audit-mmotu"))
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--n", type=int, default=200, help="synthetic images sampled")
    args = parser.parse_args()
    ds_dir, work = Path(args.dataset), Path(args.work)
    if not MMOTU.is_dir() or not (ds_dir / "splits.json").is_file():
        print(f"needs ../shared/datasets/mmotu-2d imported into {ds_dir} with splits.json")
        return 1
    import torch

    torch.set_num_threads(1)
    from sonogan.audit.config import AuditConfig
    from sonogan.audit.run import audit_synthetic
    from sonogan.runs import next_run_dir

    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    gan, syn, reused = train_and_sample(ds_dir, work, args.iterations, args.n)
    t0 = time.perf_counter()
    run = audit_synthetic(syn, ds_dir, ds_dir / "splits.json", AuditConfig(), next_run_dir(work, "audit"),
                          gan_run=gan, cache_dir=work / "cache", progress=True)
    audit_s = time.perf_counter() - t0
    record = json.loads((run / CLASS / "audit.json").read_text())
    t0 = time.perf_counter()
    control = planted_control(run, ds_dir, syn, run / "planted")
    control_s = time.perf_counter() - t0
    IMG.mkdir(parents=True, exist_ok=True)
    figures = {f"audit-mmotu-{key.replace('_', '-')}.png": run / CLASS / name
               for key, name in record["figures"].items()}
    figures["audit-mmotu-planted.png"] = run / "planted" / control["figure"]["memorisation_pixel"]
    for name, src in figures.items():
        shutil.copyfile(src, IMG / name)
    gan_metrics = json.loads((gan / "metrics.json").read_text())
    result = {"dataset": "MMOTU OTU_2d (1000 images, 8 classes)", "class": CLASS, "fold": FOLD, "preset": PRESET,
              "generator": {"family": "dcgan", "resolution": 64, "iterations": gan_metrics["iterations"],
                            "diffaugment": "color,translation,cutout", "best_iteration": gan_metrics["best_iteration"],
                            "n_train": gan_metrics["n_train"], "n_sampled": args.n},
              "audit": record, "planted_control": {k: v for k, v in control.items() if k != "figure"},
              "figures": sorted(figures), "torch_threads": 1,
              # the generator's training time is its own run's measurement (also when reused here)
              "wall_s": {"generator_training": gan_metrics["wall_s_this_session"], "audit": round(audit_s, 1),
                         "planted_control": round(control_s, 1),
                         "this_invocation": round(time.perf_counter() - start, 1)},
              "generator_reused": reused,
              "command": " ".join(["python"] + sys.argv)}
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    return 0


def render(r: dict[str, Any]) -> str:
    """The README block: fidelity per extractor, diversity and quality, memorisation, control."""
    a, g, c = r["audit"], r["generator"], r["planted_control"]
    lines = [f"{g['family'].upper()} ({g['resolution']} px, DiffAugment, {g['iterations']} iterations, best at "
             f"{g['best_iteration']}) trained on the {g['n_train']} fold-{r['fold']} training images of "
             f"**{r['class']}** ({r['preset']} lesion ROI); {g['n_sampled']} samples audited against them. "
             f"On {r['torch_threads']} CPU thread of a shared 2-core machine: generator training "
             f"{r['wall_s']['generator_training'] / 60:.1f} min, audit {r['wall_s']['audit'] / 60:.1f} min "
             f"(planted-copy control {r['wall_s']['planted_control'] / 60:.1f} min).", "",
             "| features | FID | KID | precision | recall | density | coverage |", "|---|---|---|---|---|---|---|"]
    for name, f in a["fidelity"].items():
        lines.append(f"| {a['extractors'][name]['name']} | {f['fid']:.1f} | {f['kid_mean']:.4f} ± "
                     f"{f['kid_std']:.4f} | {f['precision']:.2f} | {f['recall']:.2f} | {f['density']:.2f} | "
                     f"{f['coverage']:.2f} |")
    lines += ["", "| images | MS-SSIM (within) | SSIM (within) | BRISQUE | PIQE | NIQE |", "|---|---|---|---|---|---|"]
    for part in ("real", "synthetic"):
        d, q = a["diversity"][part], a["quality"][part]
        quality = " | ".join(f"{q[m]['mean']:.1f} ± {q[m]['sd']:.1f}" for m in ("brisque", "piqe", "niqe"))
        lines.append(f"| {part} | {d['ms_ssim']:.3f} | {d['ssim']:.3f} | {quality} |")
    m = a["memorisation"]
    lines += ["", "| space | threshold (distance ratio) | calibration copies caught | lowest sample ratio | "
                  f"samples flagged | control: flagged of samples + {c['n_planted']} planted |",
              "|---|---|---|---|---|---|"]
    for space, s in m["spaces"].items():
        control = c["spaces"][space]["n_flagged"]
        lines.append(f"| {space} | {s['threshold_ratio']:.3f} | {100 * s['copies_caught']:.0f} % | "
                     f"{s['min_ratio']:.3f} | {s['n_flagged']} / {m['n_synthetic']} | {control} |")
    lines += ["", f"Memorisation gate: **{m['n_flagged']} of {m['n_synthetic']}** samples flagged as near-copies of "
                  f"a training image (excluded from training by default). Control: of {c['n_planted']} augmented "
                  f"copies of real training images planted among the samples, **{c['planted_caught']}** were flagged "
                  f"({c['genuine_flagged']} genuine samples flagged in that run)."]
    return "\n".join(lines)


README_BLOCKS = {"audit-mmotu": ("audit_mmotu.json", render)}

if __name__ == "__main__":
    sys.exit(main())
