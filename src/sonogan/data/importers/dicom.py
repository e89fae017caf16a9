"""Import ultrasound DICOM files (``--format dicom``), de-identified, one PNG per frame.

Layout understood: ``SRC/<class>/**`` — every file under a class folder, at any depth, with
or without ``.dcm``, is read as DICOM; the class folder names are the labels (as in the
``folder`` importer). Hidden files and ``DICOMDIR`` indexes are ignored.

De-identification (after the DICOM basic confidentiality profile): no header value is
copied into the dataset. Only pixels (cropped to the scan region, see
:mod:`~sonogan.data.importers.dicom_pixels`) and these columns are written: ``image_id``
``<file hash>_f<frame>`` (a salted SHA-256 of the SOP Instance UID, else of the file's
bytes; frames numbered from 1 as in DICOM), ``patient_id`` (a salted SHA-256 of
PatientID; a file without PatientID is its own patient), ``label`` (the class folder),
``style`` (Manufacturer + ManufacturerModelName: the scanner, not the patient), ``frame``
and ``crop`` (regions / table / scan_area). The salt is ``--salt``, else the secret file
``.sonogan-salt`` beside the output folder (created once, mode 600, reused by later imports
into the same parent folder so patient ids match across imports).

A file that is not DICOM, is corrupt, is not ultrasound (Modality != US), has no pixel
data, declares more pixels than the safe decoder's limit (checked from the header, before
decoding), cannot be decoded, has a scan region under 32 x 32 px after cropping, or repeats
an imported SOP instance is skipped; the skipped files
(path relative to SRC, and why) are listed in ``import-report.json`` in the dataset and by
the CLI. The import fails only when nothing could be imported.

Example:
    >>> salted_hash("salt", "patient", "12345")
    'da318a91734d5074'
    >>> from sonogan.data.importers import import_dataset
    >>> ds = import_dataset(Path("exports"), "dicom", Path("datasets/clinic"),
    ...                     DicomImportOptions(salt="s3cret"))  # doctest: +SKIP
    >>> read_report(Path("datasets/clinic"))["skipped"][0]  # doctest: +SKIP
    {'file': 'benign/CT0001', 'reason': "not ultrasound (Modality 'CT')"}
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from rich.progress import track

from sonogan.data.importers.common import (IMPORTERS, REPORT_FILE, ImportedDataset, ImportOptions, materialise,  # noqa: F401
                                           read_report, resolve_spec)  # read_report: importable from here too
from sonogan.data.importers.dicom_pixels import choose_crop, decode_frames
from sonogan.errors import SonoganInputError
from sonogan.imageio import MAX_PIXELS, MIN_SIDE
from sonogan.data.scan_area import crop_box

SALT_FILE = ".sonogan-salt"
HASH_CHARS = 16  # 64 bits: collisions are negligible for any clinical cohort, ids stay short
IGNORED_NAMES = {"DICOMDIR"}
#: Most pixels one file may hold over all its frames: 4 full-limit frames, or about 745
#: frames of 800 x 600 (a 25 s loop at 30 fps), 358 MB as grey uint8.
MAX_FILE_PIXELS = 4 * MAX_PIXELS


class DicomImportOptions(ImportOptions):
    """ImportOptions plus the de-identification salt (``--salt``); None = the salt file beside ``out``."""

    salt: str | None = None


class Skip(Exception):
    """A source file that is skipped (not an error of the whole import); the message says why."""


@dataclass
class Converted:
    """One imported DICOM file: where its frames were written and what the manifest says."""

    source: Path
    file_hash: str
    patient: str | None  # None: the file has no PatientID
    rows: list[dict[str, str]]


def salted_hash(salt: str, kind: str, value: str) -> str:
    """Short salted SHA-256 of ``value``; ``kind`` separates patient hashes from file hashes."""
    digest = hashlib.sha256("\0".join((salt, kind, value)).encode("utf-8")).hexdigest()
    return digest[:HASH_CHARS]


def load_salt(out: Path, salt: str | None) -> str:
    """``salt`` if given, else the salt file beside ``out`` (created with a random secret if missing)."""
    if salt is not None:
        if not salt.strip():
            raise SonoganInputError("--salt", "the salt is empty", "pass a long random secret, or omit --salt")
        return salt
    path = Path(out).resolve().parent / SALT_FILE
    try:  # O_EXCL: two imports started together never write two different salts
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    except FileExistsError:
        pass
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise SonoganInputError(path, "the salt file is empty",
                                "restore it from a backup (patient ids depend on it), or delete it to start anew")
    return text


def find_files(src: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """(class, file) for every candidate file under ``SRC/<class>/``, and files outside class folders."""
    found: list[tuple[str, Path]] = []
    loose: list[Path] = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if not path.is_file() or any(p.startswith(".") for p in rel.parts) or path.name in IGNORED_NAMES:
            continue
        if len(rel.parts) == 1:
            loose.append(path)
        else:
            found.append((rel.parts[0], path))
    return found, loose


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:159] + "…"


def read_dicom(path: Path) -> tuple[Dataset, np.ndarray]:
    """The dataset and its decoded uint8 frames; raises :class:`Skip` with the reason otherwise."""
    try:
        ds = dcmread(path)
    except InvalidDicomError:
        raise Skip("not a DICOM file (no DICM header)") from None
    except Exception as exc:  # pydicom raises many kinds on malformed data; any of them = corrupt
        raise Skip(f"corrupt DICOM ({_first_line(exc)})") from None
    modality = str(ds.get("Modality", "") or "")
    if modality.upper() != "US":
        raise Skip(f"not ultrasound (Modality {modality!r})")
    if "PixelData" not in ds:
        raise Skip("no pixel data")
    check_declared_size(ds)
    try:
        frames = decode_frames(ds)
    except Exception as exc:  # truncated data, unsupported compression (no decoder installed), ...
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise Skip(f"pixel data cannot be decoded ({name}: {_first_line(exc)})") from None
    if frames.ndim not in (3, 4) or 0 in frames.shape:
        raise Skip(f"unexpected pixel array shape {frames.shape}")
    return ds, frames


def check_declared_size(ds: Dataset) -> None:
    """Refuse (:class:`Skip`) a file whose header declares more pixels than the safe decoder
    accepts, before pydicom decodes anything: per frame :data:`~sonogan.imageio.MAX_PIXELS`
    (as for image files), over all frames :data:`MAX_FILE_PIXELS`."""
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # malformed values raise anything from TypeError to pydicom's own errors
        raise Skip(f"corrupt DICOM (Rows/Columns/NumberOfFrames: {_first_line(exc)})") from None
    if rows * cols > MAX_PIXELS:
        raise Skip(f"frames are {cols} x {rows} px, larger than the limit of {MAX_PIXELS:,} px "
                   "(a decompression-bomb guard)")
    if rows * cols * n_frames > MAX_FILE_PIXELS:
        raise Skip(f"{n_frames} frames of {cols} x {rows} px, more than the limit of {MAX_FILE_PIXELS:,} px "
                   "per file (a decompression-bomb guard); export a shorter loop")


def _file_key(ds: Dataset, path: Path) -> str:
    """What identifies the image: its SOP Instance UID, else its bytes (never written anywhere)."""
    uid = str(ds.get("SOPInstanceUID", "") or "").strip()
    return f"uid:{uid}" if uid else "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _write_png(arr: np.ndarray, path: Path) -> None:
    # RGB files whose channels are equal are B-mode: store them grey like the other importers' data
    if arr.ndim == 3 and (arr == arr[..., :1]).all():
        arr = arr[..., 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)  # PIL adds no text chunks: pixels only


@dataclass
class CroppedDicom:
    """One file's de-identified content: cropped frames, crop method, salted ids and the scanner."""

    frames: list[np.ndarray]
    crop: str
    file_hash: str
    patient: str | None  # None: the file has no PatientID
    style: str
    key: str             # the unsalted file key, only to spot re-exported copies; never written


