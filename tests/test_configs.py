"""Every shipped config parses, with every named part registered (a typo fails here, not after a GAN)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sonogan.config import load_config, read_yaml
from sonogan.errors import SonoganError, SonoganInputError
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
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(SonoganInputError, match=r"exp.yaml: the file is empty \(or only comments\)"):
        load_config(ExperimentConfig, path)


def test_binary_and_deeply_nested_configs_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"name: \xff\xfe\x00")
    with pytest.raises(SonoganInputError, match="not UTF-8 text"):
        load_config(ExperimentConfig, path)
    path.write_text("[" * 1200)
    with pytest.raises(SonoganInputError, match="nested too deeply|invalid YAML"):
        load_config(ExperimentConfig, path)


# --- fuzzing every field of the experiment config (Hypothesis) ---------------------------------

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
LONG = settings(FAST, max_examples=600, derandomize=False)


def _leaves(node: object, path: tuple = ()) -> list[tuple]:
    """Every key path of the default config, nested sections and list items included."""
    if isinstance(node, dict):
        out = [path] if path else []
        return out + [p for k, v in node.items() for p in _leaves(v, path + (k,))]
    if isinstance(node, list) and node:
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, path + (i,))]
    return [path]


DEFAULT = ExperimentConfig().model_dump(mode="json")
PATHS = _leaves(DEFAULT)
BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.sampled_from([0, -1, 1, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["auto", "cpu", "dcgan", "flagship-64", "1e400", "rare", "all", "yes"]),
    st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _set(data: dict, path: tuple, value: object) -> None:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


CONFIG = {"edits": st.lists(st.tuples(st.sampled_from(PATHS), BAD_VALUES, st.booleans()), min_size=1, max_size=4)}


def _config_property(edits: list[tuple[tuple, object, bool]]) -> None:
    data = json_copy(DEFAULT)
    for path, value, unknown_key in edits:
        try:
            if unknown_key:  # an unknown key beside the field (a typo)
                _set(data, path[:-1] + (f"{path[-1]}_typo",), value)
            else:
                _set(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced a parent of this path
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        before = path.read_bytes()
        try:
            cfg = load_config(ExperimentConfig, path)
        except SonoganError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        else:
            assert cfg.arm_names()[0] == "baseline"
            for value in (cfg.split.test_fraction, cfg.evaluation.ci):
                assert math.isfinite(value)
        assert path.read_bytes() == before


def json_copy(data: dict) -> dict:
    return yaml.safe_load(yaml.safe_dump(data))


test_experiment_config_fuzz = FAST(given(**CONFIG)(_config_property))
test_experiment_config_fuzz_long = pytest.mark.slow(LONG(given(**CONFIG)(_config_property)))

RAW = {"text": st.text(max_size=200)}


def _raw_yaml_property(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(ExperimentConfig, path)
        except SonoganError:
            pass


test_raw_yaml_fuzz = FAST(given(**RAW)(_raw_yaml_property))
test_raw_yaml_fuzz_long = pytest.mark.slow(LONG(given(**RAW)(_raw_yaml_property)))
