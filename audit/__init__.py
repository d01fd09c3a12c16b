"""The disclosure log: an append-only, verifiable record of every disclosure and refusal.

Every record the broker writes is built by `audit.records` (one function per kind of
entry). Records are hashed into an RFC 9162 Merkle tree whose checkpoints are signed in
the C2SP signed-note format (docs/audit-format.md). Knows nothing of NATS or HTTP.
"""

from audit import _build as records
from audit._checkpoints import (
    Announcement,
    CheckpointKeeper,
    LogForkError,
    announce,
    checkpoint,
)
from audit._errors import AuditError, NoteError, ProofError, StoreUnavailableError
from audit._merkle import leaf_hash, verify_consistency, verify_inclusion
from audit._note import Checkpoint, NoteVerifier, parse_verifier_key, verifier_key
from audit._records import GROUNDS, AuditRecord, Event, SeenMessage
from audit._signer import LogSigner
from audit._store import AppendResult, AuditStore, CheckpointRow, InclusionProof
from audit._verify import Problem, VerifyReport, verify_log

__all__ = [
    "GROUNDS",
    "Announcement",
    "AppendResult",
    "AuditError",
    "AuditRecord",
    "AuditStore",
    "Checkpoint",
    "CheckpointKeeper",
    "CheckpointRow",
    "Event",
    "InclusionProof",
    "LogForkError",
    "LogSigner",
    "NoteError",
    "NoteVerifier",
    "Problem",
    "ProofError",
    "SeenMessage",
    "StoreUnavailableError",
    "VerifyReport",
    "announce",
    "checkpoint",
    "leaf_hash",
    "parse_verifier_key",
    "records",
    "verifier_key",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
