"""Curation keeps the synthetic images a real-trained classifier finds most like their class."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonogan.experiment.synthesis import Synthetic, curate
from sonogan.preprocess.fold import Partition


def _part(label: int, n: int) -> Partition:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    return Partition([f"s{label}-{k}" for k in range(n)], images, images[..., 0], np.full(n, label),
                     pd.DataFrame(index=range(n)))


def test_keeps_the_most_confident_in_original_order_and_reports_rejections():
    syn = Synthetic({"a": _part(0, 4), "b": _part(1, 3)}, {"a": {"n_sampled": 4}, "b": {"n_sampled": 3}})
    probs = {"a": np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4], [0.7, 0.3]]),
             "b": np.array([[0.5, 0.5], [0.1, 0.9], [0.3, 0.7]])}
    out = curate(syn, probs, keep=2)
    assert out.by_class["a"].ids == ["s0-1", "s0-3"]          # 0.9 and 0.7, kept in sampling order
    assert out.by_class["b"].ids == ["s1-1", "s1-2"]          # 0.9 and 0.7
    assert out.info["a"]["curation"] == {"kept": 2, "sampled": 4, "rejected_fraction": 0.5,
                                         "min_kept_confidence": 0.7}
    assert out.info["b"]["curation"]["rejected_fraction"] == round(1 / 3, 4)
    assert "curation" not in syn.info["a"]  # the input is left as it was
