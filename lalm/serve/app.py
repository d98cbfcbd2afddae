"""The gateway's FastAPI app: routes, error bodies, middlewares, and a lifespan that starts the engines of the
served models (lalm.serve.registry; for the vLLM engine: its child process, healthy before the first request
is accepted) and stops them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from lalm.config import Settings, get_settings
from lalm.engines.base import Engine
from lalm.serve.apidoc import API_DESCRIPTION, install_docs
from lalm.serve.auth import APIKeyAuth
from lalm.serve.errors import ServerErrors, install_error_handlers
from lalm.serve.limits import Limits
from lalm.serve.prometheus import Metrics, MetricsMiddleware
from lalm.serve.registry import ModelRegistry
from lalm.serve.routes import ROUTERS
from lalm.serve.routes.playground import mount_static

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               engines: Mapping[str, Engine] | None = None) -> FastAPI:
    """The gateway for `settings` (default: the environment's). `engines` replaces the engines of the models
    it names, `engine` the engine of the first model (tests, embedding); either way the app starts every engine
    on startup and closes them on shutdown (lalm.serve.registry)."""
    settings = settings or get_settings()
    if engine is not None:
        engines = {settings.model_specs()[0].name: engine, **(engines or {})}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.models = ModelRegistry.from_settings(settings, engines)
        await app.state.models.start()
        try:
            yield
        finally:
            await app.state.models.close()

    # docs_url / redoc_url None: install_docs serves both pages with their assets, not from a CDN
    app = FastAPI(title="lalm", version=version("lalm"), description=API_DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.started = int(time.time())
    app.state.metrics = Metrics()
    app.state.realtime_sessions = 0
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_static(app)
    install_docs(app)
    # the last added runs first: count everything, refuse bad keys before limits, limits before the body,
    # and answer a bug's exception before it reaches the server
    app.add_middleware(ServerErrors)
    app.add_middleware(Limits, settings=settings)
    app.add_middleware(APIKeyAuth, keys=settings.api_keys)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, routes=app.router.routes)
    return app
