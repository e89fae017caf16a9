"""Import a class-per-folder tree: ``SRC/<class>/*.png`` (+ optional masks and patients.csv).

Layout understood:
    SRC/<class>/<name>.{png,jpg,jpeg,bmp,tif}     images; classes = subfolder names
    SRC/<class>/masks/<stem>.*  or  SRC/masks/<class>/<stem>.*   optional masks (same stem)
    SRC/patients.csv            optional, columns ``image`` (file name, or <class>/<file name>)
                                and ``patient_id``; without it patients are unknown

Every other file is skipped and listed with its reason (``import-report.json`` and the CLI):
hidden files, other types (e.g. ``.gif``), multi-frame images (an animated PNG or a
multi-page TIFF: which frame is the scan is the user's choice), images under
:data:`~sonogan.imageio.MIN_SIDE` px a side, files outside class folders or in their
subfolders, and masks without an image. A file that claims to be an image but cannot be
decoded is not skipped: validation refuses the import and names it.

Example:
    >>> from sonogan.data.importers import import_dataset
    >>> ds = import_dataset(Path("scans"), "folder", Path("datasets/scans"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sonogan.data.importers.common import (IMAGE_EXTS, IMPORTERS, ImportedDataset, ImportOptions,
                                           materialise, resolve_spec)
from sonogan.errors import SonoganInputError
from sonogan.imageio import MIN_SIDE, read_bytes, read_header

PATIENTS_FILE = "patients.csv"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                  and not p.name.startswith("."))


def skip_reason(path: Path) -> str | None:
    """Why a file in a class folder is not imported as an image, or None (import it).

    Only the header is read. A file that claims to be an image but is broken is *not* skipped
    here: validation refuses it, naming the file, because the user meant it to be imported.
    """
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix.lower() not in IMAGE_EXTS:
        return (f"not an image type the folder importer reads ({path.suffix.lower() or 'no extension'}; "
                f"it reads {', '.join(IMAGE_EXTS)}): convert it to PNG")
    try:
        header = read_header(read_bytes(path), path, multi_frame=True)
    except SonoganInputError:
        return None  # validation names the problem and refuses the import
    if header.frames > 1 and header.format != "MPO":
        # which frame of a loop is the scan is the user's choice, so none is taken silently
        return (f"multi-frame image ({header.frames} frames): export the frame you want as PNG, "
                "or import the cine loop with --format dicom")
    if min(header.width, header.height) < MIN_SIDE:
        return f"image is {header.width} x {header.height} px, below the minimum of {MIN_SIDE} x {MIN_SIDE} px"
    return None


def _not_imported(src: Path, used: set[Path]) -> list[Path]:
    """Every file under ``src`` that no row uses (patients.csv aside), sorted."""
    return sorted(p for p in src.rglob("*") if p.is_file() and p not in used and p != src / PATIENTS_FILE)


def _where_reason(src: Path, path: Path, classes: list[str], reasons: dict[Path, str]) -> str:
    rel = path.relative_to(src)
    if path in reasons:
        return reasons[path]
    if "masks" in rel.parts:
        return "mask without an imported image of the same stem"
    if len(rel.parts) == 1:
        return "not inside a class folder (SRC/<class>/)"
    if rel.parts[0] in classes:
        return "in a subfolder of the class folder (the folder importer reads SRC/<class>/* only)"
    return "hidden folder"


def _find_mask(src: Path, cls: str, stem: str) -> Path | None:
    for folder in (src / cls / "masks", src / "masks" / cls):
        if folder.is_dir():
            for p in _images_in(folder):
                if p.stem == stem:
                    return p
    return None


def read_patients(path: Path) -> dict[str, str]:
    """``patients.csv`` -> {image file name or <class>/<name>: patient_id}."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SonoganInputError(path, f"unreadable CSV ({str(exc).splitlines()[0]})",
                                "write it as CSV with columns image,patient_id") from None
    if not {"image", "patient_id"} <= set(df.columns):
        raise SonoganInputError(path, f"needs columns image,patient_id (has {list(df.columns)})",
                                "rename the columns")
    return dict(zip(df["image"].str.strip(), df["patient_id"].str.strip()))


def scan_folder(src: Path, options: ImportOptions) -> tuple[list[str], pd.DataFrame, bool, list[dict[str, str]]]:
    """Find classes, images, masks and patients; rows hold absolute source paths. Also returns
    every file that is not imported, with the reason (``file`` relative to ``src``, ``reason``)."""
    classes = sorted(p.name for p in src.iterdir()
                     if p.is_dir() and p.name != "masks" and not p.name.startswith("."))
    if not classes:
        raise SonoganInputError(src, "no class subfolders found",
                                "put images in SRC/<class>/ (one folder per class)")
    patients_path = src / PATIENTS_FILE
    patients = read_patients(patients_path) if patients_path.is_file() else None
    rows = []
    reasons: dict[Path, str] = {}
    used: set[Path] = set()
    for cls in classes:
        for img in sorted(p for p in (src / cls).iterdir() if p.is_file()):
            why = skip_reason(img)
            if why is not None:
                reasons[img] = why
                continue
            mask = _find_mask(src, cls, img.stem)
            used.update([img] + ([mask] if mask else []))
            patient = ""
            if patients is not None:
                patient = patients.get(f"{cls}/{img.name}", patients.get(img.name, ""))
                if not patient:
                    raise SonoganInputError(patients_path, f"no patient_id for {cls}/{img.name}",
                                            "add a row for every image (image,patient_id)")
            rows.append({
                "image_id": f"{cls}-{img.stem}", "label": cls, "patient_id": patient,
                "image": str(img), "_dst_image": f"images/{cls}/{img.name}",
                "mask": str(mask) if mask else "",
                "_dst_mask": f"masks/{cls}/{mask.name}" if mask else "",
            })
    skipped = [{"file": str(p.relative_to(src)), "reason": _where_reason(src, p, classes, reasons)}
               for p in _not_imported(src, used)]
    if not rows:
        first = f" ({len(skipped)} files skipped; first: {skipped[0]['file']}: {skipped[0]['reason']})" if skipped else ""
        raise SonoganInputError(src, f"no images ({', '.join(IMAGE_EXTS)}) in the class folders{first}",
                                "put images in SRC/<class>/")
    df = pd.DataFrame(rows)
    dup = df[df["image_id"].duplicated()]
    if len(dup):
        raise SonoganInputError(dup["image"].iloc[0], "two images in one class share this file stem",
                                "rename one of them (image ids are <class>-<stem>)")
    return classes, df, patients is not None, skipped


@IMPORTERS.register("folder")
def import_folder(src: Path, out: Path, options: ImportOptions, progress: bool = False) -> ImportedDataset:
    """Import ``SRC/<class>/*`` into the new dataset folder ``out``; every other file is listed
    in the dataset's ``skipped`` with its reason."""
    src = Path(src)
    classes, df, patients_known, skipped = scan_folder(src, options)
    has_masks = bool((df["mask"] != "").any())
    spec = resolve_spec(options, src, classes, default_name=src.resolve().name,
                        masks="optional" if has_masks else "none", patients_known=patients_known)
    ds = materialise(spec, df, Path(out), options.link, progress)
    ds.skipped = skipped
    return ds
