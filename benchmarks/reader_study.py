"""Benchmark: the reader-study app under 20 concurrent raters on loopback, and its screenshots.

Load: a throw-away study (tiny random images, 20 raters x ``--images`` images each) is served by
uvicorn on 127.0.0.1; every rater fetches each image and posts an answer at the same time as the
others (:func:`sonogan.serve.loadtest.rate_concurrently`). Afterwards the stored answers are
compared with the planned ones: ``lost`` counts answers missing or different. SQLite always;
PostgreSQL with ``--postgres URL`` (an empty database). Writes ``benchmarks/results/reader_study.json``.

Screenshots (``--screenshots``, needs Debian's chromium): a study from ``--real`` and
``--synthetic`` (e.g. MMOTU and a ``sonogan synth sample`` folder) is rated in headless
Chromium with the keyboard; ``docs/img/study-rater.png`` shows the rating page and
``docs/img/study-admin.png`` the admin page after three raters whose answers are simulated
(random, seeded): the statistics on it are not a result.

Example:
    $ .venv/bin/python benchmarks/reader_study.py --postgres postgresql://postgres@127.0.0.1:5432/bench
    $ .venv/bin/python benchmarks/reader_study.py --screenshots --no-load --real runs/bench/mmotu \\
        --synthetic runs/syn-hgs --class high_grade_serous --preset gan-64
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from sonogan.runs import package_versions, write_json
from sonogan.serve.app import create_app
from sonogan.serve.loadtest import planned_answer, rate_concurrently, running_server
from sonogan.study.create import StudyConfig, create_study
from sonogan.study.db import Answer, Rater, make_engine, session

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "reader_study.json"
IMG = REPO / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _tiny_images(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / "x" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    return root


def _lost(db: str, raters: list[str], n: int) -> int:
    """Planned answers that are not stored exactly (missing, changed or duplicated)."""
    with session(make_engine(db, create=False)) as s:
        rows = s.execute(select(Rater.name, Answer.position, Answer.realism, Answer.source_call, Answer.comment)
                         .join(Answer, Answer.rater_id == Rater.id)).all()
    stored = {(r.name, r.position): (r.realism, r.source_call, r.comment) for r in rows}
    planned = {(name, p): tuple(planned_answer(i, p).values()) for i, name in enumerate(raters) for p in range(n)}
    return sum(stored.get(k) != v for k, v in planned.items()) + (len(rows) - len(stored))


def load_test(db: str, backend: str, images: int, raters: int) -> dict[str, Any]:
    names = [f"rater{i:02d}" for i in range(raters)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _tiny_images(Path(tmp), images)
        created = create_study(db, folder, folder, StudyConfig(n=images, raters=names, size=64))
    with running_server(create_app(db)) as base:
        report = rate_concurrently(base, created.rater_tokens)
    return {"backend": backend, "images_per_rater": images, **report, "lost": _lost(db, names, images)}


def _simulate(db: str, tokens: dict[str, str], base: str) -> None:
    """Random (seeded) answers for the admin screenshot: simulated raters, not a result."""
    import httpx

    rng = random.Random(0)
    for token in tokens.values():
        with httpx.Client(base_url=f"{base}/r/{token}") as client:
            state = client.get("/state").json()
            while not state["done"]:
                body = {"item": state["item"], "realism": rng.randint(2, 5),
                        "source_call": rng.choice(["real", "synthetic"]), "class_call": rng.choice(state["classes"])}
                state = client.post("/answer", json=body).raise_for_status().json()


def screenshots(real: Path, synthetic: Path, classes: list[str] | None, preset: str | None, n: int) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "study.db")
        cfg = StudyConfig(name=f"{', '.join(classes or ['all classes'])}: real or synthetic?", n=n, ratio=0.5,
                          raters=["ana", "ben", "cleo"], classes=classes, preset=preset, seed=0)
        created = create_study(db, real, synthetic, cfg)
        with running_server(create_app(db)) as base, sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(str(Path(tmp) / "profile"), executable_path=CHROMIUM,
                                                            headless=True, args=ARGS,
                                                            viewport={"width": 1100, "height": 720})
            page = browser.new_page()
            page.goto(f"{base}/r/{created.rater_tokens['ana']}")
            expect(page.locator("#progress-text")).to_have_text(f"0 / {n} rated")  # the page has its state
            for k, keys in enumerate((["4", "r", "Enter"], ["2", "s", "Enter"]), start=1):
                for key in keys:
                    page.keyboard.press(key)
                expect(page.locator("#progress-text")).to_have_text(f"{k} / {n} rated")
            for key in ("3", "s", "m"):
                page.keyboard.press(key)
            page.keyboard.type("speckle looks too regular")
            page.keyboard.press("Escape")
            page.evaluate("document.getElementById('image').decode()")
            page.screenshot(path=str(IMG / "study-rater.png"))
            others = {r: t for r, t in created.rater_tokens.items() if r != "ana"}
            browser.close()
            _simulate(db, {"ana": created.rater_tokens["ana"], **others}, base)
            browser = pw.chromium.launch_persistent_context(str(Path(tmp) / "profile-2"), executable_path=CHROMIUM,
                                                            headless=True, args=ARGS,
                                                            viewport={"width": 1100, "height": 900})
            page = browser.new_page()
            page.goto(f"{base}/a/{created.admin_token}")
            page.screenshot(path=str(IMG / "study-admin.png"), full_page=True)
            browser.close()
    return [IMG / "study-rater.png", IMG / "study-admin.png"]


def load_block(r: dict[str, Any]) -> str:
    rows = ["| database | raters at once | answers | lost | wall | answers/s | answer latency median / p95 |",
            "|---|---|---|---|---|---|---|"]
    for e in r["results"]:
        rows.append(f"| {e['backend']} | {e['raters']} | {e['answers']} | {e['lost']} | {e['wall_s']:.1f} s | "
                    f"{e['answers_per_s']:.0f} | {e['latency_ms_median']:.0f} / {e['latency_ms_p95']:.0f} ms |")
    return (f"{r['raters']} raters answer {r['images_per_rater']} images each at the same time over loopback "
            f"(each fetches the image, then posts the answer; one uvicorn process, {r['host']['cpu_count']} shared "
            f"CPU cores at load average {r['host']['loadavg_1_5_15'][0]:.0f} from other jobs; PostgreSQL 15 on the same "
            f"machine). *lost* = planned answers not stored exactly.\n\n" + "\n".join(rows))


README_BLOCKS = {"reader-study-load": ("reader_study.json", load_block)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="images per rater in the load test")
    ap.add_argument("--raters", type=int, default=20)
    ap.add_argument("--postgres", help="URL of an empty PostgreSQL database for the load test")
    ap.add_argument("--no-load", action="store_true", help="skip the load test (screenshots only)")
    ap.add_argument("--screenshots", action="store_true")
    ap.add_argument("--real", type=Path)
    ap.add_argument("--synthetic", type=Path)
    ap.add_argument("--class", dest="classes", action="append")
    ap.add_argument("--preset")
    ap.add_argument("--n", type=int, default=20, help="images in the screenshot study")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if not args.no_load:
        start, results = time.perf_counter(), []
        with tempfile.TemporaryDirectory() as tmp:
            results.append(load_test(str(Path(tmp) / "load.db"), "SQLite (WAL)", args.images, args.raters))
        if args.postgres:
            results.append(load_test(args.postgres, "PostgreSQL", args.images, args.raters))
        for r in results:
            print(r, flush=True)
        write_json(args.out, {"benchmark": "reader_study", "raters": args.raters, "images_per_rater": args.images,
                              "results": results, "wall_s": round(time.perf_counter() - start, 1),
                              "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                       "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
                              "versions": package_versions()})
        print(f"-> {args.out}")
    if args.screenshots:
        if args.real is None or args.synthetic is None:
            raise SystemExit("--screenshots needs --real and --synthetic")
        for path in screenshots(args.real, args.synthetic, args.classes, args.preset, args.n):
            print(f"-> {path}")


if __name__ == "__main__":
    main()
