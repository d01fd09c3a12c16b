"""The PostgreSQL append lock is per log: two logs in two schemas of one database do not
serialise each other, while two appenders of one log still do (issue 14)."""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from audit._store import PG_APPEND_LOCK_KEY, AuditStore
from tests.auditlog import record
from tests.conftest import pg_schema

pytestmark = pytest.mark.postgres


def _try_lock(url: str) -> bool:
    """Whether another connection to the log at `url` could take its append lock now."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            taken = conn.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({PG_APPEND_LOCK_KEY})")
            return bool(taken.scalar_one())
    finally:
        engine.dispose()


def test_two_logs_in_two_schemas_append_while_the_other_holds_its_lock() -> None:
    with contextlib.ExitStack() as stack:
        url_a = stack.enter_context(pg_schema())
        url_b = stack.enter_context(pg_schema())
        log_a, log_b = AuditStore.open(url_a), AuditStore.open(url_b)
        stack.callback(log_a.close)
        stack.callback(log_b.close)
        log_a.append([record(0)])
        # Appends give up after 10 s instead of waiting for ever: a lock shared by the two
        # logs fails the test with an error rather than hanging it.
        lock_timeout = sa.create_engine(
            url_b.replace("options=", "options=-clock_timeout%3D10000%20"),
        )
        stack.callback(lock_timeout.dispose)
        log_b_bounded = AuditStore(lock_timeout)

        with log_a.engine.connect() as holder:  # an appender of log A, mid-transaction
            holder.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_APPEND_LOCK_KEY})")
            assert not _try_lock(url_a)  # log A's other appenders wait for it
            assert _try_lock(url_b)  # log B's do not
            result = log_b_bounded.append([record(1), record(2)])
            holder.rollback()

        assert (result.size_before, result.size) == (0, 2)
        assert log_b.size() == 2
        assert log_a.size() == 1
        assert _try_lock(url_a)  # released with the transaction


def test_the_key_is_the_same_before_and_after_the_log_exists() -> None:
    """Two processes opening a new log at once serialise on the key the appenders use."""
    with pg_schema() as url:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                before = conn.exec_driver_sql(f"SELECT {PG_APPEND_LOCK_KEY}").scalar_one()
            AuditStore.open(url).close()
            with engine.connect() as conn:
                after = conn.exec_driver_sql(f"SELECT {PG_APPEND_LOCK_KEY}").scalar_one()
                schema_oid = conn.exec_driver_sql(
                    "SELECT CAST(to_regnamespace(current_schema()) AS oid)"
                ).scalar_one()
        finally:
            engine.dispose()
    assert before == after == (284284 << 32) | int(schema_oid)
