"""Small torch helpers shared by the GAN and the classifier loops (neither imports the other).

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from sonogan.errors import SonoganInputError
from sonogan.runs import atomic_write_bytes


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SonoganInputError("device: cuda", "no CUDA GPU is available", "set device: auto or cpu")
    return torch.device(name)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save into memory, then an atomic write (temp file + fsync + rename): a kill never
    leaves half a checkpoint, and a full disk raises OSError(ENOSPC) naming the file (torch's
    own writer would raise a RuntimeError without the errno)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getbuffer())
