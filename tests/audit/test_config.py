"""AuditConfig: defaults, and memorisation spaces must be 'pixel' or a configured extractor."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sonogan.audit.config import AuditConfig
from sonogan.experiment.config import ExperimentConfig


def test_defaults_and_experiment_field():
    cfg = AuditConfig()
    assert cfg.gate and cfg.enabled and cfg.memorisation_spaces == ["pixel", "domain"] and cfg.max_ratio == 0.5
    assert ExperimentConfig().audit == cfg


def test_memorisation_space_must_be_known():
    AuditConfig(extractors=["imagenet-lite0"], memorisation_spaces=["pixel", "imagenet-lite0"])
    with pytest.raises(ValidationError, match="neither 'pixel'"):
        AuditConfig(extractors=["imagenet-lite0"])  # the default spaces name 'domain'
