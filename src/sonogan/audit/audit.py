"""One audit of one class's synthetic images against the real training images the generator saw.

:func:`audit_class` measures fidelity (FID, KID, precision / recall / density / coverage per
feature extractor), diversity (pairwise MS-SSIM / SSIM), no-reference quality (BRISQUE, PIQE,
NIQE) and memorisation (calibrated nearest-neighbour test), draws the t-SNE of real vs
synthetic features and the memorisation panel, and writes ``audit.json`` into its folder.
Every number names the extractor that produced it. :func:`audit_section` renders audits as one
report section (HTML through :mod:`sonogan.report.html`).

A measurement the set is too small for (NIQE without 2 sharp reference patches, FID/KID, PRDC or
diversity with fewer than 2 images, a t-SNE with fewer than 3 points) is ``null`` in
``audit.json`` and its reason is listed under ``"skipped"`` (:mod:`sonogan.skipped`); the audit
goes on, and the memorisation gate decides on the spaces it has.

The distribution metrics (FID/KID/PRDC, diversity, quality, t-SNE) use a seeded sample of at most
``cfg.max_synthetic`` synthetic images (the light profile: 500; ``audit.json`` records it under
``distribution_sample``); the memorisation gate checks every synthetic image. Each extractor
computes each image's features once: the fidelity blocks and the memorisation test share them.

Only training images are ever passed in: the real set is the class's training partition (what
the generator saw) and the NIQE reference is the fold's whole training partition.

Example:
    >>> result = audit_class(inputs, AuditConfig(), extractors, Path("runs/audit/high_grade_serous"))  # doctest: +SKIP
    >>> result["memorisation"]["n_flagged"]                                                            # doctest: +SKIP
    0
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from sonogan.audit.config import AuditConfig
from sonogan.audit.diversity import diversity
from sonogan.audit.features import cached_features, extract, extractor_bf16
from sonogan.audit.fidelity import fid_kid, prdc
from sonogan.audit.memorisation import (Embed, Memorisation, memorisation_check, pixel_embed,
                                         plot_memorisation_panel)
from sonogan.audit.niqe import fit_niqe
from sonogan.audit.quality import quality_summary
from sonogan.audit.report import FORMAT
from sonogan.progress import progress_bar
from sonogan.report.figures import plot_tsne
from sonogan.runs import write_json
from sonogan.skipped import Skipped, attempt

@dataclass
class AuditInputs:
    """uint8 (N, S, S, C) images of one class: real = the generator's training images."""

    class_name: str
    real: np.ndarray
    real_ids: list[str]
    synthetic: np.ndarray
    synthetic_ids: list[str]
    reference: np.ndarray  # every real training image of the fold: NIQE's pristine model


