"""The audit's report section: tables from audit.json, figures, what the gate did."""

from __future__ import annotations

import json

import pytest

from sonogan.audit.report import FORMAT, audit_section, load_audit

RECORD = {
    "format": FORMAT, "class": "rare", "n_real_training": 5, "n_synthetic": 6,
    "extractors": {"domain": {"name": "domain (cnn)", "identity": "domain:cnn:abc"}},
    "fidelity": {"domain": {"fid": 12.345, "kid_mean": 0.01234, "kid_std": 0.002, "precision": 0.5, "recall": 0.25,
                            "density": 0.75, "coverage": 0.4, "n_real": 5, "n_synthetic": 6}},
    "diversity": {p: {"ms_ssim": 0.3, "ssim": 0.2} for p in ("real", "synthetic")},
    "quality": {p: {m: {"mean": 10.0, "sd": 1.0, "n": 5} for m in ("brisque", "piqe", "niqe")}
                for p in ("real", "synthetic")},
    "memorisation": {"n_synthetic": 6, "n_flagged": 1, "flagged_ids": ["s4"],
                     "spaces": {"pixel": {"threshold_ratio": 0.42, "copies_caught": 0.9, "min_ratio": 0.0,
                                          "real_ratio_below": 0.0, "n_flagged": 1}}},
    "figures": {"memorisation_pixel": "memorisation_pixel.png"},
}


def test_section_tables_and_gate_text(tmp_path):
    (tmp_path / "audit.json").write_text(json.dumps(RECORD))
    (tmp_path / "memorisation_pixel.png").write_bytes(b"png")
    s = audit_section([("fold 0, rare", tmp_path)], gate=True)
    fidelity, quality, memo = (t.rows for t in s.tables)
    assert fidelity == [{"set": "fold 0, rare", "features": "domain", "FID": "12.35", "KID": "0.0123 ± 0.0020",
                         "precision": "0.50", "recall": "0.25", "density": "0.75", "coverage": "0.40",
                         "n real / synthetic": "5 / 6"}]
    assert [r["images"] for r in quality] == ["real", "synthetic"] and quality[0]["NIQE"] == "10.0 ± 1.0"
    assert memo[0]["flagged"] == "1 / 6" and memo[0]["copies caught"] == "90 %"
    assert "excluded from training" in s.text
    assert "gate was off" in audit_section([("f", tmp_path)], gate=False).text
    assert s.figures[0][0] == tmp_path / "memorisation_pixel.png" and "red = flagged" in s.figures[0][1]
    two = audit_section([("fold 0", tmp_path), ("fold 1", tmp_path)], figures_of=1)
    assert len(two.tables[0].rows) == 2 and len(two.figures) == 1


def test_load_audit_refuses_other_json(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a sonogan audit"):
        load_audit(tmp_path / "x.json")
