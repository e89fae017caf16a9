"""The clean images that training pairs (and held-out pairs) are drawn on: one partition's real
rows, decoded, optionally without those that already carry marker colour, at the drawing size.

Example:
    >>> import numpy as np
    >>> yellow = np.zeros((4, 4, 3), np.uint8); yellow[0, :] = (230, 200, 20)   # one row of 4 marked
    >>> marker_fraction(yellow)
    0.25
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sonogan.data.manifest import Dataset
from sonogan.errors import SonoganInputError
from sonogan.preprocess.cache import decode_image
from sonogan.progress import progress_bar


@dataclass
class CleanImages:
    ids: list[str]
    images: list[np.ndarray]   # HxWx3 uint8 RGB at the drawing size
    masks: list[np.ndarray]    # HxW uint8 lesion masks (all zero when the row has none)


def marker_fraction(image: np.ndarray) -> float:
    """Share of pixels that are saturated yellow (OpenCV hue 15-40 of 180, saturation and value
    > 90): burned-in calliper marks and labels on most scanners, rare in grey ultrasound."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return float(((h >= 15) & (h <= 40) & (s > 90) & (v > 90)).mean())


def load_clean_images(ds: Dataset, ids: list[str], draw_size: int, max_marker: float | None = None,
                      progress: bool = False) -> CleanImages:
    """Decode ``ids`` (real rows) and their masks, drop images with more marker colour than
    ``max_marker``, and resize (stretch) the rest to ``draw_size`` x ``draw_size``."""
    rows = ds.manifest.set_index("image_id").loc[ids]
    out = CleanImages([], [], [])
    with progress_bar(progress, "decode") as bar:
        task = bar.add_task("", total=len(rows))
        for image_id, row in rows.iterrows():
            bar.update(task, advance=1)
            image = decode_image(ds.path(row["image"]), context=f"manifest row {image_id}")
            if max_marker is not None and marker_fraction(image) > max_marker:
                continue
            mask = (decode_image(ds.path(row["mask"]), grey=True) > 0).astype(np.uint8) if row["mask"] else \
                np.zeros(image.shape[:2], np.uint8)
            if mask.shape != image.shape[:2]:
                mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            out.ids.append(str(image_id))
            out.images.append(cv2.resize(image, (draw_size, draw_size), interpolation=cv2.INTER_AREA))
            out.masks.append(cv2.resize(mask, (draw_size, draw_size), interpolation=cv2.INTER_NEAREST))
    if not out.ids:
        raise SonoganInputError(ds.root, "no clean image left to train on",
                                "raise clean_max_marker_fraction (or set it to null)")
    return out
