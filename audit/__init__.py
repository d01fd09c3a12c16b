"""The disclosure log: an append-only, verifiable record of every disclosure and refusal.

Every record the broker writes is built by `audit.records` (one function per kind of
entry). Records are hashed into an RFC 9162 Merkle tree whose checkpoints are signed in
the C2SP signed-note format (docs/audit-format.md). Knows nothing of NATS or HTTP.

The read side (`search`, `accounting`, `refusals`, `review_queue`, `record_by_id`,
`access_log`) takes an `AuditStore` and a `Viewer`; who sees what is decided in SQL.
`statistics` counts a `Period` for oversight, from structured members only.
`disclosure_of` and `unconfirmed` (operators, the gateway) answer which disclosures a
recipient has confirmed taking. Every
store call the API makes raises `StoreUnavailableError` when the database fails it.
"""

from audit import _build as records
from audit._access import AccessEntry, AccessFilters, access_log
from audit._checkpoints import (
    Announcement,
    CheckpointKeeper,
    CheckpointSigner,
    LogForkError,
    announce,
    checkpoint,
    signed_checkpoint,
)
from audit._cosign import (
    AddCheckpoint,
    WitnessConflictError,
    WitnessKey,
    WitnessRefusedError,
    WitnessSigner,
    WitnessState,
    add_checkpoint,
)
from audit._cosign_store import (
    CosignatureRefusedError,
    Cosigned,
    QuorumOverdue,
    WitnessPolicy,
    WitnessStatus,
    add_cosignature,
    quorum_overdue,
    stored_cosignatures,
    witness_status,
)
from audit._errors import AuditError, NoteError, ProofError, StoreUnavailableError
from audit._merkle import leaf_hash, verify_consistency, verify_inclusion
from audit._note import Checkpoint, NoteVerifier, parse_verifier_key, verifier_key
from audit._query import (
    MAX_LIMIT,
    Filters,
    InvalidCursorError,
    Page,
    Viewer,
    accounting,
    by_time,
    record_by_id,
    refusals,
    review_queue,
    search,
)
from audit._received import Disclosed, disclosure_of, unconfirmed
from audit._records import GROUNDS, AuditRecord, Event, SeenMessage
from audit._signer import LogSigner
from audit._stats import Period, PeriodError, statistics
from audit._store import AppendResult, AuditStore, CheckpointRow, InclusionProof
from audit._stored import stored_canonical
from audit._verify import Problem, VerifyReport, verify_log

__all__ = [
    "GROUNDS",
    "MAX_LIMIT",
    "AccessEntry",
    "AccessFilters",
    "AddCheckpoint",
    "Announcement",
    "AppendResult",
    "AuditError",
    "AuditRecord",
    "AuditStore",
    "Checkpoint",
    "CheckpointKeeper",
    "CheckpointRow",
    "CheckpointSigner",
    "CosignatureRefusedError",
    "Cosigned",
    "Disclosed",
    "Event",
    "Filters",
    "InclusionProof",
    "InvalidCursorError",
    "LogForkError",
    "LogSigner",
    "NoteError",
    "NoteVerifier",
    "Page",
    "Period",
    "PeriodError",
    "Problem",
    "ProofError",
    "QuorumOverdue",
    "SeenMessage",
    "StoreUnavailableError",
    "VerifyReport",
    "Viewer",
    "WitnessConflictError",
    "WitnessKey",
    "WitnessPolicy",
    "WitnessRefusedError",
    "WitnessSigner",
    "WitnessState",
    "WitnessStatus",
    "access_log",
    "accounting",
    "add_checkpoint",
    "add_cosignature",
    "announce",
    "by_time",
    "checkpoint",
    "disclosure_of",
    "leaf_hash",
    "parse_verifier_key",
    "quorum_overdue",
    "record_by_id",
    "records",
    "refusals",
    "review_queue",
    "search",
    "signed_checkpoint",
    "statistics",
    "stored_canonical",
    "stored_cosignatures",
    "unconfirmed",
    "verifier_key",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "witness_status",
]
