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


class StoreUnavailableError(AuditError):
    """The log's database cannot be reached or refused the operation; nothing was written.

    Callers retry later (the gateway stops consuming; the API answers 503). Raised in place
    of the driver's own errors, so no caller needs to know the store speaks SQL.
    """
