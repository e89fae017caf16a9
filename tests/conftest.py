"""Fixtures shared by the whole test suite.

Example: every test runs with one torch thread (see ``_one_torch_thread``).
"""

from __future__ import annotations

import sys
from typing import Callable, Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine the
    # thread pool's spin-waiting made these tests 4x slower; one thread keeps them fast.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def cli(capsys, monkeypatch) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run ``sonogan ARGS`` in-process through the console entry point: (exit code, stdout, stderr)."""
    from sonogan.cli.main import main

    def run(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["sonogan", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def pipeline_parts():
    """Tiny stages of a segmenter + lesion-ROI classifier pipeline (tests/infer/test_pipeline.py,
    tests/cli/test_predict_pipeline.py): ``segmenter(path, bias)``, ``roi_classifier(path, preset)``,
    ``scans(n)``."""
    from types import SimpleNamespace

    import numpy as np

    from sonogan.lesion.train import save_lesion
    from sonogan.models.checkpoint import save_classifier
    from sonogan.models.classifiers import create_classifier
    from sonogan.models.multitask import LesionModelConfig, build_lesion_model
    from sonogan.preprocess.fold import Normaliser
    from sonogan.preprocess.presets import PreprocessConfig, get_preset

    def segmenter(path, bias=5.0, seed=0):
        """A tiny U-Net on whole scans. ``bias``: the final conv's weights zeroed and its bias set,
        so it says "lesion everywhere" (+) or "nothing" (-); None: seeded random weights."""
        torch.manual_seed(seed)
        cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs="segmentation", num_classes=2)
        model = build_lesion_model(cfg)
        if bias is not None:
            with torch.no_grad():
                model.backbone.decoder.final_conv.weight.zero_()
                model.backbone.decoder.final_conv.bias.fill_(bias)
        preset = PreprocessConfig(name="seg-t", roi="none", size=32, median_ksize=None)
        meta = {"class_names": ["a", "b"], "preprocess": preset.model_dump(mode="json"), "image_size": 32,
                "normaliser": Normaliser((100.0,), (50.0,)).to_dict(), "in_chans": 1, "postprocess": False}
        return save_lesion(path, model, cfg, meta)

    def roi_classifier(path, preset="roi-128"):
        torch.manual_seed(0)
        model = create_classifier("frid-adar-cnn", num_classes=3, in_chans=1, widths=(4, 8, 8)).eval()
        return save_classifier(path, model, "frid-adar-cnn", 3, 1, ["benign", "borderline", "malignant"],
                               preprocess=get_preset(preset).model_dump(mode="json"),
                               normaliser=Normaliser((90.0,), (40.0,)), image_size=64)

    def scans(n=3, seed=0):
        """Scan-like RGB images: a bright textured area on black, a darker blob (the "lesion") inside."""
        rng = np.random.default_rng(seed)
        out = []
        for k in range(n):
            img = np.zeros((80, 100, 3), np.uint8)
            img[5:75, 10:90] = rng.integers(90, 220, (70, 80, 3))
            img[20 + k:50, 30:60 + k] //= 3
            out.append(img)
        return out

    return SimpleNamespace(segmenter=segmenter, roi_classifier=roi_classifier, scans=scans)
