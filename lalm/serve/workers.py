"""`lalm serve --workers N`: N gateway processes on one port, over one vLLM server per served model.

uvicorn's process manager binds the socket once and starts N worker processes that accept on it (the kernel
spreads connections between them); it restarts a worker that dies. Each worker builds the app from the
settings this parent hands it (an environment variable, since uvicorn starts workers as fresh
interpreters). The vLLM servers the gateway manages (one per model) are started here, once, together, before
the workers, supervised (restarted when one dies) and stopped after them; the workers reach them as their
upstreams, so their /health follows them. Metrics use prometheus_client's multiprocess mode: every worker
writes its counters to files in a private folder (PROMETHEUS_MULTIPROC_DIR), and /metrics on any worker adds
up all of them. Limits (max_concurrency, realtime_max_sessions) are each worker's own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from lalm.config import ModelSpec, Settings
from lalm.errors import LalmError
from lalm.serve.backend import engine_key, engine_kind, vllm_process

if TYPE_CHECKING:
    from lalm.engines.vllm_process import VLLMProcess

__all__ = ["SETTINGS_ENV", "serve_workers", "worker_app"]

# The settings of the workers, as JSON (the parent's, with the managed vLLM as upstream)
SETTINGS_ENV = "LALM_WORKER_SETTINGS_JSON"

log = logging.getLogger("lalm.serve")


def serve_workers(settings: Settings, log_level: str) -> None:
    """Serve with `settings.workers` processes until SIGINT/SIGTERM (see the module docstring). Raises
    LalmError for a model on an in-process engine, which every worker would load on its own."""
    specs = settings.model_specs()
    if in_process := [s.name for s in specs if engine_kind(s) != "vllm"]:
        raise LalmError(f"--workers needs the vLLM engine for every model: with an in-process engine every worker "
                        f"would load the model into its own memory ({', '.join(in_process)}).",
                        code="invalid_value")
    metrics_dir = tempfile.mkdtemp(prefix="lalm-metrics-")
    processes: list[VLLMProcess] = []
    try:
        specs = _upstreams_of_started(specs, settings, processes)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ[SETTINGS_ENV] = _worker_settings(settings, specs).model_dump_json()
        uvicorn.run("lalm.serve.workers:worker_app", factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, log_level=log_level, timeout_graceful_shutdown=30)
    finally:
        for process in processes:
            process.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _upstreams_of_started(specs: list[ModelSpec], settings: Settings,
                          processes: list[VLLMProcess]) -> list[ModelSpec]:
    """`specs`, each model without upstreams served by a vLLM server started here (one per model: names of
    one model share it), supervised; the servers are appended to `processes` as they are made."""
    started: dict[tuple, VLLMProcess] = {}
    for spec in specs:
        if not spec.upstreams:
            key = engine_key(spec)
            if key not in started:
                started[key] = vllm_process(spec, settings)
                processes.append(started[key])
    if processes:
        log.info("starting vLLM for %d workers: %s", settings.workers,
                 ", ".join(p.served_model_name for p in processes))
        with ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(lambda p: p.start(timeout=settings.vllm_startup_timeout_s), processes))
    for process in processes:
        threading.Thread(target=process.supervise, kwargs={"timeout": settings.vllm_startup_timeout_s},
                         name="vllm-supervisor", daemon=True).start()
    out = []
    for spec in specs:
        if spec.upstreams:
            out.append(spec)
            continue
        process = started[engine_key(spec)]
        # a server serves its model under its first name; the workers send each name's requests there
        out.append(spec.model_copy(update={"upstreams": [process.url]}))
    return out


def _worker_settings(settings: Settings, specs: list[ModelSpec]) -> Settings:
    """`settings` serving exactly `specs` (the models as clients of the servers started for them)."""
    return settings.model_copy(update={"model": [], "models_file": None, "served_model_name": None,
                                       "upstreams": [], "models": specs})


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn's factory), from the settings the parent put in SETTINGS_ENV."""
    from lalm.serve.app import create_app

    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))
