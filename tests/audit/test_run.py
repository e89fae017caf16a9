"""``sonogan synth audit`` end to end on the phantom: audit.json, figures, HTML, the cache, checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sonogan.audit.report import load_audit
from sonogan.cli.synth import synth_app
from sonogan.errors import SonoganInputError
from sonogan.synth.trainer import hashed_ids

runner = CliRunner()

TINY = """extractors: [domain, imagenet-lite0]
domain_encoder: {epochs: 1, image_size: 32}
kid_subsets: 3
diversity_pairs: 10
quality_max_images: 4
memorisation_spaces: [pixel, domain, imagenet-lite0]
"""


def test_audit_command_end_to_end(sampled, tmp_path):
    ds, splits, gan, syn = sampled
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(TINY)
    out, cache = tmp_path / "audit", tmp_path / "cache"
    res = runner.invoke(synth_app, ["audit", str(syn), "--real", str(ds.root), "--splits", str(splits), "--gan",
                                    str(gan), "--config", str(cfg), "--out", str(out), "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    assert "borderline: " in res.output and "flagged" in res.output
    a = load_audit(out / "borderline" / "audit.json")
    info = json.loads((gan / "run.json").read_text())
    # the real reference is exactly the generator's training images (never validation or test)
    assert a["n_real_training"] == info["n_train"] and a["n_synthetic"] == 10
    assert set(a["fidelity"]) == {"domain", "imagenet-lite0"}
    assert a["extractors"]["imagenet-lite0"]["identity"].startswith("imagenet:efficientnet-lite0:")
    assert a["extractors"]["domain"]["identity"].startswith("domain:frid-adar-cnn:")
    for f in a["fidelity"].values():
        # precision is a share of the 10 synthetic images, coverage one of the real training images
        assert np.isfinite(f["fid"]) and f["precision"] * 10 == pytest.approx(round(f["precision"] * 10))
        n_real = f["coverage"] * a["n_real_training"]
        assert n_real == pytest.approx(round(n_real))
    assert set(a["memorisation"]["spaces"]) == {"pixel", "domain", "imagenet-lite0"}
    assert set(a["quality"]["synthetic"]) == {"brisque", "piqe", "niqe"}
    for name in a["figures"].values():
        assert (out / "borderline" / name).is_file()
    html = (out / "audit.html").read_text()
    assert "Memorisation" in html and "imagenet-lite0" in html and "data:image/png;base64" in html
    assert (out / "domain-encoder" / "best.pt").is_file()
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    cached = sorted(cache.glob("features-*.npz"))
    assert len(cached) == 2  # real features of each extractor, under their hash
    # a second audit reuses the cache and, same config and seed, gives the same numbers
    again = tmp_path / "again"
    res = runner.invoke(synth_app, ["audit", str(syn), "--real", str(ds.root), "--splits", str(splits), "--gan",
                                    str(gan), "--config", str(cfg), "--out", str(again), "--cache", str(cache),
                                    "--encoder", str(out / "domain-encoder" / "best.pt")])
    assert res.exit_code == 0, res.output
    b = load_audit(again / "borderline" / "audit.json")
    assert b["fidelity"] == a["fidelity"] and b["memorisation"] == a["memorisation"]
    assert sorted(cache.glob("features-*.npz")) == cached


def test_audit_refuses_wrong_fold_missing_preset_and_other_images(sampled, tmp_path):
    ds, splits, gan, syn = sampled
    base = ["audit", str(syn), "--real", str(ds.root), "--splits", str(splits)]
    res = runner.invoke(synth_app, base + ["--gan", str(gan), "--fold", "1", "--out", str(tmp_path / "a")])
    assert isinstance(res.exception, SonoganInputError) and "fold 0" in str(res.exception)
    res = runner.invoke(synth_app, base + ["--out", str(tmp_path / "b")])
    assert isinstance(res.exception, SonoganInputError) and "--preset" in str(res.exception)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_gan_image_check(sampled):
    from sonogan.audit.run import check_gan_images

    info = {"class_name": "borderline", "training_ids": hashed_ids(["a", "b"])}
    check_gan_images(info, ["b", "a"], "borderline", sampled[2])
    with pytest.raises(SonoganInputError, match="differ"):
        check_gan_images(info, ["a", "c"], "borderline", sampled[2])
    conditional = {"class_name": "", "training_ids": hashed_ids(["a", "b", "x"])}
    check_gan_images(conditional, ["a", "b"], "borderline", sampled[2])
    with pytest.raises(SonoganInputError):
        check_gan_images(conditional, ["a", "b", "c"], "borderline", sampled[2])


def test_help_has_an_example():
    res = runner.invoke(synth_app, ["audit", "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "--encoder" in res.output
