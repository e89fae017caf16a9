"""``sonogan data``: phantom, import, validate, split, inspect.

Example:
    $ sonogan data phantom --out runs/phantom
    $ sonogan data import ../shared/datasets/mmotu-2d --format mmotu --out runs/mmotu
    $ sonogan data split runs/mmotu --folds 5 --test 0.15 --seed 0
    $ sonogan data inspect runs/mmotu
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from sonogan.config import load_config, parse_config
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file, work_dir
from sonogan.outpaths import check_new_folder, check_output
from sonogan.runs import RunDir, check_new_run, next_run_dir

data_app = typer.Typer(no_args_is_help=True, help="Datasets: phantom, import, validate, split, inspect.")
console = Console()


@data_app.command("phantom")
def phantom_command(
    out: Path = typer.Option(..., "--out", help="New dataset folder (must not exist or be empty)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML with PhantomConfig fields."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (overrides the config)."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply the patient counts (> 0; 1.0 = demo size, 68 patients; 10 = 680, about the flagship's 636)."),
) -> None:
    """Generate the built-in synthetic B-mode ovarian ultrasound cohort.

    Example: sonogan data phantom --out runs/phantom --scale 2
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.phantom import PhantomConfig, generate_phantom

    if not scale > 0:  # also refuses NaN
        raise SonoganInputError(f"--scale {scale}", "the scale must be above 0",
                                "use e.g. --scale 1 (demo size) or --scale 0.5 (half)")
    check_new_folder(out, "dataset folder")  # before any image is drawn
    cfg = load_config(PhantomConfig, config) if config else PhantomConfig()
    data = cfg.model_dump()
    if seed is not None:
        data["seed"] = seed
    if scale != 1.0:
        for key in ("n_benign", "n_borderline", "n_malignant"):
            data[key] = max(2, round(data[key] * scale))
    cfg = parse_config(PhantomConfig, data, config or "--scale/--seed")
    ds = generate_phantom(out, cfg, progress=True)
    console.print(f"phantom: {len(ds.manifest)} images, {ds.manifest['patient_id'].nunique()} patients -> [bold]{out}[/]")


