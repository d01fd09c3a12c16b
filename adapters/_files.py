"""Readers for the file formats agency systems export: JSON, NDJSON, CSV."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from adapters._model import Outbound, Unmappable


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Unmappable("file.unreadable", f"cannot read {path.name}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise Unmappable("file.not_json", f"{path.name} line {exc.lineno}: {exc.msg}") from None


def read_ndjson(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed object or the Unmappable for that line) for each non-blank line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise Unmappable("file.unreadable", f"cannot read {path.name}: {exc}") from None
    out: list[tuple[int, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            out.append((number, Unmappable("record.not_json", f"line {number}: {exc.msg}")))
    return out


def read_csv(path: Path, required: set[str]) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = set(reader.fieldnames or [])
            missing = sorted(required - header)
            if missing:
                raise Unmappable(
                    "file.bad_header", f"{path.name} lacks column(s): {', '.join(missing)}"
                )
            return [dict(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise Unmappable("file.unreadable", f"cannot read {path.name}: {exc}") from None


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")


def publish_file(path: Path, content: bytes) -> None:
    """Write a dot-file, fsync it, then rename it: readers never see half a file, and the
    file survives a crash once this returns. Source systems should drop files this way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def export_type(path: Path, known: tuple[str, ...]) -> str:
    """An export's type from its file name prefix, e.g. `attendance-2026-03.csv`."""
    for name in known:
        if path.name.startswith(name):
            return name
    raise Unmappable(
        "file.unknown_export", f"{path.name}: name must start with one of {', '.join(known)}"
    )


def delivery_document(delivery: Outbound) -> dict[str, Any]:
    """A delivery as one JSON document: the envelope facts and the disclosed fields."""
    return {**delivery.summary(), "payload": delivery.payload}


def ndjson_bytes(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(i, sort_keys=True).encode("utf-8") + b"\n" for i in items)
