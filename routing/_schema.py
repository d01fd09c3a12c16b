"""Tables of designated-contact routing (SQLAlchemy Core; SQLite and PostgreSQL alike).

`routing_tables` keeps every version of the routing table whole (canonical JSON and its
SHA-256), so any past table can be shown and diffed. The offender registry keeps its
history so routing can follow an area move from the moment it happened. Alerts hold
their own escalation state (level, holder, deadline): timers survive a restart.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

routing_tables = Table(
    "routing_tables",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("actor", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("doc", Text, nullable=False),  # canonical JSON of the table document
    Column("digest", String(64), nullable=False),  # sha256 hex of `doc`
)

routing_offenders = Table(
    "routing_offenders",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("managing_officer", String(128), nullable=False),
    Column("managing_agency", String(32), nullable=False),
    Column("area", String(64)),
    Column("order_status", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

routing_offender_history = Table(
    "routing_offender_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(64), nullable=False),
    Column("managing_officer", String(128), nullable=False),
    Column("managing_agency", String(32), nullable=False),
    Column("area", String(64)),
    Column("order_status", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_routing_offender_history_ref", "ref", "updated_at"),
)

routing_alerts = Table(
    "routing_alerts",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("message_id", String(64), nullable=False),
    Column("agency", String(32), nullable=False),
    Column("area", String(64)),
    Column("topic", String(32), nullable=False),
    Column("contact_id", String(64), nullable=False),
    Column("deputy_id", String(64)),
    Column("offender", String(64), nullable=False),
    Column("sender_agency", String(32), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("status", String(24), nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("route_reason", String(48)),
    Column("acknowledged_by", String(128)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("frame", LargeBinary, nullable=False),  # the sealed alert: ciphertext only
    UniqueConstraint("message_id", "agency", name="uq_routing_alerts_message_agency"),
    Index("ix_routing_alerts_inbox", "agency", "contact_id", "status", "created_at"),
    Index("ix_routing_alerts_due", "status", "deadline"),
)

routing_alert_steps = Table(
    "routing_alert_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("contact_id", String(64), nullable=False),
    Column("status", String(24), nullable=False),
    Index("ix_routing_alert_steps_alert", "alert_id", "id"),
)

routing_csp_reviews = Table(
    "routing_csp_reviews",
    metadata,
    Column("csp_id", String(64), primary_key=True),
    Column("offender", String(64), nullable=False),
    Column("last_review", Date, nullable=False),
    Column("due", Date, nullable=False),
)

# One row per plan: where it stands in its life (created, endorsed, reviewed, closed) as
# Corrections' latest-dated csp.update (or the order ending) left it. A separate table from
# the review dates so an existing database gains it by create_all, without a migration.
routing_csp_plans = Table(
    "routing_csp_plans",
    metadata,
    Column("csp_id", String(64), primary_key=True),
    Column("offender", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_on", Date, nullable=False),
    Column("endorsed_on", Date),
    Column("closed_reason", String(64)),
    Index("ix_routing_csp_plans_offender", "offender"),
)

# Each status event a plan went through, with its own date, and the review due date in
# force when it came (`due_before`) and the one it set (`due_after`): the history the
# oversight figures need (created, endorsed, reviews on time / late / overdue). Only events
# the register applied are kept (a late arrival changes nothing, so it is not here); one
# row per (plan, status, day), so a redelivered csp.update adds nothing.
routing_csp_events = Table(
    "routing_csp_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("csp_id", String(64), nullable=False),
    Column("offender", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_on", Date, nullable=False),
    Column("due_before", Date),
    Column("due_after", Date),
    UniqueConstraint("csp_id", "status", "status_on", name="uq_routing_csp_events"),
    Index("ix_routing_csp_events_on", "status_on"),
)

# Breaches of orders as order.breach reported them, one row per message, with the action
# taken from the payload's fixed vocabulary (docs/wire-format.md): counted by action.
routing_breaches = Table(
    "routing_breaches",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("offender", String(64), nullable=False),
    Column("sender_agency", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Index("ix_routing_breaches_at", "reported_at"),
)

routing_csp_notices = Table(
    "routing_csp_notices",
    metadata,
    Column("csp_id", String(64), nullable=False),
    Column("due", Date, nullable=False),
    Column("milestone", String(8), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("csp_id", "due", "milestone"),
)

# An agency that received information about an offender gets later updates pushed to it,
# where policy allows (as Victoria's Central Information Point must).
routing_subscriptions = Table(
    "routing_subscriptions",
    metadata,
    Column("offender", String(64), nullable=False),
    Column("agency", String(32), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("offender", "agency"),
)
