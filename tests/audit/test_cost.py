"""The audit's cost (issue 17): every image's features computed once and shared by fidelity and
memorisation; the light profile's distribution metrics on a capped sample while the gate still
checks every synthetic image; the full profile as before."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sonogan.audit.audit import AuditInputs, audit_class, distribution_index
from sonogan.audit.config import AuditConfig
from sonogan.audit.features import extract
from sonogan.audit.memorisation import memorisation_check, pixel_embed
from sonogan.audit.report import audit_section


class CountingExtractor(nn.Module):
    """Mean and SD of each image's pixels; counts the images it saw."""

    name, identity = "counting", "counting:0"

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        x = x.float()
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))], dim=1)


def _inputs(n_real: int = 6, n_syn: int = 12, copies_at: tuple[int, ...] = ()) -> AuditInputs:
    rng = np.random.default_rng(0)
    real = rng.integers(0, 255, (n_real, 32, 32, 1), dtype=np.uint8)
    syn = rng.integers(0, 255, (n_syn, 32, 32, 1), dtype=np.uint8)
    for k, i in enumerate(copies_at):
        syn[i] = real[k]  # exact copies of training images
    return AuditInputs("rare", real, [f"r{i}" for i in range(n_real)], syn, [f"s{i}" for i in range(n_syn)],
                       reference=real)


def _cfg(**kw) -> AuditConfig:
    base = dict(extractors=["counting"], memorisation_spaces=["pixel", "counting"], quality_max_images=2,
                diversity_pairs=3, kid_subsets=2, tsne=False, precision="fp32", copies_per_image=1)
    return AuditConfig.model_validate({**base, **kw})


def test_each_image_is_embedded_once_per_extractor(tmp_path):
    fx = CountingExtractor()
    inputs = _inputs()
    audit_class(inputs, _cfg(profile="full"), {"counting": fx}, tmp_path / "rare")
    # 6 real + 12 synthetic for fidelity and memorisation together, + 6 augmented copies of the real ones
    assert fx.seen == 6 + 12 + 6


def test_the_light_cap_samples_the_distribution_metrics_but_the_gate_sees_every_image(tmp_path):
    cap = 4
    left_out = [i for i in range(12) if i not in distribution_index(12, _cfg(max_synthetic=cap))]
    inputs = _inputs(copies_at=tuple(left_out[:2]))  # two copies outside the distribution sample
    record = audit_class(inputs, _cfg(max_synthetic=cap), {"counting": CountingExtractor()}, tmp_path / "rare")
    assert record["distribution_sample"] == {"n": 4, "of": 12, "max_synthetic": 4}
    assert record["fidelity"]["counting"]["n_synthetic"] == 4 and record["memorisation"]["n_synthetic"] == 12
    assert record["quality"]["synthetic"]["piqe"]["n"] == 2
    assert set(record["memorisation"]["flagged_ids"]) >= {f"s{i}" for i in left_out[:2]}
    text = audit_section([("fold 0, rare", tmp_path / "rare")]).text
    assert "used a seeded sample of the synthetic images (fold 0, rare: 4 of 12)" in text


def test_shared_features_give_the_memorisation_of_separate_embedding():
    inputs = _inputs(copies_at=(3,))
    fx = CountingExtractor()
    embeds = {"pixel": pixel_embed, "counting": lambda imgs: extract(fx, imgs)}
    alone = memorisation_check(inputs.real, inputs.synthetic, embeds, copies_per_image=1)
    known = {"counting": (extract(fx, inputs.real), extract(fx, inputs.synthetic))}
    shared = memorisation_check(inputs.real, inputs.synthetic, embeds, copies_per_image=1, known=known)
    assert shared.summary(inputs.synthetic_ids) == alone.summary(inputs.synthetic_ids)
    assert np.array_equal(shared.spaces["counting"].ratio, alone.spaces["counting"].ratio)


def test_profiles():
    assert AuditConfig().max_synthetic == 500 and AuditConfig(profile="full").max_synthetic is None
    assert AuditConfig(profile="full", max_synthetic=50).max_synthetic == 50
    assert distribution_index(600, AuditConfig()).tolist() == distribution_index(600, AuditConfig()).tolist()
