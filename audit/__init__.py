"""The disclosure log: one append-only record per disclosure and per refusal.

Placeholder store for the core broker; the verifiable Merkle log arrives in issue 4
behind the same `AuditStore.append` interface. Knows nothing of NATS or HTTP.
"""

from audit._records import AuditRecord, SeenMessage
from audit._store import AuditStore

__all__ = ["AuditRecord", "AuditStore", "SeenMessage"]
