"""End to end in real headless Chromium (Debian's ``chromium`` driven by Playwright): a rater
rates five images with the keyboard, closes the browser, comes back with a fresh profile,
finishes; the admin page then shows the statistics."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sonogan.serve.app import create_app
from sonogan.serve.loadtest import running_server
from sonogan.study.db import Answer, make_engine, session

from .conftest import make_study

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason=f"{CHROMIUM} not found: apt-get install -y chromium (.ci/run does)")


def _browser(pw: Any, profile: Path) -> Any:
    return pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)


def _rate(page: Any, keys: list[str], done: int) -> None:
    for key in keys:
        page.keyboard.press(key)
    playwright_api.expect(page.locator("#progress-text")).to_have_text(f"{done} / 5 rated")


def test_rate_with_keyboard_close_resume_and_admin_summary(tmp_path: Path) -> None:
    db = str(tmp_path / "study.db")
    setup = make_study(db, tmp_path, ["ana"], n=5, ratio=0.4)
    link = "/r/" + setup.created.rater_tokens["ana"]
    with running_server(create_app(db)) as base, playwright_api.sync_playwright() as pw:
        browser = _browser(pw, tmp_path / "profile-1")
        page = browser.new_page()
        page.goto(base + link)
        _rate(page, [], 0)
        assert page.evaluate("(img => img.decode().then(() => img.naturalWidth))(document.getElementById('image'))") == 32
        page.keyboard.press("4")
        page.keyboard.press("r")
        assert page.is_checked('input[name=realism][value="4"]') and page.is_checked('input[value="real"]')
        _rate(page, ["Enter"], 1)
        _rate(page, ["3", "s", "Enter"], 2)
        _rate(page, ["1", "s", "Enter"], 3)
        browser.close()  # the rater closes the browser; a new profile keeps nothing of the old one
        browser = _browser(pw, tmp_path / "profile-2")
        page = browser.new_page()
        page.goto(base + link)
        _rate(page, [], 3)  # resumed at the fourth image
        page.keyboard.press("2")
        page.keyboard.press("s")
        page.keyboard.press("m")
        page.keyboard.type("speckle too regular")
        _rate(page, ["Escape", "c", "ArrowDown", "Enter"], 4)
        _rate(page, ["5", "r", "Enter"], 5)
        assert page.is_visible("#done") and not page.is_visible("#rate")
        page.goto(f"{base}/a/{setup.created.admin_token}")
        admin = page.inner_text("body")
        browser.close()
    with session(make_engine(db, create=False)) as s:
        rows = s.execute(select(Answer.realism, Answer.source_call, Answer.class_call, Answer.comment)
                         .order_by(Answer.position)).all()
    assert [tuple(r) for r in rows] == [(4, "real", None, ""), (3, "synthetic", None, ""), (1, "synthetic", None, ""),
                                        (2, "synthetic", "cyst", "speckle too regular"), (5, "real", None, "")]
    assert "Realism per source" in admin and "5/5" in admin and "Krippendorff" in admin
