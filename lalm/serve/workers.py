"""`lalm serve --workers N`: N gateway processes on one port, over one vLLM server.

uvicorn's process manager binds the socket once and starts N worker processes that accept on it (the kernel
spreads connections between them); it restarts a worker that dies. Each worker builds the app from the
settings this parent hands it (an environment variable, since uvicorn starts workers as fresh
interpreters). A vLLM server the gateway manages is started here, once, before the workers, supervised
(restarted when it dies) and stopped after them; the workers reach it as their upstream, so their /health
follows it. Metrics use prometheus_client's multiprocess mode: every worker writes its counters to files in
a private folder (PROMETHEUS_MULTIPROC_DIR), and /metrics on any worker adds up all of them. Limits
(max_concurrency, realtime_max_sessions) are each worker's own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading

import uvicorn
from fastapi import FastAPI

from lalm.config import Settings
from lalm.errors import LalmError
from lalm.serve.backend import engine_kind, vllm_process

__all__ = ["SETTINGS_ENV", "serve_workers", "worker_app"]

# The settings of the workers, as JSON (the parent's, with the managed vLLM as upstream)
SETTINGS_ENV = "LALM_WORKER_SETTINGS_JSON"

log = logging.getLogger("lalm.serve")


def serve_workers(settings: Settings, log_level: str) -> None:
    """Serve with `settings.workers` processes until SIGINT/SIGTERM (see the module docstring). Raises
    LalmError for the hf engine, which every worker would load on its own."""
    if engine_kind(settings) != "vllm":
        raise LalmError("--workers needs the vLLM engine: with the hf engine every worker would load the model "
                        "into its own memory.", code="invalid_value")
    metrics_dir = tempfile.mkdtemp(prefix="lalm-metrics-")
    process = None
    try:
        if not settings.upstreams:
            process = vllm_process(settings)
            log.info("starting vLLM for %d workers", settings.workers)
            process.start(timeout=settings.vllm_startup_timeout_s)
            threading.Thread(target=process.supervise, kwargs={"timeout": settings.vllm_startup_timeout_s},
                             name="vllm-supervisor", daemon=True).start()
            settings = settings.model_copy(update={"upstreams": [process.url]})
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run("lalm.serve.workers:worker_app", factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, log_level=log_level, timeout_graceful_shutdown=30)
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn's factory), from the settings the parent put in SETTINGS_ENV."""
    from lalm.serve.app import create_app

    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))