def _subset(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    return images[_subset_index(len(images), n, seed)]


def _subset_index(n_items: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of ``n`` of ``n_items`` (all of them when ``n >= n_items``)."""
    return np.sort(np.random.default_rng(seed).permutation(n_items)[:n])


def distribution_index(n_synthetic: int, cfg: AuditConfig) -> np.ndarray:
    """Which synthetic images the distribution metrics use: all, or a seeded sample of
    ``cfg.max_synthetic`` (the seed's own stream, so the choice does not depend on the extractors).

    >>> distribution_index(4, AuditConfig(profile="full")).tolist()
    [0, 1, 2, 3]
    >>> len(distribution_index(600, AuditConfig())), len(distribution_index(10, AuditConfig()))
    (500, 10)
    """
    if cfg.max_synthetic is None or n_synthetic <= cfg.max_synthetic:
        return np.arange(n_synthetic)
    return _subset_index(n_synthetic, cfg.max_synthetic, cfg.seed + 1)


def fold_features(extractors: dict[str, nn.Module], real: np.ndarray, syn: np.ndarray, dist: np.ndarray,
                  cfg: AuditConfig, cache_dir: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each extractor's (real, synthetic) features, each image once: every synthetic image for a
    memorisation space, else only the distribution sample ``dist`` (in its order)."""
    bf16 = extractor_bf16(cfg.precision, cfg.profile)
    out = {}
    for name, fx in extractors.items():
        every = name in cfg.memorisation_spaces or len(dist) == len(syn)
        out[name] = (cached_features(fx, real, cache_dir, bf16), extract(fx, syn if every else syn[dist], bf16=bf16))
    return out


FID_KID_KEYS = ("fid", "kid_mean", "kid_std", "kid_subset_size")
PRDC_KEYS = ("precision", "recall", "density", "coverage")


def _or_nulls(value: dict[str, Any] | Skipped, keys: tuple[str, ...]) -> dict[str, Any]:
    return dict.fromkeys(keys) if isinstance(value, Skipped) else value


def fidelity_block(real: np.ndarray, fake: np.ndarray, cfg: AuditConfig) -> dict[str, Any]:
    """FID/KID and PRDC of one feature space (k shrunk when a set is smaller than k + 1); a part
    the sets are too small for is null, with its reason under ``"skipped"``."""
    k = max(1, min(cfg.prdc_k, len(real) - 1, len(fake) - 1))
    parts = {"fid_kid": attempt(fid_kid, real, fake, cfg.kid_subsets, cfg.seed), "prdc": attempt(prdc, real, fake, k)}
    block = {**_or_nulls(parts["fid_kid"], FID_KID_KEYS), **_or_nulls(parts["prdc"], PRDC_KEYS), "prdc_k": k,
             "n_real": int(len(real)), "n_synthetic": int(len(fake)), "dim": int(real.shape[1])}
    skipped = {name: v.reason for name, v in parts.items() if isinstance(v, Skipped)}
    return {**block, "skipped": skipped} if skipped else block


def skipped_measurements(record: dict[str, Any], niqe: Any, tsne: Any) -> dict[str, str]:
    """``{what: reason}`` of every measurement this audit could not make (see :mod:`sonogan.skipped`)."""
    out = {f"fidelity.{space}.{part}": reason for space, block in record["fidelity"].items()
           for part, reason in block.get("skipped", {}).items()}
    out.update({f"diversity.{part}": f"diversity (pairwise SSIM) needs at least 2 {part} images"
                for part, v in record["diversity"].items() if v is None})
    for name, value in (("quality.niqe", niqe), ("figures.tsne", tsne)):
        if isinstance(value, Skipped):
            out[name] = value.reason
    return out


def audit_class(inputs: AuditInputs, cfg: AuditConfig, extractors: dict[str, nn.Module], out_dir: Path,
                cache_dir: Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Audit one class; writes ``out_dir/audit.json`` and figures, returns the record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    real, syn = inputs.real, inputs.synthetic
    bar = progress_bar(progress, f"audit {inputs.class_name}")
    with bar:
        step = bar.add_task("features", total=5)
        dist = distribution_index(len(syn), cfg)
        every = fold_features(extractors, real, syn, dist, cfg, cache_dir)
        feats = {name: (r, s[dist] if len(s) == len(syn) else s) for name, (r, s) in every.items()}
        bar.update(step, advance=1, description="fidelity and diversity")
        record: dict[str, Any] = {
            "format": FORMAT, "class": inputs.class_name, "n_real_training": len(real), "n_synthetic": len(syn),
            "image_size": list(real.shape[1:]),
            "extractors": {name: {"name": fx.name, "identity": fx.identity} for name, fx in extractors.items()},
            "profile": cfg.profile,
            "extractor_precision": "bf16" if extractor_bf16(cfg.precision, cfg.profile) else "fp32",
            "distribution_sample": {"n": int(len(dist)), "of": int(len(syn)), "max_synthetic": cfg.max_synthetic},
            "fidelity": {name: fidelity_block(r, s, cfg) for name, (r, s) in feats.items()},
            "diversity": diversity(real, syn[dist], cfg.diversity_pairs, cfg.seed)}
        bar.update(step, advance=1, description="quality (BRISQUE, PIQE, NIQE)")
        niqe = attempt(fit_niqe, _subset(inputs.reference, 400, cfg.seed), cfg.niqe_patch)
        record["quality"] = {"real": quality_summary(_subset(real, cfg.quality_max_images, cfg.seed), niqe),
                             "synthetic": quality_summary(_subset(syn[dist], cfg.quality_max_images, cfg.seed), niqe),
                             "niqe_reference": None if isinstance(niqe, Skipped) else
                             f"{niqe.n_patches} sharp {niqe.patch}-px patches of the fold's real training images"}
        bar.update(step, advance=1, description="memorisation")
        embeds: dict[str, Embed] = {"pixel": partial(pixel_embed, size=cfg.pixel_size)}
        bf16 = extractor_bf16(cfg.precision, cfg.profile)
        embeds.update({name: (lambda imgs, fx=fx: extract(fx, imgs, bf16=bf16)) for name, fx in extractors.items()})
        spaces = {s: embeds[s] for s in cfg.memorisation_spaces if s in embeds}
        mem = memorisation_check(real, syn, spaces, cfg.copy_quantile, cfg.copies_per_image, cfg.seed, cfg.max_ratio,
                                 known={s: every[s] for s in spaces if s in every})
        record["memorisation"] = mem.summary(inputs.synthetic_ids)
        bar.update(step, advance=1, description="figures")
        record["figures"], tsne = _figures(inputs, cfg, mem, feats, out_dir)
        record["skipped"] = skipped_measurements(record, niqe, tsne)
        bar.update(step, advance=1)
    write_json(out_dir / "audit.json", record)
    return record


def _figures(inputs: AuditInputs, cfg: AuditConfig, mem: Memorisation, feats: dict[str, tuple[np.ndarray, np.ndarray]],
             out_dir: Path) -> tuple[dict[str, str], Path | Skipped | None]:
    """The memorisation panel of each space and the t-SNE of the first extractor's features
    (also returned: its path, Skipped when too few points, None when not asked for)."""
    figures = {}
    for space in mem.spaces:
        path = plot_memorisation_panel(inputs.synthetic, inputs.real, mem, space, out_dir / f"memorisation_{space}.png")
        figures[f"memorisation_{space}"] = path.name
    tsne = None
    if cfg.tsne and feats:
        name, (r, s) = next(iter(feats.items()))
        tsne = attempt(tsne_figure, r, s, inputs.class_name, name, out_dir / "tsne.png", cfg.seed)
        if isinstance(tsne, Path):
            figures["tsne"] = tsne.name
    return figures, tsne


def tsne_figure(real: np.ndarray, syn: np.ndarray, class_name: str, extractor: str, path: Path, seed: int) -> Path:
    """t-SNE of one class's real (dots) and synthetic (crosses) features."""
    feats = np.concatenate([real, syn])
    synthetic = np.r_[np.zeros(len(real), bool), np.ones(len(syn), bool)]
    return plot_tsne(feats, np.zeros(len(feats), int), synthetic, [class_name], path, seed=seed,
                     title=f"{class_name}, {extractor} features")
