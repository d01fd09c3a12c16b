"""Policy bundles archived by version, and a recorded decision re-run against its own bundle.

A bundle's version is a content hash of the files that decide (`_engine._version`), so a
copy of exactly those files is a content-addressed archive: `<root>/<version>/` loads back
to an engine whose version is that name, or the copy was altered and is refused. The
gateway archives every bundle it loads (on start and on reload); `s284 audit explain`
and the API re-run a logged decision with the archived bundle that made it.

Knows nothing of the log: a recorded decision comes in as plain values
(`RecordedDecision.from_record` reads the documented canonical record members).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies._engine import CedarPolicyEngine, load_bundle
from policies._errors import PolicyBundleError
from policies._model import Decision, PolicyRequest
from policies._schema import SCHEMA_FILE
from policies._tables import MINIMISATION_FILE, PERSONS_FILE

_INPUTS = (
    "sender_agency",
    "sender_role",
    "recipient_agency",
    "kind",
    "purpose",
    "order_status",
)
# The gateway's words around a policy reason (broker/gateway/steps.py), stripped to compare.
_PUSHED = "pushed to a subscriber: "


class BundleNotArchivedError(PolicyBundleError):
    """The bundle version a record names is not in the archive (or its copy was altered)."""


class BundleArchive:
    """`<root>/<version>/`: the deciding files of every bundle the gateway has loaded."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def in_home(cls, home: Path) -> BundleArchive:
        """The archive of a deployment home: `<home>/bundles/` (docs/oversight.md)."""
        return cls(Path(home) / "bundles")

    def store(self, engine: CedarPolicyEngine) -> Path:
        """Copy `engine`'s deciding files under its version, once; the folder's path."""
        target = self.root / engine.version
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        for path in _deciding_files(engine.path):
            shutil.copy2(path, staging / path.name)
        try:
            staging.rename(target)  # atomic: a reader never sees half a bundle
        except OSError:  # another gateway archived the same version first
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def load(self, version: str) -> CedarPolicyEngine:
        """The archived bundle `version`; BundleNotArchivedError if absent or altered."""
        if not version or "/" in version or version.startswith("."):
            raise BundleNotArchivedError(f"not a bundle version: {version!r}")
        folder = self.root / version
        if not folder.is_dir():
            raise BundleNotArchivedError(
                f"policy bundle {version} is not archived in {self.root}: the decision "
                "cannot be re-run (was the archive moved, or the record written elsewhere?)"
            )
        try:
            engine = load_bundle(folder)
        except PolicyBundleError as exc:
            raise BundleNotArchivedError(
                f"the archived copy of {version} does not load: it was altered ({exc})"
            ) from None
        if engine.version != version:
            raise BundleNotArchivedError(
                f"the archived copy of {version} hashes to {engine.version}: it was altered"
            )
        return engine


def _deciding_files(root: Path) -> list[Path]:
    return [
        root / SCHEMA_FILE,
        root / PERSONS_FILE,
        root / MINIMISATION_FILE,
        *root.glob("*.cedar"),
    ]


@dataclass(frozen=True)
class RecordedDecision:
    """What a record says was decided, on which inputs, by which bundle version."""

    record_id: str
    version: str
    request: PolicyRequest
    outcome: str  # "permit" | "deny" | "error"
    policy_ids: tuple[str, ...]
    reason: str

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RecordedDecision:
        """From a canonical record (docs/audit-format.md 1.1); PolicyBundleError if it
        carries no decision inputs (format version 1, or an event that decides nothing)."""
        record_id = str(record.get("record_id"))
        inputs = record.get("inputs")
        version = record.get("policy_version")
        if not isinstance(inputs, Mapping) or not isinstance(version, str):
            raise PolicyBundleError(
                f"record {record_id} carries no decision inputs (it is not a policy decision, "
                "or was written before format version 2): it cannot be re-run"
            )
        return cls(
            record_id,
            version,
            _request(inputs),
            _outcome(record),
            tuple(record.get("policy_ids") or ()),
            str(record.get("reason", "")),
        )


def _request(inputs: Mapping[str, Any]) -> PolicyRequest:
    """The request the engine saw. The evidence is rebuilt as text of the recorded length
    (or a placeholder): the policies read only its length and presence."""
    length = int(inputs.get("justification_length") or 0)
    return PolicyRequest(
        **{name: str(inputs[name]) for name in _INPUTS},
        justification="x" * length if length else None,
        consent_reference="(present)" if inputs.get("has_consent_reference") else None,
        law_reference="(present)" if inputs.get("has_law_reference") else None,
    )


def _outcome(record: Mapping[str, Any]) -> str:
    if record.get("reason_code") == "policy.error":
        return "error"
    return "permit" if record.get("decision") == "permit" else "deny"


@dataclass(frozen=True)
class Replay:
    """A recorded decision beside the same decision re-run; `differences` empty if equal."""

    recorded: RecordedDecision
    rerun: Decision
    where: dict[str, str]  # policy id -> file:line and ground, in the re-run bundle
    differences: tuple[str, ...]

    @property
    def same(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        """The documented explain answer (docs/oversight.md), for the API and the CLI."""
        recorded, rerun = self.recorded, self.rerun
        return {
            "record_id": recorded.record_id,
            "policy_version": recorded.version,
            "inputs": _inputs_of(recorded.request),
            "recorded": {
                "outcome": recorded.outcome,
                "policy_ids": list(recorded.policy_ids),
                "reason": recorded.reason,
            },
            "rerun": {
                "outcome": rerun.outcome,
                "policy_ids": list(rerun.policy_ids),
                "reason": rerun.reason,
                "where": dict(self.where),
            },
            "same": self.same,
            "differences": list(self.differences),
        }


def _inputs_of(request: PolicyRequest) -> dict[str, Any]:
    """The request as the record holds it: evidence as length and presence only."""
    return {
        **{name: getattr(request, name) for name in _INPUTS},
        "justification_length": len(request.justification or ""),
        "has_consent_reference": request.consent_reference is not None,
        "has_law_reference": request.law_reference is not None,
    }


def replay(recorded: RecordedDecision, archive: BundleArchive) -> Replay:
    """Re-run `recorded` with the archived bundle of its version and compare."""
    engine = archive.load(recorded.version)
    rerun = engine.decide(recorded.request)
    where = {policy_id: engine.where(policy_id) for policy_id in rerun.policy_ids}
    return Replay(recorded, rerun, where, _differences(recorded, rerun))


def _differences(recorded: RecordedDecision, rerun: Decision) -> tuple[str, ...]:
    found = []
    if recorded.outcome != rerun.outcome:
        found.append(f"outcome: recorded {recorded.outcome}, re-run {rerun.outcome}")
    if recorded.policy_ids != rerun.policy_ids:
        found.append(
            f"policies: recorded {', '.join(recorded.policy_ids) or '(none)'}, "
            f"re-run {', '.join(rerun.policy_ids) or '(none)'}"
        )
    if rerun.outcome != "error" and not _same_reason(recorded, rerun.reason):
        found.append("reason: the recorded reason is not the re-run's")
    return tuple(found)


def _same_reason(recorded: RecordedDecision, reason: str) -> bool:
    """The gateway prefixes a refusal with its recipient and a pushed copy with its cause."""
    refused = f"disclosure to {recorded.request.recipient_agency}: {reason}"
    return recorded.reason in (reason, _PUSHED + reason, refused)
