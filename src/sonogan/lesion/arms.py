"""The lesion experiment's arms: which task trains which outputs on which input.

Every arm of one config shares the backbone, head, training settings and seeds, so the
comparisons the thesis makes (classification-only vs multitask, with vs without clinical
variables, ROI from the true vs the predicted mask) differ in one thing only.

Example:
    >>> ARMS.create("multitask+clinical")
    ArmSpec(name='multitask+clinical', task='multitask', outputs='multitask', clinical=True, input='image')
    >>> [a for a in ARMS.names() if ARMS.create(a).input == "crop"]
    ['cascade', 'cascade+clinical']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sonogan.registry import Registry


@dataclass(frozen=True)
class ArmSpec:
    """``input``: the whole scan (``image``), the loose-frame crop around the lesion (``crop``:
    trained on true-mask crops, scored on true- and predicted-mask crops), or the mask alone."""

    name: str
    task: str
    outputs: Literal["segmentation", "classification", "multitask"]
    clinical: bool = False
    input: Literal["image", "crop", "mask"] = "image"


ARMS: Registry[ArmSpec] = Registry("lesion arm")

_SPECS = [
    ArmSpec("segmentation", "segmentation", "segmentation"),
    ArmSpec("cgan-segmentation", "cgan-segmentation", "segmentation"),
    ArmSpec("classification", "lesion-classification", "classification"),
    ArmSpec("classification+clinical", "lesion-classification", "classification", clinical=True),
    ArmSpec("multitask", "multitask", "multitask"),
    ArmSpec("multitask+clinical", "multitask", "multitask", clinical=True),
    ArmSpec("cascade", "lesion-classification", "classification", input="crop"),
    ArmSpec("cascade+clinical", "lesion-classification", "classification", clinical=True, input="crop"),
    ArmSpec("mask-shape", "classification", "classification", input="mask"),
]
for _spec in _SPECS:
    ARMS.register(_spec.name)(lambda s=_spec: s)

#: (arm A, arm B, what B adds): the paired gains reported when both arms ran
COMPARISONS: list[tuple[str, str, str]] = [
    ("classification", "multitask", "multitask (auxiliary segmentation)"),
    ("classification", "classification+clinical", "clinical fusion (classification)"),
    ("multitask", "multitask+clinical", "clinical fusion (multitask)"),
    ("classification", "cascade", "cascade crop vs whole scan"),
    ("cascade", "cascade+clinical", "clinical fusion (cascade)"),
    ("cascade@true", "cascade", "predicted instead of true mask"),
]
