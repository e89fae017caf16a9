"""``sonogan demo``: the main job end to end on the built-in phantom.

Example:
    $ sonogan demo --out runs
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()


def demo_command(
    out: Path = typer.Option(Path("runs"), "--out", help="Parent folder; the run goes to OUT/demo-NNN."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML with DemoConfig fields."),
) -> None:
    """Run phantom -> validate -> split -> preprocess -> inspect into a new run folder.

    Example: sonogan demo --out runs
    """
    from sonogan.config import load_config
    from sonogan.demo import DemoConfig, run_demo

    cfg = load_config(DemoConfig, config) if config else DemoConfig()
    path = run_demo(out, cfg)
    console.print(f"[green]demo finished[/]: results in [bold]{path}[/] (metrics.json, inspect/, dataset/)")
