"""Add synthetic images to a real training set: a fixed count, a ratio, or enough to balance.

Modes, applied to every class that has synthetic images (optionally restricted by ``classes``):
- ``count``:   ``n`` synthetic images per class (an int, or a dict class -> count);
- ``ratio``:   ``round(ratio * real count of that class)``;
- ``balance``: ``max real class count - real count of that class`` (the flagship added
  2000 synthetic BOT images to bring the rare class up to the others).
Which synthetic images are used is a seeded draw without replacement; the output is the
real images (original order) followed by the synthetic ones (class order, then drawn order).

Example:
    >>> import numpy as np
    >>> rx, ry = np.zeros((5, 1, 4, 4)), np.array([0, 0, 0, 0, 1])
    >>> sx, sy = np.ones((10, 1, 4, 4)), np.ones(10, dtype=int)
    >>> x, y, syn = mix_real_synthetic(rx, ry, sx, sy, mode="balance", seed=0)
    >>> x.shape[0], int(syn.sum()), np.bincount(y).tolist()
    (8, 3, [4, 4])
"""

from __future__ import annotations

from typing import Literal, Sequence, TypeVar

import numpy as np
import torch

from sonogan.errors import SonoganInputError

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _labels(y: np.ndarray | torch.Tensor | Sequence[int]) -> np.ndarray:
    return np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=np.int64)


def synthetic_counts(real_y: np.ndarray, syn_y: np.ndarray, mode: str, n: int | dict[int, int] | None,
                     ratio: float | None, classes: Sequence[int] | None = None) -> dict[int, int]:
    """How many synthetic images each class gets (pure; no sampling)."""
    real_counts = np.bincount(real_y, minlength=int(max(real_y.max(initial=0), syn_y.max(initial=0))) + 1)
    targets = sorted(set(syn_y.tolist()) if classes is None else {int(c) for c in classes})
    if mode == "count":
        if n is None:
            raise SonoganInputError("mixing", "mode 'count' needs n", "pass n (per class) or a dict class -> n")
        want = {c: int(n[c]) if isinstance(n, dict) else int(n) for c in targets if not isinstance(n, dict) or c in n}
    elif mode == "ratio":
        if ratio is None or ratio < 0:
            raise SonoganInputError("mixing", f"mode 'ratio' needs ratio >= 0 (got {ratio})", "pass ratio, e.g. 1.0")
        want = {c: int(round(ratio * (real_counts[c] if c < len(real_counts) else 0))) for c in targets}
    elif mode == "balance":
        top = int(real_counts.max())
        want = {c: max(0, top - int(real_counts[c] if c < len(real_counts) else 0)) for c in targets}
    else:
        raise SonoganInputError("mixing", f"unknown mode '{mode}'", "use 'count', 'ratio' or 'balance'")
    if any(v < 0 for v in want.values()):
        raise SonoganInputError("mixing", f"negative count in {want}", "pass counts >= 0")
    return want


def _concat(parts: list[Array]) -> Array:
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def mix_real_synthetic(real_x: Array, real_y: np.ndarray | torch.Tensor, syn_x: Array,
                       syn_y: np.ndarray | torch.Tensor, mode: Literal["count", "ratio", "balance"] = "count",
                       n: int | dict[int, int] | None = None, ratio: float | None = None, seed: int = 0,
                       classes: Sequence[int] | None = None) -> tuple[Array, Array, Array]:
    """Return ``(x, y, is_synthetic)`` of real + drawn synthetic images (types follow ``real_x``).

    Raises SonoganInputError if a class asks for more synthetic images than exist (the fix is
    to generate more, or ask for fewer).
    """
    ry, sy = _labels(real_y), _labels(syn_y)
    if len(ry) != len(real_x) or len(sy) != len(syn_x):
        raise SonoganInputError("mixing", "images and labels differ in length", "pass one label per image")
    want = synthetic_counts(ry, sy, mode, n, ratio, classes)
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for c in sorted(want):  # fixed class order keeps the draw independent of dict order
        pool = np.flatnonzero(sy == c)
        if want[c] > len(pool):
            raise SonoganInputError("mixing", f"class {c} needs {want[c]} synthetic images, only {len(pool)} exist",
                                    "generate more synthetic images or lower n / ratio")
        picked.append(rng.choice(pool, size=want[c], replace=False))
    idx = np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)
    is_torch = isinstance(real_x, torch.Tensor)
    sel = torch.as_tensor(idx) if is_torch else idx
    x = _concat([real_x, syn_x[sel]])
    y_np = np.concatenate([ry, sy[idx]])
    flag_np = np.concatenate([np.zeros(len(ry), dtype=bool), np.ones(len(idx), dtype=bool)])
    if is_torch:
        return x, torch.as_tensor(y_np), torch.as_tensor(flag_np)
    return x, y_np, flag_np
