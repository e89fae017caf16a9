"""The pelvic scene around the lesion: tissue texture, fascial planes, uterus, bowel, vessels,
the ovary with follicles, free fluid; then the lesion itself (see :mod:`.lesions`).

The scene lives on a canonical grid a little over twice the image size, centred on the
lesion, so that each view of the patient (another probe angle, zoom or position) is one
affine look at the same anatomy.

Example:
    >>> import numpy as np
    >>> from sonogan.phantom.lesions import sample_lesion
    >>> les = sample_lesion("benign", np.random.default_rng(1))
    >>> scene = build_scene(les, 64, np.random.default_rng(2), premenopausal=True)
    >>> scene.E.shape == scene.mask.shape, int(scene.mask.max())
    (True, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sonogan.phantom.lesions import Lesion, draw_lesion
from sonogan.phantom.render import BASE_ATTENUATION, smooth_noise

_SHIFT = 4
_ONE = 1 << _SHIFT
CANVAS = 2.4      # canonical grid side, in image sizes


@dataclass
class Scene:
    E: np.ndarray          # backscatter amplitude (float32)
    A: np.ndarray          # attenuation per canonical px (float32)
    mask: np.ndarray       # lesion (uint8 0/1)
    centre: tuple[float, float]
    radius_px: float       # lesion radius at zoom 1


def _ellipse(layer: np.ndarray, c: np.ndarray, axes: tuple[float, float], angle: float,
             value: int = 255, thickness: int = -1) -> None:
    cv2.ellipse(layer, (int(round(c[0] * _ONE)), int(round(c[1] * _ONE))),
                (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE)))),
                angle, 0, 360, value, thickness, cv2.LINE_AA, _SHIFT)


def _cov(layer: np.ndarray, blur: float = 0.0) -> np.ndarray:
    f = layer.astype(np.float32) / 255.0
    return cv2.GaussianBlur(f, (0, 0), blur) if blur > 0 else f


def _away(rng: np.random.Generator, c: np.ndarray, dmin: float, dmax: float) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi)
    return c + rng.uniform(dmin, dmax) * np.array([math.cos(a), math.sin(a)])


def build_scene(les: Lesion, size: int, rng: np.random.Generator, premenopausal: bool) -> Scene:
    """The canonical scene of one patient (background anatomy + lesion)."""
    sc = size / 256.0
    a0 = BASE_ATTENUATION / sc
    C = int(CANVAS * size)
    c = np.array([C / 2.0, C / 2.0])
    R = les.radius * size
    # soft tissue: slowly varying echogenicity at two scales
    E = 0.6 * np.exp(0.45 * smooth_noise(rng, (C, C), 0.16 * size) + 0.25 * smooth_noise(rng, (C, C), 0.05 * size))
    # echogenic patches (fat, bowel wall, ligaments)
    blobs = smooth_noise(rng, (C, C), 0.07 * size)
    E = E * (1 + 1.2 * np.clip(blobs - 1.0, 0, None))
    A = a0 * (1.0 + 0.25 * smooth_noise(rng, (C, C), 0.2 * size))
    E, A = E.astype(np.float32), A.astype(np.float32)

    # fascial planes / muscle layers: long gently curved bands, bright or dark
    for _ in range(int(rng.integers(2, 6))):
        layer = np.zeros((C, C), np.uint8)
        ang = rng.uniform(0, np.pi)
        off = rng.uniform(-0.9, 0.9) * size
        t = np.linspace(-C, C, 80)
        wav = rng.uniform(0.02, 0.08) * size * np.sin(2 * np.pi * t / rng.uniform(0.6, 1.6) / size + rng.uniform(0, 6))
        xs = c[0] + t * math.cos(ang) - (off + wav) * math.sin(ang)
        ys = c[1] + t * math.sin(ang) + (off + wav) * math.cos(ang)
        pts = np.round(np.stack([xs, ys], 1) * _ONE).astype(np.int32).reshape(-1, 1, 2)
        bright = rng.random() < 0.7
        width = max(1, int(round(rng.uniform(0.006, 0.02 if bright else 0.05) * size)))
        cv2.polylines(layer, [pts], False, 255, width, cv2.LINE_AA, _SHIFT)
        w = _cov(layer, (1.2 if bright else 4.0) * sc)
        E = E * (1 + w * (rng.uniform(0.9, 1.8) if bright else -0.45))

    # uterus: a large homogeneous oval with the bright endometrial line
    if rng.random() < 0.45:
        uc = _away(rng, c, R + 0.3 * size, R + 0.6 * size)
        ax = (rng.uniform(0.28, 0.45) * size, rng.uniform(0.16, 0.26) * size)
        ang = rng.uniform(0, 180)
        layer = np.zeros((C, C), np.uint8)
        _ellipse(layer, uc, ax, ang)
        w = _cov(layer, 2.0 * sc)
        E = E * (1 - w) + w * 1.0 * np.exp(0.1 * smooth_noise(rng, (C, C), 0.03 * size))
        endo = np.zeros((C, C), np.uint8)
        _ellipse(endo, uc, (ax[0] * 0.6, ax[1] * 0.12), ang, 255, max(1, int(2 * sc)))
        E = E * (1 + 1.4 * _cov(endo, 1.0))
        A = A * (1 + 0.2 * w)

    # bowel loops: bright ring, mottled gas content, shadow behind (high attenuation)
    for _ in range(int(rng.integers(0, 4))):
        bc = _away(rng, c, R + 0.12 * size, R + 0.7 * size)
        ax = (rng.uniform(0.03, 0.08) * size, rng.uniform(0.025, 0.05) * size)
        ang = rng.uniform(0, 180)
        ring, core = np.zeros((C, C), np.uint8), np.zeros((C, C), np.uint8)
        _ellipse(ring, bc, ax, ang, 255, max(1, int(2 * sc)))
        _ellipse(core, bc, (ax[0] * 0.7, ax[1] * 0.6), ang)
        wr, wc = _cov(ring, 0.8), _cov(core, 1.0)
        E = E * (1 + 1.6 * wr) * (1 + 0.5 * wc)
        A = A + wc * a0 * rng.uniform(3, 8)
    # vessels: anechoic tubes
    for _ in range(int(rng.integers(0, 3))):
        vc = _away(rng, c, R + 0.1 * size, R + 0.6 * size)
        layer = np.zeros((C, C), np.uint8)
        _ellipse(layer, vc, (rng.uniform(0.04, 0.09) * size, rng.uniform(0.012, 0.022) * size), rng.uniform(0, 180))
        w = _cov(layer, 1.5 * sc)
        E = E * (1 - w) + w * 0.08
        A = A * (1 - 0.8 * w)

    # the ovary around the lesion (often not visible around large malignant masses)
    if rng.random() < (0.4 if les.solid > 0.3 else 0.85):
        oc = c + rng.uniform(0.15, 0.5) * R * np.array([math.cos(a := rng.uniform(0, 2 * np.pi)), math.sin(a)])
        ax = (R * rng.uniform(1.15, 1.5), R * rng.uniform(0.85, 1.25))
        ang = rng.uniform(0, 180)
        layer = np.zeros((C, C), np.uint8)
        _ellipse(layer, oc, ax, ang)
        w = _cov(layer, 2.0 * sc)
        E = E * (1 - w) + w * 0.7 * np.exp(0.12 * smooth_noise(rng, (C, C), 0.02 * size))
        if premenopausal:   # follicles: small anechoic circles in the ovarian tissue
            fol = np.zeros((C, C), np.uint8)
            for _ in range(int(rng.integers(2, 8))):
                fc = oc + rng.uniform(-0.9, 0.9, 2) * np.array(ax) * 0.8
                cv2.circle(fol, (int(round(fc[0] * _ONE)), int(round(fc[1] * _ONE))),
                           int(round(rng.uniform(0.012, 0.035) * size * _ONE)), 255, -1, cv2.LINE_AA, _SHIFT)
            wf = _cov(fol, 0.5) * w
            E = E * (1 - wf) + wf * 0.03
            A = A * (1 - 0.8 * wf)

    # free fluid (ascites) wrapping part of the lesion: more common with malignancy
    if les.ascites:
        yy, xx = np.mgrid[0:C, 0:C].astype(np.float32)
        d = np.hypot(xx - c[0], yy - c[1]) / R
        band = 1.0 + rng.uniform(0.25, 0.6) * (1 + 0.6 * smooth_noise(rng, (C, C), 0.3 * R + 2))
        side = smooth_noise(rng, (C, C), 0.8 * R + 2) > rng.uniform(-0.6, 0.3)
        layer = ((d < band) & side).astype(np.uint8) * 255
        w = _cov(layer, 1.5 * sc)
        E = E * (1 - w) + w * 0.03
        A = A * (1 - 0.85 * w)

    mask = draw_lesion(E, A, (c[0], c[1]), les, size)
    return Scene(E=E.astype(np.float32), A=A.astype(np.float32), mask=mask, centre=(float(c[0]), float(c[1])),
                 radius_px=R)
