"""The audit package's one error hierarchy.

Callers catch `AuditError` to handle everything the package raises on purpose; the
children say which guarantee failed, so a CLI or API can map them to exit codes.
"""


class AuditError(Exception):
    """Base of every error the audit package raises on purpose."""


class ProofError(AuditError):
    """A Merkle inclusion or consistency proof is malformed, unavailable or does not verify."""


class NoteError(AuditError):
    """A signed note or checkpoint is malformed or carries no valid signature from the key."""
