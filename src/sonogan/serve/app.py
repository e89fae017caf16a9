"""The reader-study web app (FastAPI): rater pages and API, admin page and exports.

Routes (``TOKEN`` is a rater's or the admin's private token; any unknown token is a 404):

- ``GET /r/TOKEN`` the rating page; ``GET /r/TOKEN/state`` progress and the next image's
  opaque key; ``GET /r/TOKEN/image/KEY`` that image (PNG); ``POST /r/TOKEN/answer`` one
  answer, committed before the response names the next image.
- ``GET /a/TOKEN`` the admin page; ``/a/TOKEN/results.json`` the summary;
  ``/a/TOKEN/answers.csv`` every answer with the ground truth.

A rater's responses never hold ground truth or another rater's answers: the state is the
study name, the class choices, the progress and a random image key. Requests are rate
limited per (client, token), and each client's unknown-token requests (guessing) separately.

Example:
    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app("sqlite://"))
    >>> client.get("/r/not-a-token/state").status_code
    404
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable, Literal

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sonogan.serve.limiter import RateLimiter
from sonogan.serve.pages import RATER_HTML, RATER_JS, STYLE_CSS, admin_html
from sonogan.study.db import Answer, Assignment, Item, Rater, Study, hash_token, make_engine, session
from sonogan.study.results import answers_csv, study_summary

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never send it to another site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


class AnswerIn(BaseModel):
    """One answer as posted by the rating page."""

    model_config = ConfigDict(extra="forbid")
    item: str = Field(min_length=1, max_length=32)
    realism: int = Field(ge=1, le=5)
    source_call: Literal["real", "synthetic"]
    class_call: str | None = Field(None, max_length=200)
    comment: str = Field("", max_length=2000)


class Limits(BaseModel):
    """Per (client, token): ``rate`` requests/s after a ``burst``; per client: ``misses`` unknown tokens/min."""

    rate: float = 20.0
    burst: int = 60
    misses_per_minute: int = 30


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="Not Found")


def _rater(s: Session, token: str) -> Rater:
    rater = s.scalars(select(Rater).where(Rater.token_hash == hash_token(token))).one_or_none()
    if rater is None:
        raise _not_found()
    return rater


def _study_by_admin(s: Session, token: str) -> Study:
    study = s.scalars(select(Study).where(Study.admin_token_hash == hash_token(token))).one_or_none()
    if study is None:
        raise _not_found()
    return study


def rater_state(s: Session, rater: Rater) -> dict[str, Any]:
    """What the rating page may know: study name, class choices, progress, the next image's key."""
    study = s.get(Study, rater.study_id)
    total = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.rater_id == rater.id)) or 0
    answered = s.scalar(select(func.count()).select_from(Answer).where(Answer.rater_id == rater.id)) or 0
    key = None
    if answered < total:
        key = s.scalar(select(Item.key).join(Assignment, Assignment.item_id == Item.id)
                       .where(Assignment.rater_id == rater.id, Assignment.position == answered))
    assert study is not None
    return {"study": study.name, "classes": study.classes, "total": total, "answered": answered,
            "done": answered >= total, "item": key}


def _save_answer(engine: Engine, token: str, answer: AnswerIn) -> dict[str, Any]:
    with session(engine) as s:
        rater = _rater(s, token)
        state = rater_state(s, rater)
        item = s.scalars(select(Item).join(Assignment, Assignment.item_id == Item.id)
                         .where(Assignment.rater_id == rater.id, Item.key == answer.item)).one_or_none()
        if item is None:
            raise _not_found()
        if s.scalar(select(Answer.id).where(Answer.rater_id == rater.id, Answer.item_id == item.id)) is not None:
            return state  # a retried request whose answer was already committed: nothing to do
        if answer.item != state["item"]:
            raise HTTPException(status_code=409, detail="answer the current image first")
        study = s.get(Study, rater.study_id)
        if answer.class_call is not None and study is not None and answer.class_call not in study.classes:
            raise HTTPException(status_code=422, detail="class_call is not one of the study's classes")
        s.add(Answer(rater_id=rater.id, position=state["answered"], item_id=item.id, realism=answer.realism,
                     source_call=answer.source_call, class_call=answer.class_call, comment=answer.comment))
    with session(engine) as s:
        return rater_state(s, _rater(s, token))


def _limit(app: FastAPI, limits: Limits) -> None:
    requests = RateLimiter(limits.rate, limits.burst)
    misses = RateLimiter(limits.misses_per_minute / 60.0, limits.misses_per_minute)

    @app.middleware("http")
    async def limit_and_harden(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        client = request.client.host if request.client else "unknown"
        parts = request.url.path.split("/")
        tokened = len(parts) > 2 and parts[1] in ("r", "a")
        if tokened and (not misses.allowed(client) or not requests.take(f"{client}/{parts[2]}")):
            response: Response = PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": "1"})
        else:
            response = await call_next(request)
            if tokened and response.status_code == 404:
                misses.take(client)
        response.headers.update(HEADERS)
        return response


def create_app(db: str | Path, limits: Limits | None = None) -> FastAPI:
    """The app for a database path or URL (tables are created when missing)."""
    engine = make_engine(db)
    app = FastAPI(title="sonogan reader study", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    _limit(app, limits or Limits())

    @app.get("/static/rater.js")
    def rater_js() -> Response:
        return Response(RATER_JS, media_type="text/javascript")

    @app.get("/static/style.css")
    def style_css() -> Response:
        return Response(STYLE_CSS, media_type="text/css")

    @app.get("/r/{token}", response_class=HTMLResponse)
    def rater_page(token: str) -> str:
        with session(engine) as s:
            _rater(s, token)
        return RATER_HTML

    @app.get("/r/{token}/state")
    def state(token: str) -> dict[str, Any]:
        with session(engine) as s:
            return rater_state(s, _rater(s, token))

    @app.get("/r/{token}/image/{key}")
    def image(token: str, key: str) -> Response:
        with session(engine) as s:
            rater = _rater(s, token)
            png = s.scalar(select(Item.png).join(Assignment, Assignment.item_id == Item.id)
                           .where(Assignment.rater_id == rater.id, Item.key == key))
        if png is None:
            raise _not_found()
        return Response(png, media_type="image/png")

    @app.post("/r/{token}/answer")
    def answer(token: str, body: AnswerIn) -> dict[str, Any]:
        try:
            return _save_answer(engine, token, body)
        except IntegrityError:  # the same answer committed by a concurrent duplicate request
            with session(engine) as s:
                return rater_state(s, _rater(s, token))

    @app.get("/a/{token}", response_class=HTMLResponse)
    def admin_page(token: str) -> str:
        with session(engine) as s:
            study_id = _study_by_admin(s, token).id
        return admin_html(study_summary(engine, study_id), token)

    @app.get("/a/{token}/results.json")
    def results(token: str) -> JSONResponse:
        with session(engine) as s:
            study_id = _study_by_admin(s, token).id
        return JSONResponse(study_summary(engine, study_id))

    @app.get("/a/{token}/answers.csv")
    def answers(token: str) -> Response:
        with session(engine) as s:
            study_id = _study_by_admin(s, token).id
        return Response(answers_csv(engine, study_id), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="study-{study_id}-answers.csv"'})

    return app