def read_cropped(path: Path, salt: str) -> CroppedDicom:
    """Decode one file and crop every frame to the scan region; raises :class:`Skip` with the reason.

    The one path from a DICOM file to pixels, shared by the importer and ``sonogan predict``:
    no header value leaves it except as a salted hash or the scanner's make and model.
    """
    ds, frames = read_dicom(path)
    key = _file_key(ds, path)
    box, method = choose_crop(ds, frames)
    width, height = box[2] - box[0], box[3] - box[1]
    if min(width, height) < MIN_SIDE:
        raise Skip(f"scan region is {width} x {height} px after cropping ({method}), below the minimum of "
                   f"{MIN_SIDE} x {MIN_SIDE} px")
    patient_raw = str(ds.get("PatientID", "") or "").strip()
    style = " ".join(str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")).strip()
    return CroppedDicom([crop_box(f, box) for f in frames], method, salted_hash(salt, "file", key),
                        salted_hash(salt, "patient", patient_raw) if patient_raw else None, style, key)


def convert_file(path: Path, label: str, salt: str, tmp: Path) -> tuple[Converted, str]:
    """Decode, crop and write one file's frames under ``tmp``; returns the rows and the file key."""
    item = read_cropped(path, salt)
    file_hash, patient, style, method = item.file_hash, item.patient, item.style, item.crop
    rows = []
    for k, frame in enumerate(item.frames, start=1):
        image_id = f"{file_hash}_f{k}"
        dst = f"images/{label}/{image_id}.png"
        _write_png(frame, tmp / dst)
        rows.append({"image_id": image_id, "label": label, "patient_id": patient or file_hash,
                     "image": str(tmp / dst), "_dst_image": dst, "mask": "", "_dst_mask": "",
                     "style": style, "frame": str(k), "crop": method})
    return Converted(path, file_hash, patient, rows), item.key


def scan_dicom(src: Path, salt: str, tmp: Path, progress: bool = False,
               ) -> tuple[list[Converted], list[dict[str, str]]]:
    """Convert every file under ``src``; returns the imported files and the skipped ones (file, reason)."""
    files, loose = find_files(src)
    skipped = [{"file": str(p.relative_to(src)), "reason": "not inside a class folder (SRC/<class>/...)"}
               for p in loose]
    done: list[Converted] = []
    seen: dict[str, str] = {}  # file key -> first file with it, to skip re-exported copies
    for label, path in track(files, description="reading DICOM files", disable=not progress):
        rel = str(path.relative_to(src))
        try:
            converted, key = convert_file(path, label, salt, tmp)
            if key in seen:
                raise Skip(f"the same image (SOP instance) as {seen[key]}, already imported")
        except Skip as why:
            skipped.append({"file": rel, "reason": str(why)})
            continue
        seen[key] = rel
        done.append(converted)
    return done, skipped


def _report(src: Path, done: list[Converted], skipped: list[dict[str, str]]) -> dict[str, Any]:
    rows = [r for c in done for r in c.rows]
    return {"format": "dicom", "source": src.resolve().name, "files_imported": len(done),
            "images": len(rows), "crop": dict(sorted(Counter(r["crop"] for r in rows).items())),
            "files_skipped": len(skipped), "skipped": skipped}


def _nothing_imported(src: Path, skipped: list[dict[str, str]]) -> SonoganInputError:
    first = f"; first: {skipped[0]['file']}: {skipped[0]['reason']}" if skipped else ""
    return SonoganInputError(src, f"no ultrasound DICOM image could be imported ({len(skipped)} files skipped{first})",
                             "put ultrasound DICOM files (Modality US, with pixel data) in SRC/<class>/ folders")


@IMPORTERS.register("dicom")
def import_dicom(src: Path, out: Path, options: ImportOptions, progress: bool = False) -> ImportedDataset:
    """Import the DICOM tree ``SRC/<class>/**`` into ``out`` (PNG per frame, de-identified)."""
    src, out = Path(src), Path(out)
    if options.link:
        raise SonoganInputError("--link", "DICOM files are converted to PNG, so there is nothing to link",
                                "drop --link")
    if not src.is_dir():
        raise SonoganInputError(src, "not a folder", "pass the folder that holds SRC/<class>/ DICOM files")
    salt = load_salt(out, getattr(options, "salt", None))
    # the PNGs are made in a hidden folder inside out (same disk, removed with out on failure)
    with tempfile.TemporaryDirectory(dir=out, prefix=".dicom-") as tmp:
        done, skipped = scan_dicom(src, salt, Path(tmp), progress)
        if not done:
            raise _nothing_imported(src, skipped)
        df = pd.DataFrame([r for c in done for r in c.rows])
        classes = sorted(set(df["label"]))
        report = _report(src, done, skipped)
        crops = ", ".join(f"{n} {k}" for k, n in report["crop"].items())
        spec = resolve_spec(options, src, classes, default_name=src.resolve().name, masks="none",
                            patients_known=all(c.patient is not None for c in done),
                            extra={"description": f"ultrasound DICOM import of {src.resolve().name}: "
                                   f"{len(df)} frames from {len(done)} files (crop: {crops}), "
                                   f"{len(skipped)} files skipped (see {REPORT_FILE}); de-identified, "
                                   "patient ids are salted hashes"})
        ds = materialise(spec, df, out, link=False, progress=progress)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    # errors found later must name the DICOM file and frame, not the temporary PNG
    origins = {r["_dst_image"]: f"{c.source} (frame {r['frame']})" for c in done for r in c.rows}
    return ImportedDataset(ds.root, ds.spec, ds.manifest, origins, skipped)
