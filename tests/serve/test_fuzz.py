"""Hypothesis fuzzing of the reader-study API: random tokens, keys and bodies (random JSON, huge
numbers, NaN/Infinity, lone surrogates, huge strings, raw bytes).

Property: never a 5xx, never a warning or traceback in any log, a 422 never longer than a short
message, and the answers table unchanged by every request that is not an accepted answer (an
accepted one adds at most one row, for its own rater). The fast profile runs in the default
suite (derandomized, so CI sees the same examples every time); the long one is ``-m slow``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from sonogan.serve.app import Limits, create_app
from sonogan.study.db import Answer, Item, make_engine, session

from .conftest import make_study

COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("api-fast", max_examples=300, derandomize=True, **COMMON)
settings.register_profile("api-long", max_examples=2500, **COMMON)


class Records(logging.Handler):
    """Every record at WARNING or above, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Target:
    client: TestClient
    engine: Engine  # the test's own, to read the answers table
    tokens: list[str]
    keys: list[str]
    log: Records


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    setup = make_study(str(root / "study.db"), root, ["ana", "ben", "cleo", "dan", "eve", "fay"], n=16)
    engine = make_engine(setup.db, create=False)
    with session(engine) as s:
        keys = list(s.scalars(select(Item.key)))
    huge = 10**9  # the limiter is tested elsewhere; here every request must reach the app
    app = create_app(setup.db, Limits(rate=huge, burst=huge, misses_per_minute=huge))
    log = Records()
    logging.getLogger().addHandler(log)
    try:
        yield Target(TestClient(app), engine, [*setup.created.rater_tokens.values(), setup.created.admin_token],
                     keys, log)
    finally:
        logging.getLogger().removeHandler(log)


# any code point, lone surrogates included (hypothesis leaves them out by default)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
HUGE_TEXT = st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "\u00e9", "\ud800", "=", "\U0001f600"]),
                      st.integers(2_001, 120_000))
NUMBERS = st.one_of(st.integers(), st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([10**400, -(10**400), 2**63, 1.5, 3.0]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(ANY_TEXT, inner, max_size=4)), max_leaves=12)
# NaN/Infinity tokens and numbers no float holds, written into otherwise plausible bodies
RAW_BODIES = st.sampled_from([b'{"realism": 1e400}', b'{"realism": NaN}', b'{"realism": -Infinity}',
                              b'{"item": "\\ud800", "realism": 3, "source_call": "real"}',
                              b'{"comment": "\\udfff\\ud800"}', b"", b"null", b"[]", b'"\\ud800"', b"{" * 5000])


CURRENT = "<the rater's current image>"  # replaced by that key just before the request is sent


def answer_bodies(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies shaped like answers: plausible ones (so some are accepted, some answer the wrong
    image) and ones where any field is odd or missing, or extra keys ride along."""
    plausible = st.fixed_dictionaries(
        {"item": st.one_of(st.just(CURRENT), st.sampled_from(keys)), "realism": st.integers(1, 5), "source_call": st.sampled_from(["real", "synthetic"])},
        optional={"class_call": st.sampled_from(["cyst", "tumour", None, "other"]), "comment": st.one_of(ANY_TEXT, HUGE_TEXT)})
    fields = {"item": st.one_of(st.sampled_from(keys), ANY_TEXT, JSON_VALUES),
              "realism": st.one_of(st.integers(0, 6), NUMBERS, SCALARS, JSON_VALUES),
              "source_call": st.one_of(st.sampled_from(["real", "synthetic"]), SCALARS),
              "class_call": st.one_of(st.sampled_from(["cyst", "tumour", None]), SCALARS),
              "comment": st.one_of(ANY_TEXT, HUGE_TEXT, SCALARS)}
    odd = st.builds(lambda picked, extra: {**picked, **extra}, st.fixed_dictionaries({}, optional=fields),
                    st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=2))
    return st.one_of(plausible, odd)


def bodies(keys: list[str]) -> st.SearchStrategy[bytes]:
    as_json = st.one_of(answer_bodies(keys), JSON_VALUES).map(lambda v: json.dumps(v, allow_nan=True).encode())
    return st.one_of(as_json, RAW_BODIES, st.binary(max_size=200))


def requests(target: Target) -> st.SearchStrategy[tuple[str, str, bytes]]:
    unknown = st.one_of(ANY_TEXT, HUGE_TEXT.map(lambda s: s[:3000]))
    # mostly known tokens (7 in 10), or the fuzzer would hardly get past the token check
    token = st.integers(0, 9).flatmap(lambda n: st.sampled_from(target.tokens) if n < 7 else unknown)
    key = st.one_of(st.sampled_from(target.keys), ANY_TEXT)
    seg = lambda s: quote(s, safe="", errors="surrogatepass")
    get = st.one_of(st.builds(lambda t: f"/r/{seg(t)}", token), st.builds(lambda t: f"/r/{seg(t)}/state", token),
                    st.builds(lambda t, k: f"/r/{seg(t)}/image/{seg(k)}", token, key),
                    st.builds(lambda t, p: f"/a/{seg(t)}{p}", token, st.sampled_from(["", "/results.json", "/answers.csv"])))
    return st.one_of(st.tuples(st.just("GET"), get, st.just(b"")),
                     st.tuples(st.just("POST"), st.builds(lambda t: f"/r/{seg(t)}/answer", token), bodies(target.keys)))


def _answers(engine: Engine) -> list[tuple[Any, ...]]:
    with session(engine) as s:
        return sorted(tuple(r) for r in s.execute(select(Answer.rater_id, Answer.position, Answer.item_id, Answer.realism,
                                                         Answer.source_call, Answer.class_call, Answer.comment)))


def check_request(target: Target, method: str, path: str, body: bytes) -> None:
    if CURRENT.encode() in body:
        state = target.client.get(path.removesuffix("/answer") + "/state")
        current = state.json()["item"] if state.status_code == 200 and state.json()["item"] else "none"
        body = body.replace(CURRENT.encode(), current.encode())
    before = _answers(target.engine)
    target.log.records.clear()
    response = target.client.request(method, path, content=body, headers={"content-type": "application/json"})
    event(f"{method} {response.status_code}")  # the mix of answers: pytest --hypothesis-show-statistics
    assert response.status_code < 500, (method, path, body[:200], response.text[:200])
    assert target.log.records == [], [r.getMessage() for r in target.log.records]
    if response.status_code in (404, 409, 413, 422):
        assert len(response.content) < 2_000  # a short message: never the input back
    after = _answers(target.engine)
    if method == "POST" and response.status_code == 200 and after != before:
        added = sorted(set(after) - set(before))
        assert len(after) == len(before) + 1 and len(added) == 1 and set(before) <= set(after)
    else:
        assert after == before, (method, path, response.status_code)


@given(data=st.data())
@settings(settings.get_profile("api-fast"))
def test_fuzzed_requests_never_fail_the_server(target: Target, data: st.DataObject) -> None:
    check_request(target, *data.draw(requests(target)))


@pytest.mark.slow
@given(data=st.data())
@settings(settings.get_profile("api-long"))
def test_fuzzed_requests_never_fail_the_server_long(target: Target, data: st.DataObject) -> None:
    check_request(target, *data.draw(requests(target)))
