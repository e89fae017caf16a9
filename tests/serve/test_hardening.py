"""Hostile and odd requests: token first, no echo, strict types, one-line 500s, fair rate limits, safe CSV."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from sonogan.serve.app import Limits, create_app
from sonogan.serve.deps import get_session
from sonogan.study.db import Answer, Study, make_engine, session

from .conftest import StudySetup, make_study

NASTY_BODIES = {  # body -> the field its 422 names
    b'{"item": "k", "realism": 1e400, "source_call": "real"}': "realism",  # not representable in JSON output
    b'{"item": "k", "realism": NaN, "source_call": "real"}': "realism",
    b'{"item": "k", "realism": 3, "source_call": "real", "comment": "\\ud800"}': "body",  # a lone surrogate
    b'{"item": "k", "realism": 3, "source_call": "real", "\\ud800": 1}': "body",
    b"not json at all": "body",
}


@pytest.fixture
def setup(tmp_path: Path) -> StudySetup:
    return make_study(str(tmp_path / "study.db"), tmp_path, ["ana", "ben"])


def _answers(db: str) -> list[tuple]:
    with session(make_engine(db, create=False)) as s:
        return [tuple(r) for r in s.execute(select(Answer.rater_id, Answer.position, Answer.realism, Answer.comment))]


def test_an_unknown_token_is_a_404_before_the_body_is_read(setup: StudySetup) -> None:
    client = TestClient(create_app(setup.db))
    huge = b'{"comment": "' + b"x" * 100_000 + b'"}'
    for body in [*NASTY_BODIES, huge]:
        response = client.post("/r/no-such-token/answer", content=body, headers={"content-type": "application/json"})
        assert (response.status_code, response.text) == (404, '{"detail":"Not Found"}'), body[:60]


def test_invalid_bodies_get_a_422_that_never_echoes_the_input(setup: StudySetup) -> None:
    client = TestClient(create_app(setup.db))
    token = setup.created.rater_tokens["ana"]
    post = lambda body: client.post(f"/r/{token}/answer", content=body, headers={"content-type": "application/json"})
    for body, field in NASTY_BODIES.items():
        response = post(body)
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == field, body
        assert "ud800" not in response.text and "NaN" not in response.text and "1e400" not in response.text
    item = client.get(f"/r/{token}/state").json()["item"]
    long_comment = f'{{"item": "{item}", "realism": 3, "source_call": "real", "comment": "{"y" * 3000}"}}'.encode()
    response = post(long_comment)
    assert response.json() == {"detail": [{"field": "comment", "problem": "String should have at most 2000 characters"}]}
    response = post(b'{"comment": "' + b"x" * 100_000 + b'"}')  # past the body limit: refused unread
    assert response.status_code == 413 and len(response.content) < 200
    assert _answers(setup.db) == []


@pytest.mark.parametrize("realism", [True, "3", 3.0, [3], None])
def test_realism_must_be_a_json_integer(setup: StudySetup, realism: object) -> None:
    client = TestClient(create_app(setup.db))
    token = setup.created.rater_tokens["ana"]
    item = client.get(f"/r/{token}/state").json()["item"]
    response = client.post(f"/r/{token}/answer", json={"item": item, "realism": realism, "source_call": "real"})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "realism"
    assert _answers(setup.db) == []


def test_an_unexpected_error_is_one_log_line_and_a_plain_500(setup: StudySetup, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(setup.db)

    def broken_session() -> Iterator[None]:
        raise RuntimeError("disk on fire: " + setup.created.rater_tokens["ana"])
        yield None

    app.dependency_overrides[get_session] = broken_session  # the Depends seam the app is built on
    token = setup.created.rater_tokens["ana"]
    with caplog.at_level(logging.WARNING):  # every warning or error of any logger (the test client logs at INFO)
        response = TestClient(app).get(f"/r/{token}/state")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert [(r.name, r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("sonogan.serve", "ERROR", "GET /r/TOKEN/state failed: RuntimeError", None)]
    del app.dependency_overrides[get_session]
    assert TestClient(app).get(f"/r/{token}/state").status_code == 200


def test_wrong_image_keys_do_not_lock_out_the_rater(setup: StudySetup) -> None:
    client = TestClient(create_app(setup.db, Limits(misses_per_minute=3)))
    token = setup.created.rater_tokens["ana"]
    assert [client.get(f"/r/{token}/image/wrong{i}").status_code for i in range(40)] == [404] * 40
    assert client.get(f"/r/{token}/state").status_code == 200


def test_a_guesser_is_stopped_but_a_rater_already_served_goes_on(setup: StudySetup) -> None:
    client = TestClient(create_app(setup.db, Limits(misses_per_minute=3)))  # one client address for all
    ana, ben = setup.created.rater_tokens["ana"], setup.created.rater_tokens["ben"]
    assert client.get(f"/r/{ana}/state").status_code == 200
    assert [client.get(f"/r/guess{i}/state").status_code for i in range(5)] == [404, 404, 404, 429, 429]
    assert client.get(f"/r/{ana}/state").status_code == 200  # opened before the guessing: goes on
    assert client.get(f"/r/{ben}/state").status_code == 429  # a token new to this client: no answer either way


def test_answers_csv_neutralises_every_formula_start(setup: StudySetup) -> None:
    client = TestClient(create_app(setup.db))
    token = setup.created.rater_tokens["ana"]
    comments = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1", "  =1+1", "\uff1d1+1", "fine = ok"]
    state = client.get(f"/r/{token}/state").json()
    for comment in comments[:6]:
        state = client.post(f"/r/{token}/answer", json={"item": state["item"], "realism": 3, "source_call": "real",
                                                         "comment": comment}).json()
    other = setup.created.rater_tokens["ben"]
    state = client.get(f"/r/{other}/state").json()
    for comment in comments[6:]:
        state = client.post(f"/r/{other}/answer", json={"item": state["item"], "realism": 3, "source_call": "real",
                                                         "comment": comment}).json()
    text = client.get(f"/a/{setup.created.admin_token}/answers.csv").text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))  # the csv module keeps a quoted \r
    assert [row["comment"] for row in rows] == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\t=1+1", "'\r=1+1",
                                       "'  =1+1", "'\uff1d1+1", "fine = ok"]


def test_pages_escape_what_the_study_creator_typed(setup: StudySetup) -> None:
    with session(make_engine(setup.db, create=False)) as s:
        s.execute(update(Study).values(name="<script>alert(1)</script>", classes=["<b>cyst</b>"]))
    page = TestClient(create_app(setup.db)).get(f"/a/{setup.created.admin_token}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "&lt;b&gt;cyst&lt;/b&gt;" in page and "<b>" not in page
