"""Preprocessing: pure array ops, named presets, and the uint8 cache keyed by preset + manifest.

Example:
    >>> from sonogan.preprocess import get_preset, apply_preset   # doctest: +SKIP
    >>> img, mask = apply_preset(get_preset("flagship-64"), rgb, lesion)  # doctest: +SKIP
"""

from sonogan.preprocess.presets import PRESETS, PreprocessConfig, apply_preset, get_preset

__all__ = ["PRESETS", "PreprocessConfig", "apply_preset", "get_preset"]
