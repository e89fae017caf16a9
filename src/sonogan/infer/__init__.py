"""Inference: a :class:`~sonogan.infer.predictor.Predictor` rebuilt from a checkpoint or ensemble file,
its ONNX export and ONNX Runtime twin (:mod:`sonogan.infer.onnx`), and temperature scaling
(:mod:`sonogan.infer.calibration`)."""

from sonogan.infer.calibration import apply_temperature, fit_temperature
from sonogan.infer.onnx import OnnxPredictor, export_onnx
from sonogan.infer.predictor import Member, Predictor

__all__ = ["Member", "OnnxPredictor", "Predictor", "apply_temperature", "export_onnx", "fit_temperature"]
