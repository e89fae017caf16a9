"""``sonogan synth``: train a generator (a GAN, or the "ddpm" diffusion family) on one fold's
training images of a class, sample it, and audit the samples (fidelity, diversity, quality,
memorisation; see docs/audit.md).

``--model`` names the family for both kinds: GAN and diffusion runs share the run-folder
contract, and a config YAML's ``family:`` key selects its kind just as ``--model`` does, so
there is one switch to learn rather than a second ``--generator`` flag. ``synth sample``
tells a diffusion run from its checkpoint.

Example:
    $ sonogan synth train runs/phantom --fold 0 --class borderline --model dcgan --out runs/gan-borderline-f0
    $ sonogan synth train --resume runs/gan-borderline-f0             # after a kill (its own config and splits)
    $ sonogan synth train runs/phantom --fold 0 --class borderline --model ddpm --out runs/ddpm-borderline-f0
    $ sonogan synth sample runs/gan-borderline-f0 --n 2000 --out runs/syn-borderline-f0
    $ sonogan synth audit runs/syn-borderline-f0 --real runs/phantom --splits runs/phantom/splits.json \
        --gan runs/gan-borderline-f0 --out runs/audit-borderline-f0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel
from rich.console import Console

from sonogan import layout
from sonogan.cli.resume import refuse_with_resume, resumable
from sonogan.config import load_config, parse_config, read_yaml
from sonogan.errors import SonoganInputError
from sonogan.outpaths import check_new_folder, check_output
from sonogan.runs import check_new_run

console = Console()

synth_app = typer.Typer(
    help="Train GANs or diffusion models on a fold's rare class, sample and audit synthetic images.\n\n"
    "Example: sonogan synth train runs/phantom --fold 0 --class borderline --model dcgan --out runs/gan-f0",
    no_args_is_help=True,
)


def _config_model(family: str | None) -> type[BaseModel]:
    """DiffusionConfig for a diffusion family, else GanConfig (the family decides the kind)."""
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.synth.config import GanConfig
    from sonogan.synth.diffusion_config import DIFFUSION_FAMILIES, DiffusionConfig

    return DiffusionConfig if family in DIFFUSION_FAMILIES else GanConfig


def _config(config: Path | None, overrides: dict[str, Any]) -> BaseModel:
    """A new run's config: the YAML (its ``family`` or ``--model`` picks the kind) with the options over it."""
    Model = _config_model(overrides["family"] or (read_yaml(config).get("family") if config is not None else None))
    if config is not None:
        return load_config(Model, config, overrides)
    return parse_config(Model, {k: v for k, v in overrides.items() if v is not None}, "--model/--iterations/--seed")


def _resumed(run: Path, dataset: Path | None, iterations: int | None) -> tuple[BaseModel, Path, str, str | None]:
    """(config, dataset, fold, class) a resumed generator run continues with: its own
    (:mod:`sonogan.layout`), ``iterations`` raising the budget."""
    info = layout.read_info(run)
    Model = _config_model(read_yaml(run / layout.CONFIG_FILE).get("family"))
    cfg = layout.resume_config(run, Model)
    if iterations is not None:
        cfg = Model.model_validate({**cfg.model_dump(), "iterations": iterations})
    fold = "all" if info.get("fold") is None else str(info["fold"])
    return cfg, layout.resume_dataset(run, dataset), fold, info.get("class_name") or None


@synth_app.command("train")
def train_command(
    dataset: Optional[Path] = typer.Argument(None, help="Dataset folder (manifest.csv + dataset.yaml)."),
    splits: Optional[Path] = typer.Option(
        None, "--splits", help="splits.json (default: the dataset's, made by 'sonogan data split')."),
    fold: Optional[str] = typer.Option(
        None, "--fold", help="Fold whose TRAINING partition the GAN may see (default 0); 'all' = every non-test image."),
    class_name: Optional[str] = typer.Option(
        None, "--class", help="Class to learn (omit only for cgan/acgan or class_conditional ddpm: all classes)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Family: dcgan, dcgan-radford, cgan, acgan, wgan-gp, sngan (GANs) or ddpm (diffusion)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New run folder."),
    config: Optional[Path] = typer.Option(
        None, "--config", help="GanConfig YAML (see configs/gan/), or DiffusionConfig YAML with family: ddpm."),
    iterations: Optional[int] = typer.Option(
        None, "--iterations", help="Iteration budget (overrides the config; with --resume, raises the run's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (overrides the config)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue an interrupted run folder (with its own config, dataset, splits copy, "
                               "fold and class; only --iterations may raise its budget)."),
) -> None:
    """Train one generator on the real training images of --fold and --class.

    Example: sonogan synth train runs/phantom --fold 0 --class borderline --model dcgan
    --out runs/gan-borderline-f0 --iterations 3000
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.synth.diffusion_config import DiffusionConfig
    from sonogan.synth.trainer import train_gan

    # --iterations is the one option a resume takes: a larger budget continues the same training
    refuse_with_resume("synth train", resume, {"--splits": splits, "--fold": fold, "--class": class_name,
                                               "--model": model, "--out": out, "--config": config, "--seed": seed})
    if resume is not None:
        cfg, dataset, fold, class_name = _resumed(resume, dataset, iterations)
        out = resume
    else:
        if dataset is None or out is None:
            # no default --out: under torchrun every rank must name the same folder
            raise SonoganInputError("sonogan synth train", "no dataset given" if dataset is None else "no --out given",
                                    "pass DATASET and --out RUN (or --resume RUN)")
        check_new_run(out)  # before the dataset is read or a network built
        cfg = _config(config, {"family": model, "iterations": iterations, "seed": seed})
        fold = fold or "0"
        if fold != "all" and not fold.isdigit():
            raise SonoganInputError("--fold", f"'{fold}' is not a fold number", "pass 0, 1, ... or 'all'")
    diffusion = isinstance(cfg, DiffusionConfig)
    if diffusion:
        from sonogan.synth.diffusion import train_diffusion

        train = train_diffusion  # same arguments and run-folder contract as train_gan
    else:
        train = train_gan
    with resumable("synth train", out):
        run = train(dataset, splits, None if fold == "all" else int(fold), class_name, cfg, out,
                    resume=resume is not None, progress=True)
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
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.synth.diffusion import is_diffusion_run, sample_diffusion
    from sonogan.synth.sample import sample_gan

    check_new_folder(out, "synthetic dataset folder")  # before the generator is loaded
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
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.audit.config import AuditConfig
    from sonogan.audit.run import audit_synthetic, flagged_counts

    check_new_run(out)  # both output places before any image is read
    if cache is not None:
        check_output(cache, "folder", "--cache")
    cfg = load_config(AuditConfig, config) if config is not None else AuditConfig()
    run = audit_synthetic(synthetic, real, splits, cfg, out, fold=fold, preset=preset, gan_run=gan,
                          encoder=encoder, cache_dir=cache, progress=True)
    for cls, (flagged, n) in flagged_counts(run).items():
        console.print(f"{cls}: {flagged} of {n} synthetic images flagged as near-copies of training images")
    console.print(f"audit -> [bold]{run}[/] (audit.json, audit.html)")
