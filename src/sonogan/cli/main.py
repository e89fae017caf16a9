"""``sonogan`` command: groups ``data``, ``preprocess``, ``synth``, ``demo``.

Every user-fixable problem (a :class:`~sonogan.errors.SonoganInputError`) is printed as one
line on stderr and the process exits with code 2.

Example:
    $ sonogan --help
    $ sonogan data phantom --out runs/phantom
"""

from __future__ import annotations

import sys

import typer

from sonogan import __version__
from sonogan.cli.data import data_app
from sonogan.cli.demo import demo_command
from sonogan.cli.experiment import experiment_command
from sonogan.cli.preprocess import preprocess_command
from sonogan.errors import EXIT_INPUT_ERROR, SonoganInputError

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

try:  # the GAN commands live in their own module (issue 3)
    from sonogan.cli.synth import synth_app

    app.add_typer(synth_app, name="synth", help="Train GANs on a fold's rare class and sample synthetic images.")
except ImportError:  # pragma: no cover - only while the synth package is absent
    pass


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sonogan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """sonogan command line."""


def main() -> None:
    """Console entry point: run the app, turning input errors into one line + exit code 2."""
    try:
        app()
    except SonoganInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
