"""A PostgreSQL schema of its own for one deployment run (the lab topology), so several
runs share one server without seeing each other's log; dropped when the run is over.

Here because only audit/ and routing/ speak SQL (the import contracts); both stores open
the URL this returns and create their tables inside the schema.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from audit._errors import StoreUnavailableError

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _checked(schema: str) -> str:
    if not _NAME.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a schema name (lower case, digits, _)")
    return schema


def _engine(url: str) -> sa.Engine:
    try:
        return sa.create_engine(url)
    except ModuleNotFoundError as exc:
        raise StoreUnavailableError(
            f"the database driver {exc.name!r} is not installed (PostgreSQL: "
            "pip install 'psycopg[binary]')"
        ) from None


def create_schema(url: str, schema: str) -> str:
    """Create `schema` on the PostgreSQL server at `url`; the URL that works inside it."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {_checked(schema)}"))
    except sa.exc.SQLAlchemyError as exc:
        where = make_url(url).render_as_string(hide_password=True)
        raise StoreUnavailableError(
            f"cannot reach PostgreSQL at {where} ({exc.__class__.__name__})"
        ) from None
    finally:
        engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def drop_schema(url: str, schema: str) -> None:
    """Drop the run's schema and everything in it (best effort: the server may be gone)."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {_checked(schema)} CASCADE"))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreUnavailableError(
            f"cannot drop schema {schema}: {exc.__class__.__name__}"
        ) from None
    finally:
        engine.dispose()
