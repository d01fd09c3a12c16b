"""Hand-built frames for tests: what a buggy or hostile agency system might send."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.ids import new_id
from broker.wire.envelope import Agency, Envelope, Sender
from broker.wire.jose import jwe_encrypt, jws_sign
from broker.wire.keys import GATEWAY, Identity, KeyDirectory
from broker.wire.sealing import TYP_INGRESS


def envelope_dict(sender: str = "corrections", **overrides: Any) -> dict[str, Any]:
    env = Envelope(
        sender=Sender(
            agency=Agency(sender), unit="north", person_id="staff-0042", role="case_manager"
        ),
        kind="risk.update",
        purpose="offender_management",
        offender="S284-000123",
        recipients=[Agency.POLICE],
    )
    data = json.loads(env.model_dump_json())
    data.update(overrides)
    return data


def craft(
    signer: Identity,
    directory: KeyDirectory,
    envelope: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    *,
    seal_to: str = GATEWAY,
    kid: str | None = None,
    claims_override: dict[str, Any] | None = None,
    agency: str | None = None,
) -> tuple[str, bytes]:
    """Return (message id, frame) built from raw dicts, bypassing model validation."""
    env = envelope or envelope_dict()
    content = {"envelope": env, "payload": payload or {"risk_level": "moderate"}}
    enc = directory.encryption_key_for(seal_to)
    sealed = jwe_encrypt(json.dumps(content).encode(), enc.x25519, enc.kid, {"s284_id": env["id"]})
    claims = {
        "s284": 1,
        "id": env["id"],
        "created_at": env["created_at"],
        "agency": agency or env["sender"]["agency"],
        "sealed": sealed,
    }
    claims.update(claims_override or {})
    token = jws_sign(
        json.dumps(claims).encode(), signer.signing, kid or signer.sig_kid, TYP_INGRESS
    )
    return env["id"], token.encode()


def stale_created_at(minutes: int = 10) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def fresh_id() -> str:
    return new_id()
