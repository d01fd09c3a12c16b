"""Operators' metrics (Prometheus, `prometheus-client`): what the gateway did, how long
each step took, the log, the consumers' lag, alerts waiting and unconfirmed deliveries.

`Metrics` holds one registry per process part (never the global one); the gateway feeds
it through its observer hook, `refresh` reads the gauges at scrape time, and
`ObservedAlerts` times acknowledgements. The HTTP layer serves `Metrics.render` on
`/metrics` (broker/http/metrics.py); deploy/README.md lists every name.
"""

from broker.observe._alerts import ObservedAlerts
from broker.observe._gauges import UNCONFIRMED_BOUND, LagSource, Sources, refresh
from broker.observe._metrics import Metrics

__all__ = ["UNCONFIRMED_BOUND", "LagSource", "Metrics", "ObservedAlerts", "Sources", "refresh"]
