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


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "---\n"])
def test_empty_config_is_refused(tmp_path: Path, text: str) -> None:
    from sonogan.errors import SonoganInputError

    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(SonoganInputError, match=r"exp.yaml: the file is empty \(or only comments\)"):
        load_config(ExperimentConfig, path)


def test_binary_and_deeply_nested_configs_are_one_line(tmp_path: Path) -> None:
    from sonogan.errors import SonoganInputError

    path = tmp_path / "exp.yaml"
    path.write_bytes(b"name: \xff\xfe\x00")
    with pytest.raises(SonoganInputError, match="not UTF-8 text"):
        load_config(ExperimentConfig, path)
    path.write_text("[" * 5000)
    with pytest.raises(SonoganInputError, match="nested too deeply|invalid YAML"):
        load_config(ExperimentConfig, path)
