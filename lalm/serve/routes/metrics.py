"""GET /metrics: Prometheus text exposition of lalm.serve.prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from lalm.serve.deps import MetricsDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    """Requests by route and status, latency, audio seconds processed, upstream errors."""
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
