"""Fixtures shared by the whole test suite.

Example: every test runs with one torch thread (see ``_one_torch_thread``).
"""

from __future__ import annotations

from typing import Iterator

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
