"""s284-broker: sealed envelopes through a policy gateway on NATS JetStream."""

from broker.envelope import Agency, Envelope, Kind, Purpose, Receipt, Sender
from broker.errors import BrokerError, ReasonCode, Refusal
from broker.sdk import AgencyClient

__all__ = [
    "Agency",
    "AgencyClient",
    "BrokerError",
    "Envelope",
    "Kind",
    "Purpose",
    "ReasonCode",
    "Receipt",
    "Refusal",
    "Sender",
]
