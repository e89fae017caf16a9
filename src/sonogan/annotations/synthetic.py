"""Synthetic burned-in annotations on ANY clean image -> (clean, annotated, annotation mask).

The self-supervised pairs of ``001_*`` §3.1.1: arrows whose ends lie on the lesion edge, a
label from a bank of common annotations ("Fluid", "Rt Ov", "CY", "L-OV" ...), calliper marks
('+' or 'x' pairs joined by a dotted line, numbered, with a "1 D 3.21cm" read-out) and scanner
read-outs in a corner, in the colours scanners use (yellow, white, grey, green, cyan). The
lesion mask gives the edge when there is one; without it a plausible region (an ellipse in the
middle of the image) stands in. Sizes follow the image size, so the marks look the same at
any resolution. Everything random comes from the caller's ``numpy.random.Generator``: the same
image, mask and seed give the same pair, bit for bit.

The annotation mask is the thesis's ``M``: the pixels where annotated and clean differ.

Example:
    >>> import numpy as np
    >>> img = np.full((128, 160, 3), 70, np.uint8)
    >>> pair = annotate(img, np.random.default_rng(0))
    >>> pair.annotated.shape == img.shape, bool(pair.mask.any()), bool((pair.clean == 70).all())
    (True, True, True)
    >>> bool(((pair.annotated != pair.clean).any(axis=2) == pair.mask.astype(bool)).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field

from sonogan.config import StrictModel
from sonogan.phantom.annotations import TEXT_BANK, put_text_inside  # one bank and text helper for the phantom and the remover

READOUTS = ("D 12.0cm", "G 55", "FR 23Hz", "C6 / M4", "P4 / E3", "Gn -1.4", "Frq mid", "PRF 1.3kHz",
            "SRI II 3", "100%", "Qual norm", "Har-mid")
COLOURS = ((255, 255, 0), (240, 230, 60), (255, 255, 255), (200, 200, 200), (0, 220, 0), (0, 200, 255))
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)


class AnnotationConfig(StrictModel):
    """How often each kind of mark appears on one image (at least one mark always does)."""

    p_arrow: float = Field(0.5, ge=0, le=1, description="chance of arrows (1-2) between lesion-edge points")
    p_text: float = Field(0.7, ge=0, le=1, description="chance of a label from the text bank (1-2)")
    p_calliper: float = Field(0.7, ge=0, le=1, description="chance of calliper pairs (1-2) across the lesion")
    p_readout: float = Field(0.4, ge=0, le=1, description="chance of scanner read-out lines in a corner")
    font_scale: tuple[float, float] = Field((0.7, 1.3), description="text size range, x image size / 400")


@dataclass
class AnnotatedPair:
    clean: np.ndarray       # HxWxC uint8, the input (never modified)
    annotated: np.ndarray   # HxWxC uint8, the same image with marks burned in
    mask: np.ndarray        # HxW uint8, 1 where annotated != clean


def edge_points(mask: np.ndarray | None, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(N, 2) x,y points on the outline of the largest lesion region, or, without a usable mask,
    on a random ellipse in the middle 60 % of the image (where lesions usually are)."""
    h, w = shape
    if mask is not None and mask.any():
        contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = max(contours, key=cv2.contourArea)[:, 0, :]
        if len(outline) >= 8:
            return outline.astype(float)
    centre = (rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h)
    axes = (rng.uniform(0.1, 0.25) * w, rng.uniform(0.1, 0.25) * h)
    outline = cv2.ellipse2Poly((int(centre[0]), int(centre[1])), (max(2, int(axes[0])), max(2, int(axes[1]))),
                               int(rng.integers(0, 180)), 0, 360, 5)
    return outline.astype(float)


def _pick_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return COLOURS[int(rng.integers(len(COLOURS)))]