@data_app.command("import")
def import_command(
    src: Path = typer.Argument(..., help="Source: a class-subfolder tree, a CSV file, the MMOTU folder, or a DICOM tree SRC/<class>/**."),
    fmt: str = typer.Option(..., "--format", "-f", help="Importer: folder, csv, mmotu or dicom."),
    out: Path = typer.Option(..., "--out", help="New dataset folder (must not exist or be empty)."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="dataset.yaml to use (class order, rare classes, clinical variable types)."),
    link: bool = typer.Option(False, "--link", help="Symlink the images instead of copying them."),
    name: Optional[str] = typer.Option(None, "--name", help="Dataset name."),
    rare: Optional[str] = typer.Option(None, "--rare", help="Comma-separated rare classes."),
    salt: Optional[str] = typer.Option(None, "--salt", help="dicom: secret salt for the patient-id hashes (default: the .sonogan-salt file beside --out, made once)."),
    image_col: str = typer.Option("image", "--image-col", help="csv: the column with the image paths."),
    label_col: str = typer.Option("label", "--label-col", help="csv: the column with the class labels."),
    mask_col: str = typer.Option("mask", "--mask-col", help="csv: the column with the mask paths (optional)."),
    patient_col: str = typer.Option("patient_id", "--patient-col", help="csv: the column with the patient ids (optional)."),
) -> None:
    """Import images into a sonogan dataset (manifest.csv + dataset.yaml) and validate it.

    Example: sonogan data import ../shared/datasets/mmotu-2d --format mmotu --out runs/mmotu --link

    Example: sonogan data import cases.csv --format csv --image-col file --label-col diagnosis --out runs/cases
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.data.importers import ImportOptions, import_dataset, read_report
    from sonogan.data.importers.dicom import DicomImportOptions

    if salt is not None and fmt != "dicom":
        raise SonoganInputError("--salt", f"only the dicom importer hashes patient ids (not {fmt})", "drop --salt")
    columns = {"image_col": image_col, "label_col": label_col, "mask_col": mask_col, "patient_col": patient_col}
    renamed = [f"--{k.replace('_', '-')}" for k, v in columns.items() if v != ImportOptions.model_fields[k].default]
    if renamed and fmt != "csv":
        raise SonoganInputError(renamed[0], f"only the csv importer reads named columns (not {fmt})",
                                f"drop {', '.join(renamed)}")
    fields = dict(link=link, spec=spec, name=name,
                  rare_classes=[r.strip() for r in rare.split(",")] if rare else None)
    options = DicomImportOptions(**fields, salt=salt) if fmt == "dicom" else ImportOptions(**fields, **columns)
    ds = import_dataset(src, fmt, out, options, progress=True)
    counts = ds.manifest["label"].value_counts()
    console.print(f"imported {len(ds.manifest)} images in {len(ds.spec.classes)} classes -> [bold]{out}[/]")
    console.print(", ".join(f"{c}: {counts.get(c, 0)}" for c in ds.spec.classes))
    report = read_report(out)
    if report and report["skipped"]:
        console.print(f"[yellow]skipped {len(report['skipped'])} files[/] (listed in {out / 'import-report.json'}):",
                      highlight=False)
        for item in report["skipped"]:
            console.print(f"  {item['file']}: {item['reason']}", highlight=False, markup=False)


@data_app.command("relabel")
def relabel_command(
    dataset: Path = typer.Argument(..., help="Source dataset folder."),
    mapping: list[str] = typer.Option(..., "--map", help="OLD=NEW, repeatable."),
    out: Path = typer.Option(..., "--out", help="New dataset folder (must not exist or be empty)."),
    default: Optional[str] = typer.Option(None, "--default", help="Label for unmapped classes (default: drop them)."),
    rare: Optional[str] = typer.Option(None, "--rare", help="Comma-separated rare classes of the new dataset."),
) -> None:
    """Merge or rename classes into a new dataset that links to the same images.

    Example: sonogan data relabel runs/mmotu --map high_grade_serous=malignant --default benign --rare malignant --out runs/mmotu-malignant
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.data.manifest import load_dataset
    from sonogan.data.relabel import parse_mapping, relabel_dataset

    check_new_folder(out, "dataset folder")  # before the source dataset is read
    ds = relabel_dataset(load_dataset(dataset), parse_mapping(mapping), out, default=default,
                         rare=[r.strip() for r in rare.split(",")] if rare else None)
    counts = ds.manifest["label"].value_counts()
    console.print(f"relabelled {len(ds.manifest)} images -> [bold]{out}[/]: "
                  + ", ".join(f"{c}: {counts.get(c, 0)}" for c in ds.spec.classes))


@data_app.command("validate")
def validate_command(dataset: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Check a dataset against the contract (files, masks, labels, patients, clinical values).

    Example: sonogan data validate runs/mmotu
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.data.manifest import load_dataset
    from sonogan.data.validate import validate_dataset

    report = validate_dataset(load_dataset(dataset), progress=True)
    console.print(f"[green]valid[/]: {report.n_images} images, {report.n_patients} patients")
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}")


