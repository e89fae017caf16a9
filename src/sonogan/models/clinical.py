"""Clinical variables as model input: an encoder fitted on the training partition only, and a
small MLP that projects them for intermediate fusion with pooled image features.

:class:`ClinicalEncoder` turns the declared variables of ``dataset.yaml`` (``clinical:``,
manifest strings, ``""`` = missing) into a float matrix:

- binary (``0``/``1``): the value, plus a missing indicator;
- categorical: one-hot over the declared levels after merging synonyms (``peri`` -> ``post``:
  too few peri-menopausal patients to learn from, so the thesis counts them as post), plus a
  missing indicator;
- continuous: ``log1p`` for skewed lab values (CA-125 by default), then z-scored with the
  TRAINING partition's mean and std; a missing value becomes the training mean (0 after the
  z-score) and sets its indicator, so it is never silently dropped nor guessed.

The statistics travel in every checkpoint (:meth:`ClinicalEncoder.to_dict`), so validation,
test and new patients are encoded exactly as the training set was.

Example:
    >>> import pandas as pd
    >>> from sonogan.data.manifest import ClinicalVariable
    >>> spec = {"menopausal": ClinicalVariable(type="categorical", levels=["pre", "peri", "post"]),
    ...         "age": ClinicalVariable(type="continuous")}
    >>> train = pd.DataFrame({"menopausal": ["pre", "peri", "post", ""], "age": ["40", "50", "60", ""]})
    >>> enc = ClinicalEncoder.fit(train, spec)
    >>> enc.columns
    ['menopausal=pre', 'menopausal=post', 'menopausal:missing', 'age', 'age:missing']
    >>> enc.transform(pd.DataFrame({"menopausal": ["peri"], "age": [""]})).tolist()
    [[0.0, 1.0, 0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from sonogan.data.manifest import ClinicalVariable
from sonogan.errors import SonoganInputError

#: level synonyms merged before encoding (thesis: peri-menopausal patients counted as post)
DEFAULT_MERGE: dict[str, str] = {"peri": "post", "perimenopausal": "postmenopausal"}
#: continuous variables whose log1p is encoded (right-skewed lab values)
DEFAULT_LOG: tuple[str, ...] = ("ca125", "ca-125", "ca_125")


@dataclass
class _Variable:
    name: str
    type: str
    levels: list[str] = field(default_factory=list)
    mean: float = 0.0
    std: float = 1.0
    log: bool = False


def _missing(values: pd.Series) -> np.ndarray:
    return (values.astype(str).str.strip() == "").to_numpy()


@dataclass
class ClinicalEncoder:
    """Fitted encoding of the declared clinical variables (see the module docstring)."""

    variables: list[_Variable]
    merge: dict[str, str]

    @classmethod
    def fit(cls, train: pd.DataFrame, spec: Mapping[str, ClinicalVariable],
            merge: Mapping[str, str] | None = None, log: tuple[str, ...] = DEFAULT_LOG) -> "ClinicalEncoder":
        """Learn levels and means/stds from the TRAINING rows only (``train``: manifest strings)."""
        merge = dict(DEFAULT_MERGE if merge is None else merge)
        variables = []
        for name, var in spec.items():
            if name not in train.columns:
                raise SonoganInputError(f"clinical variable '{name}'", "declared but not in the data",
                                        "add the column to the manifest or remove it from dataset.yaml")
            v = _Variable(name, var.type, log=name.lower() in log)
            if var.type == "categorical":
                v.levels = list(dict.fromkeys(merge.get(lv, lv) for lv in (var.levels or [])))
            elif var.type == "continuous":
                x = cls._numbers(train[name], v)
                x = x[~np.isnan(x)]
                if len(x):
                    v.mean, v.std = float(x.mean()), float(x.std()) or 1.0
            variables.append(v)
        return cls(variables, merge)

    @staticmethod
    def _numbers(values: pd.Series, v: _Variable) -> np.ndarray:
        x = pd.to_numeric(values.astype(str).str.strip().replace("", np.nan), errors="coerce").to_numpy(float)
        return np.log1p(np.clip(x, 0, None)) if v.log else x

    @property
    def columns(self) -> list[str]:
        """Names of the encoded columns, in order."""
        out: list[str] = []
        for v in self.variables:
            out += [f"{v.name}={lv}" for lv in v.levels] if v.type == "categorical" else [v.name]
            out.append(f"{v.name}:missing")
        return out

    @property
    def dim(self) -> int:
        return len(self.columns)

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """float32 (N, dim) encoding of ``table`` (manifest strings; ``""`` = missing)."""
        parts: list[np.ndarray] = []
        for v in self.variables:
            col = table[v.name] if v.name in table.columns else pd.Series([""] * len(table))
            miss = _missing(col)
            if v.type == "categorical":
                vals = col.astype(str).str.strip().map(lambda s: self.merge.get(s, s)).to_numpy()
                parts.append(np.stack([vals == lv for lv in v.levels], axis=1).astype(np.float32))
            else:
                x = self._numbers(col, v) if v.type == "continuous" else pd.to_numeric(
                    col.astype(str).str.strip().replace("", np.nan), errors="coerce").to_numpy(float)
                miss = miss | np.isnan(x)  # an unreadable value counts as missing, with its flag
                z = (x - v.mean) / v.std if v.type == "continuous" else x
                parts.append(np.where(miss, 0.0, z)[:, None].astype(np.float32))
            parts.append(miss[:, None].astype(np.float32))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(table), 0), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"variables": [vars(v) for v in self.variables], "merge": dict(self.merge)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClinicalEncoder":
        return cls([_Variable(**v) for v in d["variables"]], dict(d["merge"]))


class ClinicalProjection(nn.Module):
    """The small MLP that lifts the encoded variables to ``hidden`` features before fusion
    (thesis Figure 5: clinical features projected to a higher dimension, then concatenated)."""

    def __init__(self, in_dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                 nn.ReLU(inplace=True))
        self.out_dim = hidden

    def forward(self, clinical: torch.Tensor) -> torch.Tensor:
        return self.net(clinical)
