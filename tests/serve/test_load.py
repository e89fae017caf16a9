"""20 raters answering at the same time over loopback HTTP: no answer lost, none duplicated."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from sonogan.serve.app import create_app
from sonogan.serve.loadtest import planned_answer, rate_concurrently, running_server
from sonogan.study.db import Answer, Rater, make_engine, session

from .conftest import make_study

RATERS = [f"rater{i:02d}" for i in range(20)]


def test_twenty_concurrent_raters_lose_no_answer(db_url: str, tmp_path: Path) -> None:
    setup = make_study(db_url, tmp_path, RATERS, n=8)
    with running_server(create_app(db_url)) as base:
        report = rate_concurrently(base, setup.created.rater_tokens)
    assert report["answers"] == 20 * 8
    with session(make_engine(db_url, create=False)) as s:
        rows = s.execute(select(Rater.name, Answer.position, Answer.realism, Answer.source_call, Answer.comment)
                         .join(Answer, Answer.rater_id == Rater.id)).all()
    assert len(rows) == 20 * 8 and len({(r.name, r.position) for r in rows}) == 20 * 8
    for name, position, realism, call, comment in rows:
        planned = planned_answer(RATERS.index(name), position)
        assert (realism, call, comment) == (planned["realism"], planned["source_call"], planned["comment"])
