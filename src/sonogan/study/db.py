"""Reader-study tables (SQLAlchemy 2 ORM) and engines: a SQLite file by default, PostgreSQL by URL.

One database may hold several studies. Ground truth (an item's source, class and original
file) lives in ``items`` and is read only by the admin side. Tokens are stored as SHA-256
hashes, so a copy of the database does not open anyone's page; the links are printed once,
when the study is created. ``assignments`` records each rater's order; ``answers`` has one
row per (rater, position), so a double submit can never store two answers.

Example:
    >>> engine = make_engine("sqlite://")          # in memory
    >>> with session(engine) as s:
    ...     s.add(Study(name="demo", seed=0, admin_token_hash=hash_token("t"), classes=[], config={}))
    >>> with session(engine) as s:
    ...     s.query(Study).one().name
    'demo'
    >>> database_url("runs/study.db").startswith("sqlite:///")
    True
    >>> database_url("postgresql://u@localhost/db")
    'postgresql+psycopg://u@localhost/db'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, DateTime, Engine, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint,
                        create_engine, event)
from sqlalchemy.pool import StaticPool
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SOURCES = ("real", "synthetic")


class Base(DeclarativeBase):
    pass


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    seed: Mapped[int] = mapped_column(Integer)
    admin_token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    classes: Mapped[list[str]] = mapped_column(JSON)  # the class choices offered to raters
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the StudyConfig and the input folders


class Item(Base):
    """One image of a study; ``key`` is the opaque random id raters see."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    key: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    source: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    origin: Mapped[str] = mapped_column(Text)  # the file it came from (admin only)
    png: Mapped[bytes] = mapped_column(LargeBinary)


class Rater(Base):
    __tablename__ = "raters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    order_seed: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("study_id", "name"),)


class Assignment(Base):
    """Item ``item_id`` is image number ``position`` (0-based) in the rater's order."""

    __tablename__ = "assignments"
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    __table_args__ = (UniqueConstraint("rater_id", "item_id"),)


class Answer(Base):
    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    realism: Mapped[int] = mapped_column(Integer)
    source_call: Mapped[str] = mapped_column(String(16))
    class_call: Mapped[str | None] = mapped_column(String(200), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    __table_args__ = (UniqueConstraint("rater_id", "position"), UniqueConstraint("rater_id", "item_id"))


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: tokens are high-entropy random strings, so no salt is needed."""
    # surrogatepass: any str hashes (a lone surrogate from a hostile path is just a wrong token)
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def database_url(db: str | Path) -> str:
    """A URL as given (``postgresql://`` gets the psycopg 3 driver), or a file path -> SQLite URL."""
    text = str(db)
    if text.startswith("postgresql://") or text.startswith("postgres://"):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes concurrent writers wait
    # instead of failing with "database is locked" (20 raters answering at once).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(db: str | Path, create: bool = True) -> Engine:
    """An engine for a path or URL; creates the tables (and a SQLite file's folder) when ``create``."""
    url = database_url(db)
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and create:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        # an in-memory database lives in one connection: share it between the server's threads
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **({"poolclass": StaticPool} if memory else {}))
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if create:
        Base.metadata.create_all(engine)
    return engine


@contextlib.contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    maker = sessionmaker(engine, expire_on_commit=False)
    with maker() as s, s.begin():
        yield s
