"""``sonogan study`` (create a reader study, export its results) and ``sonogan serve`` (the web app).

Example:
    $ sonogan study create --real runs/mmotu --synthetic runs/syn-hgs --n 40 --ratio 0.5 \\
        --raters ana,ben,cleo --class high_grade_serous --preset gan-64 --db runs/reader-study.db
    $ sonogan serve --db runs/reader-study.db --host 0.0.0.0 --port 8000
    $ sonogan study export --db runs/reader-study.db --out runs/exp/reader_study.json --csv answers.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sonogan.config import parse_config
from sonogan.errors import SonoganInputError
from sonogan.outpaths import check_output
from sonogan.runs import atomic_write_text, write_json

console = Console()
DEFAULT_DB = "runs/reader-study.db"

study_app = typer.Typer(
    help="Create an expert reader study of real and synthetic images and export its results.\n\n"
    "Example: sonogan study create --real runs/mmotu --synthetic runs/syn-hgs --n 40 --ratio 0.5 "
    "--raters ana,ben --db runs/reader-study.db",
    no_args_is_help=True,
)


@study_app.command("create")
def create_command(
    real: Path = typer.Option(..., "--real", help="Real images: a dataset folder (its real rows) or a folder of images."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic images: a 'synth sample' folder or a folder of images."),
    n: int = typer.Option(40, "--n", help="Images in the study; every rater rates all of them."),
    ratio: float = typer.Option(0.5, "--ratio", help="Fraction of the images that are synthetic."),
    raters: str = typer.Option(..., "--raters", help="Comma-separated rater names, e.g. ana,ben,cleo."),
    db: str = typer.Option(DEFAULT_DB, "--db", help="SQLite file, or a postgresql:// URL."),
    name: str = typer.Option("reader study", "--name", help="Study title shown to the raters."),
    classes: Optional[List[str]] = typer.Option(None, "--class", help="Only images of this class (repeatable)."),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Pass the real images through this preset first: the generator's (e.g. gan-64)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the image draw and of every rater's order."),
    size: int = typer.Option(256, "--size", help="Longer side of the served images, in pixels."),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", help="Where 'sonogan serve' will be reached."),
) -> None:
    """Draw the images, store them re-encoded, and print each rater's private link and the admin link.

    Example: sonogan study create --real runs/mmotu --synthetic runs/syn-hgs --n 40 --raters ana,ben
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.study.db import check_database

    check_database(db, must_exist=False)  # before a single image is decoded
    from sonogan.study.create import StudyConfig, create_study

    cfg = parse_config(StudyConfig, {"name": name, "n": n, "ratio": ratio, "seed": seed, "size": size,
                                     "raters": [r.strip() for r in raters.split(",") if r.strip()],
                                     "classes": classes or None, "preset": preset}, "--n/--ratio/--raters/--size")
    from sqlalchemy import make_url

    from sonogan.study.db import database_url

    created = create_study(db, real, synthetic, cfg)
    base, shown = base_url.rstrip("/"), make_url(database_url(db)).render_as_string(hide_password=True)
    console.print(f"study {created.study_id}: {cfg.n} images ({round(cfg.n * cfg.ratio)} synthetic) in {shown}",
                  highlight=False)
    for rater, token in created.rater_tokens.items():
        console.print(f"rater {rater}: {base}/r/{token}", highlight=False, soft_wrap=True)
    console.print(f"admin: {base}/a/{created.admin_token}", highlight=False, soft_wrap=True)
    console.print("These links are shown only now (the database keeps only their hashes): send each rater "
                  f"their own link, then start the app with: sonogan serve --db {shown}", highlight=False)


@study_app.command("export")
def export_command(
    db: str = typer.Option(DEFAULT_DB, "--db", help="SQLite file, or a postgresql:// URL."),
    study: Optional[int] = typer.Option(None, "--study", help="Study id (needed when the database has several)."),
    out: Path = typer.Option(..., "--out", help="New JSON file (e.g. <experiment run>/reader_study.json)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write every answer with its ground truth as CSV."),
) -> None:
    """Write a study's results JSON (and its answers CSV) for the experiment report.

    Example: sonogan study export --db runs/reader-study.db --out runs/exp/reader_study.json
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.study.db import check_database, make_engine
    from sonogan.study.results import answers_csv, pick_study, study_summary

    # every path before the database is opened: one line each, nothing written
    check_database(db, must_exist=True)
    check_output(out, "file")
    if csv is not None:
        check_output(csv, "file", "--csv")
        if csv.resolve() == out.resolve():
            raise SonoganInputError("--csv", f"is the --out file {out}", "give the CSV its own file name")
    engine = make_engine(db, create=False)
    study_id = pick_study(engine, study, db)
    summary = study_summary(engine, study_id)
    for path in (out, csv):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, summary)
    if csv is not None:
        atomic_write_text(csv, answers_csv(engine, study_id))
    answered = sum(p["answered"] for p in summary["progress"].values())
    console.print(f"study {study_id}: {answered} answers from {len(summary['progress'])} rater(s) -> [bold]{out}[/]")
    run = out.parent
    if out.name == "reader_study.json" and (run / "metrics.json").is_file() and (run / "config.yaml").is_file():
        from sonogan.experiment.protocol import rewrite_report

        console.print(f"experiment report with the reader study -> [bold]{rewrite_report(run)}[/]")


def serve_command(
    db: str = typer.Option(DEFAULT_DB, "--db", help="SQLite file, or a postgresql:// URL."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for the whole network)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
) -> None:
    """Serve the reader study: rater pages at /r/TOKEN, the admin page at /a/TOKEN.

    Example: sonogan serve --db runs/reader-study.db --port 8000
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.study.db import check_database

    check_database(db, must_exist=True)
    import uvicorn

    from sonogan.serve.app import create_app

    uvicorn.run(create_app(db), host=host, port=port, log_level="info",
                access_log=False)  # request paths hold the private tokens: keep them out of logs
