"""Import an existing CSV table of images (paths relative to the CSV's folder, or absolute).

Columns (renamable with ImportOptions, on the command line ``--image-col``, ``--label-col``,
``--mask-col``, ``--patient-col``): ``image`` (required), ``label`` (required), ``mask``,
``patient_id``, optional ``image_id``, plus the clinical columns declared in ``--spec``.
Without a spec, classes are inferred from the labels (sorted; at least two) and other columns
are kept as plain extra columns (not clinical variables: their types are unknown without a spec).
The delimiter is a comma, or what :func:`sniff_delimiter` finds in a header without commas
(``;`` from spreadsheets in many locales, tab, ``|``).

Example:
    >>> from sonogan.data.importers import import_dataset, ImportOptions
    >>> ds = import_dataset(Path("table/cases.csv"), "csv", Path("datasets/cases"),
    ...                     ImportOptions(spec=Path("table/dataset.yaml")))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from sonogan.data.importers.common import IMPORTERS, ImportedDataset, ImportOptions, materialise, resolve_spec
from sonogan.data.validate import check_rows
from sonogan.errors import SonoganInputError


def find_csv(src: Path) -> Path:
    """``src`` itself, or the single ``*.csv`` in folder ``src``."""
    if src.is_file():
        return src
    found = sorted(src.glob("*.csv")) if src.is_dir() else []
    if len(found) != 1:
        raise SonoganInputError(src, f"expected a CSV file or a folder with exactly one .csv (found {len(found)})",
                                "pass the CSV file itself")
    return found[0]


def _dst(rel: str, label: str) -> str:
    """Destination inside images/ or masks/: the CSV's relative layout, or <label>/<name> for
    absolute paths and paths with '..' (which must never place files outside the dataset)."""
    p = Path(rel)
    parts = [x for x in p.parts if x not in ("", ".")]
    if p.is_absolute() or ".." in parts:
        return f"{label}/{p.name}"
    return "/".join(parts)


def sniff_delimiter(path: Path) -> str:
    """',' unless the header has no comma; then the delimiter csv.Sniffer finds among ``; tab |``
    in the first lines (a comma file is never re-guessed: its reading stays exactly as it was)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        head = fh.read(64 * 1024)
    if "," in head.split("\n", 1)[0]:
        return ","
    try:
        return csv.Sniffer().sniff(head, delimiters=";\t|").delimiter
    except csv.Error:  # one column, or no consistent delimiter: read as a comma file, as before
        return ","


_COLUMN_OPTIONS = {"image_col": "--image-col", "label_col": "--label-col"}


def scan_csv(src: Path, options: ImportOptions) -> tuple[Path, pd.DataFrame]:
    """Read and map the CSV's columns; rows hold absolute source paths."""
    path = find_csv(src)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sniff_delimiter(path))
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SonoganInputError(path, f"unreadable CSV ({str(exc).splitlines()[0]})", "repair the CSV") from None
    for field, flag in _COLUMN_OPTIONS.items():
        col = getattr(options, field)
        if col not in table.columns:
            raise SonoganInputError(path, f"no '{col}' column (has {list(table.columns)})",
                                    f"rename the column, or name yours with {flag} COLUMN")
    base = path.parent
    rename = {options.image_col: "image", options.label_col: "label",
              options.mask_col: "mask", options.patient_col: "patient_id"}
    df = table.rename(columns={k: v for k, v in rename.items() if k in table.columns})
    df = df.loc[:, ~df.columns.duplicated()]
    for col in ("mask", "patient_id"):
        if col not in df.columns:
            df[col] = ""
    df["image"] = df["image"].str.strip()
    df["mask"] = df["mask"].str.strip()
    for i, p in enumerate(df["image"]):
        if not p:
            raise SonoganInputError(f"{path}, line {i + 2}", "empty image path", "fill in the image column")
    rel = [_dst(p, lab) for p, lab in zip(df["image"], df["label"])]
    dst_image = [f"images/{r}" for r in rel]
    if "image_id" not in df.columns:
        # stable id from the dataset-relative path (not the machine's absolute path): 'benign/a.png' -> 'benign-a'
        df["image_id"] = [re.sub(r"[^\w.-]+", "-", str(Path(r).with_suffix(""))) for r in rel]
    dst_mask = [f"masks/{_dst(m, lab)}" if m else "" for m, lab in zip(df["mask"], df["label"])]
    df["image"] = [str(p if Path(p).is_absolute() else base / p) for p in df["image"]]
    df["mask"] = [str(m if Path(m).is_absolute() else base / m) if m else "" for m in df["mask"]]
    df["_dst_image"], df["_dst_mask"] = dst_image, dst_mask
    return path, df


@IMPORTERS.register("csv")
def import_csv(src: Path, out: Path, options: ImportOptions, progress: bool = False) -> ImportedDataset:
    """Import the CSV ``src`` (file, or folder with one CSV) into ``out``."""
    path, df = scan_csv(Path(src), options)
    labels = sorted(set(df["label"]) - {""})
    if options.spec is None and len(labels) < 2:  # said here: the user wrote no config to blame
        found = f"only one class ('{labels[0]}')" if labels else "no class"
        raise SonoganInputError(path, f"{found} in column '{options.label_col}'; at least two are needed",
                                "add images of another class (or point --label-col at the column with the classes)")
    patients_known = bool((df["patient_id"] != "").all())
    if options.spec is None:
        spec = resolve_spec(options, path, labels, default_name=path.stem,
                            masks="optional" if (df["mask"] != "").any() else "none",
                            patients_known=patients_known)
    else:
        spec = resolve_spec(options, path, [], default_name=path.stem, masks="optional",
                            patients_known=patients_known)
        missing = [c for c in spec.clinical if c not in df.columns]
        if missing:
            raise SonoganInputError(path, f"clinical columns {missing} declared in {options.spec} are missing",
                                    "add the columns (empty cells = missing values) or remove them from the spec")
    # label / clinical / id problems are reported against the user's CSV line, not our copy
    check_rows(df.drop(columns=["_dst_image", "_dst_mask"]), spec, path)
    return materialise(spec, df, Path(out), options.link, progress)
