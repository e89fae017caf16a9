"""Safe image decoding: every path that turns an image file into pixels goes through here.

An image header can claim any size: an 874 KB PNG may declare 30000 x 30000 px and take
8 GB to decode (a decompression bomb). So the size is read from the header first
(:func:`read_header`) and anything over :data:`MAX_PIXELS` is refused with a one-line
error naming the file, before a pixel is allocated. Only formats that both PIL (which
reads the header) and OpenCV (which decodes) understand are accepted, so the size checked
is the size decoded. Multi-frame files (animated GIF/PNG, multi-page TIFF) are refused:
which frame of a cine loop is "the scan" is the user's choice (import cine loops as DICOM,
where every frame becomes an image).

Entry points:

* :func:`decode_image` -> uint8 RGB (or grey) array: the pipeline's one decoder (OpenCV),
  used by preprocessing, predict, evaluate, study create and annotation training.
* :func:`decode_bytes` -> the same from bytes already in memory (the web app's uploads).
* :func:`open_image` -> (bytes, fully decoded PIL image): dataset validation and hashing.

:data:`MIN_SIDE` is the smallest side of a real scan that importers and ``predict``
accept (see docs/dataset-format.md); callers pass ``min_side`` where it applies.

Example:
    >>> import numpy as np, cv2
    >>> ok, png = cv2.imencode(".png", np.zeros((40, 48), np.uint8))
    >>> read_header(png.tobytes(), "x.png")
    ImageHeader(width=48, height=40, frames=1, format='PNG')
    >>> decode_bytes(png.tobytes(), "x.png").shape
    (40, 48, 3)
    >>> decode_bytes(png.tobytes(), "x.png", min_side=64)
    Traceback (most recent call last):
    ...
    sonogan.errors.SonoganInputError: x.png: image is 48 x 40 px, below the minimum of 64 x 64 px; fix: use the full-size scan (not a thumbnail or placeholder)
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from sonogan.errors import SonoganInputError

#: Largest image accepted, in pixels: PIL's decompression-bomb threshold (about 9459 x 9459).
MAX_PIXELS = 89_478_485
#: Smallest side (px) of a real image that importers and ``predict`` accept: a thumbnail-sized
#: 32 x 32 px is already below any scan's useful resolution; 1 x 1 px files are spacers or
#: placeholders. Synthetic images are exempt (their size is the preset's).
MIN_SIDE = 32
#: Formats whose header PIL reads and whose pixels OpenCV decodes (MPO: a camera JPEG whose
#: first picture is the image, so it is not multi-frame in the sense above).
FORMATS = ("PNG", "JPEG", "MPO", "BMP", "TIFF", "GIF", "WEBP", "PPM")
DEFAULT_FIX = "re-export the image as PNG or JPEG"

# what PIL's plugins raise on corrupt or truncated data
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, IndexError, TypeError, EOFError)
# the header check refuses every image over MAX_PIXELS with a one-line error, so PIL's warning
# for the band just below its own hard limit would only add a second, scarier message
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares (nothing decoded yet)."""

    width: int
    height: int
    frames: int
    format: str


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) a header claims, read with PIL's format plugins directly, because
    ``Image.open`` refuses to return the size of a decompression bomb."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        result = accept(data[:16]) if accept else True  # as Image.open does; a str is a warning
        if not result or isinstance(result, str):
            continue
        try:
            return factory(io.BytesIO(data), "").size
        except _DECODE_ERRORS:
            continue
    return None


def too_large(where: str | Path, size: tuple[int, int] | None) -> SonoganInputError:
    """The one-line error for an image over :data:`MAX_PIXELS` (``size`` as declared, if known)."""
    claimed = f"{size[0]} x {size[1]} px" if size else "larger than PIL will open"
    return SonoganInputError(where, f"image is {claimed}, larger than the limit of {MAX_PIXELS:,} px "
                             "(a decompression-bomb guard)",
                             "downscale the image (ultrasound frames rarely exceed 2000 px a side) or remove it")


def check_size(where: str | Path, width: int, height: int, min_side: int = 1,
               what: str = "image") -> None:
    """Refuse a ``width`` x ``height`` image over :data:`MAX_PIXELS` or with a side under ``min_side``."""
    if width * height > MAX_PIXELS:
        raise too_large(where, (width, height))
    if width < min_side or height < min_side:
        raise SonoganInputError(where, f"{what} is {width} x {height} px, below the minimum of "
                                f"{min_side} x {min_side} px",
                                "use the full-size scan (not a thumbnail or placeholder)")


