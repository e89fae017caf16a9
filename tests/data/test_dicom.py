"""DICOM importer on DICOM files made here with pydicom: crops per scanner layout (regions of
GE, Siemens, Samsung dual view, Mindray with Doppler, Canon; Philips table; scan-area
fallback), multi-frame, compressed transfer syntaxes through licence-clean decoders (JPEG
baseline and JPEG 2000 via Pillow, RLE via pydicom), skipped files (corrupt, undecodable,
non-DICOM, CT, no pixels, duplicate, outside a class folder), patient hashing + salt reuse,
no identifier anywhere in the output, CLI options."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, RLELossless,
                         UltrasoundImageStorage, UltrasoundMultiFrameImageStorage, generate_uid)

from sonogan.data.importers import import_dataset
from sonogan.data.importers.dicom import SALT_FILE, DicomImportOptions, read_report, salted_hash
from sonogan.data.importers.dicom_pixels import SCANNER_CROPS, choose_crop, region_box
from sonogan.data.manifest import load_dataset
from sonogan.data.validate import validate_dataset
from sonogan.errors import SonoganInputError

PATIENTS = {
    key: {"PatientName": f"{last}^{first}", "PatientID": pid, "PatientBirthDate": birth,
          "OtherPatientIDs": f"MRN{pid[-4:]}77", "AccessionNumber": f"ACC{pid[-4:]}5531"}
    for key, (last, first, pid, birth) in {
        "p1": ("DOEHAMMER", "JANETTE", "PAT-00017", "19650412"),
        "p2": ("ROEWILLIAMS", "RICHARDA", "PAT-00042", "19711130"),
        "p3": ("SMITHSONIAN", "ALBERTINE", "PAT-00063", "19580703"),
        "p4": ("BLOGGSWORTH", "FREDERICA", "PAT-00088", "19800221"),
    }.items()}
VISIT = {"StudyDate": "20240117", "SeriesDate": "20240118", "AcquisitionDate": "20240119",
         "ContentDate": "20240120", "StudyTime": "103012.5", "InstitutionName": "St Elsewhere Hospital",
         "InstitutionAddress": "12 Harbour Road, Portsmouth", "ReferringPhysicianName": "HOUSEMAN^GREGORY",
         "PerformingPhysicianName": "WILSONBY^JAMESON", "OperatorsName": "CUDDYHEAD^LISA",
         "StationName": "USROOM3EAST", "DeviceSerialNumber": "SN99887766", "StudyID": "STUDY5544"}


def gradient(h: int, w: int, shift: int = 0) -> np.ndarray:
    """Content that differs at every pixel (so a wrong crop offset shows), values 20..219."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 3 + y * 7 + shift) % 200 + 20).astype(np.uint8)


def write_dicom(path: Path, pixels: np.ndarray, patient: str, maker: str = "", model: str = "",
                regions: list[tuple[int, int, int, int, int]] | None = None, modality: str = "US",
                codec: str = "none", with_pixels: bool = True, sop: str | None = None) -> dict[str, str]:
    """Write one DICOM file (frames, rows, cols[, 3]) and return its identifiers (for the PHI check).

    ``regions``: (x0, y0, x1, y1, spatial format) with inclusive max coordinates, as in DICOM.
    ``codec``: none, jpeg (baseline, lossy), j2k (JPEG 2000 lossless, grey), rle (lossless).
    """
    jpeg = codec == "jpeg"
    frames = pixels if pixels.ndim == 3 and pixels.shape[-1] != 3 or pixels.ndim == 4 else pixels[None]
    n, rows, cols = frames.shape[:3]
    rgb = frames.ndim == 4
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage if n > 1 else UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = sop or generate_uid()
    meta.TransferSyntaxUID = {"jpeg": JPEGBaseline8Bit, "j2k": JPEG2000Lossless}.get(codec, ExplicitVRLittleEndian)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    for key, value in {**PATIENTS[patient], **VISIT}.items():
        setattr(ds, key, value)
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = modality, maker, model
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = ("YBR_FULL_422" if jpeg else "RGB") if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if n > 1:
        ds.NumberOfFrames = n
    if regions:
        ds.SequenceOfUltrasoundRegions = [_region(*r) for r in regions]
    if with_pixels:
        if jpeg:
            ds.PixelData = encapsulate([_jpeg(f) for f in frames])
        elif codec == "j2k":
            ds.PixelData = encapsulate([_j2k(f) for f in frames])
        else:
            ds.PixelData = np.ascontiguousarray(frames).tobytes()
        if codec == "rle":  # pydicom's own RLE encoder (no extra package)
            ds.compress(RLELossless, encoding_plugin="pydicom")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    uids = [ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID]
    return {**PATIENTS[patient], **VISIT, **{f"uid{i}": u for i, u in enumerate(uids)}}


