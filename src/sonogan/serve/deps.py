"""FastAPI dependencies of the reader-study app: engine, session, the token's owner, the answer body.

The engine lives on ``app.state.engine``; every route gets its session from :func:`get_session`,
so a test can swap either with ``app.dependency_overrides``. Routes that write commit
explicitly before they build their response (an answer is durable before the page may show
the next image), whatever point FastAPI closes the dependency at.

Order matters for the answer route: the token is checked first (:func:`current_rater`, an
unknown token is a 404 before a byte of the body is read), then the body is read (at most
:data:`MAX_BODY_BYTES`) and validated in pydantic's strict mode. A 422 names the fields and
the problems, never the input: echoing it back both leaks it into logs and fails on input
that JSON cannot encode (``1e400``, a lone surrogate).

Example:
    >>> AnswerIn.model_validate_json(b'{"item": "k", "realism": 4, "source_call": "real"}').realism
    4
    >>> try:
    ...     AnswerIn.model_validate_json(b'{"item": "k", "realism": true, "source_call": "real"}')
    ... except ValidationError as exc:
    ...     validation_detail(exc)
    [{'field': 'realism', 'problem': 'Input should be a valid integer'}]
"""

from __future__ import annotations

from typing import Iterator, Literal

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sonogan.study.db import Rater, Study, hash_token

MAX_COMMENT = 2000
# an answer is a few hundred bytes; 2000 comment characters escaped as \uXXXX are 12 KB
MAX_BODY_BYTES = 64 * 1024
MAX_REPORTED_ERRORS = 10


class AnswerIn(BaseModel):
    """One answer as posted by the rating page; strict: ``true`` or ``"3"`` is no realism score."""

    model_config = ConfigDict(extra="forbid", strict=True)
    item: str = Field(min_length=1, max_length=32)
    realism: int = Field(ge=1, le=5)
    source_call: Literal["real", "synthetic"]
    class_call: str | None = Field(None, max_length=200)
    comment: str = Field("", max_length=MAX_COMMENT)


def validation_detail(exc: ValidationError, model: type[BaseModel] = AnswerIn) -> list[dict[str, str]]:
    """Field and problem of each error, without the input (a key outside the model reads as 'body')."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        first = err["loc"][0] if err["loc"] else None
        out.append({"field": first if first in model.model_fields else "body", "problem": err["msg"]})
    return out


def get_engine(request: Request) -> Engine:
    """The app's engine (``create_app`` puts it on ``app.state``)."""
    return request.app.state.engine  # type: ignore[no-any-return]


def get_session(engine: Engine = Depends(get_engine)) -> Iterator[Session]:
    """One session per request; closing it rolls back whatever a route did not commit."""
    with Session(engine, expire_on_commit=False) as s:
        yield s


# one Depends object for every user of the session, so a request shares one session (FastAPI
# caches a dependency per request by function and scope); scope="function" closes it when the
# route returns, before the response is sent
SESSION = Depends(get_session, scope="function")


def _unknown_token(request: Request) -> HTTPException:
    request.state.unknown_token = True  # read by the guard: only these count as guesses
    return HTTPException(status_code=404, detail="Not Found")


def current_rater(token: str, request: Request, s: Session = SESSION) -> Rater:
    """The rater whose private token is in the path; 404 (counted as a guess) for any other token."""
    rater = s.scalars(select(Rater).where(Rater.token_hash == hash_token(token))).one_or_none()
    if rater is None:
        raise _unknown_token(request)
    return rater


def admin_study_id(token: str, request: Request, s: Session = SESSION) -> int:
    """The id of the study whose admin token is in the path; 404 (counted as a guess) otherwise."""
    study_id = s.scalar(select(Study.id).where(Study.admin_token_hash == hash_token(token)))
    if study_id is None:
        raise _unknown_token(request)
    return study_id


async def answer_body(request: Request) -> AnswerIn:
    """The posted answer, read only after the token dependency passed; 413 past MAX_BODY_BYTES, 422 if invalid."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail=f"an answer is at most {MAX_BODY_BYTES} bytes")
    try:
        return AnswerIn.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=validation_detail(exc)) from None

