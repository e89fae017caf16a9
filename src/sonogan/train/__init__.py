"""Classifier training: config, losses, seeded augmentation, real+synthetic mixing, the loop.

Example:
    >>> from sonogan.train import ClassifierTrainConfig
    >>> ClassifierTrainConfig(loss="focal").focal_gamma
    2.0
"""

from sonogan.train.augment import augment_batch
from sonogan.train.config import AugmentConfig, ClassifierTrainConfig
from sonogan.train.losses import LOSSES, build_loss, class_weights_from_labels, focal_loss
from sonogan.train.loop import TrainResult, predict_proba, resolve_device, train_classifier
from sonogan.train.tasks import TASKS, ClassificationTask, build_task
from sonogan.train.mixing import mix_real_synthetic

__all__ = ["AugmentConfig", "ClassificationTask", "ClassifierTrainConfig", "LOSSES", "TASKS", "TrainResult",
           "augment_batch", "build_loss", "build_task", "class_weights_from_labels", "focal_loss", "mix_real_synthetic", "predict_proba",
           "resolve_device", "train_classifier"]
