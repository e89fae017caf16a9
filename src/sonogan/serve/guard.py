"""The app's outer layer: rate limits, security headers, and one log line for any unexpected error.

Limits: per (client, token) ``rate`` requests/s after a ``burst``; per client ``misses_per_minute``
requests with an *unknown* token (guesses; a known token asking for a wrong image key is no
guess). A client past its guess budget gets 429 for every token it has not already been served
under, so a guesser learns nothing about new tokens while a rater behind the same address, who
opened their link before, goes on rating.

An exception that escapes a route becomes a plain 500 and one ``ERROR`` line on the
``sonogan.serve`` logger naming the method, the path (token masked) and the exception type:
no traceback per request, and no request data (answers, tokens) in the log.

Example:
    >>> masked_path("/r/secret-token/answer")
    '/r/TOKEN/answer'
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from sonogan.serve.limiter import RateLimiter, RecentKeys

LOG = logging.getLogger("sonogan.serve")
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never send it to another site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


class Limits(BaseModel):
    """Per (client, token): ``rate`` requests/s after a ``burst``; per client: ``misses`` unknown tokens/min."""

    rate: float = 20.0
    burst: int = 60
    misses_per_minute: int = 30


def path_token(path: str) -> str | None:
    """The token of a rater (``/r/TOKEN...``) or admin (``/a/TOKEN...``) path, else None."""
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] in ("r", "a") else None


def masked_path(path: str) -> str:
    """The path with its token replaced, fit for a log."""
    parts = path.split("/")
    if path_token(path) is not None:
        parts[2] = "TOKEN"
    return "/".join(parts)


def install_guard(app: FastAPI, limits: Limits) -> None:
    """Add the rate limits, the headers and the catch-all for unexpected errors to ``app``."""
    requests = RateLimiter(limits.rate, limits.burst)
    misses = RateLimiter(limits.misses_per_minute / 60.0, limits.misses_per_minute)
    served = RecentKeys()  # (client, token) pairs that got a successful answer

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        client = request.client.host if request.client else "unknown"
        token = path_token(request.url.path)
        pair = f"{client}/{token}"
        if token is not None and ((not misses.allowed(client) and pair not in served) or not requests.take(pair)):
            response: Response = PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": "1"})
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # noqa: BLE001 - the one place that turns any bug into a logged 500
                LOG.error("%s %s failed: %s", request.method, masked_path(request.url.path), type(exc).__name__)
                response = PlainTextResponse("Internal Server Error", status_code=500)
            if token is not None and getattr(request.state, "unknown_token", False):
                misses.take(client)
            elif token is not None and response.status_code < 400:
                served.add(pair)
        response.headers.update(HEADERS)
        return response
