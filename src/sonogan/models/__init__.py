"""Classifiers (registry + factory), checkpoints that rebuild their model, weighted fusion.

Example:
    >>> from sonogan.models import create_classifier, CLASSIFIERS
    >>> "resnet18" in CLASSIFIERS
    True
    >>> create_classifier("frid-adar-cnn", num_classes=3).fc2.out_features
    3
"""

from sonogan.models.checkpoint import load_classifier, save_classifier
from sonogan.models.classifiers import CLASSIFIERS, FridAdarCNN, create_classifier, penultimate_features
from sonogan.models.ensemble import equal_weights, fit_fusion_weights, fuse, read_ensemble_file, write_ensemble_file

__all__ = ["CLASSIFIERS", "FridAdarCNN", "create_classifier", "equal_weights", "read_ensemble_file", "write_ensemble_file",
           "fit_fusion_weights", "fuse", "load_classifier", "penultimate_features", "save_classifier"]