def _region(x0: int, y0: int, x1: int, y1: int, spatial: int) -> Dataset:
    reg = Dataset()
    reg.RegionSpatialFormat, reg.RegionDataType, reg.RegionFlags = spatial, 1, 0
    reg.RegionLocationMinX0, reg.RegionLocationMinY0 = x0, y0
    reg.RegionLocationMaxX1, reg.RegionLocationMaxY1 = x1, y1
    return reg


def _jpeg(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=95, subsampling=1)  # 4:2:2, as YBR_FULL_422 says
    return buf.getvalue()


def _j2k(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG2000", irreversible=False, no_jp2=True)  # lossless codestream
    return buf.getvalue()


def build_tree(src: Path) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
    """The test set; returns the expected crops per file and every file's identifiers."""
    ids, want = [], {}
    # GE-like: a thumbnail 2-D region, the big 2-D region, a larger-than-thumbnail spectral region
    ge = np.zeros((120, 160), np.uint8); ge[:30] = 250; ge[30:110, 20:140] = gradient(80, 120)
    ids.append(write_dicom(src / "benign" / "ge" / "IMG0001", ge, "p1", "GE Healthcare", "LOGIQ E10",
                           regions=[(0, 0, 9, 9, 1), (20, 30, 139, 109, 1), (0, 110, 159, 119, 3)]))
    want["benign/ge/IMG0001"] = ge[30:110, 20:140]
    colour = np.zeros((96, 128, 3), np.uint8)
    colour[16:80, 8:120] = np.stack([gradient(64, 112), gradient(64, 112, 50), gradient(64, 112, 100)], -1)
    ids.append(write_dicom(src / "benign" / "ge" / "IMG0002.dcm", colour, "p1", "GE Healthcare", "LOGIQ E10",
                           regions=[(8, 16, 119, 79, 1)], codec="jpeg"))
    want["benign/ge/IMG0002.dcm"] = colour[16:80, 8:120]
    acme = np.zeros((90, 110), np.uint8); acme[15:75, 25:95] = gradient(60, 70)
    ids.append(write_dicom(src / "benign" / "acme" / "scan.dcm", acme, "p4", "Acme Sonics", "Sono 1"))
    want["benign/acme/scan.dcm"] = acme[15:75, 25:95]
    philips = np.full((100, 120), 30, np.uint8); philips[:40] = 255; philips[40:] = gradient(60, 120)
    ids.append(write_dicom(src / "malignant" / "philips" / "a.dcm", philips, "p2",
                           "Philips Medical Systems", "Affiniti 70W"))
    want["malignant/philips/a.dcm"] = philips[40:]
    cine = np.stack([philips.copy() for _ in range(3)])
    for k in range(3):
        cine[k, 40:] = gradient(60, 120, 10 * k)
    ids.append(write_dicom(src / "malignant" / "philips" / "cine", cine, "p2",
                           "Philips Medical Systems", "Affiniti 70W"))
    want["malignant/philips/cine"] = cine[:, 40:]
    other = np.zeros((80, 80), np.uint8); other[10:70, 5:75] = gradient(60, 70, 3)
    ids.append(write_dicom(src / "malignant" / "siemens" / "b.dcm", other, "p3", "Siemens", "ACUSON Sequoia",
                           regions=[(5, 10, 74, 69, 1)]))
    want["malignant/siemens/b.dcm"] = other[10:70, 5:75]
    # files to skip
    ids.append(write_dicom(src / "malignant" / "ct.dcm", gradient(32, 32), "p3", modality="CT"))
    ids.append(write_dicom(src / "malignant" / "nopix.dcm", gradient(32, 32), "p3", with_pixels=False))
    full = write_dicom(src / "benign" / "bad" / "whole.dcm", gradient(64, 64), "p4")
    data = (src / "benign" / "bad" / "whole.dcm").read_bytes()
    (src / "benign" / "bad" / "corrupt.dcm").write_bytes(data[: len(data) - 2000])
    (src / "benign" / "bad" / "whole.dcm").unlink()
    ids.append(full)
    (src / "benign" / "notes.txt").write_text("scanned on the east wing machine\n")
    (src / "benign" / "zz-copy").mkdir()
    shutil.copy(src / "benign" / "ge" / "IMG0001", src / "benign" / "zz-copy" / "IMG0001")
    ids.append(write_dicom(src / "loose.dcm", acme, "p4", "Acme Sonics", "Sono 1"))
    (src / "benign" / ".DS_Store").write_bytes(b"\0\1hidden")
    return want, ids


SKIPPED = {"benign/bad/corrupt.dcm", "benign/notes.txt", "malignant/ct.dcm", "malignant/nopix.dcm",
           "loose.dcm", "benign/zz-copy/IMG0001"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    want, ids = build_tree(root / "src")
    ds = import_dataset(root / "src", "dicom", root / "datasets" / "a")
    return root, ds, want, ids


def _image(ds, image_id: str) -> np.ndarray:
    row = ds.manifest.set_index("image_id").loc[image_id]
    return np.asarray(Image.open(ds.root / row["image"]))


def _ids_of(ds, origin_part: str) -> list[str]:
    return sorted((i for d, o in ds.origins.items() if origin_part in o
                   for i in [Path(d).stem]), key=lambda i: int(i.rsplit("_f", 1)[1]))


def test_import_validates_and_lists_the_skipped_files(imported) -> None:
    root, ds, _, _ = imported
    report = validate_dataset(load_dataset(ds.root))
    assert report.n_images == 8 and report.n_patients == 4  # 5 single-frame files + 3 cine frames
    assert ds.spec.classes == ["benign", "malignant"] and ds.spec.patients_known and ds.spec.masks == "none"
    skipped = {s["file"]: s["reason"] for s in read_report(ds.root)["skipped"]}
    assert set(skipped) == SKIPPED
    assert skipped["malignant/ct.dcm"] == "not ultrasound (Modality 'CT')"
    assert skipped["malignant/nopix.dcm"] == "no pixel data"
    assert skipped["benign/notes.txt"] == "not a DICOM file (no DICM header)"
    assert skipped["benign/bad/corrupt.dcm"].startswith(("corrupt DICOM", "pixel data cannot be decoded"))
    assert "already imported" in skipped["benign/zz-copy/IMG0001"] and "not inside a class folder" in skipped["loose.dcm"]
    assert all("\n" not in r for r in skipped.values())
    assert read_report(ds.root)["crop"] == {"regions": 3, "scan_area": 1, "table": 4}


def test_crops_follow_regions_table_and_scan_area(imported) -> None:
    _, ds, want, _ = imported
    m = ds.manifest.set_index("image_id")
    for rel in ("benign/ge/IMG0001", "benign/acme/scan.dcm", "malignant/philips/a.dcm", "malignant/siemens/b.dcm"):
        (image_id,) = _ids_of(ds, rel)
        np.testing.assert_array_equal(_image(ds, image_id), want[rel], err_msg=rel)
    assert m.loc[_ids_of(ds, "IMG0001")[0], "crop"] == "regions"
    assert m.loc[_ids_of(ds, "scan.dcm")[0], "crop"] == "scan_area"
    assert m.loc[_ids_of(ds, "a.dcm")[0], ["crop", "style"]].tolist() == ["table", "Philips Medical Systems Affiniti 70W"]
    # JPEG baseline (lossy, YBR): same crop, colours within JPEG error
    (jpeg_id,) = _ids_of(ds, "IMG0002.dcm")
    got = _image(ds, jpeg_id).astype(int)
    assert got.shape == want["benign/ge/IMG0002.dcm"].shape
    assert np.abs(got - want["benign/ge/IMG0002.dcm"]).mean() < 6


def test_multi_frame_gives_one_png_per_frame_of_one_patient(imported) -> None:
    _, ds, want, _ = imported
    cine_ids = _ids_of(ds, "philips/cine")
    assert len(cine_ids) == 3 and {i.rsplit("_f", 1)[0] for i in cine_ids} == {cine_ids[0][:-3]}
    assert [i.rsplit("_f", 1)[1] for i in cine_ids] == ["1", "2", "3"]
    for k, image_id in enumerate(cine_ids):
        np.testing.assert_array_equal(_image(ds, image_id), want["malignant/philips/cine"][k])
    m = ds.manifest.set_index("image_id")
    assert m.loc[cine_ids, "frame"].tolist() == ["1", "2", "3"]
    # the cine loop and the single Philips image belong to the same patient (p2)
    assert set(m.loc[cine_ids + _ids_of(ds, "philips/a.dcm"), "patient_id"]) == {m.loc[cine_ids[0], "patient_id"]}


def test_patient_ids_are_salted_hashes_reused_across_imports(imported, tmp_path) -> None:
    root, ds, _, _ = imported
    salt = (root / "datasets" / SALT_FILE).read_text().strip()
    assert len(salt) == 64 and not (ds.root / SALT_FILE).exists()
    m = ds.manifest.set_index("image_id")
    patient = {rel: m.loc[_ids_of(ds, rel)[0], "patient_id"] for rel in
               ("IMG0001", "IMG0002.dcm", "scan.dcm", "a.dcm", "b.dcm")}
    assert patient["IMG0001"] == patient["IMG0002.dcm"] == salted_hash(salt, "patient", "PAT-00017")
    assert len({patient[k] for k in ("IMG0001", "scan.dcm", "a.dcm", "b.dcm")}) == 4
    again = import_dataset(root / "src", "dicom", root / "datasets" / "b")  # same salt file: same ids
    assert sorted(again.manifest["image_id"]) == sorted(ds.manifest["image_id"])
    assert sorted(again.manifest["patient_id"]) == sorted(ds.manifest["patient_id"])
    other = import_dataset(root / "src", "dicom", tmp_path / "c", DicomImportOptions(salt="another secret"))
    assert not set(other.manifest["patient_id"]) & set(ds.manifest["patient_id"])
    assert salted_hash("another secret", "patient", "PAT-00017") in set(other.manifest["patient_id"])


def test_no_identifier_anywhere_in_the_output(imported) -> None:
    _, ds, _, ids = imported
    needles = {v for file_ids in ids for v in file_ids.values()}
    needles |= {part for v in list(needles) for part in v.split("^") if len(part) >= 6}
    files = [p for p in ds.root.rglob("*") if p.is_file()]
    assert len(files) >= 8 + 3  # PNGs + manifest.csv, dataset.yaml, import-report.json
    for path in files:
        data = path.read_bytes()
        found = [n for n in needles if n.encode() in data]
        assert not found, f"{path.relative_to(ds.root)} holds {found}"
    assert not any(p.name.startswith(".dicom-") for p in ds.root.iterdir())  # the work folder is gone


def test_nothing_importable_fails_and_leaves_no_dataset(tmp_path) -> None:
    write_dicom(tmp_path / "src" / "benign" / "ct.dcm", gradient(32, 32), "p1", modality="CT")
    (tmp_path / "src" / "benign" / "x.txt").write_text("no")
    with pytest.raises(SonoganInputError) as info:
        import_dataset(tmp_path / "src", "dicom", tmp_path / "out", DicomImportOptions(salt="s"))
    assert "no ultrasound DICOM image could be imported (2 files skipped" in str(info.value)
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_region_choice_and_scanner_table() -> None:
    ds = Dataset()
    ds.SequenceOfUltrasoundRegions = [_region(0, 0, 99, 49, 3), _region(10, 10, 39, 39, 1), _region(50, 10, 59, 19, 1)]
    assert region_box(ds, 60, 100) == (10, 10, 40, 40)  # the largest 2-D region beats a larger spectral one
    ds.SequenceOfUltrasoundRegions = [_region(0, 0, 99, 49, 3), _region(60, 0, 500, 500, 4)]
    assert region_box(ds, 60, 100) == (0, 0, 100, 50)  # no 2-D region: the largest, clipped to the frame
    assert ("philips", "affiniti 70w") in SCANNER_CROPS
    ds = Dataset(); ds.Manufacturer, ds.ManufacturerModelName = "PHILIPS", "Affiniti 70W"
    assert choose_crop(ds, np.zeros((2, 30, 50), np.uint8)) == ((0, 0, 50, 30), "scan_area")  # leaves nothing
    assert choose_crop(ds, np.zeros((2, 80, 50), np.uint8)) == ((0, 40, 50, 80), "table")


def test_cli_import_lists_skipped_and_checks_options(tmp_path, cli) -> None:
    build_tree(tmp_path / "src")
    code, out, err = cli(["data", "import", str(tmp_path / "src"), "--format", "dicom",
                          "--out", str(tmp_path / "ds"), "--salt", "cli secret"])
    assert code == 0, err
    assert "imported 8 images" in out and "skipped 6 files" in out and "malignant/ct.dcm" in out
    assert not (tmp_path / SALT_FILE).exists()  # --salt given: no salt file is made
    code, _, err = cli(["data", "import", str(tmp_path / "src"), "--format", "folder",
                        "--out", str(tmp_path / "f"), "--salt", "x"])
    assert code == 2 and "--salt" in err
    code, _, err = cli(["data", "import", str(tmp_path / "src"), "--format", "dicom",
                        "--out", str(tmp_path / "l"), "--link"])
    assert code == 2 and "nothing to link" in err


def test_undecodable_compression_is_skipped_naming_the_syntax(tmp_path) -> None:
    from pydicom import dcmread
    from pydicom.uid import JPEGLosslessSV1

    for i, patient in enumerate(("p1", "p2", "p3", "p4")):  # two classes of two patients: a valid dataset
        write_dicom(tmp_path / "src" / ("benign", "malignant")[i // 2] / f"ok{i}.dcm", gradient(40, 40, i), patient,
                    regions=[(0, 0, 39, 39, 1)])
    path = tmp_path / "src" / "benign" / "lossless.dcm"
    write_dicom(path, gradient(40, 40), "p1", codec="jpeg")
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1  # no JPEG-lossless decoder is installed on purpose
    ds.save_as(path, enforce_file_format=True)
    imported = import_dataset(tmp_path / "src", "dicom", tmp_path / "out", DicomImportOptions(salt="s"))
    (item,) = read_report(imported.root)["skipped"]
    assert item["file"] == "benign/lossless.dcm" and item["reason"].startswith("pixel data cannot be decoded (JPEG Lossless")
    assert len(imported.manifest) == 4


def build_compressed_tree(src: Path) -> dict[str, np.ndarray]:
    """More scanners' region layouts in compressed files, and one undecodable file; returns the
    expected (lossless, so exact) crops per file."""
    want = {}
    # Samsung-like dual view: two equal 2-D regions side by side -> the first (left) one; RLE, 2 frames
    dual = np.zeros((2, 90, 160), np.uint8)
    for k in range(2):
        dual[k, 10:80, 4:76] = gradient(70, 72, k)
        dual[k, 10:80, 84:156] = gradient(70, 72, 50 + k)
    write_dicom(src / "benign" / "samsung.dcm", dual, "p1", "SAMSUNG MEDISON CO., LTD.", "HERA W10",
                regions=[(4, 10, 75, 79, 1), (84, 10, 155, 79, 1)], codec="rle")
    want["samsung.dcm"] = dual[:, 10:80, 4:76]
    # Mindray-like: a 2-D region on top of a larger spectral Doppler strip (format 3); RGB, RLE
    mindray = np.zeros((120, 140, 3), np.uint8)
    mindray[5:55, 20:120] = np.stack([gradient(50, 100), gradient(50, 100, 70), gradient(50, 100, 140)], -1)
    mindray[60:118, 0:140] = 90
    write_dicom(src / "malignant" / "mindray.dcm", mindray, "p2", "Mindray", "Resona 7",
                regions=[(20, 5, 119, 54, 1), (0, 60, 139, 117, 3)], codec="rle")
    want["mindray.dcm"] = mindray[5:55, 20:120]
    # Canon-like: one 2-D region below a header band; JPEG 2000 lossless through Pillow's OpenJPEG
    canon = np.full((100, 100), 240, np.uint8)
    canon[25:95, 10:90] = gradient(70, 80, 9)
    write_dicom(src / "malignant" / "canon.dcm", canon, "p3", "CANON_MEC", "Aplio i800",
                regions=[(10, 25, 89, 94, 1)], codec="j2k")
    want["canon.dcm"] = canon[25:95, 10:90]
    # a JPEG 2000 file whose codestream is garbage: skipped, the rest imported
    write_dicom(src / "benign" / "broken-j2k.dcm", gradient(40, 40), "p4", "CANON_MEC", "Aplio i800", codec="j2k")
    ds = dcmread(src / "benign" / "broken-j2k.dcm")
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(range(256)) * 4])
    ds.save_as(src / "benign" / "broken-j2k.dcm", enforce_file_format=True)
    write_dicom(src / "benign" / "plain.dcm", gradient(50, 60, 5), "p4", "Esaote", "MyLab X8",
                regions=[(0, 0, 59, 49, 1)])
    want["plain.dcm"] = gradient(50, 60, 5)
    return want


def test_compressed_files_and_more_scanner_layouts_crop_exactly(tmp_path) -> None:
    want = build_compressed_tree(tmp_path / "src")
    ds = import_dataset(tmp_path / "src", "dicom", tmp_path / "out", DicomImportOptions(salt="s"))
    (item,) = read_report(ds.root)["skipped"]
    assert item["file"] == "benign/broken-j2k.dcm" and item["reason"].startswith("pixel data cannot be decoded (JPEG 2000")
    assert read_report(ds.root)["crop"] == {"regions": 5}  # 2 Samsung frames + 3 single frames
    for name, expected in want.items():
        ids = _ids_of(ds, name)
        frames = expected if expected.ndim == 3 and name == "samsung.dcm" else expected[None]
        assert len(ids) == len(frames), name
        for image_id, frame in zip(ids, frames):
            np.testing.assert_array_equal(_image(ds, image_id), frame, err_msg=name)  # lossless: exact
    styles = set(ds.manifest["style"])
    assert {"Mindray Resona 7", "CANON_MEC Aplio i800", "SAMSUNG MEDISON CO., LTD. HERA W10"} <= styles
