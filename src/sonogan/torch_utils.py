"""Small torch helpers shared by the GAN and the classifier loops (neither imports the other).

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sonogan.errors import SonoganInputError


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SonoganInputError("device: cuda", "no CUDA GPU is available", "set device: auto or cpu")
    return torch.device(name)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file then rename, so an interrupted write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path
