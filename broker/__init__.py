"""s284-broker: sealed envelopes through a policy gateway on NATS JetStream.

The public face for agency systems and adapters: the wire vocabulary, the client SDK and
the errors it raises. Everything else in broker/ is the broker's own (see the README's
architecture section for which folder may import what).
"""

from broker.errors import (
    BrokerError,
    ConfigError,
    ReasonCode,
    ReceiptTimeoutError,
    Refusal,
    TransportError,
)
from broker.ids import new_id
from broker.sdk import AgencyClient, stop_event_on_signals
from broker.wire.envelope import (
    MAP_AGENCIES,
    Agency,
    Envelope,
    Kind,
    OrderStatus,
    Purpose,
    Receipt,
    Sender,
)
from broker.wire.payloads import BreachAction
from broker.wire.sealing import VerifiedDelivery

__all__ = [
    "MAP_AGENCIES",
    "Agency",
    "AgencyClient",
    "BreachAction",
    "BrokerError",
    "ConfigError",
    "Envelope",
    "Kind",
    "OrderStatus",
    "Purpose",
    "ReasonCode",
    "Receipt",
    "ReceiptTimeoutError",
    "Refusal",
    "Sender",
    "TransportError",
    "VerifiedDelivery",
    "new_id",
    "stop_event_on_signals",
]
