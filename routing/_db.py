"""Engine set-up and write transactions, as the audit store does it.

SQLite: WAL, and writers take the lock up front (BEGIN IMMEDIATE) so a read-then-write
never fails on a stale snapshot. PostgreSQL: conditional UPDATEs are race-safe under
READ COMMITTED; only whole-table versioning takes an advisory lock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from routing._errors import RoutingUnavailableError

_PG_LOCK = 284_005  # pg_advisory_xact_lock key: one routing-table writer at a time
_WRITE = "s284_routing_write"
_P = ParamSpec("_P")
_R = TypeVar("_R")


def open_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


@contextmanager
def writing(engine: Engine, *, serial: bool = False) -> Iterator[Connection]:
    """One write transaction, committed on normal exit, rolled back on an error."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.info[_WRITE] = True
            conn.begin()
        elif serial:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        yield conn
        conn.commit()


def unavailable_as_routing_error(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """The driver's errors leave the store as `RoutingUnavailableError`, for the callers
    that must not know SQL (the gateway's routing steps)."""

    @functools.wraps(fn)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise RoutingUnavailableError(exc.__class__.__name__) from exc

    return guarded


def upsert(engine: Engine, table: Table) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing / _do_update."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def from_db(moment: datetime | None) -> datetime | None:
    """Stored moments are UTC; SQLite hands them back naive."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledgement survives power loss
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.info.pop(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
