"""FastAPI dependencies of the routes: the app's settings, engine and metrics, and the model-name check.
(`async def`: FastAPI would run plain functions in its thread pool, a thread hop each per request.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lalm.config import Settings
from lalm.engines.base import Engine
from lalm.errors import LalmError
from lalm.serve.prometheus import Metrics

__all__ = ["EngineDep", "MetricsDep", "SettingsDep", "check_model"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


def check_model(model: str, request: Request) -> None:
    """404 unless `model` is the name this gateway serves (as OpenAI and vLLM answer)."""
    served = request.app.state.model_name
    if model != served:
        raise LalmError(f"The model {model!r} does not exist; this server serves {served!r}.", status=404,
                        param="model", code="model_not_found")

