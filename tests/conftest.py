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
