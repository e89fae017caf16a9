"""Registry: register, refuse duplicates, helpful unknown-name errors, create with kwargs; and
every registry in the package resolves each of its names (nothing heavy is constructed)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import sonogan
from sonogan.errors import SonoganInputError
from sonogan.registry import Registry

SRC = Path(sonogan.__file__).parent


def test_register_create_with_kwargs_and_names() -> None:
    shapes: Registry[dict] = Registry("shape")

    @shapes.register("square")
    def square(side: int = 1, colour: str = "red") -> dict:
        return {"side": side, "colour": colour}

    shapes.register("circle")(lambda radius=1: {"radius": radius})
    assert shapes.names() == ["circle", "square"]
    assert "square" in shapes and "triangle" not in shapes and 3 not in shapes
    assert shapes.get("square") is square  # the decorator returns the factory unchanged
    assert shapes.create("square", side=3) == {"side": 3, "colour": "red"}
    assert shapes.create("circle", radius=2) == {"radius": 2}
    with pytest.raises(TypeError):
        shapes.create("square", sides=3)  # a wrong keyword is the factory's own error


def test_duplicate_name_refused_and_first_kept() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("one")(lambda: 1)
    with pytest.raises(ValueError, match="thing 'one' is already registered"):
        reg.register("one")(lambda: 2)
    assert reg.create("one") == 1


def test_unknown_name_lists_the_names() -> None:
    reg: Registry[int] = Registry("optimiser")
    for name in ("sgd", "adam"):
        reg.register(name)(lambda: 0)
    with pytest.raises(SonoganInputError) as info:
        reg.create("adamw")
    assert str(info.value) == "optimiser 'adamw': unknown name; fix: use one of: adam, sgd"


def _package_registries() -> dict[str, Registry]:
    """Every module-level Registry in sonogan, found like `grep -rn "Registry(" src`."""
    found: dict[str, Registry] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "registry.py" or not re.search(r"\bRegistry\(", path.read_text(encoding="utf-8")):
            continue
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for attr, value in vars(module).items():
            if isinstance(value, Registry):
                found[f"{module.__name__}.{attr}"] = value
    return found


def test_every_package_registry_resolves_its_names() -> None:
    registries = _package_registries()
    # the registries the package had when this test was written; more may come, none may vanish
    expected = {"sonogan.data.importers.common.IMPORTERS", "sonogan.models.classifiers.CLASSIFIERS",
                "sonogan.train.losses.LOSSES", "sonogan.preprocess.presets.PRESETS",
                "sonogan.synth.nets.families.GAN_FAMILIES", "sonogan.synth.losses.LOSSES"}
    assert expected <= set(registries)
    for where, reg in registries.items():
        names = reg.names()
        assert names, f"{where} ({reg.kind}) has no entries"
        assert names == sorted(set(names))
        for name in names:
            assert name in reg and callable(reg.get(name)), f"{where}: {name}"
        with pytest.raises(SonoganInputError, match=f"use one of: {re.escape(', '.join(names))}"):
            reg.get("no-such-" + reg.kind)
