"""Clinical encoding: train-only statistics, missing indicators, peri -> post, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sonogan.data.manifest import ClinicalVariable
from sonogan.errors import SonoganInputError
from sonogan.models.clinical import ClinicalEncoder, ClinicalProjection

SPEC = {
    "menopausal": ClinicalVariable(type="categorical", levels=["pre", "peri", "post"]),
    "centre": ClinicalVariable(type="binary"),
    "age": ClinicalVariable(type="continuous"),
    "ca125": ClinicalVariable(type="continuous"),
}
TRAIN = pd.DataFrame({"menopausal": ["pre", "post", "peri", ""], "centre": ["1", "0", "", "1"],
                      "age": ["30", "50", "", "70"], "ca125": ["9", "99", "", ""]})


def test_statistics_come_from_the_training_rows_only() -> None:
    enc = ClinicalEncoder.fit(TRAIN, SPEC)
    age = next(v for v in enc.variables if v.name == "age")
    assert age.mean == pytest.approx(50.0) and age.std == pytest.approx(np.std([30, 50, 70]))
    ca = next(v for v in enc.variables if v.name == "ca125")
    assert ca.log and ca.mean == pytest.approx(np.mean(np.log1p([9, 99])))
    # other partitions never move the statistics: encoding a different table is pure
    test = pd.DataFrame({"menopausal": ["post"], "centre": ["0"], "age": ["90"], "ca125": ["9"]})
    row = enc.transform(test)[0]
    assert row[enc.columns.index("age")] == pytest.approx((90 - 50) / np.std([30, 50, 70]))
    assert age.mean == pytest.approx(50.0)


def test_missing_values_get_indicators_and_peri_counts_as_post() -> None:
    enc = ClinicalEncoder.fit(TRAIN, SPEC)
    assert enc.columns == ["menopausal=pre", "menopausal=post", "menopausal:missing", "centre", "centre:missing",
                           "age", "age:missing", "ca125", "ca125:missing"]
    x = enc.transform(TRAIN)
    assert x.shape == (4, 9) and x.dtype == np.float32
    assert x[2, :3].tolist() == [0, 1, 0]                 # peri -> post
    assert x[3, :3].tolist() == [0, 0, 1]                 # missing status: its own flag, no level
    assert x[2, 3:5].tolist() == [0, 1]                   # missing binary
    assert x[2, 5:7].tolist() == [0, 1]                   # missing age: the training mean (0) + flag
    assert x[3, 7:9].tolist() == [0, 1]
    assert x[0, 8] == 0 and x[1, 8] == 0


def test_round_trip_and_undeclared_column() -> None:
    enc = ClinicalEncoder.fit(TRAIN, SPEC)
    again = ClinicalEncoder.from_dict(enc.to_dict())
    np.testing.assert_array_equal(again.transform(TRAIN), enc.transform(TRAIN))
    with pytest.raises(SonoganInputError, match="declared but not in the data"):
        ClinicalEncoder.fit(TRAIN.drop(columns="age"), SPEC)


def test_projection_lifts_to_hidden() -> None:
    assert ClinicalProjection(9, 16)(torch.zeros(3, 9)).shape == (3, 16)
