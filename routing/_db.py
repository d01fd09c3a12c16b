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
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from routing._errors import RoutingUnavailableError

P = ParamSpec("P")
R = TypeVar("R")

_PG_LOCK = 284_005  # pg_advisory_xact_lock key: one routing-table writer at a time
_WRITE = "s284_routing_write"


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


def upsert(engine: Engine, table: Table) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing / _do_update."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def from_db(moment: datetime | None) -> datetime | None:
    """Stored moments are UTC; SQLite hands them back naive."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def unavailable_on_db_error(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn`, raising `RoutingUnavailableError` where the database failed it: callers (the
    API, the CLI) handle one named error and never need to know the store speaks SQL. The
    driver's error stays chained for the operator's log, out of the message."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (DBAPIError, PoolTimeoutError) as exc:
            detail = "the routing database cannot be reached or refused the query; retry later"
            raise RoutingUnavailableError(detail) from exc

    return guarded


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
