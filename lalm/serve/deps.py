"""FastAPI dependencies of the routes: the app's settings, served models and metrics; the served model a
request names (`resolve_model`) and the check that it can do what the request asks (`require`).
(`async def`: FastAPI would run plain functions in its thread pool, a thread hop each per request.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from starlette.requests import HTTPConnection

from lalm.config import Settings
from lalm.errors import LalmError
from lalm.serve.prometheus import Metrics
from lalm.serve.registry import ModelRegistry, ServedModel

__all__ = ["MetricsDep", "ModelsDep", "SettingsDep", "require", "resolve_model"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _models(request: Request) -> ModelRegistry:
    return request.app.state.models


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
ModelsDep = Annotated[ModelRegistry, Depends(_models)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


def resolve_model(app_or_connection: FastAPI | HTTPConnection, name: str | None) -> ServedModel:
    """The served model called `name` (None: the gateway's first model), from the app or a request or
    WebSocket of it. Raises LalmError 404 `model_not_found` (param `model`) for a name it does not serve."""
    app = app_or_connection.app if isinstance(app_or_connection, HTTPConnection) else app_or_connection
    return app.state.models.get(name)


def require(model: ServedModel, *, chat: bool = False, task: str | None = None, translation: bool = False,
            language: str | None = None, param: str = "model") -> None:
    """Refuse, before any work, what `model` cannot do (its `capabilities`, listed by /v1/models): plain chat
    completions (`chat`), the task preset `task`, translation into English (`translation`), speech in
    `language` (an ISO 639-1 code; checked only where the model lists its languages). Raises LalmError 400
    `model_capability` naming the capability; its param is `param` (the request field that asked), `language`
    for the language."""
    caps = model.capabilities
    if chat and not caps.chat:
        why = "does not take chat completions (capabilities.chat is false): send a task preset it runs"
    elif task is not None and task not in caps.tasks:
        why = f"does not run the task {task!r} (capabilities.tasks: {', '.join(caps.tasks) or 'none'})"
    elif translation and not caps.translation:
        why = "does not translate (capabilities.translation is false)"
    elif language is not None and caps.languages is not None and _base(language) not in caps.languages:
        why = f"does not transcribe {language!r} (capabilities.languages: {', '.join(caps.languages)})"
        param = "language"
    else:
        return
    raise LalmError(f"The model {model.name!r} {why}; GET /v1/models says what each model can do.",
                    status=400, code="model_capability", param=param)


def _base(language: str) -> str:
    """The language of a tag without its region (`en-GB` -> `en`), lower case."""
    return language.lower().replace("_", "-").partition("-")[0]
