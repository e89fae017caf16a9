"""Inference: a :class:`~sonogan.infer.predictor.Predictor` rebuilt from a checkpoint or ensemble file."""

from sonogan.infer.predictor import Member, Predictor

__all__ = ["Member", "Predictor"]
