"""``sonogan preprocess``: build the preprocessing cache for a dataset and preset.

Example:
    $ sonogan preprocess runs/phantom --preset flagship-64
    $ sonogan preprocess --list

The cache goes to ``<dataset>/cache/``, or, for a dataset folder sonogan cannot write, to
``$SONOGAN_CACHE_DIR`` (default ``~/.cache/sonogan``); see docs/preprocessing.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from sonogan.config import to_yaml

console = Console()


def preprocess_command(
    dataset: Optional[Path] = typer.Argument(None, help="Dataset folder."),
    preset: str = typer.Option("flagship-64", "--preset", "-p", help="Named preset (see --list)."),
    workers: int = typer.Option(0, "--workers", help="Worker processes for decoding (0 = in process)."),
    list_presets: bool = typer.Option(False, "--list", help="List the presets and exit."),
    allow_no_masks: bool = typer.Option(
        False, "--allow-no-masks",
        help="Build a lesion-ROI preset even when no image has a lesion mask (whole scan areas are used)."),
) -> None:
    """Preprocess every image once into a cache keyed by the preset and the manifest.

    A second call with the same preset and an unchanged dataset does nothing.

    Example: sonogan preprocess runs/phantom --preset flagship-64
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.preprocess.presets import PRESETS

    if list_presets:
        for name in PRESETS.names():
            console.print(f"[bold]{name}[/]\n  " + to_yaml(PRESETS.create(name)).strip().replace("\n", "\n  "))
        return
    if dataset is None:
        raise typer.BadParameter("give a DATASET folder (or --list)")
    from sonogan.data.manifest import load_dataset
    from sonogan.preprocess.cache import build_cache, read_info

    ds = load_dataset(dataset)
    start = time.perf_counter()
    path = build_cache(ds, preset, progress=True, workers=workers, allow_no_masks=allow_no_masks)
    info = read_info(path)
    if info["n_roi_fallback"]:
        console.print(f"[yellow]{info['n_roi_fallback']} of {info['n_real']} images have no lesion mask: "
                      "whole scan area used[/]")
    console.print(f"cache ({preset}) -> [bold]{path}[/] in {time.perf_counter() - start:.1f} s")