def _arrow(img: np.ndarray, edge: np.ndarray, rng: np.random.Generator, colour: tuple[int, int, int]) -> None:
    """An arrow from one lesion-edge point to another (the thesis's arrows 'spanning' the lesion)."""
    i, j = rng.choice(len(edge), size=2, replace=False)
    tail, tip = edge[i], edge[j]
    if np.linalg.norm(tip - tail) < 4:  # coincident points: point at the edge from outside instead
        tail = tip + rng.uniform(0.08, 0.15) * img.shape[1] * np.array([1.0, -1.0])
    thickness = max(1, img.shape[1] // 250)
    cv2.arrowedLine(img, tuple(int(v) for v in tail), tuple(int(v) for v in tip), colour, thickness,
                    cv2.LINE_AA, tipLength=float(rng.uniform(0.08, 0.2)))


def _cross(img: np.ndarray, p: np.ndarray, arm: int, colour: tuple[int, int, int], diagonal: bool) -> None:
    x, y = int(round(p[0])), int(round(p[1]))
    ends = ((-arm, -arm, arm, arm), (-arm, arm, arm, -arm)) if diagonal else ((-arm, 0, arm, 0), (0, -arm, 0, arm))
    for dx0, dy0, dx1, dy1 in ends:
        cv2.line(img, (x + dx0, y + dy0), (x + dx1, y + dy1), colour, 1, cv2.LINE_AA)


def _dotted(img: np.ndarray, p: np.ndarray, q: np.ndarray, gap: float, colour: tuple[int, int, int]) -> None:
    """Single-pixel dots every ``gap`` px between the calliper ends, as scanners draw them."""
    n = max(2, int(np.linalg.norm(q - p) / gap))
    h, w = img.shape[:2]
    for t in np.linspace(0, 1, n + 1)[1:-1]:
        x, y = p + t * (q - p)
        img[int(np.clip(round(y), 0, h - 1)), int(np.clip(round(x), 0, w - 1))] = colour


def _callipers(img: np.ndarray, edge: np.ndarray, rng: np.random.Generator, colour: tuple[int, int, int],
               scale: float, number: int) -> None:
    """A '+' or 'x' pair on roughly opposite edge points, a dotted line, the pair's number and its
    length read-out ("1 D 3.21cm") in a bottom corner."""
    h, w = img.shape[:2]
    i = int(rng.integers(len(edge)))
    j = (i + len(edge) // 2 + int(rng.integers(-len(edge) // 8, len(edge) // 8 + 1))) % len(edge)
    p, q = edge[i], edge[j]
    arm = max(2, int(round(min(h, w) / rng.uniform(60, 90))))
    diagonal = bool(rng.random() < 0.4)
    _cross(img, p, arm, colour, diagonal)
    _cross(img, q, arm, colour, diagonal)
    _dotted(img, p, q, max(3.0, min(h, w) / rng.uniform(50, 80)), colour)
    if rng.random() < 0.5:
        put_text_inside(img, str(number), (q[0] + arm + 1, q[1] + arm), scale * 0.7, colour, cv2.FONT_HERSHEY_PLAIN)
    cm = np.linalg.norm(q - p) / max(h, w) * rng.uniform(8, 14)
    line = f"{number} D {cm:.2f}cm"
    (tw, th), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, 1)
    x = 3 if rng.random() < 0.5 else w - tw - 3
    put_text_inside(img, line, (x, h - 4 - (th + 4) * (number - 1)), scale * 0.8, colour, cv2.FONT_HERSHEY_SIMPLEX)


def _label(img: np.ndarray, edge: np.ndarray, rng: np.random.Generator, colour: tuple[int, int, int],
           scale: float) -> None:
    """A text-bank label on the lesion (as in the thesis) or anywhere else in the image."""
    h, w = img.shape[:2]
    text = TEXT_BANK[int(rng.integers(len(TEXT_BANK)))]
    font = FONTS[int(rng.integers(len(FONTS)))]
    if rng.random() < 0.6:
        x0, y0 = edge.min(axis=0)
        x1, y1 = edge.max(axis=0)
        org = (rng.uniform(x0, max(x0 + 1, x1)), rng.uniform(y0, max(y0 + 1, y1)))
    else:
        org = (rng.uniform(0, w), rng.uniform(0, h))
    put_text_inside(img, text, org, scale * rng.uniform(0.9, 1.3), colour, font)


def _readout(img: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    """Scanner settings, one per line, in a top corner (grey/white or blue-ish, small)."""
    h, w = img.shape[:2]
    lines = list(rng.choice(READOUTS, size=int(rng.integers(1, 5)), replace=False))
    colour = (220, 220, 220) if rng.random() < 0.7 else (80, 80, 255)
    s = scale * 0.6
    step = cv2.getTextSize("D", cv2.FONT_HERSHEY_PLAIN, s, 1)[0][1] + max(2, h // 60)
    right = bool(rng.random() < 0.6)
    for k, text in enumerate(lines):
        tw = cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, s, 1)[0][0]
        put_text_inside(img, text, (w - tw - 2 if right else 2, step * (k + 1)), s, colour, cv2.FONT_HERSHEY_PLAIN)


def annotate(image: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None,
             cfg: AnnotationConfig | None = None) -> AnnotatedPair:
    """Burn random annotations into a copy of ``image`` (uint8 HxWx3 RGB, or grey HxW / HxWx1,
    which is annotated in colour and returned grey) around the lesion ``mask`` (any non-zero =
    lesion; None or empty = a plausible region)."""
    cfg = cfg or AnnotationConfig()
    grey = image.ndim == 2 or image.shape[2] == 1
    clean = image.reshape(image.shape[0], image.shape[1], -1)
    canvas = cv2.cvtColor(clean, cv2.COLOR_GRAY2RGB) if grey else clean.copy()
    h, w = canvas.shape[:2]
    edge = edge_points(None if mask is None else mask.reshape(h, w), (h, w), rng)
    scale = min(h, w) / 400 * rng.uniform(*cfg.font_scale)
    kinds = [k for k, p in (("arrow", cfg.p_arrow), ("text", cfg.p_text), ("calliper", cfg.p_calliper),
                            ("readout", cfg.p_readout)) if rng.random() < p] or ["text"]
    number = 1
    for kind in kinds:
        for _ in range(1 if kind == "readout" else int(rng.integers(1, 3))):
            colour = _pick_colour(rng)
            if kind == "arrow":
                _arrow(canvas, edge, rng, colour)
            elif kind == "text":
                _label(canvas, edge, rng, colour, scale)
            elif kind == "calliper":
                _callipers(canvas, edge, rng, colour, scale, number)
                number += 1
            else:
                _readout(canvas, rng, scale)
    annotated = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[:, :, None] if grey else canvas
    changed = (annotated != clean).any(axis=2).astype(np.uint8)
    return AnnotatedPair(clean=image, annotated=annotated.reshape(image.shape), mask=changed)


def downsized_pair(image: np.ndarray, rng: np.random.Generator, size: int, mask: np.ndarray | None = None,
                   cfg: AnnotationConfig | None = None) -> AnnotatedPair:
    """Annotate at the image's own resolution, then shrink clean and annotated together to
    ``size`` x ``size`` (area averaging, aspect stretched as the remover sees images): burned-in
    marks thin and fade with the scan exactly like real ones do. ``mask`` is recomputed after
    shrinking (pixels that still differ)."""
    pair = annotate(image, rng, mask, cfg)
    clean = cv2.resize(pair.clean, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
    annotated = cv2.resize(pair.annotated, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
    return AnnotatedPair(clean, annotated, (annotated != clean).any(axis=2).astype(np.uint8))
