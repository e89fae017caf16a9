"""Typed configs: every component has a pydantic model; YAML in, YAML out.

Configs forbid unknown keys, so a typo in a YAML file is an error that names the
file and the key instead of a silently ignored option; an empty (or all-comment) file is an
error too, not a silent run of every default.

Example:
    >>> from pydantic import BaseModel
    >>> class Toy(StrictModel):
    ...     lr: float = 1e-3
    >>> Toy.model_validate({"lr": 0.1}).lr
    0.1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sonogan.errors import SonoganInputError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for all configs: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; raise SonoganInputError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "file not found", "check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SonoganInputError(path, "not UTF-8 text", "save the file as UTF-8 YAML") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise SonoganInputError(path, f"invalid YAML{at}", "fix the YAML syntax") from None
    except RecursionError:  # thousands of nested brackets: PyYAML's parser recurses
        raise SonoganInputError(path, "YAML nested too deeply", "write a flat config") from None
    if data is None:  # an empty or all-comment file would silently run every default
        raise SonoganInputError(path, "the file is empty (or only comments)",
                                "write the settings you want (see configs/ for examples)")
    if not isinstance(data, dict):
        raise SonoganInputError(path, "top level is not a mapping", "write 'key: value' pairs")
    return data


def validation_message(exc: ValidationError) -> str:
    """Condense a pydantic ValidationError into one line: 'a.b: message; c: message'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_config(model: type[M], data: dict[str, Any], where: str | Path) -> M:
    """Validate ``data`` against ``model``; errors name ``where`` and the bad keys."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SonoganInputError(where, f"invalid config ({validation_message(exc)})",
                                "correct these keys (see the docs for allowed values)") from None


def load_config(model: type[M], path: str | Path, overrides: dict[str, Any] | None = None) -> M:
    """Load a YAML file into ``model``, applying ``overrides`` (top-level keys) first."""
    data = read_yaml(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = parse_config(model, data, path)
    resolve = getattr(cfg, "resolve_paths", None)  # relative paths inside a config mean: from its folder
    return resolve(Path(path).resolve().parent) if resolve is not None else cfg


def to_yaml(model: BaseModel) -> str:
    """Serialise a config to YAML (JSON-mode dump so paths and enums stay plain)."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
