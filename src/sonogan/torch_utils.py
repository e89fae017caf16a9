"""Small torch helpers shared by the GAN and the classifier loops (neither imports the other).

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import errno
import io
import pickle
import re
import warnings
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


def load_torch_file(path: str | Path, missing_fix: str, damaged_fix: str) -> Any:
    """``torch.load(weights_only=True)`` (tensors and plain values only, never pickled code) with
    one-line input errors naming the file for a missing, empty, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "checkpoint not found", missing_fix)
    try:
        with warnings.catch_warnings():
            # torch warns about a foreign pickle's protocol before refusing it: the refusal is what we report
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refuses pickled code: not one of ours
        raise SonoganInputError(path, f"not a sonogan checkpoint ({_refusal(exc)})", damaged_fix) from None
    # what torch raises on a cut, empty or scrambled file (found by fuzzing torch.save output)
    except (RuntimeError, EOFError, ValueError, LookupError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno != errno.EINVAL:
            raise  # a real read failure (permissions, I/O), not a damaged file
        reason = ("0 bytes" if path.stat().st_size == 0 else
                  "not a complete zip archive, as torch.save writes" if "zip archive" in str(exc) else
                  "its contents cannot be read")
        raise SonoganInputError(path, f"checkpoint is empty, truncated or corrupt ({reason})", damaged_fix) from None


def _refusal(exc: pickle.UnpicklingError) -> str:
    """Why torch's weights-only loader refused a file, in a few words of our own (torch's text is
    a paragraph about its defaults, and cut to fit a line it ended mid-word)."""
    found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
    if found:
        return f"it holds a pickled Python object, {found.group(1)}, which sonogan never loads"
    return "not a file written by torch.save"
