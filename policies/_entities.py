"""The static Cedar entities a decision reads: who sends (Staff), what is disclosed (Disclosure).

Both are built once per bundle from its tables and vocabulary, so a request carries only
entity ids and three evidence facts: that keeps a decision to tens of microseconds.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from policies._schema import NAMESPACE, Vocabulary
from policies._tables import Staff

UNLISTED = "(unlisted)"  # the role id of every sender the relevant-persons table does not list


def ref(kind: str, eid: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{kind}", "id": eid}


def staff_uid(agency: str, role: str) -> str:
    return f"{agency}/{role}"  # `/` occurs in neither an agency nor an envelope's role


def disclosure_uid(recipient: str, kind: str, purpose: str, order_status: str) -> str:
    return f"{recipient}|{kind}|{purpose}|{order_status}"


def entities_json(staff: tuple[Staff, ...], vocabulary: Vocabulary) -> str:
    return json.dumps(_staff(staff, vocabulary) + _disclosures(vocabulary))


def _staff(staff: tuple[Staff, ...], vocabulary: Vocabulary) -> list[dict[str, Any]]:
    listed = [
        _entity(
            ref("Staff", staff_uid(s.agency, s.role)),
            {"agency": {"__entity": ref("Agency", s.agency)}},
            [ref("Purpose", p) for p in s.functions]
            + ([ref("Service", s.service)] if s.service else []),
        )
        for s in staff
    ]
    unlisted = [
        _entity(
            ref("Staff", staff_uid(a, UNLISTED)), {"agency": {"__entity": ref("Agency", a)}}, []
        )
        for a in vocabulary.agencies
    ]
    return listed + unlisted


def _disclosures(vocabulary: Vocabulary) -> list[dict[str, Any]]:
    product = itertools.product(
        vocabulary.agencies, vocabulary.kinds, vocabulary.purposes, vocabulary.order_statuses
    )
    return [
        _entity(
            ref("Disclosure", disclosure_uid(recipient, kind, purpose, status)),
            {
                "recipient": {"__entity": ref("Agency", recipient)},
                "kind": {"__entity": ref("Kind", kind)},
                "purpose": {"__entity": ref("Purpose", purpose)},
                "order_status": {"__entity": ref("OrderStatus", status)},
            },
            [],
        )
        for recipient, kind, purpose, status in product
    ]


def _entity(uid: dict[str, str], attrs: dict[str, Any], parents: list[Any]) -> dict[str, Any]:
    return {"uid": uid, "attrs": attrs, "parents": parents}
