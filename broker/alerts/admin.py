"""Changing the routing table: one function for the CLI and the admin API, so every change
is recorded in the disclosure log the same way (who, when, digests before and after)."""

from __future__ import annotations

from typing import Any

from audit import AuditStore, records
from broker.ids import new_id
from routing import RoutingStore, TableChange


def import_table(
    routing: RoutingStore, audit: AuditStore, doc: dict[str, Any], actor: str, node: str
) -> TableChange:
    """Store `doc` as the next version of the table and record the change."""
    change = routing.import_table(doc, actor)
    before = change.digest_before[:16] if change.digest_before else "none"
    summary = (
        f"routing table v{change.previous_version or 0} -> v{change.version}: "
        f"{change.added} added, {change.removed} removed, {change.changed} changed; "
        f"digest {before} -> {change.digest_after[:16]}"
    )
    origin = records.Origin(change.at, records.BROKER, node)
    audit.append(
        [
            records.routing_changed(
                new_id(), origin, actor, change.version, summary, change.digest_after
            )
        ]
    )
    return change
