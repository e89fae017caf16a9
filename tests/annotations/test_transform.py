"""The RemoveAnnotations preprocessing step: its cache token follows the checkpoint's content,
it applies the remover (to flagged images by default), and the *-deannotated presets use it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sonogan.preprocess.remove_annotations import ENV_VAR, RemoveAnnotations, clean_image, loaded_remover
from sonogan.data.manifest import load_dataset
from sonogan.errors import SonoganInputError
from sonogan.preprocess.cache import build_cache, cache_key, open_cache, read_info
from sonogan.preprocess.presets import apply_preset, get_preset
from sonogan.preprocess.transforms import make_sample
from sonogan.runs import sha256_file


def fan(h: int = 60, w: int = 90) -> np.ndarray:
    img = np.random.default_rng(0).integers(40, 160, (h, w, 3), dtype=np.uint8)
    img[5:10, 5:30] = (255, 255, 0)   # a yellow label
    return img


def test_token_follows_the_checkpoint_content_not_its_path(tmp_path, tiny_checkpoint):
    a = tiny_checkpoint(tmp_path / "a.pt", seed=0)
    b = tiny_checkpoint(tmp_path / "b.pt", seed=1)
    moved = shutil.copy(a, tmp_path / "moved.pt")
    token = RemoveAnnotations(str(a)).cache_token()
    assert token == {"transform": "RemoveAnnotations", "sha256": sha256_file(a), "apply_to": "detected",
                     "threshold": 0.5}
    assert RemoveAnnotations(str(b)).cache_token() != token
    assert RemoveAnnotations(str(moved)).cache_token() == token
    assert RemoveAnnotations(str(a), apply_to="all").cache_token() != token
    with pytest.raises(SonoganInputError, match="annotation-remover checkpoint not found"):
        RemoveAnnotations(str(tmp_path / "none.pt")).cache_token()


def test_applies_the_remover_to_flagged_or_all_images(tmp_path, tiny_checkpoint):
    ckpt = str(tiny_checkpoint(tmp_path / "r.pt"))
    img = fan()
    sample = make_sample(img)
    everything = RemoveAnnotations(ckpt, apply_to="all")(sample)["image"]
    assert everything.shape == img.shape and everything.dtype == np.uint8 and not np.array_equal(everything, img)
    assert np.array_equal(RemoveAnnotations(ckpt, threshold=1.01)(sample)["image"], img)   # none flagged
    assert sample["image"] is img and np.array_equal(img, fan())                            # input untouched
    synthetic = make_sample(img, synthetic=True)
    assert np.array_equal(RemoveAnnotations(ckpt, apply_to="all")(synthetic)["image"], img)
    remover, detector, cfg, _ = loaded_remover(ckpt)
    grey, prob = clean_image(img[:, :, :1], remover, detector, cfg, apply_to="all")
    assert grey.shape == (60, 90, 1) and not np.array_equal(grey, img[:, :, :1])
    # "detected": the same probability, and the image is left alone only when it is below the threshold
    kept, same = clean_image(img[:, :, :1], remover, detector, cfg, threshold=np.nextafter(prob, 2.0))
    assert same == prob and np.array_equal(kept, img[:, :, :1])
    assert np.array_equal(clean_image(img[:, :, :1], remover, detector, cfg, threshold=prob)[0], grey)


def test_an_identity_remover_keeps_every_pixel(tmp_path, tiny_checkpoint):
    ckpt = str(tiny_checkpoint(tmp_path / "id.pt", gain=0.0))   # residual gain 0 = identity
    img = fan()
    assert np.array_equal(RemoveAnnotations(ckpt, apply_to="all")(make_sample(img))["image"], img)


def test_a_pinned_checkpoint_that_changed_is_refused(tmp_path, tiny_checkpoint):
    ckpt = tiny_checkpoint(tmp_path / "r.pt", seed=0)
    pinned = sha256_file(ckpt)
    tiny_checkpoint(ckpt, seed=1)
    with pytest.raises(SonoganInputError, match="annotation remover changed"):
        RemoveAnnotations(str(ckpt), pinned)(make_sample(fan()))


def test_deannotated_presets_use_the_env_remover_and_key_the_cache(tmp_path, tiny_checkpoint, monkeypatch,
                                                                   clean_phantom):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.pt"))
    cfg = get_preset("roi-64-deannotated")               # listing presets never fails
    assert cfg.remove_annotations_sha256 is None
    img, lesion = fan(), np.zeros((60, 90), np.uint8)
    lesion[20:40, 30:60] = 1
    with pytest.raises(SonoganInputError, match="not found"):
        apply_preset(cfg, img, lesion)
    ckpt = tiny_checkpoint(tmp_path / "r.pt", seed=0)
    monkeypatch.setenv(ENV_VAR, str(ckpt))
    for name, shape in (("roi-64-deannotated", (64, 64, 1)), ("roi-rgb-160-deannotated", (160, 160, 3))):
        cfg = get_preset(name)
        assert cfg.remove_annotations == str(ckpt.resolve()) and cfg.remove_annotations_sha256 == sha256_file(ckpt)
        assert cfg.remove_annotations_on == "all"
        assert apply_preset(cfg, img, lesion)[0].shape == shape
    ds = load_dataset(shutil.copytree(clean_phantom, tmp_path / "ds"))
    plain = cache_key(ds, get_preset("flagship-64"))
    first = cache_key(ds, get_preset("roi-64-deannotated"))
    path = build_cache(ds, "roi-64-deannotated")
    assert read_info(path)["transforms"][1]["sha256"] == sha256_file(ckpt)
    tiny_checkpoint(ckpt, seed=1)                        # retrained in place
    assert len({plain, first, cache_key(ds, get_preset("roi-64-deannotated"))}) == 3
    with pytest.raises(SonoganInputError, match="stale"):
        open_cache(ds, get_preset("roi-64-deannotated"))


class StubRemover:
    """A gated remover's outputs made up: fill 0.5 everywhere, the gate open on the top rows only."""

    def restore(self, x):
        import torch

        gate = torch.full_like(x[:, :1], -1e4)
        gate[:, :, :8] = 1e4
        return torch.full_like(x, 0.5), gate


class StubDetector:
    def __call__(self, x):
        import torch

        return torch.tensor([[0.0, 5.0]]).repeat(len(x), 1)


def test_a_gated_remover_replaces_only_what_its_gate_marks_at_full_resolution():
    from types import SimpleNamespace

    img = fan(128, 96)
    out, prob = clean_image(img, StubRemover(), StubDetector(), SimpleNamespace(channels=3, size=32))
    assert prob > 0.99 and out.shape == img.shape
    assert np.array_equal(out[40:], img[40:])             # gate shut (below the top quarter): every pixel kept
    assert (out[:28] == 128).all()                        # gate open: the fill (0.5), enlarged
