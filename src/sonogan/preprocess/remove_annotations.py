"""Annotation removal as a preprocessing step: the remover applied to real images (to those
the detector flags, by default), with the checkpoint's sha256 in the cache token.

The remover works at its own size (e.g. 128 x 128). A scan of any size is shrunk to it and the
result is brought back to full resolution without touching what the remover leaves alone: a
gated remover's gate (enlarged) says which full-resolution pixels are replaced by its enlarged
output; a plain remover's correction (output - input) is enlarged and added. Grey samples go
through a colour remover as grey RGB and come back grey.

Presets switch it on with ``PreprocessConfig.remove_annotations`` (a checkpoint path); the
registered ``*-deannotated`` presets take the path from ``$SONOGAN_ANNOTATION_REMOVER`` and pin
its sha256 when they are made (:func:`remover_options`), so a changed file is an error, not a
silently different model.

Example:
    >>> step = RemoveAnnotations("runs/annotations/remover.pt")    # doctest: +SKIP
    >>> out = step(make_sample(image))["image"]                     # doctest: +SKIP
    >>> step.cache_token()["sha256"][:8]                            # doctest: +SKIP
    '3f9a0c1e'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from sonogan.errors import SonoganInputError
import sonogan.preprocess.functional as F
from sonogan.preprocess.transforms import DictTransform, Sample
from sonogan.runs import sha256_file

ENV_VAR = "SONOGAN_ANNOTATION_REMOVER"
DEFAULT_PATH = Path.home() / ".cache" / "sonogan" / "annotation-remover.pt"
_LOADED: dict[str, Any] = {}  # sha256 -> (remover, detector, config): loaded once per process
_DIGESTS: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime) -> sha256: once, not per image


def checkpoint_sha256(path: Path) -> str:
    """sha256 of the file at ``path``, re-hashed only when it was replaced or rewritten (inode,
    size or mtime changed)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def remover_path() -> Path:
    """The remover the ``*-deannotated`` presets use: ``$SONOGAN_ANNOTATION_REMOVER``, else
    ``~/.cache/sonogan/annotation-remover.pt``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH).expanduser().resolve()


def remover_options() -> dict[str, Any]:
    """PreprocessConfig fields of a preset with annotation removal: the path and, when the file
    exists, its sha256 (a missing file is reported when the step first runs, not here, so that
    listing presets never fails). Every real image goes through the remover: the detector,
    trained on synthetic marks, flagged only 29 % of MMOTU's real validation images, nearly all
    of which carry marks, and a gated remover leaves unmarked pixels as they are."""
    path = remover_path()
    return {"remove_annotations": str(path), "remove_annotations_sha256": sha256_file(path) if path.is_file() else None,
            "remove_annotations_on": "all"}


def _missing(path: Path) -> SonoganInputError:
    return SonoganInputError(path, "annotation-remover checkpoint not found",
                             f"train one ('sonogan annotations train DATASET --out DIR') and set {ENV_VAR}=DIR/remover.pt")


def loaded_remover(path: str | Path, expect_sha256: str | None = None) -> tuple[Any, Any, Any, str]:
    """(remover, detector, RemoverConfig, sha256) of the checkpoint at ``path``, cached per
    process by content. ``expect_sha256`` (pinned by a preset) must match the file."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    digest = checkpoint_sha256(path)
    if expect_sha256 is not None and digest != expect_sha256:
        raise SonoganInputError(path, f"annotation remover changed (sha256 {digest[:12]}, the preset expects "
                                f"{expect_sha256[:12]})", "use the remover the model was trained with, "
                                "or retrain with the new one")
    if digest not in _LOADED:
        # torch and timm only when a preset removes annotations: the cache's workers stay light otherwise
        from sonogan.models.remover import load_remover

        _LOADED[digest] = load_remover(path)[:3]
    return (*_LOADED[digest], digest)


def to_model_input(image: np.ndarray, channels: int, size: int) -> np.ndarray:
    """uint8 HxWxC (C 1 or 3) -> float32 (channels, size, size) in [0, 1], stretched as in training."""
    small = cv2.resize(F.to_channels(image, channels), (size, size), interpolation=cv2.INTER_AREA)
    return small.reshape(size, size, channels).transpose(2, 0, 1).astype(np.float32) / 255.0


def clean_image(image: np.ndarray, remover: Any, detector: Any, cfg: Any,
                apply_to: Literal["detected", "all"] = "detected", threshold: float = 0.5) -> tuple[np.ndarray, float]:
    """(image without annotations, detector probability of annotations) for one uint8 HxWxC
    image; ``apply_to="detected"`` returns the image unchanged when the probability is below
    ``threshold``."""
    import torch  # only when a remover runs (see loaded_remover)

    h, w, c = image.shape
    x = torch.from_numpy(to_model_input(image, cfg.channels, cfg.size))[None]
    with torch.no_grad():
        prob = float(torch.softmax(detector(x), dim=1)[0, 1])
        if apply_to == "detected" and prob < threshold:
            return image.copy(), prob
        out, gate = remover.restore(x)
    out = out.clamp(0, 1)

    def enlarge(t: torch.Tensor) -> np.ndarray:
        return cv2.resize(t[0].numpy().transpose(1, 2, 0), (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)

    full = F.to_channels(image, cfg.channels).astype(np.float32)
    if gate is None:   # add the remover's correction: a thin mark gets a thin, faded correction
        full += enlarge(out - x) * 255.0
    else:              # replace what the gate marks by the enlarged fill: thin marks go entirely
        full += enlarge(torch.sigmoid(gate)) * (enlarge(out) * 255.0 - full)
    restored = np.clip(np.rint(full), 0, 255).astype(np.uint8)
    return F.to_channels(restored, c), prob


@dataclass(frozen=True)
class RemoveAnnotations(DictTransform):
    """Paint burned-in annotations over with the remover at ``checkpoint`` (real images only).

    ``apply_to``: "detected" (images the detector gives >= ``threshold``) or "all". The token
    carries the file's sha256, not its path: a new checkpoint gives a new cache, a moved one
    does not."""

    checkpoint: str
    sha256: str | None = None
    apply_to: Literal["detected", "all"] = "detected"
    threshold: float = 0.5

    def apply(self, data: Sample) -> Sample:
        remover, detector, cfg, _ = loaded_remover(self.checkpoint, self.sha256)
        image, _ = clean_image(data["image"], remover, detector, cfg, self.apply_to, self.threshold)
        return {**data, "image": image}

    def cache_token(self) -> dict[str, Any]:
        path = Path(self.checkpoint)
        if not path.is_file():
            raise _missing(path)
        return {"transform": type(self).__name__, "sha256": checkpoint_sha256(path), "apply_to": self.apply_to,
                "threshold": self.threshold}
