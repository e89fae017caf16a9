"""Importers: turn a source (class folders, a CSV, MMOTU, DICOM files) into a sonogan dataset folder.

One registry, ``IMPORTERS`` ("folder", "csv", "mmotu", "dicom"); each factory is
``factory(src, out, options) -> Dataset``. :func:`import_dataset` refuses a non-empty
``out``, imports (copy or symlink; the source is never modified), validates, and on any
error removes the half-made ``out`` and names the user's original files (every problem
validation found, as :class:`~sonogan.data.validate.ValidationErrors` when there are several).
Every import writes ``import-report.json``: counts, and each skipped source file with its reason.

Example:
    >>> from pathlib import Path
    >>> ds = import_dataset(Path("scans"), "folder", Path("datasets/scans"),
    ...                     ImportOptions(link=True, rare_classes=["borderline"]))  # doctest: +SKIP
    >>> len(ds.manifest)  # doctest: +SKIP
    120
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sonogan.data.importers.common import IMPORTERS, REPORT_FILE, ImportedDataset, ImportOptions, read_report
from sonogan.data.manifest import Dataset, write_dataset
from sonogan.data.validate import ValidationErrors, validate_dataset
from sonogan.errors import SonoganInputError
from sonogan.outpaths import check_output
from sonogan.runs import ensure_new_dir, write_json

# importing the modules registers them
from sonogan.data.importers import csv as _csv  # noqa: E402,F401
from sonogan.data.importers import dicom as _dicom  # noqa: E402,F401
from sonogan.data.importers import folder as _folder  # noqa: E402,F401
from sonogan.data.importers import mmotu as _mmotu  # noqa: E402,F401

__all__ = ["IMPORTERS", "REPORT_FILE", "ImportOptions", "ImportedDataset", "import_dataset", "read_report"]


def _to_source(exc: SonoganInputError, ds: Dataset | None, src: Path) -> SonoganInputError:
    """Rewrite an error about the new dataset (which is removed on failure) to name the source."""
    if isinstance(exc, ValidationErrors):
        return ValidationErrors([_to_source(e, ds, src) for e in exc.errors], src)
    if not isinstance(ds, ImportedDataset):
        return exc
    for rel, origin in ds.origins.items():
        if exc.where == str(ds.root / rel):
            return SonoganInputError(origin, exc.what, exc.fix)
    root = str(ds.root)
    if exc.where.startswith(root):  # manifest.csv / dataset.yaml of the import: name the source
        rest = exc.where[len(root):].lstrip("/\\")
        return SonoganInputError(f"{src} (as imported: {rest})", exc.what, exc.fix)
    return exc


def _remove(out: Path, existed: bool) -> None:
    # out was new (or empty) before we started, so removing it loses nothing of the user's;
    # rmtree unlinks symlinks without following them, so linked sources are untouched
    shutil.rmtree(out, ignore_errors=True)
    if existed:
        out.mkdir(parents=True, exist_ok=True)


def import_dataset(src: Path, fmt: str, out: Path, options: ImportOptions | None = None,
                   progress: bool = False) -> Dataset:
    """Import ``src`` in format ``fmt`` into the new folder ``out``, validate it, return it."""
    src, out = Path(src), Path(out)
    options = options or ImportOptions()
    factory = IMPORTERS.get(fmt)  # unknown format fails before anything is created
    check_output(out, "folder")  # a parent that is a file, a read-only or system folder: one line, now
    if not src.exists():
        raise SonoganInputError(src, "source not found", "check the path")
    if src.is_dir() and out.resolve().is_relative_to(src.resolve()):
        raise SonoganInputError(out, "output folder is inside the source", "choose --out outside the source")
    existed = out.exists()
    ensure_new_dir(out, "dataset folder")
    ds: Dataset | None = None
    try:
        ds = factory(src=src, out=out, options=options, progress=progress)
        report = validate_dataset(ds, progress=progress)
        # validation decoded every image anyway: record the pixel sizes (docs: filled by importers)
        assert report.file_stats is not None
        manifest = ds.manifest.assign(width=report.file_stats["width"].astype(str).to_numpy(),
                                      height=report.file_stats["height"].astype(str).to_numpy())
        written = write_dataset(out, ds.spec, manifest)
        skipped = getattr(ds, "skipped", [])
        ds = ImportedDataset(written.root, written.spec, written.manifest, getattr(ds, "origins", {}), skipped)
        if not (out / REPORT_FILE).is_file():  # the DICOM importer writes its own (with crop counts)
            write_json(out / REPORT_FILE, {"format": fmt, "source": src.resolve().name, "images": len(manifest),
                                           "files_skipped": len(skipped), "skipped": skipped})
    except SonoganInputError as exc:
        _remove(out, existed)
        raise _to_source(exc, ds, src) from None
    except BaseException:
        _remove(out, existed)
        raise
    return ds
