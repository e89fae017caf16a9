"""The reader-study web app (FastAPI): rater pages and API, admin page and exports.

Routes (``TOKEN`` is a rater's or the admin's private token; any unknown token is a 404,
checked before the request body is read):

- ``GET /r/TOKEN`` the rating page; ``GET /r/TOKEN/state`` progress and the next image's
  opaque key; ``GET /r/TOKEN/image/KEY`` that image (PNG); ``POST /r/TOKEN/answer`` one
  answer, committed before the response names the next image.
- ``GET /a/TOKEN`` the admin page; ``/a/TOKEN/results.json`` the summary;
  ``/a/TOKEN/answers.csv`` every answer with the ground truth.

A rater's responses never hold ground truth or another rater's answers: the state is the
study name, the class choices, the progress and a random image key. Pages are Jinja2
templates (:mod:`sonogan.serve.pages`); the engine and sessions come through FastAPI
dependencies (:mod:`sonogan.serve.deps`); limits, headers and the catch-all for unexpected
errors are in :mod:`sonogan.serve.guard`.

Example:
    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app("sqlite://"))
    >>> client.get("/r/not-a-token/state").status_code
    404
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sonogan.serve.deps import (MAX_COMMENT, SESSION, AnswerIn, admin_study_id, answer_body, current_rater,
                                get_engine)
from sonogan.serve.guard import Limits, install_guard
from sonogan.serve.pages import STATIC_DIR, TEMPLATES, admin_context
from sonogan.study.db import Answer, Assignment, Item, Rater, Study, make_engine
from sonogan.study.results import answers_csv, study_summary

__all__ = ["Limits", "create_app", "rater_state"]


def rater_state(s: Session, rater: Rater) -> dict[str, Any]:
    """What the rating page may know: study name, class choices, progress, the next image's key."""
    study = s.get(Study, rater.study_id)
    total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.rater_id == rater.id)) or 0
    answered = s.scalar(select(func.count()).select_from(Answer).where(Answer.rater_id == rater.id)) or 0
    key = None
    if answered < total:
        key = s.scalar(select(Item.key).join(Assignment, Assignment.item_id == Item.id)
                       .where(Assignment.rater_id == rater.id, Assignment.position == answered))
    assert study is not None  # raters.study_id is a foreign key
    return {"study": study.name, "classes": study.classes, "total": total, "answered": answered,
            "done": answered >= total, "item": key}


def save_answer(s: Session, rater: Rater, answer: AnswerIn) -> dict[str, Any]:
    """Store the rater's answer to their current image (committed here), then the new state."""
    state = rater_state(s, rater)
    item = s.scalars(select(Item).join(Assignment, Assignment.item_id == Item.id)
                     .where(Assignment.rater_id == rater.id, Item.key == answer.item)).one_or_none()
    if item is None:
        raise HTTPException(status_code=404, detail="Not Found")
    if s.scalar(select(Answer.id).where(Answer.rater_id == rater.id, Answer.item_id == item.id)) is not None:
        return state  # a retried request whose answer was already committed: nothing to do
    if answer.item != state["item"]:
        raise HTTPException(status_code=409, detail="answer the current image first")
    classes = s.scalar(select(Study.classes).where(Study.id == rater.study_id)) or []
    if answer.class_call is not None and answer.class_call not in classes:
        raise HTTPException(status_code=422, detail=[{"field": "class_call",
                                                      "problem": "not one of the study's classes"}])
    s.add(Answer(rater_id=rater.id, position=state["answered"], item_id=item.id, realism=answer.realism,
                 source_call=answer.source_call, class_call=answer.class_call, comment=answer.comment))
    try:
        s.commit()
    except IntegrityError:  # the same answer committed by a concurrent duplicate request
        s.rollback()
    return rater_state(s, rater)


def create_app(db: str | Path, limits: Limits | None = None) -> FastAPI:
    """The app for a database path or URL (tables are created when missing)."""
    app = FastAPI(title="sonogan reader study", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = make_engine(db)
    install_guard(app, limits or Limits())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/r/{token}", response_class=HTMLResponse, dependencies=[Depends(current_rater)])
    def rater_page(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(request, "rater.html", {"max_comment": MAX_COMMENT})

    @app.get("/r/{token}/state")
    def state(rater: Rater = Depends(current_rater), s: Session = SESSION) -> dict[str, Any]:
        return rater_state(s, rater)

    @app.get("/r/{token}/image/{key}")
    def image(key: str, rater: Rater = Depends(current_rater), s: Session = SESSION) -> Response:
        png = s.scalar(select(Item.png).join(Assignment, Assignment.item_id == Item.id)
                       .where(Assignment.rater_id == rater.id, Item.key == key))
        if png is None:
            raise HTTPException(status_code=404, detail="Not Found")
        return Response(png, media_type="image/png")

    @app.post("/r/{token}/answer")
    def answer(rater: Rater = Depends(current_rater), body: AnswerIn = Depends(answer_body),
               s: Session = SESSION) -> dict[str, Any]:
        return save_answer(s, rater, body)

    @app.get("/a/{token}", response_class=HTMLResponse)
    def admin_page(request: Request, token: str, study_id: int = Depends(admin_study_id),
                   engine: Engine = Depends(get_engine)) -> Response:
        return TEMPLATES.TemplateResponse(request, "admin.html", admin_context(study_summary(engine, study_id), token))

    @app.get("/a/{token}/results.json")
    def results(study_id: int = Depends(admin_study_id), engine: Engine = Depends(get_engine)) -> JSONResponse:
        return JSONResponse(study_summary(engine, study_id))

    @app.get("/a/{token}/answers.csv")
    def answers(study_id: int = Depends(admin_study_id), engine: Engine = Depends(get_engine)) -> Response:
        return Response(answers_csv(engine, study_id), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="study-{study_id}-answers.csv"'})

    return app
