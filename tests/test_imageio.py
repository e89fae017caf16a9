"""The one safe decoder: header checked before decoding, same pixels as cv2.imread, one-line errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sonogan import imageio
from sonogan.errors import SonoganInputError
from sonogan.imageio import MAX_PIXELS, decode_bytes, decode_image, open_image, read_header


def bomb_png(width: int, height: int) -> bytes:
    """An 8x8 PNG whose header (IHDR, CRC fixed) claims ``width`` x ``height`` px."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _noise(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_bomb_is_refused_from_the_header_without_decoding(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(30000, 30000))
    monkeypatch.setattr(imageio.cv2, "imdecode", lambda *a: pytest.fail("decoded a bomb"))
    with pytest.raises(SonoganInputError) as info:
        decode_image(path)
    assert str(info.value).startswith(f"{path}: image is 30000 x 30000 px, larger than the limit of {MAX_PIXELS:,} px")
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(SonoganInputError, match="30000 x 30000 px"):
        open_image(path)
    # just over the limit (below PIL's own hard stop at twice the limit) is refused too
    with pytest.raises(SonoganInputError, match="9460 x 9460 px"):
        decode_bytes(bomb_png(9460, 9460), "edge.png")


def _cases(tmp_path: Path) -> dict[str, Path]:
    """Files whose pixels the old decoder (cv2.imread) defines: odd modes, depth and orientation."""
    rng_img = _noise(40, 60)
    files = {}
    rotated = Image.fromarray(rng_img)
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to display
    files["exif.jpg"] = _pil_bytes(rotated, "JPEG", exif=exif)
    files["grey16.png"] = cv2.imencode(".png", (_noise(40, 60, 1).astype(np.uint16) * 257))[1].tobytes()
    files["palette.png"] = _pil_bytes(Image.fromarray(rng_img).convert("P"), "PNG")
    files["cmyk.jpg"] = _pil_bytes(Image.fromarray(rng_img).convert("CMYK"), "JPEG")
    files["rgba.png"] = _pil_bytes(Image.fromarray(_noise(40, 60, 4)), "PNG")
    files["grey.bmp"] = cv2.imencode(".bmp", _noise(40, 60, 1))[1].tobytes()
    files["rgb.tif"] = cv2.imencode(".tif", rng_img)[1].tobytes()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("grey", [False, True])
def test_pixels_are_those_of_cv2_imread(tmp_path: Path, grey: bool) -> None:
    for name, path in _cases(tmp_path).items():
        want = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        if not grey:
            want = cv2.cvtColor(want, cv2.COLOR_BGR2RGB)
        got = decode_image(path, grey=grey)
        assert got.dtype == np.uint8 and np.array_equal(got, want), name
    assert decode_image(tmp_path / "exif.jpg").shape == (60, 40, 3)  # the orientation is applied


def test_animated_gif_and_multipage_tiff_are_refused(tmp_path: Path) -> None:
    frames = [Image.fromarray(_noise(40, 40, 1, seed=k)) for k in range(3)]
    gif = _pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    tif = _pil_bytes(frames[0], "TIFF", save_all=True, append_images=frames[1:2])
    with pytest.raises(SonoganInputError, match=r"a.gif: multi-frame image \(3 frames; an animated GIF"):
        decode_bytes(gif, "a.gif")
    with pytest.raises(SonoganInputError, match=r"b.tif: multi-frame image \(2 frames"):
        decode_bytes(tif, "b.tif")
    assert read_header(_pil_bytes(frames[0], "GIF"), "one.gif").frames == 1  # one frame is an image


def test_minimum_side(tmp_path: Path) -> None:
    data = cv2.imencode(".png", _noise(31, 80, 1))[1].tobytes()
    with pytest.raises(SonoganInputError, match="image is 80 x 31 px, below the minimum of 32 x 32 px"):
        decode_bytes(data, "small.png", min_side=32)
    assert decode_bytes(data, "small.png").shape == (31, 80, 3)  # no minimum unless asked
    one = cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()
    with pytest.raises(SonoganInputError, match="image is 1 x 1 px"):
        decode_bytes(one, "dot.png", min_side=32)


@pytest.mark.parametrize("data, what", [
    (b"", "file is empty (0 bytes)"),
    (b"nope, not pixels", "not an image PIL can decode"),
    (cv2.imencode(".png", np.zeros((40, 40), np.uint8))[1].tobytes()[:60], "image cannot be decoded"),
    (cv2.imencode(".jpg", np.zeros((40, 40), np.uint8))[1].tobytes()[:120], "image header cannot be read"),
    (cv2.imencode(".jpg", np.zeros((40, 40), np.uint8))[1].tobytes()[:-10], "image cannot be decoded"),
    (_pil_bytes(Image.new("L", (40, 40)), "ICO"), "unsupported image format ICO"),
])
def test_broken_files_are_one_line(data: bytes, what: str) -> None:
    with pytest.raises(SonoganInputError) as info:
        decode_bytes(data, "x.img", context="row 3")
    msg = str(info.value)
    assert msg.startswith("x.img") and what in msg and len(msg.splitlines()) == 1


def test_missing_file_names_the_context(tmp_path: Path) -> None:
    with pytest.raises(SonoganInputError, match=r"gone.png: file not found \(manifest row a\)"):
        decode_image(tmp_path / "gone.png", context="manifest row a")
