"""The driver's errors become `StoreUnavailableError` at the edge of the store.

Callers (the API, the gateway, the CLI) handle one named error and never need to know the
log speaks SQL. The original error stays chained for the operator's log; the message a
caller may show names no host, user or statement.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from audit._errors import StoreUnavailableError

P = ParamSpec("P")
R = TypeVar("R")

UNAVAILABLE = "the disclosure log's database cannot be reached or refused the query"


def unavailable_on_db_error(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn`, raising `StoreUnavailableError` where the database failed it."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (DBAPIError, PoolTimeoutError) as exc:
            raise StoreUnavailableError(f"{UNAVAILABLE}; retry later") from exc

    return guarded
