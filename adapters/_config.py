"""An adapter's config file (YAML or JSON): one frozen settings object.

```yaml
agency: health
home: ../var/s284            # the broker deployment home (keys, NATS credentials)
source: in                   # folder the agency system drops files into
destination: out             # folder deliveries are written to, in the agency's format
state_dir: state             # the adapter's SQLite state
mapping: offenders.csv       # local_id,offender_ref  (agency id -> S284-NNNNNN)
poll_interval_s: 1.0
webhook_port: 8290           # police only: the FastAPI webhook (POST /events)
```
Relative paths are relative to the config file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters._model import AdapterError
from broker import Agency

_PATHS = ("home", "source", "destination", "state_dir", "mapping")


class AdapterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agency: Agency
    home: Path
    source: Path
    destination: Path
    state_dir: Path
    mapping: Path | None = None
    poll_interval_s: float = Field(default=1.0, gt=0)
    receipt_timeout_s: float = Field(default=15.0, gt=0)
    webhook_host: str = "127.0.0.1"
    webhook_port: int | None = Field(default=None, ge=0, le=65535)

    @classmethod
    def load(cls, path: Path) -> AdapterConfig:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise AdapterError(f"cannot read adapter config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise AdapterError(f"adapter config {path} must be a mapping of settings")
        return cls.parse(data, path.parent)

    @classmethod
    def parse(cls, data: dict[str, Any], base: Path) -> AdapterConfig:
        resolved = {k: (base / v if k in _PATHS and v is not None else v) for k, v in data.items()}
        try:
            return cls.model_validate(resolved)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise AdapterError(f"adapter config: {where}: {first['msg']}") from None


def read_offender_map(path: Path | None) -> dict[str, str]:
    """The mapping file: CSV with a header `local_id,offender_ref`."""
    if path is None:
        return {}
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise AdapterError(f"cannot read offender map {path}: {exc.strerror}") from None
    if rows and not {"local_id", "offender_ref"} <= set(rows[0]):
        raise AdapterError(f"offender map {path} needs the header local_id,offender_ref")
    return {r["local_id"].strip(): r["offender_ref"].strip() for r in rows if r["local_id"]}


def write_offender_map(path: Path, pairs: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["local_id", "offender_ref"])
        writer.writerows(sorted(pairs.items()))
