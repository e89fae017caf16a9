"""Every shipped lesion config parses (configs/lesion/*.yaml), with registered arms and backbones."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonogan.config import load_config
from sonogan.lesion.config import LesionExperimentConfig
from sonogan.models.segmentation import SEGMENTERS
from sonogan.preprocess.presets import PRESETS, get_preset

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "lesion"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_lesion_configs_parse(path: Path) -> None:
    cfg = load_config(LesionExperimentConfig, path)
    assert cfg.model.backbone in SEGMENTERS
    assert cfg.preset in PRESETS and get_preset(cfg.preset).roi == "none"
    if cfg.dataset is not None:
        assert Path(cfg.dataset).is_absolute() and Path(cfg.dataset).name == "mmotu"


def test_the_demo_has_the_clinical_arms() -> None:
    cfg = load_config(LesionExperimentConfig, CONFIGS / "demo.yaml")
    assert {"classification+clinical", "multitask+clinical"} <= set(cfg.arms) and cfg.dataset is None
