"""Witnesses of the disclosure log (C2SP tlog-witness), both sides.

An agency runs a witness on its own machine with its own key (`WitnessHome`, `witness_once`):
it fetches each new checkpoint and a consistency proof from the last one it cosigned,
checks them, and returns a cosignature. The broker's operator registers witness public keys
and the quorum (`registry`), and the broker raises an alert when the quorum is late
(`watch_quorum`).
"""

from broker.witness._client import WitnessHome, WitnessOutcome, witness_once
from broker.witness._registry import (
    check_quorum,
    cosigned_ages,
    load_policy,
    policy_path,
    save_policy,
    watch_quorum,
)

__all__ = [
    "WitnessHome",
    "WitnessOutcome",
    "check_quorum",
    "cosigned_ages",
    "load_policy",
    "policy_path",
    "save_policy",
    "watch_quorum",
    "witness_once",
]
