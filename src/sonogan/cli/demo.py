"""``sonogan demo``: the main job end to end on the built-in phantom.

Example:
    $ sonogan demo --out runs
    $ sonogan demo --config configs/demo.yaml --data-only
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from sonogan.config import load_config
from sonogan.outpaths import check_output

console = Console()
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"


def demo_command(
    out: Path = typer.Option(Path("runs"), "--out", help="Parent folder; the run goes to OUT/demo-NNN."),
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", help="Experiment YAML with a 'phantom' section."),
    data_only: bool = typer.Option(False, "--data-only", help="Stop after phantom/validate/split/preprocess/inspect."),
) -> None:
    """Phantom -> validate -> split -> preprocess -> inspect -> GAN-augmentation experiment + report.

    Example: sonogan demo --out runs
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.demo import run_demo
    from sonogan.experiment.config import ExperimentConfig

    check_output(out, "folder")  # the parent of demo-NNN, before the phantom is drawn
    cfg = load_config(ExperimentConfig, config) if config.is_file() else ExperimentConfig()
    path = run_demo(out, cfg, experiment=not data_only)
    report = path / "experiment" / "report.html"
    console.print(f"[green]demo finished[/]: {path}")
    if report.is_file():
        console.print(f"report: [bold]{report}[/] (open it in a browser); numbers in {report.parent / 'metrics.json'}")
    console.print(f"data inspection: {path / 'inspect'}")
