"""The gateway's FastAPI app: routes, error bodies, middlewares, and a lifespan that starts the engine
(for the vLLM engine: its child process, healthy before the first request is accepted) and stops it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from lalm.config import Settings, get_settings
from lalm.engines.base import Engine
from lalm.serve.apidoc import API_DESCRIPTION
from lalm.serve.auth import APIKeyAuth
from lalm.serve.backend import build_engine, served_model_name
from lalm.serve.errors import ServerErrors, install_error_handlers
from lalm.serve.limits import Limits
from lalm.serve.prometheus import Metrics, MetricsMiddleware
from lalm.serve.routes import ROUTERS

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The gateway for `settings` (default: the environment's). `engine` replaces the one the settings
    describe (tests, embedding); either way the app starts it on startup and closes it on shutdown."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or build_engine(settings)
        await app.state.engine.start()
        try:
            yield
        finally:
            await app.state.engine.close()

    app = FastAPI(title="lalm", version=version("lalm"), description=API_DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.model_name = served_model_name(settings)
    app.state.started = int(time.time())
    app.state.metrics = Metrics()
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # the last added runs first: count everything, refuse bad keys before limits, limits before the body,
    # and answer a bug's exception before it reaches the server
    app.add_middleware(ServerErrors)
    app.add_middleware(Limits, settings=settings)
    app.add_middleware(APIKeyAuth, keys=settings.api_keys)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, routes=app.router.routes)
    return app
