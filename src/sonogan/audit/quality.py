"""No-reference image quality, licence-clean and offline: BRISQUE, PIQE and NIQE.

- BRISQUE (Mittal et al. 2012): the ``brisque`` package (Apache-2.0), which ships its SVM model
  (trained on LIVE). Its ``score()`` breaks under NumPy 2 (it turns 1-element arrays into
  floats), so :func:`brisque_score` runs the package's own feature and SVM steps and only
  converts the features to floats in between.
- PIQE (Venkatanath et al., NCC 2015): parameter-free, written from its published definition
  (the constants are the paper's and MATLAB ``piqe``'s): 16 x 16 blocks of MSCN coefficients; a
  block is spatially active when their variance exceeds 0.1; an active block scores
  1 - variance when one of its edges holds a 6-pixel segment with standard deviation below
  0.1 (noticeable artifact) and + variance when its centre-surround deviation shows noise;
  PIQE = 100 (sum of block scores + 1) / (active blocks + 1). Lower is better; a uniform image
  scores 100. Hand-written because no licence-clean offline library has it (pyiqa is
  non-commercial; pypiqe is not among the pinned dependencies).
- NIQE: :mod:`sonogan.audit.niqe`, its pristine model fitted on in-domain real images.

Example:
    >>> import numpy as np
    >>> piqe_score(np.full((32, 32), 90, np.uint8))     # no active block: worst score
    100.0
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from sonogan.audit.niqe import NiqeModel, mscn, niqe_score, to_grey
from sonogan.skipped import Skipped

PIQE_BLOCK = 16
PIQE_ACTIVITY = 0.1
PIQE_SEGMENT = 6
PIQE_SEGMENT_STD = 0.1


@lru_cache(maxsize=1)
def _brisque():  # loading the SVM takes a moment; one model serves every image
    from brisque import BRISQUE  # only for the BRISQUE score: the package loads its SVM model on import

    return BRISQUE(url=False)


def brisque_score(image: np.ndarray) -> float:
    """BRISQUE of a uint8 (H, W) or (H, W, C) image (lower = better), via the brisque package."""
    model = _brisque()
    grey = to_grey(image) / 255.0  # the package's score() works on rgb2gray's [0, 1] range
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    feats = np.concatenate([model.calculate_brisque_features(grey, kernel_size=7, sigma=7 / 6),
                            model.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)])
    return float(model.calculate_image_quality_score([np.asarray(f, float).item() for f in feats]))


def _edge_has_flat_segment(edge: np.ndarray) -> bool:
    windows = np.lib.stride_tricks.sliding_window_view(edge, PIQE_SEGMENT)
    return bool((windows.std(axis=1, ddof=1) < PIQE_SEGMENT_STD).any())


def piqe_block_score(block: np.ndarray) -> tuple[bool, float]:
    """(active, distortion score) of one 16 x 16 block of MSCN coefficients."""
    var = float(block.var(ddof=1))
    if var <= PIQE_ACTIVITY:
        return False, 0.0
    score = 0.0
    edges = (block[0], block[-1], block[:, 0], block[:, -1])
    if any(_edge_has_flat_segment(e) for e in edges):  # noticeable artifact (blockiness, a sudden flat edge)
        score += 1 - var
    centre_cols = (PIQE_BLOCK // 2 - 1, PIQE_BLOCK // 2)
    centre = block[:, centre_cols].ravel()
    surround = np.delete(block, centre_cols, axis=1).ravel()
    sd_surround = surround.std(ddof=1)
    ratio = centre.std(ddof=1) / sd_surround if sd_surround > 0 else 0.0
    sigma = np.sqrt(var)
    beta = abs(sigma - ratio) / max(sigma, ratio)
    if sigma > 2 * beta:  # centre and surround alike: noise rather than structure
        score += var
    return True, score


def piqe_from_mscn(coef: np.ndarray) -> float:
    """PIQE of an MSCN coefficient map whose sides are multiples of 16."""
    total, active = 0.0, 0
    for i in range(0, coef.shape[0], PIQE_BLOCK):
        for j in range(0, coef.shape[1], PIQE_BLOCK):
            is_active, score = piqe_block_score(coef[i:i + PIQE_BLOCK, j:j + PIQE_BLOCK])
            active += is_active
            total += score
    return 100.0 * (total + 1) / (active + 1)


def piqe_score(image: np.ndarray) -> float:
    """PIQE of a uint8 (H, W) or (H, W, C) image (0 best, 100 worst)."""
    grey = to_grey(image)
    pad = [(0, -s % PIQE_BLOCK) for s in grey.shape]
    grey = np.pad(grey, pad, mode="symmetric")
    top = grey.max()
    grey = np.round(255 * grey / top) if top > 0 else grey  # the definition's rescale to 0..255
    return piqe_from_mscn(mscn(grey)[0])


def _summary(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(v.mean()), 4), "sd": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4),
            "n": int(len(v))}


def quality_summary(images: np.ndarray, niqe_model: NiqeModel | Skipped) -> dict[str, dict[str, float] | None]:
    """Mean and SD of BRISQUE, PIQE and NIQE over uint8 (N, S, S, C) images; NIQE is None when its
    reference model could not be fitted (``niqe_model`` is :class:`~sonogan.skipped.Skipped`)."""
    return {"brisque": _summary([brisque_score(im) for im in images]),
            "piqe": _summary([piqe_score(im) for im in images]),
            "niqe": None if isinstance(niqe_model, Skipped) else
            _summary([niqe_score(niqe_model, im) for im in images])}
