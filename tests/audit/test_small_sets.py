"""Sets too small for a measurement: the audit reports it as null with its reason and goes on
(issue 20: the default experiment died in fit_niqe on a small phantom)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sonogan.audit.audit import AuditInputs, audit_class, fidelity_block
from sonogan.audit.config import AuditConfig
from sonogan.audit.diversity import diversity
from sonogan.audit.niqe import fit_niqe
from sonogan.audit.report import audit_section
from sonogan.report.figures import tsne_embedding
from sonogan.skipped import NotComputable, Skipped, attempt


def one_sharp_patch(n: int = 4, size: int = 32) -> np.ndarray:
    """Flat grey images; the first holds one 16-px patch of noise, the only sharp patch there is."""
    images = np.full((n, size, size, 1), 100, np.uint8)
    images[0, :16, :16, 0] = np.random.default_rng(0).integers(0, 255, (16, 16))
    return images


def test_niqe_without_two_sharp_reference_patches_is_not_computable():
    with pytest.raises(NotComputable, match="NIQE needs at least 2 sharp 16-px patches .* found 1"):
        fit_niqe(one_sharp_patch(), patch=16)


def test_the_audit_goes_on_without_niqe_and_says_why(tmp_path):
    rng = np.random.default_rng(1)
    real = rng.integers(0, 255, (3, 32, 32, 1), dtype=np.uint8)
    syn = np.concatenate([real[:1], rng.integers(0, 255, (2, 32, 32, 1), dtype=np.uint8)])  # one exact copy
    inputs = AuditInputs("rare", real, ["r0", "r1", "r2"], syn, ["s0", "s1", "s2"], reference=one_sharp_patch())
    cfg = AuditConfig(extractors=[], memorisation_spaces=["pixel"], quality_max_images=3, tsne=False)
    record = audit_class(inputs, cfg, {}, tmp_path / "rare")
    assert record["quality"]["real"]["niqe"] is None and record["quality"]["synthetic"]["niqe"] is None
    assert record["quality"]["real"]["piqe"]["n"] == 3  # the other quality metrics are still measured
    assert list(record["skipped"]) == ["quality.niqe"]
    assert record["skipped"]["quality.niqe"].startswith("NIQE needs at least 2 sharp")
    assert record["memorisation"]["flagged_ids"] == ["s0"]  # the gate decides on what it has
    assert json.loads((tmp_path / "rare" / "audit.json").read_text())["quality"]["real"]["niqe"] is None
    section = audit_section([("fold 0, rare", tmp_path / "rare")])
    quality, skipped = section.tables[1].rows, section.tables[-1].rows
    assert [row["NIQE"] for row in quality] == ["skipped", "skipped"]
    assert skipped == [{"set": "fold 0, rare", "measurement": "quality.niqe", "reason": record["skipped"]["quality.niqe"]}]


def test_fidelity_with_one_synthetic_image_is_null_with_reasons():
    rng = np.random.default_rng(0)
    block = fidelity_block(rng.normal(size=(4, 3)), rng.normal(size=(1, 3)), AuditConfig())
    assert block["fid"] is None and block["kid_mean"] is None and block["precision"] is None
    assert block["skipped"] == {"fid_kid": "FID/KID need at least 2 real and 2 synthetic images, got 4 and 1",
                                "prdc": "PRDC's k-NN balls need more than k=1 images per set, got 1"}
    assert block["n_real"] == 4 and block["n_synthetic"] == 1


def test_diversity_of_a_single_image_is_none():
    images = np.zeros((1, 16, 16, 1), np.uint8)
    out = diversity(np.zeros((2, 16, 16, 1), np.uint8), images, n_pairs=3)
    assert out["synthetic"] is None and out["real"]["ssim"] == 1.0


def test_tsne_of_two_points_is_skipped():
    assert attempt(tsne_embedding, np.zeros((2, 4))) == Skipped(
        "t-SNE needs at least 3 points (perplexity 2 must be below their number), got 2")
