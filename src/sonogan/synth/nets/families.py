"""The GAN families' registry, apart from ``nets/__init__.py`` so that the family modules
register into it without importing their package's ``__init__`` (which imports them).

Example:
    >>> from sonogan.synth.nets import GAN_FAMILIES  # the package imports (registers) every family
    >>> "dcgan" in GAN_FAMILIES, sorted(CONDITIONAL)
    (True, ['acgan', 'cgan'])
"""

from __future__ import annotations

from typing import Any

from sonogan.registry import Registry

GAN_FAMILIES: Registry[Any] = Registry("GAN model")
#: Families that condition G and D on the class label (trained over all classes).
CONDITIONAL = {"cgan", "acgan"}
