"""Import the MMOTU OTU_2d layout (``manifest.csv`` + ``images/<label>/`` + ``masks/<label>/``).

8 classes in ``mmotu_index`` order, rare = high_grade_serous + simple_cyst, masks required,
no patient ids (each image is its own case), and ``malignant``, ``mmotu_index``,
``source_id`` kept as extra columns. Image ids are ``mmotu_<source_id>``. The description
names the source folder, the split its README's title names, and the per-class counts.

Example:
    >>> from sonogan.data.importers import import_dataset, ImportOptions
    >>> ds = import_dataset(Path("../shared/datasets/mmotu-2d"), "mmotu", Path("datasets/mmotu"),
    ...                     ImportOptions(link=True))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sonogan.data.importers.common import IMPORTERS, ImportedDataset, ImportOptions, materialise, resolve_spec
from sonogan.errors import SonoganInputError

MMOTU_RARE = ["high_grade_serous", "simple_cyst"]
MMOTU_EXTRA = ["malignant", "mmotu_index", "source_id"]
MMOTU_CITATION = ("Zhao Q. et al., A Multi-Modality Ovarian Tumor Ultrasound Image Dataset for "
                  "Unsupervised Cross-Domain Semantic Segmentation, 2022")


def scan_mmotu(src: Path) -> tuple[list[str], pd.DataFrame]:
    """Read the MMOTU manifest; returns classes in mmotu_index order and rows with absolute paths."""
    path = src / "manifest.csv"
    if not path.is_file():
        raise SonoganInputError(path, "MMOTU manifest.csv not found",
                                "point at the mmotu-2d folder (it holds manifest.csv, images/, masks/)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    need = ["image", "mask", "label"] + MMOTU_EXTRA
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise SonoganInputError(path, f"missing columns {missing}", "use the mmotu-2d manifest as shipped")
    bad = df[(df["label"] == "") | ~df["mmotu_index"].str.fullmatch(r"\d+")]
    if len(bad):
        raise SonoganInputError(f"{path}, line {bad.index[0] + 2}", "empty label or non-integer mmotu_index",
                                "restore the row from the original manifest")
    order = df.groupby("label")["mmotu_index"].first().astype(int).sort_values()
    rows = pd.DataFrame({
        "image_id": "mmotu_" + df["source_id"],
        "image": [str(src / p) for p in df["image"]], "_dst_image": df["image"],
        "mask": [str(src / p) if p else "" for p in df["mask"]], "_dst_mask": df["mask"],
        "label": df["label"], "patient_id": "",
    })
    for col in MMOTU_EXTRA:
        rows[col] = df[col]
    return list(order.index), rows


def describe_import(src: Path, rows: pd.DataFrame, classes: list[str]) -> str:
    """What was imported: the source folder, the split its README names, and the counts."""
    readme = src / "README.md"
    heads = [ln.lstrip("# ").strip() for ln in readme.read_text(encoding="utf-8").splitlines()
             if ln.startswith("#")] if readme.is_file() else []
    counts = rows["label"].value_counts()
    return (f"MMOTU OTU_2d images from {src.resolve()}" + (f" ({heads[0]})" if heads else "")
            + f": {len(rows)} images (" + ", ".join(f"{c} {counts.get(c, 0)}" for c in classes)
            + "); no patient ids, each image is treated as its own case")


@IMPORTERS.register("mmotu")
def import_mmotu(src: Path, out: Path, options: ImportOptions, progress: bool = False) -> ImportedDataset:
    """Import the MMOTU folder ``src`` into ``out``."""
    src = Path(src)
    classes, rows = scan_mmotu(src)
    spec = resolve_spec(options, src, classes, default_name="mmotu-2d", masks="required",
                        patients_known=False,
                        # a subset may lack a rare class; listing it anyway would make the spec invalid
                        default_rare=[c for c in MMOTU_RARE if c in classes],
                        extra={"classes": classes, "citation": MMOTU_CITATION,
                               "description": describe_import(src, rows, classes)})
    return materialise(spec, rows, Path(out), options.link, progress)
