"""Lesion-aware models: the segmentation / classification / multitask / clinical-fusion / cascade
experiment (``sonogan lesion``) and the :func:`~sonogan.lesion.locator.load_locator` that finds
lesions on new images.

Example:
    >>> from sonogan.lesion.arms import ARMS
    >>> "multitask" in ARMS
    True
"""
