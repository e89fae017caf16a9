"""``sonogan synth``: train a generator (a GAN, or the "ddpm" diffusion family) on one fold's
training images of a class, sample it, and audit the samples (fidelity, diversity, quality,
memorisation; see docs/audit.md).

``--model`` names the family for both kinds: GAN and diffusion runs share the run-folder
contract, and a config YAML's ``family:`` key selects its kind just as ``--model`` does, so
there is one switch to learn rather than a second ``--generator`` flag. ``synth sample``
tells a diffusion run from its checkpoint.

Example:
    $ sonogan synth train runs/phantom --splits runs/phantom/splits.json --fold 0 --class borderline \\
        --model dcgan --out runs/gan-borderline-f0
    $ sonogan synth train runs/phantom --splits runs/phantom/splits.json --fold 0 --class borderline \\
        --model ddpm --out runs/ddpm-borderline-f0
    $ sonogan synth sample runs/gan-borderline-f0 --n 2000 --out runs/syn-borderline-f0
    $ sonogan synth audit runs/syn-borderline-f0 --real runs/phantom --splits runs/phantom/splits.json \
        --gan runs/gan-borderline-f0 --out runs/audit-borderline-f0
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from sonogan.errors import RunInterrupted, SonoganInputError

console = Console()

synth_app = typer.Typer(
    help="Train GANs or diffusion models on a fold's rare class, sample and audit synthetic images.\n\n"
    "Example: sonogan synth train runs/phantom --splits runs/phantom/splits.json --fold 0 "
    "--class borderline --model dcgan --out runs/gan-f0",
    no_args_is_help=True,
)


@synth_app.command("train")
def train_command(
    dataset: Path = typer.Argument(..., help="Dataset folder (manifest.csv + dataset.yaml)."),
    splits: Path = typer.Option(..., "--splits", help="splits.json made by 'sonogan data split'."),
    fold: str = typer.Option("0", "--fold", help="Fold whose TRAINING partition the GAN may see; 'all' = every non-test image."),
    class_name: Optional[str] = typer.Option(
        None, "--class", help="Class to learn (omit only for cgan/acgan or class_conditional ddpm: all classes)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Family: dcgan, dcgan-radford, cgan, acgan, wgan-gp, sngan (GANs) or ddpm (diffusion)."),
    out: Path = typer.Option(..., "--out", help="New run folder (or the run to continue with --resume)."),
    config: Optional[Path] = typer.Option(
        None, "--config", help="GanConfig YAML (see configs/gan/), or DiffusionConfig YAML with family: ddpm."),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="Iteration budget (overrides the config)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (overrides the config)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/last.pt."),
) -> None:
    """Train one generator on the real training images of --fold and --class.

    Example: sonogan synth train runs/phantom --splits runs/phantom/splits.json --fold 0
    --class borderline --model dcgan --out runs/gan-borderline-f0 --iterations 3000
    """
    from sonogan.config import load_config, parse_config, read_yaml
    from sonogan.synth.config import GanConfig
    from sonogan.synth.diffusion_config import DIFFUSION_FAMILIES, DiffusionConfig
    from sonogan.synth.trainer import train_gan

    overrides = {"family": model, "iterations": iterations, "seed": seed}
    if resume and config is None and (out / "config.yaml").is_file():
        # resume keeps the run's own options; only --iterations (a larger budget) applies
        config, overrides = out / "config.yaml", {"iterations": iterations}
    family = model or (read_yaml(config).get("family") if config is not None else None)
    diffusion = family in DIFFUSION_FAMILIES
    Model = DiffusionConfig if diffusion else GanConfig
    if config is not None:
        cfg = load_config(Model, config, overrides)
    else:
        cfg = parse_config(Model, {k: v for k, v in overrides.items() if v is not None}, "--model/--iterations/--seed")
    if diffusion:
        from sonogan.synth.diffusion import train_diffusion

        train = train_diffusion  # same arguments and run-folder contract as train_gan
    else:
        train = train_gan
    if fold != "all" and not fold.isdigit():
        raise SonoganInputError("--fold", f"'{fold}' is not a fold number", "pass 0, 1, ... or 'all'")
    try:
        run = train(dataset, splits, None if fold == "all" else int(fold), class_name, cfg, out, resume=resume,
                    progress=True)
    except KeyboardInterrupt as exc:
        if not (out / "run.json").is_file():
            raise  # interrupted before the run folder existed: nothing to continue
        again = ["sonogan", "synth", "train", str(dataset), "--splits", str(splits), "--fold", fold,
                 *(["--class", class_name] if class_name else []), "--out", str(out), "--resume"]
        raise RunInterrupted(out, shlex.join(again)) from exc
    kind = "diffusion" if diffusion else "GAN"
    from sonogan.train.distributed import is_main

    if is_main():  # under torchrun every rank reaches this line
        console.print(f"{kind} run -> [bold]{run}[/] (grids, loss_curves.png, final_vs_real.png, checkpoints/)")


@synth_app.command("sample")
def sample_command(
    run: Path = typer.Argument(..., help="GAN or diffusion run folder made by 'sonogan synth train'."),
    n: int = typer.Option(2000, "--n",
                          help="Images to generate (per class for cgan/acgan/class-conditional ddpm)."),
    out: Path = typer.Option(..., "--out", help="New dataset folder for the synthetic images."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    checkpoint: str = typer.Option("best", "--checkpoint",
                                   help="'best' (GAN stopping rule; diffusion: = last), 'last' or a .pt path."),
    classes: Optional[str] = typer.Option(None, "--classes",
                                          help="Comma-separated classes (cgan/acgan/class-conditional ddpm only)."),
    steps: Optional[int] = typer.Option(None, "--steps",
                                        help="DDIM steps (diffusion runs; default: the run's config)."),
) -> None:
    """Generate synthetic images with provenance into a new dataset folder.

    Example: sonogan synth sample runs/gan-borderline-f0 --n 2000 --out runs/syn-borderline-f0
    """
    from sonogan.synth.diffusion import is_diffusion_run, sample_diffusion
    from sonogan.synth.sample import sample_gan

    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    if is_diffusion_run(run, checkpoint):
        ds = sample_diffusion(run, n, out, seed=seed, classes=wanted, steps=steps, checkpoint=checkpoint,
                              progress=True)
    else:
        if steps is not None:
            raise SonoganInputError("--steps", "applies to diffusion runs only", "drop --steps for a GAN run")
        ds = sample_gan(run, n, out, seed=seed, checkpoint=checkpoint, progress=True, classes=wanted)
    console.print(f"{len(ds.manifest)} synthetic images -> [bold]{out}[/]")


@synth_app.command("audit")
def audit_command(
    synthetic: Path = typer.Argument(..., help="Synthetic dataset folder made by 'sonogan synth sample'."),
    real: Path = typer.Option(..., "--real", help="The real dataset the generator was trained on."),
    splits: Path = typer.Option(..., "--splits", help="splits.json the generator's fold comes from."),
    out: Path = typer.Option(..., "--out", help="New run folder for audit.json, audit.html and figures."),
    gan: Optional[Path] = typer.Option(
        None, "--gan", help="The generator's run folder (GAN or diffusion): its preset, and a check that it "
                            "saw exactly this fold's training images of the class."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Fold (default: the samples' provenance)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preprocessing preset (default: --gan's)."),
    encoder: Optional[Path] = typer.Option(
        None, "--encoder", help="Classifier checkpoint trained on the fold's real training images (domain "
                                "features); default: train a small one for the audit."),
    config: Optional[Path] = typer.Option(None, "--config", help="AuditConfig YAML (see docs/audit.md)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Folder for cached real features "
                                                               "(default: the dataset's work folder)."),
) -> None:
    """Audit synthetic images: FID/KID/PRDC, diversity, BRISQUE/PIQE/NIQE and memorisation.

    Example: sonogan synth audit runs/syn-borderline-f0 --real runs/phantom --splits
    runs/phantom/splits.json --gan runs/gan-borderline-f0 --out runs/audit-borderline-f0
    """
    from sonogan.audit.config import AuditConfig
    from sonogan.audit.run import audit_synthetic, flagged_counts
    from sonogan.config import load_config

    cfg = load_config(AuditConfig, config) if config is not None else AuditConfig()
    run = audit_synthetic(synthetic, real, splits, cfg, out, fold=fold, preset=preset, gan_run=gan,
                          encoder=encoder, cache_dir=cache, progress=True)
    for cls, (flagged, n) in flagged_counts(run).items():
        console.print(f"{cls}: {flagged} of {n} synthetic images flagged as near-copies of training images")
    console.print(f"audit -> [bold]{run}[/] (audit.json, audit.html)")