@data_app.command("split")
def split_command(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds over the non-test part."),
    test: float = typer.Option(0.15, "--test", help="Hold-out test fraction (of patients), above 0 and below 0.5."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default DATASET/splits.json, or the dataset's cache folder when DATASET is read-only; never overwritten)."),
) -> None:
    """Patient-grouped, class-stratified hold-out test + k folds, saved once as JSON.

    Example: sonogan data split runs/phantom --folds 5 --test 0.15 --seed 0
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.data.manifest import load_dataset
    from sonogan.data.splits import make_splits

    target = out or splits_file(dataset)  # where every command looks by default
    if target.exists():
        raise SonoganInputError(target, "splits file already exists (splits are made once and reused)",
                                "reuse it, or pass --out with a new file name")
    check_output(target, "file")  # a parent that is a file, a read-only or system folder: one line, now
    ds = load_dataset(dataset)
    splits = make_splits(ds, n_folds=folds, test_fraction=test, seed=seed)
    splits.save(target)
    table = Table(title=f"splits of {ds.spec.name} (seed {seed}): images per class and partition")
    labels = ds.manifest.set_index("image_id")["label"]
    parts = [("test", splits.test)] + [(f"val {k}", f["val"]) for k, f in enumerate(splits.folds)]
    table.add_column("class")
    for name, _ in parts:
        table.add_column(name, justify="right")
    counts = {name: labels.loc[ids].value_counts() for name, ids in parts}
    for c in ds.spec.classes:
        table.add_row(c, *[str(counts[name].get(c, 0)) for name, _ in parts])
    console.print(table)
    if not ds.spec.patients_known:
        console.print("[yellow]note[/]: patients unknown in this dataset; each image is treated as its own patient.")
    console.print(f"splits -> [bold]{target}[/]")


@data_app.command("inspect")
def inspect_command(
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="New folder for the report (default DATASET/inspect-NNN, or in the dataset's cache folder when DATASET is read-only)."),
    against: Optional[Path] = typer.Option(None, "--against", help="Another dataset (e.g. an external test set): list the images found in both, exact or near duplicates."),
) -> None:
    """Counts per class / patient / source, image sizes, mask coverage, duplicates, montages.

    Example: sonogan data inspect runs/mmotu --against runs/external-test
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.data.inspect import inspect_dataset
    from sonogan.data.manifest import load_dataset

    if out is not None:
        check_new_run(out)  # before the datasets are read
    ds = load_dataset(dataset)
    other = load_dataset(against) if against is not None else None  # a bad path fails before any work
    # the context marks run.json failed (with the error line) if inspection stops on a bad file
    with RunDir.create(out or next_run_dir(work_dir(dataset), "inspect"), kind="inspect") as run:
        summary = inspect_dataset(ds, run.path, progress=True, against=other)
        run.write_metrics(summary)
    print_summary(summary)
    console.print(f"report -> [bold]{run.path}[/]")


def print_summary(summary: dict) -> None:
    """Rich tables of the inspect summary: classes x images / patients / mask coverage, and notes."""
    per_class = summary.get("per_class", {})
    table = Table(title=f"{summary.get('name', 'dataset')}: {summary.get('n_images')} images, "
                        f"{summary.get('n_patients')} patients, {len(per_class)} classes")
    for col in ("class", "images", "patients", "mean mask coverage"):
        table.add_column(col, justify="left" if col == "class" else "right")
    patients = summary.get("patients_per_class", {})
    coverage = summary.get("mask_coverage", {})
    for name, n_images in per_class.items():
        cov = coverage.get(name, {}).get("mean")
        table.add_row(name, str(n_images), str(patients.get(name, "-")),
                      f"{cov:.1%}" if isinstance(cov, (int, float)) else "-")
    console.print(table)
    width, height = summary.get("image_width", {}), summary.get("image_height", {})
    if width:
        console.print(f"image sizes: width {width.get('min'):.0f}-{width.get('max'):.0f} px, "
                      f"height {height.get('min'):.0f}-{height.get('max'):.0f} px")
    console.print(f"sources: {summary.get('per_source')}; duplicate groups: {summary.get('n_duplicate_groups', 0)}")
    cross = summary.get("against")
    if cross:
        colour = "red" if cross["n_pairs"] else "green"
        console.print(f"[{colour}]against {cross['name']}[/]: {cross['n_pairs']} image pairs in both datasets "
                      f"({cross['n_exact']} exact, {cross['n_near']} near); listed under 'against' in summary.json")
    if not summary.get("patients_known", True):
        console.print("[yellow]note[/]: patients unknown; each image is treated as its own patient.")
    for line in summary.get("warnings", []):
        console.print(f"[yellow]warning[/]: {line}")
