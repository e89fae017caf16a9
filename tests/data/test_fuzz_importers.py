"""Fuzzing the importers (folder, CSV, DICOM) with generated bad inputs (Hypothesis).

Property: an import either succeeds or raises a one-line SonoganError (never a traceback),
and the user's source files are byte-for-byte unchanged. The default suite runs a fast
profile (derandomized, a few dozen examples each); ``-m slow`` runs the long one.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless, RLELossless)

from sonogan.data.importers import import_dataset
from sonogan.data.importers.dicom import DicomImportOptions
from sonogan.errors import SonoganError

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(FAST, max_examples=300, derandomize=False)


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def check_import(src: Path, fmt: str, out: Path, options=None) -> None:
    """The property: success or one SonoganError line, and the source untouched."""
    root = src if src.is_dir() else src.parent
    before = hashes(root)
    try:
        import_dataset(src, fmt, out, options)
    except SonoganError as exc:
        assert str(exc).strip(), "an error without a message"
    assert hashes(root) == before


# --- image bytes: valid, odd modes, truncated, random --------------------------------------

def _encode(arr: np.ndarray, mode: str, fmt: str) -> bytes:
    img = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "valid", "truncated", "random", "empty", "animated", "header-only"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "empty":
        return b""
    h, w = draw(st.integers(1, 72)), draw(st.integers(1, 72))
    arr = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "animated":
        frames = [Image.fromarray(arr), Image.fromarray(255 - arr)]
        buf = io.BytesIO()
        frames[0].save(buf, draw(st.sampled_from(["GIF", "PNG", "TIFF"])), save_all=True, append_images=frames[1:])
        return buf.getvalue()
    mode, fmt = draw(st.sampled_from([("L", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"),
                                      ("LA", "PNG"), ("1", "PNG"), ("RGB", "JPEG"), ("CMYK", "JPEG"), ("L", "BMP"),
                                      ("RGB", "TIFF"), ("F", "TIFF")]))
    data = _encode(arr, mode, fmt)
    if kind == "truncated":
        return data[:draw(st.integers(1, max(1, len(data) - 1)))]
    if kind == "header-only":  # a valid start, garbage after the header
        return data[:40] + draw(st.binary(min_size=0, max_size=60))
    return data


NAMES = st.sampled_from(["a.png", "b.jpg", "c.jpeg", "d.bmp", "e.tif", "f.gif", "g.PNG", "h", "i.txt", ".j.png"])


FOLDER = {"files": st.lists(st.tuples(st.sampled_from(["benign", "malignant"]), NAMES, image_bytes()),
                           min_size=1, max_size=6)}


def _folder_property(files: list[tuple[str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for k in range(3):  # a valid core, so the success path is reached too
            for c, cls in enumerate(["benign", "malignant"]):
                arr = np.random.default_rng(10 * c + k).integers(0, 256, (40, 48), dtype=np.uint8)
                (src / cls).mkdir(parents=True, exist_ok=True)
                (src / cls / f"core{k}.png").write_bytes(_encode(arr, "L", "PNG"))
        for cls, name, data in files:
            (src / cls / name).write_bytes(data)
        check_import(src, "folder", Path(tmp) / "out")


test_folder_import_fuzz = FAST(given(**FOLDER)(_folder_property))
test_folder_import_fuzz_long = pytest.mark.slow(LONG(given(**FOLDER)(_folder_property)))


# --- CSV: columns, delimiters, encodings, missing values ---------------------------------------

CELLS = st.one_of(st.sampled_from(["", "x.png", "ok0.png", "ok1.png", "missing.png", "benign", "malignant",
                                   "p1", "p2", "NA", "nan", "../ok0.png", "/etc/passwd", "ok0.png;ok1.png"]),
                  st.text(max_size=12))


CSV = {"columns": st.lists(st.sampled_from(["image", "label", "patient_id", "mask", "age", "x", ""]), min_size=1,
                          max_size=5),
       "rows": st.lists(st.lists(CELLS, min_size=0, max_size=6), max_size=8),
       "delimiter": st.sampled_from([",", ";", "\t", "|"]),
       "encoding": st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
       "image_col": st.sampled_from([None, "image", "file"])}


def _csv_property(columns: list[str], rows: list[list[str]], delimiter: str, encoding: str,
                  image_col: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for k in range(2):
            arr = np.random.default_rng(k).integers(0, 256, (40, 48), dtype=np.uint8)
            (src / f"ok{k}.png").write_bytes(_encode(arr, "L", "PNG"))
        text = "\n".join(delimiter.join(r) for r in [columns, *rows]) + "\n"
        (src / "list.csv").write_bytes(text.encode(encoding, errors="replace"))
        options = None
        if image_col is not None:
            from sonogan.data.importers import ImportOptions
            options = ImportOptions(image_col=image_col)
        check_import(src / "list.csv", "csv", Path(tmp) / "out", options)


test_csv_import_fuzz = FAST(given(**CSV)(_csv_property))
test_csv_import_fuzz_long = pytest.mark.slow(LONG(given(**CSV)(_csv_property)))


# --- DICOM: missing and odd tags, transfer syntaxes, truncated pixel data ----------------------

SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
            JPEGBaseline8Bit, JPEGLSLossless, RLELossless, "1.2.3.4.5.bogus"]
OPTIONAL = st.one_of(st.none(), st.integers(-2, 70), st.sampled_from([40000, 2 ** 16 - 1]))


@st.composite
def dicom_bytes(draw: st.DrawFn) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    # a drawn UID (not generate_uid()): the same draws must give the same bytes, for shrinking
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{draw(st.integers(1, 10**6))}"
    meta.TransferSyntaxUID = draw(st.sampled_from(SYNTAXES))
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    tags: dict[str, Callable[[], object]] = {
        "Modality": lambda: draw(st.sampled_from(["US", "CT", "", "us"])),
        "Rows": lambda: draw(OPTIONAL), "Columns": lambda: draw(OPTIONAL),
        "NumberOfFrames": lambda: draw(st.sampled_from([1, 2, 0, 100000])),
        "SamplesPerPixel": lambda: draw(st.sampled_from([1, 3, 4])),
        "PhotometricInterpretation": lambda: draw(st.sampled_from(["MONOCHROME2", "MONOCHROME1", "RGB",
                                                                   "YBR_FULL_422", "PALETTE COLOR", "XYZ"])),
        "BitsAllocated": lambda: draw(st.sampled_from([1, 8, 12, 16, 32])),
        "BitsStored": lambda: draw(st.sampled_from([1, 8, 12, 16])),
        "PixelRepresentation": lambda: draw(st.sampled_from([0, 1])),
        "PlanarConfiguration": lambda: draw(st.sampled_from([0, 1])),
        "PatientID": lambda: draw(st.text(max_size=8)),
    }
    for name, value in tags.items():
        if draw(st.booleans()) or name in ("Modality", "Rows", "Columns"):
            v = value()
            if v is not None:
                setattr(ds, name, v)
    if draw(st.booleans()):
        reg = Dataset()
        reg.RegionSpatialFormat = 1
        reg.RegionLocationMinX0, reg.RegionLocationMinY0 = draw(st.integers(0, 60)), draw(st.integers(0, 60))
        reg.RegionLocationMaxX1, reg.RegionLocationMaxY1 = draw(st.integers(0, 60)), draw(st.integers(0, 60))
        ds.SequenceOfUltrasoundRegions = [reg]
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    full = max(0, min(rows * cols, 80 * 80)) * int(ds.get("SamplesPerPixel", 1) or 1)
    n = draw(st.sampled_from([0, 1, full // 2, full, full + 7])) if full else draw(st.integers(0, 64))
    ds.PixelData = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception:  # pydicom refuses to write some combinations; write what it can
        buf = io.BytesIO(b"DICM" + bytes(n % 97))
    data = buf.getvalue()
    return data[:draw(st.integers(1, len(data)))] if draw(st.booleans()) else data


DICOM = {"files": st.lists(dicom_bytes(), min_size=1, max_size=3)}


def _dicom_property(files: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for k, data in enumerate(files):
            path = src / ("benign" if k % 2 else "malignant") / f"IMG{k}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        check_import(src, "dicom", Path(tmp) / "out", DicomImportOptions(salt="fuzz"))


test_dicom_import_fuzz = FAST(given(**DICOM)(_dicom_property))
test_dicom_import_fuzz_long = pytest.mark.slow(LONG(given(**DICOM)(_dicom_property)))
