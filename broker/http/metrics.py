"""GET /metrics: the Prometheus text exposition of this process's registry.

No token: the metrics are counts, latencies and ages labelled by outcome, reason code,
step, stream and agency, never an id or a person (broker/observe). Keep the port off the
public network all the same (deploy/k8s NetworkPolicy admits the monitoring namespace)."""

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import Response

# Refresh the scrape-time gauges, then render: (body, content type).
Scrape = Callable[[], Awaitable[tuple[bytes, str]]]


def metrics_router(scrape: Scrape) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = await scrape()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-cache"})

    return router
