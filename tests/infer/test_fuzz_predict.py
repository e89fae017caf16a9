"""Fuzzing predict's inputs (Hypothesis): odd sizes, 1x1, 16-bit, palette, CMYK, EXIF orientation,
animated GIF, truncated and random bytes.

Property: :func:`read_inputs` + :func:`predict_items` with a real (tiny) checkpoint give one row per
image with probabilities summing to 1, or a one-line SonoganError; the input files are unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sonogan.errors import SonoganError
from sonogan.infer import Predictor
from sonogan.infer.predict_files import predict_items, read_inputs

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(FAST, max_examples=600, derandomize=False)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    spec = importlib.util.spec_from_file_location("predict_cases", Path(__file__).parents[1] / "cli" / "test_predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Predictor.load(module._checkpoint(tmp_path_factory.mktemp("model") / "best.pt"))


@st.composite
def predict_file(draw: st.DrawFn) -> tuple[str, bytes]:
    h, w = draw(st.sampled_from([1, 2, 31, 32, 33, 64, 97])), draw(st.sampled_from([1, 5, 32, 48, 130]))
    arr = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 256, (h, w, 3), dtype=np.uint8)
    kind = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "I;16", "CMYK", "exif", "gif", "truncated", "random",
                                 "16bit-rgb"]))
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if kind == "random":
        return "x.png", draw(st.binary(min_size=0, max_size=200))
    if kind == "gif":
        img.save(buf, "GIF", save_all=True, append_images=[Image.fromarray(255 - arr)])
        return "loop.gif", buf.getvalue()
    if kind == "exif":
        exif = img.getexif()
        exif[0x0112] = draw(st.integers(0, 9))  # 0 and 9 are out of range
        img.save(buf, "JPEG", exif=exif)
        return "rot.jpg", buf.getvalue()
    if kind == "CMYK":
        img.convert("CMYK").save(buf, "JPEG")
        return "cmyk.jpg", buf.getvalue()
    if kind == "16bit-rgb":  # PIL writes no 16-bit RGB PNG: cv2 does
        import cv2

        return "deep.png", cv2.imencode(".png", arr.astype(np.uint16) * 257)[1].tobytes()
    img.convert(kind if kind != "truncated" else "RGB").save(buf, "PNG")
    data = buf.getvalue()
    if kind == "truncated":
        data = data[:draw(st.integers(0, len(data) - 1))]
    return f"{kind.replace(';', '')}.png", data


PREDICT = {"files": st.lists(predict_file(), min_size=1, max_size=3)}


def _predict_property(predictor: Predictor, files: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, (name, data) in enumerate(files):
            path = Path(tmp) / f"{k}-{name}"
            path.write_bytes(data)
            paths.append(path)
        before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
        try:
            items, _ = read_inputs(paths)
        except SonoganError as exc:
            assert "\n" not in str(exc)
        else:
            assert all(i.image.dtype == np.uint8 and i.image.ndim == 3 and i.image.shape[2] == 3 for i in items)
            table = predict_items(predictor, items)
            probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
            assert len(table) == len(paths) and np.allclose(probs.sum(1), 1.0)
        assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths] == before


test_predict_inputs_fuzz = FAST(given(**PREDICT)(_predict_property))
test_predict_inputs_fuzz_long = pytest.mark.slow(LONG(given(**PREDICT)(_predict_property)))
