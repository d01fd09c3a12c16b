"""Who follows an offender: every agency that has received information about them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, select

from routing._db import unavailable_on_db_error, upsert, writing
from routing._schema import routing_subscriptions

_S = routing_subscriptions.c
_CHUNK = 500


class Subscriptions:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @unavailable_on_db_error
    def add(self, pairs: Iterable[tuple[str, str]], at: datetime) -> None:
        """Subscribe each (offender, agency); one already subscribed keeps its first date."""
        rows = [{"offender": o, "agency": a, "since": at} for o, a in dict.fromkeys(pairs)]
        if not rows:
            return
        with writing(self._engine) as conn:
            conn.execute(upsert(self._engine, routing_subscriptions).on_conflict_do_nothing(), rows)

    @unavailable_on_db_error
    def of(self, offenders: Iterable[str]) -> dict[str, set[str]]:
        """offender -> the agencies subscribed to them (offenders with none are absent)."""
        wanted = list(dict.fromkeys(offenders))
        found: dict[str, set[str]] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(wanted), _CHUNK):
                query = select(_S.offender, _S.agency).where(
                    _S.offender.in_(wanted[i : i + _CHUNK])
                )
                for row in conn.execute(query):
                    found.setdefault(row.offender, set()).add(row.agency)
        return found
