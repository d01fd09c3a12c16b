"""The bundle's Cedar schema (JSON form), and the enumerations the engine reads from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from policies._errors import PolicyBundleError

NAMESPACE = "S284"
SCHEMA_FILE = "schema.cedarschema.json"
ENUMS = ("Agency", "Role", "Kind", "Purpose", "OrderStatus", "Service")


@dataclass(frozen=True)
class Vocabulary:
    """The values the schema declares for each enumerated entity type."""

    agencies: tuple[str, ...]
    roles: tuple[str, ...]
    kinds: tuple[str, ...]
    purposes: tuple[str, ...]
    order_statuses: tuple[str, ...]
    services: tuple[str, ...]

    def for_field(self, name: str) -> tuple[str, ...] | None:
        """The declared values of a request field, or None if the field is free text."""
        return {
            "sender_agency": self.agencies,
            "recipient_agency": self.agencies,
            "kind": self.kinds,
            "purpose": self.purposes,
            "order_status": self.order_statuses,
        }.get(name)


@dataclass(frozen=True)
class LoadedSchema:
    text: str
    cedar: cedarpy.Schema
    vocabulary: Vocabulary


def load_schema(root: Path) -> LoadedSchema:
    path = root / SCHEMA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyBundleError(f"cannot read the schema: {exc.strerror}", file=path) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyBundleError(f"not valid JSON: {exc.msg}", file=path, line=exc.lineno) from None
    try:
        cedar = cedarpy.Schema.from_json_str(text)
    except ValueError as exc:
        raise PolicyBundleError(f"not a valid Cedar schema: {exc}", file=path) from None
    return LoadedSchema(text, cedar, _vocabulary(document, path))


def _vocabulary(document: Any, path: Path) -> Vocabulary:
    types = _entity_types(document, path)
    values = [_enum(types, name, path) for name in ENUMS]
    return Vocabulary(*values)


def _entity_types(document: Any, path: Path) -> dict[str, Any]:
    namespace = document.get(NAMESPACE) if isinstance(document, dict) else None
    types = namespace.get("entityTypes") if isinstance(namespace, dict) else None
    if not isinstance(types, dict):
        raise PolicyBundleError(
            f"the schema must declare namespace {NAMESPACE} with entityTypes",
            file=path,
            field=f"{NAMESPACE}.entityTypes",
        )
    return types


def _enum(types: dict[str, Any], name: str, path: Path) -> tuple[str, ...]:
    values = types.get(name, {}).get("enum") if isinstance(types.get(name), dict) else None
    if not isinstance(values, list) or not values:
        raise PolicyBundleError(
            f"the schema must declare entity {name} as an enum of its values",
            file=path,
            field=f"{NAMESPACE}.entityTypes.{name}",
        )
    return tuple(str(v) for v in values)
