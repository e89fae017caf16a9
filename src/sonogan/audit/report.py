"""Audits as one report section (tables + figures) for ``audit.html`` and the experiment report.

Drawing only: it reads saved ``audit.json`` files and the figures beside them (and imports
no model code, so the experiment report can use it).

Example:
    >>> folder = Path("runs/exp/folds/fold0/audit/high_grade_serous")
    >>> section = audit_section([("fold 0, high_grade_serous", folder)])     # doctest: +SKIP
    >>> render_report([section], "audit.html", "Audit")                     # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sonogan.report.html import Section, Table

FORMAT = "sonogan-audit"

TEXT = (
    "Each synthetic set is compared with the real **training** images its generator saw. FID and KID (lower = "
    "closer; KID is less biased at these sample sizes), precision (realism), recall, density and coverage "
    "(diversity w.r.t. the real images) are computed in the named feature space; `domain` is an encoder "
    "trained on the fold's real training images, `imagenet-*` the offline ImageNet EfficientNet-Lite. "
    "Diversity: mean pairwise MS-SSIM / SSIM within a set (higher than real = less diverse). Quality: BRISQUE "
    "and PIQE (lower = better), NIQE against a model fitted on the fold's real training images. "
    "Memorisation: each synthetic image's nearest real training image; a distance ratio (to the median "
    "real-to-real nearest-neighbour distance) below the threshold calibrated on augmented copies of real "
    "images flags a near-copy{gate}.")


def load_audit(path: Path) -> dict[str, Any]:
    """A saved ``audit.json``."""
    record = json.loads(Path(path).read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sonogan audit")
    return record


SKIPPED = "skipped"  # the cell of a measurement the set was too small for; the reason is in skipped_rows


def _pm(mean: float | None, sd: float, digits: int = 3) -> str:
    return SKIPPED if mean is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _num(value: float | None, digits: int) -> str:
    return SKIPPED if value is None else f"{value:.{digits}f}"


def fidelity_rows(label: str, a: dict[str, Any]) -> list[dict[str, str]]:
    return [{"set": label, "features": name, "FID": _num(f["fid"], 2), "KID": _pm(f["kid_mean"], f["kid_std"], 4),
             **{m: _num(f[m], 2) for m in ("precision", "recall", "density", "coverage")},
             "n real / synthetic": f"{f['n_real']} / {f['n_synthetic']}"}
            for name, f in a["fidelity"].items()]


def diversity_quality_rows(label: str, a: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for part in ("real", "synthetic"):
        d, q = a["diversity"][part] or {}, a["quality"][part]
        rows.append({"set": label, "images": part, "MS-SSIM": _num(d.get("ms_ssim"), 3), "SSIM": _num(d.get("ssim"), 3),
                     **{m.upper(): _pm(*((q[m]["mean"], q[m]["sd"]) if q[m] else (None, 0.0)), 1)
                        for m in ("brisque", "piqe", "niqe")}})
    return rows


def skipped_rows(label: str, a: dict[str, Any]) -> list[dict[str, str]]:
    """One row per measurement the audit could not make, with its reason (older audits: none)."""
    return [{"set": label, "measurement": what, "reason": why} for what, why in a.get("skipped", {}).items()]


def memorisation_rows(label: str, a: dict[str, Any]) -> list[dict[str, str]]:
    m = a["memorisation"]
    return [{"set": label, "space": space, "threshold": f"{s['threshold_ratio']:.3f}",
             "copies caught": f"{100 * s['copies_caught']:.0f} %", "min ratio": f"{s['min_ratio']:.3f}",
             "real near-duplicates": f"{100 * s['real_ratio_below']:.1f} %",
             "flagged": f"{s['n_flagged']} / {m['n_synthetic']}"} for space, s in m["spaces"].items()]


def sample_note(audits: list[tuple[str, Path]]) -> str:
    """Where the light profile sampled the synthetic set for the distribution metrics, say so."""
    sampled = [(label, d) for label, folder in audits
               if (d := load_audit(folder / "audit.json").get("distribution_sample")) and d["n"] < d["of"]]
    if not sampled:
        return ""
    parts = "; ".join(f"{label}: {d['n']} of {d['of']}" for label, d in sampled)
    return (f" Fidelity, diversity, quality and t-SNE used a seeded sample of the synthetic images ({parts}); "
            "the memorisation test checked every one (docs/audit.md, 'What it costs').")


def audit_section(audits: list[tuple[str, Path]], gate: bool | None = None,
                  title: str = "Synthetic-image audit", figures_of: int | None = None) -> Section:
    """One section from ``(label, folder with audit.json)`` pairs; ``gate``: whether flagged images
    were excluded from training (None: not said); ``figures_of``: draw the figures of the first
    this many audits only (every audit has its row in the tables)."""
    tables: list[Any] = [[], [], [], []]
    figures: list[tuple[Path, str]] = []
    for i, (label, folder) in enumerate(audits):
        a = load_audit(folder / "audit.json")
        for rows, make in zip(tables, (fidelity_rows, diversity_quality_rows, memorisation_rows, skipped_rows)):
            rows += make(label, a)
        for key, name in (a["figures"].items() if figures_of is None or i < figures_of else []):
            what = ("t-SNE of real (dots) vs synthetic (crosses) features" if key == "tsne" else
                    f"closest synthetic images (top) and their nearest real training image (bottom), "
                    f"{key.split('_', 1)[1]} space; red = flagged near-copy")
            figures.append((folder / name, f"{label}: {what}"))
    gate_text = {None: "", True: "; flagged images were excluded from training",
                 False: "; the gate was off, flagged images were kept"}[gate]
    return Section(title, TEXT.format(gate=gate_text) + sample_note(audits),
                   tables=[Table(tables[0], "Fidelity (per feature space)"),
                           Table(tables[1], "Diversity and no-reference quality (mean ± SD)"),
                           Table(tables[2], "Memorisation")]
                   + ([Table(tables[3], "Skipped: measurements these sets are too small for (the gate decided on "
                                        "the memorisation test above)")] if tables[3] else []),
                   figures=figures)
