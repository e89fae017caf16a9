"""Every shipped config parses, with every named part registered (a typo fails here, not after a GAN)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonogan.config import load_config, read_yaml
from sonogan.experiment.config import ExperimentConfig
from sonogan.synth.config import GanConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_experiment_configs_parse(path: Path) -> None:
    cfg = load_config(ExperimentConfig, path)
    assert cfg.arm_names()[0] == "baseline"
    if cfg.dataset is not None:  # relative dataset paths are taken from the config's folder
        assert Path(cfg.dataset).is_absolute()


@pytest.mark.parametrize("path", sorted((CONFIGS / "gan").glob("*.yaml")), ids=lambda p: p.name)
def test_gan_configs_parse(path: Path) -> None:
    data = read_yaml(path)
    assert GanConfig.model_validate(data).family
