"""Inference: a :class:`~sonogan.infer.predictor.Predictor` rebuilt from a checkpoint or ensemble file,
its ONNX export and ONNX Runtime twin (:mod:`sonogan.infer.onnx`), and temperature scaling
(:mod:`sonogan.infer.calibration`).

Decision support on top of it: :mod:`~sonogan.infer.resolve` (what a MODEL argument means: a
file or a run's fold models), :mod:`~sonogan.infer.predict_files` (image and DICOM inputs),
:mod:`~sonogan.infer.patient` (patient aggregation, referral operating point),
:mod:`~sonogan.infer.decision` (``sonogan predict``'s outputs), :mod:`~sonogan.infer.explain`
(Grad-CAM, mask overlays), :mod:`~sonogan.infer.external` and
:mod:`~sonogan.infer.external_report` (``sonogan evaluate``), :mod:`~sonogan.infer.provenance`
(training images of a run and their hashes), :mod:`~sonogan.infer.model_card`,
:mod:`~sonogan.infer.pipeline` (``pipeline.json``: segmenter + lesion-ROI classifier for scans
without a mask, and its ONNX export)."""

from sonogan.infer.calibration import apply_temperature, fit_temperature
from sonogan.infer.onnx import OnnxPredictor, export_onnx
from sonogan.infer.predictor import Member, Predictor

__all__ = ["Member", "OnnxPredictor", "Predictor", "apply_temperature", "export_onnx", "fit_temperature"]
