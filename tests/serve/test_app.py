"""The reader-study API, run against SQLite and PostgreSQL alike (the ``db_url`` fixture)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from sonogan.serve.app import Limits, create_app
from sonogan.study.db import Answer, Assignment, Item, Rater, make_engine, session

from .conftest import StudySetup


def _client(setup: StudySetup, limits: Limits | None = None) -> TestClient:
    return TestClient(create_app(setup.db, limits))


def _truth(setup: StudySetup) -> dict[str, tuple[str, str | None]]:
    """item key -> (source, label), read from the database as only the admin side may."""
    with session(make_engine(setup.db, create=False)) as s:
        return {k: (src, lab) for k, src, lab in s.execute(select(Item.key, Item.source, Item.label)).all()}


def _png_chunks(data: bytes) -> list[str]:
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append(kind.decode("ascii"))
        pos += 12 + length
    return chunks


def test_rater_flow_commits_each_answer_and_resumes(study: StudySetup) -> None:
    token = study.created.rater_tokens["ana"]
    client = _client(study)
    page = client.get(f"/r/{token}")
    assert page.status_code == 200 and "rater.js" in page.text
    state = client.get(f"/r/{token}/state").json()
    assert state == {"study": "test study", "classes": ["cyst", "tumour"], "total": 6, "answered": 0,
                     "done": False, "item": state["item"]}
    first = state["item"]
    answer = {"item": first, "realism": 4, "source_call": "real", "class_call": "cyst", "comment": "sharp"}
    after = client.post(f"/r/{token}/answer", json=answer).json()
    assert after["answered"] == 1 and after["item"] != first
    # a retried request for an answer already committed changes nothing
    assert client.post(f"/r/{token}/answer", json=answer).json() == after
    # a new browser (new client) resumes where the rater stopped
    assert _client(study).get(f"/r/{token}/state").json() == after
    with session(make_engine(study.db, create=False)) as s:
        rows = s.execute(select(Answer.position, Answer.realism, Answer.source_call, Answer.class_call,
                                Answer.comment)).all()
    assert rows == [(0, 4, "real", "cyst", "sharp")]


def test_answers_follow_the_recorded_order_only(study: StudySetup) -> None:
    token = study.created.rater_tokens["ben"]
    client = _client(study)
    with session(make_engine(study.db, create=False)) as s:
        order = s.scalars(select(Item.key).join(Assignment, Assignment.item_id == Item.id).join(Rater)
                          .where(Rater.name == "ben").order_by(Assignment.position)).all()
    assert client.get(f"/r/{token}/state").json()["item"] == order[0]
    later = {"item": order[3], "realism": 2, "source_call": "synthetic"}
    assert client.post(f"/r/{token}/answer", json=later).status_code == 409
    stranger = {"item": "no-such-item", "realism": 2, "source_call": "synthetic"}
    assert client.post(f"/r/{token}/answer", json=stranger).status_code == 404
    for k, key in enumerate(order):
        state = client.post(f"/r/{token}/answer", json={"item": key, "realism": 3, "source_call": "real"}).json()
        assert state["answered"] == k + 1
    assert state["done"] and state["item"] is None


def test_invalid_answers_are_refused(study: StudySetup) -> None:
    token = study.created.rater_tokens["ana"]
    client = _client(study)
    item = client.get(f"/r/{token}/state").json()["item"]
    for change in ({"realism": 0}, {"realism": 6}, {"realism": "high"}, {"source_call": "fake"},
                   {"class_call": "not-a-class"}, {"comment": "x" * 2001}, {"extra": 1}, {"item": ""}):
        body = {"item": item, "realism": 3, "source_call": "real", **change}
        assert client.post(f"/r/{token}/answer", json=body).status_code == 422, change
    assert client.post(f"/r/{token}/answer", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.get(f"/r/{token}/state").json()["answered"] == 0


def test_raters_never_receive_ground_truth(study: StudySetup) -> None:
    token = study.created.rater_tokens["cleo"]
    client = _client(study)
    seen = [client.get(f"/r/{token}").text, client.get("/static/rater.js").text]
    state = client.get(f"/r/{token}/state").json()
    while not state["done"]:
        png = client.get(f"/r/{token}/image/{state['item']}")
        assert png.headers["content-type"] == "image/png"
        assert _png_chunks(png.content) == ["IHDR", "IDAT", "IEND"]  # no text, EXIF or time chunks
        assert max(Image.open(io.BytesIO(png.content)).size) == 32  # both sources served at one size
        seen.append(json.dumps(state))
        state = client.post(f"/r/{token}/answer", json={"item": state["item"], "realism": 5,
                                                        "source_call": "real"}).json()
    # the page is a fixed shell: every rater gets the same HTML, with no study data in it
    assert seen[0] == client.get(f"/r/{study.created.rater_tokens['ana']}").text and "test study" not in seen[0]
    states = "".join(seen[2:])
    assert "real" not in states and "synthetic" not in states  # item keys are random, not derived
    for path in study.real + study.synthetic:
        assert path.stem not in states and path.stem not in seen[0]


def test_raters_see_only_their_own_progress(study: StudySetup) -> None:
    client = _client(study)
    ana, ben = study.created.rater_tokens["ana"], study.created.rater_tokens["ben"]
    item = client.get(f"/r/{ana}/state").json()["item"]
    client.post(f"/r/{ana}/answer", json={"item": item, "realism": 1, "source_call": "synthetic"})
    assert client.get(f"/r/{ben}/state").json()["answered"] == 0
    assert client.get(f"/a/{ana}").status_code == 404  # a rater's token opens no admin page


def test_unknown_and_wrong_tokens_get_404(study: StudySetup) -> None:
    client = _client(study)
    admin, rater = study.created.admin_token, study.created.rater_tokens["ana"]
    item = client.get(f"/r/{rater}/state").json()["item"]
    for path in ("/r/nope", "/r/nope/state", f"/r/nope/image/{item}", f"/r/{admin}", f"/r/{admin}/state",
                 "/a/nope", "/a/nope/results.json", "/a/nope/answers.csv", f"/a/{rater}/answers.csv",
                 f"/r/{rater}/image/not-a-key"):
        assert client.get(path).status_code == 404, path
    assert client.post("/r/nope/answer", json={"item": item, "realism": 3, "source_call": "real"}).status_code == 404


def test_admin_statistics_csv_and_json(study: StudySetup) -> None:
    client = _client(study)
    truth = _truth(study)
    for rater, strategy in (("ana", "truth"), ("ben", "always-real")):
        token = study.created.rater_tokens[rater]
        state = client.get(f"/r/{token}/state").json()
        while not state["done"]:
            source, label = truth[state["item"]]
            call = source if strategy == "truth" else "real"
            body = {"item": state["item"], "realism": 5 if source == "real" else 2, "source_call": call,
                    "class_call": label if rater == "ana" else "cyst", "comment": "=SUM(A1)" if rater == "ben" else ""}
            state = client.post(f"/r/{token}/answer", json=body).json()
    admin = study.created.admin_token
    summary = client.get(f"/a/{admin}/results.json").json()
    assert summary["progress"] == {"ana": {"answered": 6, "total": 6}, "ben": {"answered": 6, "total": 6},
                                   "cleo": {"answered": 0, "total": 6}}
    assert summary["realism"]["real"] == {"n": 6, "mean": 5.0, "sd": 0.0}
    assert summary["realism"]["synthetic"] == {"n": 6, "mean": 2.0, "sd": 0.0}
    per_rater = summary["real_vs_synthetic"]["per_rater"]
    assert per_rater["ana"]["accuracy"] == 1.0 and per_rater["ben"]["accuracy"] == 0.5
    assert per_rater["ben"]["ci"][0] < 0.5 < per_rater["ben"]["ci"][1]
    assert per_rater["cleo"] == {"k": 0, "n": 0, "accuracy": None, "ci": [None, None], "p_vs_chance": None}
    cysts = {src: sum(1 for s, lab in truth.values() if s == src and lab == "cyst") for src in ("real", "synthetic")}
    assert summary["class_accuracy"]["ana"]["total"]["accuracy"] == 1.0
    assert summary["class_accuracy"]["ben"]["real"]["k"] == cysts["real"]
    assert summary["class_accuracy"]["ben"]["synthetic"]["k"] == cysts["synthetic"]
    # ana calls every image right, ben calls all real: half the images agree
    assert summary["agreement"]["source_call_fleiss_kappa"]["n_items"] == 6
    page = client.get(f"/a/{admin}")
    assert page.status_code == 200 and "Realism per source" in page.text and "6/6 = 100.0%" in page.text
    csv = pd.read_csv(io.StringIO(client.get(f"/a/{admin}/answers.csv").text))
    assert len(csv) == 12 and set(csv["rater"]) == {"ana", "ben"}
    assert csv.loc[csv["rater"] == "ana", "source_correct"].all()
    assert (csv.loc[csv["rater"] == "ben", "comment"] == "'=SUM(A1)").all()  # no formula runs in a spreadsheet


def test_rate_limits_and_security_headers(study: StudySetup) -> None:
    token = study.created.rater_tokens["ana"]
    client = _client(study, Limits(rate=0.001, burst=3, misses_per_minute=2))
    codes = [client.get(f"/r/{token}/state").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/static/style.css")
    assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    guesser = _client(study, Limits(misses_per_minute=2))
    assert [guesser.get(f"/r/guess{i}").status_code for i in range(3)] == [404, 404, 429]
    assert guesser.get(f"/r/{token}/state").status_code == 429  # guessing locks the client out for a while


def test_database_holds_only_token_hashes(study: StudySetup, tmp_path: Path) -> None:
    tokens = [study.created.admin_token, *study.created.rater_tokens.values()]
    with session(make_engine(study.db, create=False)) as s:
        stored = [*s.scalars(select(Rater.token_hash)).all()]
    assert len(stored) == 3 and not set(tokens) & set(stored)
    if not study.db.startswith("postgresql"):
        raw = Path(study.db).read_bytes()
        assert not any(t.encode() in raw for t in tokens)
