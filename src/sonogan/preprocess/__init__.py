"""Preprocessing: pure array ops (functional), dictionary transforms, named presets that build
them, and the uint8 cache keyed by the transforms' tokens + the manifest.

Example:
    >>> import numpy as np
    >>> from sonogan.preprocess import apply_preset, build_transforms, get_preset
    >>> img = np.zeros((120, 160, 3), np.uint8); img[10:110, 20:140] = 90
    >>> lesion = np.zeros((120, 160), np.uint8); lesion[40:70, 60:100] = 1
    >>> apply_preset(get_preset("roi-128"), img, lesion)[0].shape
    (128, 128, 1)
    >>> [t.cache_token()["transform"] for t in build_transforms(get_preset("full-64"))]
    ['Channels', 'MedianFilter', 'ScanArea', 'Resize']
"""

from sonogan.preprocess.presets import PRESETS, PreprocessConfig, apply_preset, build_transforms, get_preset

__all__ = ["PRESETS", "PreprocessConfig", "apply_preset", "build_transforms", "get_preset"]
