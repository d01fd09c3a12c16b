"""The broker's side: which witness keys count and how many must cosign how soon.

Kept as `witnesses.json` in the broker's home rather than in the signed key directory:
witness keys are C2SP note keys (type 0x04) read by verifiers of the log, not JOSE keys
agencies encrypt to; a witness need not be an agency (the Post-Sentence Authority, an
external auditor); and the directory's signing key sits in the same home, so it would
protect the list no better. An auditor who distrusts the host passes their own copy of the
list (`s284 audit verify --witnesses FILE`): the list only ever adds checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import structlog

from audit import (
    AuditError,
    AuditStore,
    QuorumOverdue,
    WitnessPolicy,
    quorum_overdue,
    witness_status,
)
from broker.errors import ConfigError

log = structlog.get_logger("s284.witness")

FILE = "witnesses.json"


def policy_path(home: Path) -> Path:
    return home / FILE


def load_policy(path: Path) -> WitnessPolicy:
    """The witness list; an absent file means no witnesses (and no quorum) yet."""
    if not path.is_file():
        return WitnessPolicy()
    try:
        return WitnessPolicy.from_json(path.read_text())
    except (OSError, AuditError) as exc:
        raise ConfigError(f"cannot read the witness list {path}: {exc}") from None


def save_policy(path: Path, policy: WitnessPolicy) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(policy.to_json() + "\n")
    tmp.replace(path)


def cosigned_ages(store: AuditStore, policy: WitnessPolicy) -> dict[str, float | None]:
    """Seconds since each registered witness's newest cosignature (None: never cosigned):
    the gauge an operator's /metrics exports."""
    return {s.witness: s.age_s for s in witness_status(store, policy, datetime.now(UTC))}


def check_quorum(store: AuditStore, policy_file: Path, alerted: set[int]) -> QuorumOverdue | None:
    """Log `witness_quorum_missed` (an operator alert) once per checkpoint that has waited
    longer than the policy allows for its quorum of cosignatures; return what is late."""
    late = quorum_overdue(store, load_policy(policy_file))
    if late is not None and late.size not in alerted:
        alerted.add(late.size)
        log.error(
            "witness_quorum_missed",
            size=late.size,
            cosigned_by=late.cosigned_by,
            quorum=late.quorum,
            waited_s=round(late.waited_s),
        )
    return late


async def watch_quorum(
    store: AuditStore, policy_file: Path, stop: asyncio.Event, every_s: float = 30.0
) -> None:
    """`check_quorum` every `every_s` seconds until `stop`."""
    alerted: set[int] = set()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        try:
            await asyncio.to_thread(check_quorum, store, policy_file, alerted)
        except (ConfigError, AuditError) as exc:
            log.warning("witness_check_failed", error=exc.__class__.__name__)