def read_header(data: bytes, where: str | Path, fix: str = DEFAULT_FIX, multi_frame: bool = False) -> ImageHeader:
    """Size, frame count and format from the header of ``data`` (no pixels decoded); refuses
    unknown formats, bombs, empty sizes and (unless ``multi_frame``) several frames with a
    one-line error naming ``where``."""
    if not data:
        raise SonoganInputError(where, "file is empty (0 bytes)", fix)
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = str(img.format)
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise too_large(where, img.size)
            # counting frames walks a GIF/TIFF's frame headers without decoding them
            frames = int(getattr(img, "n_frames", 1) or 1)
    except Image.DecompressionBombError:
        raise too_large(where, _declared_size(data)) from None
    except UnidentifiedImageError:
        raise SonoganInputError(where, "not an image PIL can decode (unrecognised or corrupt format)", fix) from None
    except _DECODE_ERRORS as exc:
        raise SonoganInputError(where, f"image header cannot be read ({type(exc).__name__})", fix) from None
    if fmt not in FORMATS:
        raise SonoganInputError(where, f"unsupported image format {fmt}", fix)
    if width <= 0 or height <= 0:
        raise SonoganInputError(where, "image has zero size", fix)
    if frames > 1 and fmt != "MPO" and not multi_frame:
        raise SonoganInputError(where, f"multi-frame image ({frames} frames; an animated {fmt} or a cine loop)",
                                "export the one frame you want as PNG, or import the cine loop as DICOM")
    return ImageHeader(width, height, frames, fmt)


def read_bytes(path: Path, fix: str = DEFAULT_FIX) -> bytes:
    """The file's bytes; one-line errors for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "file not found", fix)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SonoganInputError(path, f"cannot read the file ({exc.strerror or type(exc).__name__})", fix) from None


def decode_bytes(data: bytes, where: str | Path, grey: bool = False, context: str = "",
                 fix: str = DEFAULT_FIX, min_side: int = 1) -> np.ndarray:
    """Header check, then OpenCV decode of ``data``: uint8 RGB (H, W, 3), or grey (H, W).

    ``cv2.imdecode`` gives exactly what ``cv2.imread`` gives for the same bytes (EXIF
    orientation applied, 16 bit scaled to 8), so pixels match those of earlier runs.
    """
    suffix = f" ({context})" if context else ""
    try:
        header = read_header(data, where, fix)
        check_size(where, header.width, header.height, min_side)
    except SonoganInputError as exc:  # the context goes after the problem, as for every error here
        raise SonoganInputError(where, exc.what + suffix, exc.fix) from None
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise SonoganInputError(where, "image cannot be decoded" + suffix, fix)
    # EXIF orientation may swap the sides, so the declared size is checked as a set
    if sorted(img.shape[:2]) != sorted((header.height, header.width)):
        raise SonoganInputError(where, f"decoded size {img.shape[1]} x {img.shape[0]} differs from the header's "
                                f"{header.width} x {header.height}" + suffix, fix)
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_image(path: Path, grey: bool = False, context: str = "",
                 fix: str = "fix the file or the manifest path, then run 'sonogan preprocess' again",
                 min_side: int = 1) -> np.ndarray:
    """The pipeline's one decoder: :func:`decode_bytes` of the file at ``path``. ``context`` is
    added to the error (e.g. the manifest row); ``min_side`` refuses smaller images."""
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "file not found" + (f" ({context})" if context else ""), fix)
    return decode_bytes(read_bytes(path, fix), path, grey, context, fix, min_side)


def open_image(path: Path, fix: str = "re-export the image as PNG or JPEG, or remove its row",
               ) -> tuple[bytes, Image.Image]:
    """Read ``path`` once: (its bytes, fully decoded PIL image), the header checked first.

    ``load()`` forces a full decode, so truncated JPEGs and garbage bytes fail here.
    """
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "image file not found", "restore the file or fix its path in manifest.csv")
    data = read_bytes(path, fix)
    if not data:
        raise SonoganInputError(path, "file is empty (0 bytes)", "restore or re-export the image, or remove its row")
    read_header(data, path, fix)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except _DECODE_ERRORS as exc:
        raise SonoganInputError(path, f"image cannot be decoded ({type(exc).__name__}: {exc})".replace("\n", " "),
                                fix) from None
    return data, img
