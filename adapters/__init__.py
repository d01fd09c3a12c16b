"""Agency adapters: Police, Corrections, DFFH and Health systems exchanging updates through
the broker's client SDK, in their own formats (issue 6)."""

from adapters._config import AdapterConfig, read_offender_map, write_offender_map
from adapters._core import Adapter, Stalled
from adapters._model import (
    AdapterError,
    AgencyModule,
    Outbound,
    Outgoing,
    SourceRecord,
    Unmappable,
)
from adapters._state import AdapterState, QuarantineRow, SendStatus

__all__ = [
    "Adapter",
    "AdapterConfig",
    "AdapterError",
    "AdapterState",
    "AgencyModule",
    "Outbound",
    "Outgoing",
    "QuarantineRow",
    "SendStatus",
    "SourceRecord",
    "Stalled",
    "Unmappable",
    "read_offender_map",
    "write_offender_map",
]
