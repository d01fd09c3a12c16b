"""Police: the family-violence incident and risk feed.

Two ways in, one path through the core: NDJSON file drops in the source folder, and a
FastAPI webhook (`POST /events`, a JSON event or a list) that spools each request to the
same folder as an NDJSON file before answering 202, so an accepted event survives a
crash exactly like a dropped file.

| event_type   | kind          | to                  |
|--------------|---------------|---------------------|
| incident     | risk.update   | Corrections, Health |
| risk_tier    | risk.update   | Corrections, Health |
| intel_flag   | risk.alert    | Corrections, Health |
| breach       | order.breach  | Corrections         |

All for `offender_management` (an adapter is the `system` role; a `risk_reduction`
disclosure needs a person's written justification and is sent by a person). The risk tier
is the case prioritisation and response model's tier (1 highest .. 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import Body, FastAPI, HTTPException

from adapters._config import AdapterConfig
from adapters._files import (
    delivery_document,
    json_bytes,
    ndjson_bytes,
    publish_file,
    read_ndjson,
)
from adapters._model import Outbound, Outgoing, SourceRecord, Unmappable, require
from broker import Agency, Kind, Purpose, new_id

RISK_TO = (Agency.CORRECTIONS, Agency.HEALTH)
FLAGS = {"child_sexual_exploitation", "stalking"}
_TIER_LEVEL = {1: "very_high", 2: "high", 3: "medium", 4: "low"}


class PoliceModule:
    agency = Agency.POLICE
    suffixes = (".ndjson",)

    def records(self, path: Path) -> list[SourceRecord]:
        out = []
        for line, data in read_ndjson(path):
            event_id = data.get("event_id") if isinstance(data, dict) else None
            key = f"police:{event_id}" if event_id else f"police:{path.name}#{line}"
            rtype = str(data.get("event_type")) if isinstance(data, dict) else "invalid"
            out.append(SourceRecord(key, rtype, data))
        return out

    def map_in(self, record: SourceRecord) -> Outgoing:
        data = record.data
        if isinstance(data, Unmappable):
            raise data
        if not isinstance(data, dict):
            raise Unmappable("record.not_object", "an event must be a JSON object")
        require(data, "event_id", "event_type", "person_id", "occurred_at")
        mapper = _MAPPERS.get(str(data["event_type"]))
        if mapper is None:
            raise Unmappable(
                "record.unknown_type",
                f"event_type must be one of {', '.join(sorted(_MAPPERS))}",
            )
        kind, to, payload = mapper(data)
        return Outgoing(
            kind=kind,
            purpose=Purpose.OFFENDER_MANAGEMENT,
            local_offender_id=str(data["person_id"]),
            to=to,
            payload={"event_id": data["event_id"], "occurred_at": data["occurred_at"], **payload},
        )

    def render(self, delivery: Outbound) -> tuple[str, bytes]:
        return ".json", json_bytes(delivery_document(delivery))


Mapped = tuple[Kind, tuple[Agency, ...], dict[str, Any]]


def _incident(data: dict[str, Any]) -> Mapped:
    require(data, "incident_type")
    return (
        Kind.RISK_UPDATE,
        RISK_TO,
        {
            "incident_type": data["incident_type"],
            "risk_level": data.get("risk_level", "unassessed"),
            "summary": "family violence incident recorded",
        },
    )


def _risk_tier(data: dict[str, Any]) -> Mapped:
    tier = data.get("risk_tier")
    if tier not in _TIER_LEVEL:
        raise Unmappable("record.bad_value", "risk_tier must be 1, 2, 3 or 4")
    return Kind.RISK_UPDATE, RISK_TO, {"risk_tier": tier, "risk_level": _TIER_LEVEL[tier]}


def _intel_flag(data: dict[str, Any]) -> Mapped:
    if data.get("flag") not in FLAGS:
        raise Unmappable("record.bad_value", f"flag must be one of {', '.join(sorted(FLAGS))}")
    return (
        Kind.RISK_ALERT,
        RISK_TO,
        {
            "flag": data["flag"],
            "alert_level": data.get("alert_level", "high"),
        },
    )


def _breach(data: dict[str, Any]) -> Mapped:
    require(data, "condition")
    return (
        Kind.ORDER_BREACH,
        (Agency.CORRECTIONS,),
        {
            "condition_breached": data["condition"],
            "order_type": data.get("order_type", "supervision_order"),
        },
    )


_MAPPERS = {
    "incident": _incident,
    "risk_tier": _risk_tier,
    "intel_flag": _intel_flag,
    "breach": _breach,
}


# -- the webhook ---------------------------------------------------------------------------


def webhook_app(spool: Path) -> FastAPI:
    """POST /events: a JSON event or a list; spooled durably, then 202."""
    app = FastAPI(title="s284 police adapter webhook", docs_url=None, redoc_url=None)

    @app.post("/events", status_code=202)
    def events(body: Annotated[Any, Body()]) -> dict[str, int]:
        items = body if isinstance(body, list) else [body]
        if not items or not all(isinstance(i, dict) for i in items):
            raise HTTPException(422, "expected a JSON object or a non-empty list of objects")
        publish_file(spool / f"webhook-{new_id()}.ndjson", ndjson_bytes(items))
        return {"accepted": len(items)}

    return app


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the adapter's stop event owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_webhook(config: AdapterConfig, stop: asyncio.Event) -> None:
    server = _QuietServer(
        uvicorn.Config(
            webhook_app(config.source),
            host=config.webhook_host,
            port=config.webhook_port or 0,
            log_level="warning",
        )
    )
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


# -- synthetic data ------------------------------------------------------------------------


def synthetic_events(local_ids: list[str], count: int, seed: int = 284) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    types = list(_MAPPERS)
    events = []
    for i in range(count):
        event: dict[str, Any] = {
            "event_id": f"VP-EV-{seed}-{i:05d}",
            "event_type": types[i % len(types)],
            "person_id": rng.choice(local_ids),
            "occurred_at": f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T21:00:00+10:00",
        }
        extra: dict[str, dict[str, Any]] = {
            "incident": {"incident_type": "family_violence", "risk_level": "elevated"},
            "risk_tier": {"risk_tier": rng.randint(1, 4)},
            "intel_flag": {"flag": rng.choice(sorted(FLAGS))},
            "breach": {"condition": rng.choice(["curfew", "exclusion_zone"])},
        }
        events.append(event | extra[event["event_type"]])
    return events


def generate(folder: Path, local_ids: list[str], count: int, seed: int = 284) -> list[Path]:
    """An NDJSON drop of invented events."""
    path = folder / f"events-{seed:04d}.ndjson"
    publish_file(path, ndjson_bytes(synthetic_events(local_ids, count, seed)))
    return [path]
