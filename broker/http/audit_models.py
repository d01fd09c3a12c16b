"""Wire models of the audit API (request queries, responses) and its CSV export."""

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from audit import MAX_LIMIT, AuditStore, Filters, Viewer, search


class ErrorOut(BaseModel):
    error: str = Field(examples=["auth.invalid_token"])
    detail: str


class RecordOut(BaseModel):
    """A record's canonical form (what is hashed) plus its personal fields, unless erased."""

    model_config = ConfigDict(extra="allow")
    seq: int
    record_id: str
    event: str
    occurred_at: str
    recorded_at: str
    message_id: str | None = None
    correlation_id: str | None = None
    ingress_agency: str
    sender_agency: str | None = None
    sender_provider: str | None = None  # a funded service's identity, when one sent it
    recipient_agency: str | None = None
    kind: str | None = None
    purpose: str | None = None
    ground: str | None = None
    decision: str
    reason_code: str | None = None
    reason: str
    policy_ids: list[str]
    review_required: bool
    restricted: bool
    refers_to: str | None = None
    personal: str = Field(description="salted SHA-256 commitment to the personal fields")
    offender: str | None = None
    sender_person: str | None = None
    recipient_contact: str | None = None
    justification: str | None = None
    consent_reference: str | None = None
    law_reference: str | None = None
    expired: bool = Field(description="personal fields erased after the retention period")


class RecordPage(BaseModel):
    records: list[RecordOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class InclusionProofOut(BaseModel):
    """RFC 9162 inclusion proof; leaf index = seq; hashes hex-encoded."""

    leaf_index: int
    leaf_hash: str
    tree_size: int
    root: str
    audit_path: list[str]
    checkpoint_note: str | None = Field(description="C2SP signed checkpoint of tree_size")


class RecordWithProof(BaseModel):
    record: RecordOut
    inclusion_proof: InclusionProofOut
    canonical: str = Field(
        description="The record's canonical JSON exactly as stored and hashed: "
        "leaf_hash = SHA-256(0x00 || these UTF-8 bytes). Hash this, not a re-serialisation."
    )


class AccountedDisclosure(RecordOut):
    """A disclosure in the accounting: delivered (it is in the log only once published to
    JetStream) and, once the recipient's system confirms taking it, when it did."""

    confirmed_at: str | None = Field(
        description="when the recipient's system confirmed taking it (its signed "
        "confirmation, a `received` record); null while unconfirmed"
    )


class Accounting(BaseModel):
    offender: str
    disclosures: list[AccountedDisclosure]
    next_cursor: str | None


class UnconfirmedOut(BaseModel):
    """A disclosure no recipient's system has confirmed taking (no `received` record)."""

    record_id: str
    seq: int
    message_id: str | None
    sender_agency: str | None
    recipient_agency: str | None
    kind: str | None
    occurred_at: str


class UnconfirmedList(BaseModel):
    older_than: str = Field(description="only disclosures that occurred before this time")
    disclosures: list[UnconfirmedOut] = Field(description="oldest first")


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["appropriate", "inappropriate", "needs_follow_up"]
    note: str | None = Field(default=None, max_length=2000)


class ReviewOut(BaseModel):
    record_id: str = Field(description="the new `reviewed` record")
    seq: int
    refers_to: str
    outcome: str


class CheckpointOut(BaseModel):
    size: int
    root: str
    note: str
    signed_at: datetime

    @field_validator("signed_at")
    @classmethod
    def _with_offset(cls, value: datetime) -> datetime:
        """SQLite hands back naive datetimes; the store writes UTC only: say so (`Z`)."""
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class ConsistencyOut(BaseModel):
    """RFC 9162 consistency proof between two tree sizes; hashes hex-encoded."""

    old: int
    new: int
    proof: list[str]


class AccessOut(BaseModel):
    id: int
    at: str
    subject: str
    role: str
    agency: str | None
    method: str
    path: str
    query: str
    status: int
    results: int | None


class AccessPage(BaseModel):
    entries: list[AccessOut]
    next_cursor: str | None


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offender: str | None = None
    sender_agency: str | None = None
    recipient_agency: str | None = None
    purpose: str | None = None
    kind: str | None = None
    event: str | None = None
    decision: str | None = None
    policy_id: str | None = None
    occurred_from: datetime | None = Field(default=None, description="inclusive")
    occurred_before: datetime | None = Field(default=None, description="exclusive")

    def filters(self) -> Filters:
        return Filters(**self.model_dump(include=set(SearchQuery.model_fields)))


class PageQuery(SearchQuery):
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page")
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        400: "bad cursor or parameters",
        401: "no, bad or expired token",
        403: "the token's role may not do this",
        503: "a database is unreachable (audit.unavailable, routing.unavailable): retry",
    }.items()
}


CSV_COLUMNS = (
    "seq",
    "record_id",
    "event",
    "occurred_at",
    "recorded_at",
    "ingress_agency",
    "sender_agency",
    "sender_person",
    "recipient_agency",
    "recipient_contact",
    "offender",
    "kind",
    "purpose",
    "ground",
    "decision",
    "reason_code",
    "reason",
    "policy_ids",
    "review_required",
    "restricted",
    "refers_to",
    "justification",
    "consent_reference",
    "law_reference",
    "expired",
)


def csv_document(rows: list[dict[str, Any]]) -> str:
    """Rows (as the queries return them) as one CSV text, the export's columns and quoting."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows([_cell(row.get(c)) for c in CSV_COLUMNS] for row in rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = " ".join(value) if isinstance(value, list) else str(value)
    # A leading = + - @ would run as a formula when a spreadsheet opens the export.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def export_rows(
    store: AuditStore, viewer: Viewer, filters: Filters, request: Request
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    count, cursor = 0, None
    request.state.results = 0
    while True:
        page = search(store, viewer, filters, cursor, 500)
        for row in page.rows:
            writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
        count += len(page.rows)
        request.state.results = count
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        cursor = page.next_cursor
        if cursor is None:
            return
