"""Burned-in annotations as clinicians leave them on saved frames: text labels ("ROV",
"L-OV", "CY" ...), calliper crosses joined by a dotted line with the measurement, arrows,
and depth / gain read-outs. They are drawn on a copy; the untouched frame is the 'clean' twin.

Example:
    >>> import numpy as np
    >>> from sonogan.phantom.render import scanner_style
    >>> img = np.full((128, 128, 3), 60, np.uint8); mask = np.zeros((128, 128), np.uint8)
    >>> mask[40:90, 30:100] = 1
    >>> out = annotate(img, mask, scanner_style(0), np.random.default_rng(0), px_per_cm=12.8)
    >>> out.shape == img.shape, bool((out != img).any()), bool((img == 60).all())
    (True, True, True)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sonogan.phantom.render import ScannerStyle

TEXT_BANK = ("ROV", "LOV", "R-OV", "L-OV", "CY", "R-CY", "L-CY", "RT OV", "LT OV", "Rt Ov", "Lt Ov",
             "MASS", "ADNEXA R", "ADNEXA L", "Fluid", "UT", "CYST", "R-OV-CY", "SOLID")
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)


def put_text_inside(img: np.ndarray, text: str, org: tuple[float, float], scale: float,
                    colour: tuple[int, int, int], font: int) -> None:
    """Text kept inside the image (cv2.putText clips silently, which would cut labels in half)."""
    h, w = img.shape[:2]
    (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
    x = int(np.clip(org[0], 1, max(1, w - tw - 1)))
    y = int(np.clip(org[1], th + 1, h - 2))
    cv2.putText(img, text, (x, y), font, scale, colour, 1, cv2.LINE_AA)


def _cross(img: np.ndarray, p: np.ndarray, arm: int, colour: tuple[int, int, int], diagonal: bool) -> None:
    x, y = int(round(p[0])), int(round(p[1]))
    if diagonal:
        cv2.line(img, (x - arm, y - arm), (x + arm, y + arm), colour, 1, cv2.LINE_AA)
        cv2.line(img, (x - arm, y + arm), (x + arm, y - arm), colour, 1, cv2.LINE_AA)
    else:
        cv2.line(img, (x - arm, y), (x + arm, y), colour, 1, cv2.LINE_AA)
        cv2.line(img, (x, y - arm), (x, y + arm), colour, 1, cv2.LINE_AA)


def _dotted(img: np.ndarray, p: np.ndarray, q: np.ndarray, gap: float, colour: tuple[int, int, int]) -> None:
    n = max(2, int(np.linalg.norm(q - p) / gap))
    for t in np.linspace(0, 1, n + 1)[1:-1]:
        x, y = p + t * (q - p)
        img[int(round(y)) % img.shape[0], int(round(x)) % img.shape[1]] = colour


def _extremes(mask: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) < 4:
        return None
    d = np.array([math.cos(angle), math.sin(angle)])
    proj = xs * d[0] + ys * d[1]
    perp = -xs * d[1] + ys * d[0]
    centre = np.median(perp)
    near = np.abs(perp - centre) <= max(1.0, 0.05 * (perp.max() - perp.min()))   # through the middle
    xs, ys, proj = xs[near], ys[near], proj[near]
    i, j = int(np.argmin(proj)), int(np.argmax(proj))
    return np.array([xs[i], ys[i]], float), np.array([xs[j], ys[j]], float)


def annotate(img: np.ndarray, mask: np.ndarray, style: ScannerStyle, rng: np.random.Generator,
             px_per_cm: float) -> np.ndarray:
    """A copy of ``img`` (uint8 RGB) with burned-in annotations around the lesion ``mask``."""
    out = img.copy()
    size = img.shape[0]
    colour = tuple(int(c) for c in style.annotation_colour)
    scale = size / 420.0 * rng.uniform(0.8, 1.25)
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    ys, xs = np.nonzero(mask)
    box = (xs.min(), ys.min(), xs.max(), ys.max()) if len(xs) else (size // 3, size // 3, 2 * size // 3, 2 * size // 3)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    todo = [name for name, p in (("label", 0.75), ("calliper", 0.65), ("arrow", 0.3), ("readout", 0.45))
            if rng.random() < p]
    if not todo:
        todo = ["label"]
    if "label" in todo:
        text = TEXT_BANK[int(rng.integers(len(TEXT_BANK)))]
        where = rng.integers(3)
        org = {0: (cx - 10 * scale * len(text) / 2, cy),                    # on the lesion
               1: (box[2] + 4, box[1] + 10),                               # beside it
               2: (box[0] - 12 * scale * len(text), box[3])}[int(where)]   # other side
        put_text_inside(out, text, (int(org[0]), int(org[1])), scale * 1.1, colour, font)
    if "calliper" in todo:
        arm = max(2, size // 64)
        lines = []
        angle = rng.uniform(0, np.pi)
        for k in range(1 + int(rng.random() < 0.5)):
            ends = _extremes(mask, angle + k * np.pi / 2)
            if ends is None:
                break
            p, q = ends
            _cross(out, p, arm, colour, diagonal=bool(k))
            _cross(out, q, arm, colour, diagonal=bool(k))
            _dotted(out, p, q, max(3.0, size / 70), colour)
            lines.append(np.linalg.norm(q - p) / px_per_cm)
        if lines:
            corner = int(rng.integers(2))
            font_m = cv2.FONT_HERSHEY_PLAIN if scale < 0.5 else cv2.FONT_HERSHEY_SIMPLEX
            texts = [f"{k + 1} D {cm:.2f}cm" for k, cm in enumerate(lines)]
            sizes = [cv2.getTextSize(t, font_m, scale * 0.8, 1)[0] for t in texts]
            step = max(h for _, h in sizes) + max(2, size // 64)
            for k, (text, (tw, _)) in enumerate(zip(texts, sizes)):
                x = 4 if corner == 0 else size - tw - 14
                put_text_inside(out, text, (x, size - 5 - step * (len(texts) - 1 - k)), scale * 0.8, colour, font_m)
    if "arrow" in todo:
        a = rng.uniform(0, 2 * np.pi)
        r = 0.5 * max(box[2] - box[0], box[3] - box[1])
        tip = np.array([cx, cy]) + 0.8 * r * np.array([math.cos(a), math.sin(a)])
        tail = tip + rng.uniform(0.12, 0.2) * size * np.array([math.cos(a), math.sin(a)])
        tail = np.clip(tail, 2, size - 3)
        cv2.arrowedLine(out, (int(tail[0]), int(tail[1])), (int(tip[0]), int(tip[1])), colour,
                        max(1, size // 200), cv2.LINE_AA, tipLength=0.3)
    if "readout" in todo:
        depth = size / px_per_cm
        lines = [f"D {depth:.1f}cm", f"G {int(rng.integers(40, 75))}", f"FR {int(rng.integers(12, 40))}Hz"]
        font_r = cv2.FONT_HERSHEY_PLAIN if scale < 0.5 else cv2.FONT_HERSHEY_SIMPLEX
        step = cv2.getTextSize("D", font_r, scale * 0.75, 1)[0][1] + max(2, size // 64)
        x = 3 if rng.random() < 0.5 else size - cv2.getTextSize(lines[0], font_r, scale * 0.75, 1)[0][0] - 14
        for k, text in enumerate(lines[: int(rng.integers(1, 4))]):
            put_text_inside(out, text, (x, 3 + step * (k + 1)), scale * 0.75, (230, 230, 230), font_r)
    return out
