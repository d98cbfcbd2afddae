"""Prometheus metrics of the gateway, served at /metrics: requests by route and status, latency, audio
seconds processed, upstream errors. Each app has its own registry, so several apps in one process (tests)
do not mix their counts. Under `lalm serve --workers N` (PROMETHEUS_MULTIPROC_DIR set, lalm.serve.workers)
the values live in files shared by the workers and /metrics renders the sum over all of them
(prometheus_client's multiprocess mode; requests in flight as the sum over live workers). (Training and
evaluation metrics live in lalm/metrics.py.)"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The gateway's counters, gauges and histograms, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lalm_requests", "HTTP requests answered, by route template and status.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("lalm_request_duration_seconds", "Time from request to the end of the response.",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("lalm_requests_in_flight", "Requests being served now.", registry=self.registry,
                               multiprocess_mode="livesum")
        self.audio_seconds = Counter("lalm_audio_seconds", "Seconds of audio decoded from requests, by route.",
                                     ["route"], registry=self.registry)
        self.upstream_errors = Counter("lalm_upstream_errors", "Engine or upstream vLLM failures, by error code.",
                                       ["code"], registry=self.registry)

    def render(self) -> bytes:
        """The text exposition: this app's registry, or every worker's values in multiprocess mode."""
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not its raw path, which would make a label per
    URL) and the status it was answered with, and times it to the end of its response."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def route_of(self, scope: Scope) -> str:
        """The route template the request went to, or would have gone to had a middleware (auth, limits)
        not answered it first."""
        route = scope.get("route")
        if route is None:
            route = next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)
        return getattr(route, "path", "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = self.route_of(scope)
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)
