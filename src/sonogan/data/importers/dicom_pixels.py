"""Pixels of an ultrasound DICOM: decode every frame to uint8 and crop to the scan region.

The crop is chosen in this order (``choose_crop``), and the method is recorded per image:

1. ``regions``: the DICOM ``SequenceOfUltrasoundRegions`` (0018,6011) — the largest 2-D
   tissue region (``RegionSpatialFormat`` 1), or the largest region of any kind when none
   is 2-D; ties go to the first. ``RegionLocationMaxX1/Y1`` are inclusive pixel indices.
2. ``table``: a per-scanner band table, :data:`SCANNER_CROPS`, keyed by manufacturer
   (case-insensitive substring of ``Manufacturer``) and model (case-insensitive, exact
   ``ManufacturerModelName``). Each entry gives the pixels to remove at each edge.
3. ``scan_area``: :func:`sonogan.data.scan_area.detect_scan_area` on the per-pixel
   maximum over all frames, so every frame of a cine loop gets the same crop.

To support another scanner, add a line to :data:`SCANNER_CROPS`, e.g.
``("ge", "logiq e9"): Margins(top=60)``, and a test with a generated file of that model.

Example:
    >>> import numpy as np
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset(); ds.Manufacturer = "Philips Medical Systems"; ds.ManufacturerModelName = "Affiniti 70W"
    >>> frames = np.full((1, 100, 120), 50, np.uint8)
    >>> choose_crop(ds, frames)
    ((0, 40, 120, 100), 'table')
    >>> ds.ManufacturerModelName = "EPIQ 7"
    >>> frames[0, 20:60, 30:90] = 200; frames[0, :20] = 0; frames[0, 60:] = 0; frames[0, :, :30] = 0; frames[0, :, 90:] = 0
    >>> choose_crop(ds, frames)
    ((30, 20, 90, 60), 'scan_area')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.pixels.processing import apply_color_lut

from sonogan.data.scan_area import Box, detect_scan_area

#: RegionSpatialFormat value of a 2-D (B-mode) tissue region (PS3.3 C.8.5.5.1.1).
SPATIAL_2D = 1


@dataclass(frozen=True)
class Margins:
    """Pixels to remove at each edge of the frame (e.g. a band of burned-in header text)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0


#: (manufacturer substring, exact model name), both lower case -> edges to remove.
#: Philips Affiniti 70W: the thesis data's scanner; its top 40 px hold the patient/probe header.
SCANNER_CROPS: dict[tuple[str, str], Margins] = {
    ("philips", "affiniti 70w"): Margins(top=40),
}


def decode_frames(ds: Dataset) -> np.ndarray:
    """All frames as uint8, shape (frames, rows, cols) for grey or (frames, rows, cols, 3) for colour.

    Colour (YBR, palette) becomes RGB, MONOCHROME1 is inverted (so bright = echo, as in
    MONOCHROME2), and more than 8 bits are scaled down linearly over the stored bit range.
    """
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    arr = pixel_array(ds, as_rgb=True)  # pydicom converts YBR_FULL(_422) to RGB
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames == 1:
        arr = arr[None]
    arr = _to_uint8(arr, int(ds.get("BitsStored", 8) or 8))
    if photometric == "MONOCHROME1":
        arr = 255 - arr
    return arr


def _to_uint8(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "i":  # signed data: shift so the lowest value is 0
        arr = arr.astype(np.int64) - int(arr.min())
    top = max(float(arr.max()), float(2 ** bits - 1)) if arr.size else 1.0
    return np.clip(np.round(arr.astype(np.float64) * (255.0 / max(top, 1.0))), 0, 255).astype(np.uint8)


def region_box(ds: Dataset, height: int, width: int) -> Box | None:
    """The largest (2-D tissue, if any) ultrasound region as a box clipped to the frame, or None."""
    regions = list(ds.get("SequenceOfUltrasoundRegions", None) or [])
    boxes: list[tuple[bool, Box]] = []
    for reg in regions:
        try:
            x0, y0 = int(reg.RegionLocationMinX0), int(reg.RegionLocationMinY0)
            x1, y1 = int(reg.RegionLocationMaxX1) + 1, int(reg.RegionLocationMaxY1) + 1  # inclusive -> exclusive
        except (AttributeError, TypeError, ValueError):
            continue  # a region without a location cannot crop anything
        box = (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append((reg.get("RegionSpatialFormat", None) == SPATIAL_2D, box))
    if not boxes:
        return None
    candidates = [b for is_2d, b in boxes if is_2d] or [b for _, b in boxes]
    # max() keeps the first of equal areas
    return max(candidates, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def scanner_margins(ds: Dataset) -> Margins | None:
    """The :data:`SCANNER_CROPS` entry for this file's manufacturer and model, or None."""
    maker = str(ds.get("Manufacturer", "") or "").strip().lower()
    model = str(ds.get("ManufacturerModelName", "") or "").strip().lower()
    for (key_maker, key_model), margins in SCANNER_CROPS.items():
        if key_maker in maker and model == key_model:
            return margins
    return None


def table_box(margins: Margins, height: int, width: int) -> Box | None:
    """The frame minus the margins, or None when the margins leave nothing."""
    box = (margins.left, margins.top, width - margins.right, height - margins.bottom)
    return box if box[2] > box[0] and box[3] > box[1] else None


def choose_crop(ds: Dataset, frames: np.ndarray) -> tuple[Box, str]:
    """(box, method) for all frames of ``ds``: regions, else the scanner table, else scan-area detection."""
    height, width = frames.shape[1:3]
    box = region_box(ds, height, width)
    if box is not None:
        return box, "regions"
    margins = scanner_margins(ds)
    box = table_box(margins, height, width) if margins is not None else None
    if box is not None:
        return box, "table"
    # the union of the frames' scan areas: one crop for the whole loop
    _, box = detect_scan_area(np.ascontiguousarray(frames.max(axis=0)))
    return box, "scan_area"
