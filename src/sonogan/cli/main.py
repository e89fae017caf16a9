"""``sonogan`` command: groups ``data``, ``preprocess``, ``synth``, ``experiment``, ``demo``, ...

One error policy for every command (:func:`main`):

- a problem the user can fix (a :class:`~sonogan.errors.SonoganError`, a full, read-only or
  forbidden disk, a bad option or argument) -> one ``error: ...; fix: ...`` line, exit 2;
- Ctrl-C -> one line (with the command that continues the run, where there is one), exit 130;
- anything else is a bug -> one line naming the command, the step that failed (the progress
  bar or :func:`sonogan.progress.step` it was in) and the run folder, exit 1. The run's
  ``log.txt`` holds the traceback; ``--debug`` (or ``SONOGAN_DEBUG=1``) prints it here too.

Every run is a ``with`` block (:class:`sonogan.runs.RunDir`), so by the time an error reaches
:func:`main` each run it left is already marked ``failed`` / ``interrupted`` in its ``run.json``.

Example:
    $ sonogan --help
    $ sonogan data phantom --out runs/phantom
    $ sonogan --debug experiment configs/demo.yaml   # a bug's traceback on the terminal too
"""

from __future__ import annotations

import sys
import traceback
from contextvars import ContextVar
from pathlib import Path

import typer
from pydantic import ValidationError
from typer._click.exceptions import NoArgsIsHelpError  # typer (pinned) vendors click here
from typer._click.utils import PacifyFlushWrapper
from typer.main import get_command

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
from sonogan.errors import (EXIT_BUG, EXIT_INPUT_ERROR, EXIT_INTERRUPTED, RunInterrupted, expected_error_line,
                            runs_left, step_left)
from sonogan.runs import one_line

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

# Set by the root callback (--debug / SONOGAN_DEBUG), read by main() once the command has ended.
_DEBUG: ContextVar[bool] = ContextVar("sonogan_debug", default=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sonogan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", envvar="SONOGAN_DEBUG",
                                     help="On an error, also print its traceback (env: SONOGAN_DEBUG=1).")) -> None:
    """sonogan command line."""
    _DEBUG.set(debug)


def command_path(args: list[str]) -> str:
    """'sonogan synth train' for ``args`` ['synth', 'train', ...]: the (sub)commands named in ``args``."""
    names, cmd = ["sonogan"], get_command(app)
    for arg in args:
        sub = getattr(cmd, "commands", {}).get(arg)
        if sub is None:
            if arg.startswith("-"):
                continue  # a root option (--debug) before the command
            break
        names.append(arg)
        cmd = sub
    return " ".join(names)


def usage_line(exc: typer.TyperException) -> str:
    """A typer/click usage error (``--fold a``, a missing argument, an unknown option) in the
    project's one-line form, instead of typer's boxed panel."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "sonogan"
    what = " ".join(exc.format_message().split()).rstrip(".")
    what = what[:1].lower() + what[1:]
    if isinstance(exc.__cause__, ValidationError):  # typer's type check: its message omits the value
        what += f" (got {exc.__cause__.errors()[0]['input']!r})"
    return f"error: {where}: {what}; fix: see '{where} --help' for its arguments and options"


def bug_line(exc: BaseException, command: str, debug: bool) -> str:
    """One line for an unexpected error: the command, the step, the run and where the traceback is."""
    step = step_left(exc)
    runs = runs_left(exc)
    line = f"error: {command} failed" + (f" during step '{step}'" if step else "")
    line += f" with an unexpected {one_line(exc)}"
    if runs:  # the outermost run: the one the user asked for
        line += f" (run {runs[-1]} marked failed; traceback in {Path(runs[-1]) / 'log.txt'})"
    line += "; fix: this is a bug in sonogan, not a problem with your input: please report it with the traceback"
    return line + ("" if debug else " (--debug or SONOGAN_DEBUG=1 prints it here)")


def run_command(args: list[str]) -> tuple[int, str | None]:
    """Run ``sonogan ARGS``: (exit code, the line to print on stderr or None)."""
    command = get_command(app)
    try:
        # click's context and invoke without typer's standalone wrapper, which would box usage
        # errors in a panel and swallow Ctrl-C into a bare exit code
        with command.make_context("sonogan", list(args)) as ctx:
            command.invoke(ctx)
        return 0, None
    except typer.Exit as exc:  # --help, --version
        return exc.exit_code, None
    except NoArgsIsHelpError as exc:  # `sonogan data`: the group's help, as click prints it
        exc.show()
        return exc.exit_code, None
    except typer.TyperException as exc:  # click's usage (and file) errors: the user's to fix
        return EXIT_INPUT_ERROR, usage_line(exc)
    except RunInterrupted as exc:
        return EXIT_INTERRUPTED, str(exc)
    except (KeyboardInterrupt, typer.Abort):
        runs = runs_left(sys.exc_info()[1])
        return EXIT_INTERRUPTED, "interrupted" + (f" (run {runs[-1]} marked interrupted)" if runs else "")
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing to report
        sys.stdout = PacifyFlushWrapper(sys.stdout)
        return EXIT_BUG, None
    except Exception as exc:
        expected = expected_error_line(exc)
        debug = _DEBUG.get()
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        if expected is not None:
            return EXIT_INPUT_ERROR, f"error: {expected}"
        return EXIT_BUG, bug_line(exc, command_path(args), debug)


def main() -> None:
    """Console entry point: run the command, print its one line (if any), exit with its code."""
    token = _DEBUG.set(False)
    try:
        code, line = run_command(sys.argv[1:])
    finally:
        _DEBUG.reset(token)
    if line is not None:
        typer.echo(line, err=True)
    sys.exit(code)  # 0 too, as click's standalone mode does (callers may expect SystemExit)


if __name__ == "__main__":  # pragma: no cover
    main()
