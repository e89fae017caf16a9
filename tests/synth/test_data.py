"""The GAN's view of a fold's training partition: one class, [-1, 1], its own resolution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonogan.errors import SonoganInputError
from sonogan.preprocess.fold import Partition
from sonogan.synth.data import real_images


def _partition(size: int) -> Partition:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    y = np.array([0, 1, 1, 0, 1, 2])
    return Partition([f"i{k}" for k in range(6)], images, images[..., 0], y, pd.DataFrame(index=range(6)))


def test_one_class_mapped_to_minus_one_one():
    real = real_images(_partition(64), ["a", "b", "c"], "b", channels=3, resolution=64)
    assert real.ids == ["i1", "i2", "i4"] and real.labels.tolist() == [1, 1, 1]
    expected = _partition(64).images[[1, 2, 4]].transpose(0, 3, 1, 2) / 127.5 - 1
    assert np.allclose(real.images.numpy(), expected, atol=1e-6)


def test_other_preset_size_is_resized_to_the_gan_resolution():
    real = real_images(_partition(224), ["a", "b", "c"], None, channels=1, resolution=128)
    assert tuple(real.images.shape) == (6, 1, 128, 128)
    assert real.images.min() >= -1.0 - 1e-6 and real.images.max() <= 1.0 + 1e-6


def test_too_few_images_is_an_input_error():
    with pytest.raises(SonoganInputError, match="at least 2"):
        real_images(_partition(64), ["a", "b", "c"], "c", channels=1, resolution=64)
