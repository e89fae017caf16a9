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
import os
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, DateTime, Engine, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint,
                        create_engine, event, make_url)
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from sonogan.errors import SonoganInputError
from sonogan.locations import is_writable

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


DB_FIX = "pass --db a file in a writable folder (e.g. runs/reader-study.db) or a postgresql:// URL"
SQLITE_MAGIC = b"SQLite format 3\x00"


def _stat(path: Path, db: str | Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, no permission
        raise SonoganInputError(db, f"not a usable database path ({exc.__class__.__name__})", DB_FIX) from None


def check_database(db: str | Path, must_exist: bool) -> None:
    """Refuse, in one line, a ``--db`` that cannot hold a study database, before any work starts.

    A SQLite path must be a SQLite file (or not exist yet, unless ``must_exist``) whose nearest
    existing folder is a folder in which a file can really be written: SQLite writes its journal
    and WAL files beside the database, even to read it. That refuses a parent that is a regular
    file, a read-only mount and ``/proc`` alike. A server URL is checked for its kind only; the
    server itself answers when :func:`make_engine` connects.
    """
    try:
        url = make_url(database_url(db))
    except (ArgumentError, ValueError, OSError):
        raise SonoganInputError(db, "not a database path or URL", DB_FIX) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SonoganInputError(db, f"unsupported database kind '{url.get_backend_name()}'", DB_FIX)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database)
    found = _stat(path, db)
    if found is None and must_exist:
        raise SonoganInputError(db, "no study database here", "create a study first with 'sonogan study create --db ...'")
    if found is not None and not os.path.isfile(path):
        raise SonoganInputError(db, "is not a regular file", DB_FIX)
    if found is not None and found.st_size and _head(path, db) != SQLITE_MAGIC:
        raise SonoganInputError(db, "is not a SQLite database", DB_FIX)
    folder = path.parent
    while _stat(folder, db) is None:
        folder = folder.parent
    if not folder.is_dir():
        raise SonoganInputError(db, f"its parent {folder} is a file, not a folder", DB_FIX)
    if not is_writable(folder):
        raise SonoganInputError(db, f"nothing can be written in {folder} (read-only, no permission, "
                                "or a system folder such as /proc)", DB_FIX)


def _head(path: Path, db: str | Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise SonoganInputError(db, f"cannot be read ({exc.strerror or exc})", DB_FIX) from None


def make_engine(db: str | Path, create: bool = True) -> Engine:
    """An engine for a path or URL after :func:`check_database`; creates the tables (and a SQLite
    file's folder) when ``create``, else the database must exist. It connects once, so a server that
    does not answer is a one-line error here rather than a traceback on the first request."""
    check_database(db, must_exist=not create)
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
    try:
        if create:
            Base.metadata.create_all(engine)
        else:
            engine.connect().close()
    except DBAPIError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        problem = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise SonoganInputError(shown, f"cannot open the study database ({problem})", DB_FIX) from None
    return engine


@contextlib.contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    maker = sessionmaker(engine, expire_on_commit=False)
    with maker() as s, s.begin():
        yield s
