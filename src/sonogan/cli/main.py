"""``sonogan`` command: groups ``data``, ``preprocess``, ``synth``, ``experiment``, ``demo``.

Every user-fixable problem (a :class:`~sonogan.errors.SonoganInputError`, or a full,
read-only or forbidden disk) is printed as one line on stderr and the process exits with
code 2. Ctrl-C prints one line (with the command that continues the run, where there is
one) and exits with 130. Anything else is a bug and keeps its traceback. In every case the
runs are already marked ``failed`` / ``interrupted`` in their ``run.json`` by then: each run
is a ``with`` block (:class:`sonogan.runs.RunDir`) that records the error on its way out.

Example:
    $ sonogan --help
    $ sonogan data phantom --out runs/phantom
"""

from __future__ import annotations

import sys

import typer

from sonogan import __version__
from sonogan.cli.annotations import annotations_app
from sonogan.cli.data import data_app
from sonogan.cli.demo import demo_command
from sonogan.cli.evaluate import evaluate_command
from sonogan.cli.experiment import experiment_command
from sonogan.cli.export import export_command
from sonogan.cli.lesion import lesion_command
from sonogan.cli.predict import predict_command
from sonogan.cli.preprocess import preprocess_command
from sonogan.cli.synth import synth_app
from sonogan.cli.train import train_command
from sonogan.cli.study import serve_command, study_app
from sonogan.errors import EXIT_INPUT_ERROR, EXIT_INTERRUPTED, RunInterrupted, SonoganInputError, disk_error_line

app = typer.Typer(
    name="sonogan",
    help="GAN-augmented classification of rare tumour classes in ultrasound.\n\n"
    "Start with `sonogan demo` or `sonogan data --help`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Import, generate, validate, split and inspect datasets.")
app.command("preprocess")(preprocess_command)
app.command("demo")(demo_command)
app.command("experiment")(experiment_command)
app.command("evaluate")(evaluate_command)
app.command("export")(export_command)
app.command("lesion")(lesion_command)
app.command("predict")(predict_command)
app.command("train")(train_command)
app.add_typer(synth_app, name="synth", help="Train GANs on a fold's rare class and sample synthetic images.")
app.add_typer(annotations_app, name="annotations", help="Train, apply and evaluate the burned-in annotation remover.")
app.add_typer(study_app, name="study", help="Create an expert reader study of real and synthetic images; export its results.")
app.command("serve")(serve_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sonogan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """sonogan command line."""


def _exit(line: str, code: int) -> None:
    typer.echo(line, err=True)
    sys.exit(code)


def main() -> None:
    """Console entry point: input and disk errors -> one line + exit 2, Ctrl-C -> one line + 130."""
    try:
        app()
    except SonoganInputError as exc:
        _exit(f"error: {exc}", EXIT_INPUT_ERROR)
    except RunInterrupted as exc:
        _exit(str(exc), EXIT_INTERRUPTED)
    except SystemExit as exc:
        if exc.code != EXIT_INTERRUPTED:
            raise
        # typer ends a Ctrl-C outside the resumable commands with a silent exit 130
        _exit("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        line = disk_error_line(exc)
        if line is None:
            raise
        _exit(f"error: {line}", EXIT_INPUT_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
