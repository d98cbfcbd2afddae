"""GET /v1/models: the models this gateway serves, each with what it can do (the lalm extra `lalm`)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from lalm.serve.deps import ModelsDep, resolve_model
from lalm.serve.protocol import ErrorResponse, ModelCapabilities, ModelCard, ModelList
from lalm.serve.registry import ServedModel

router = APIRouter(tags=["models"])


def _card(model: ServedModel, created: int) -> ModelCard:
    return ModelCard(id=model.name, created=created,
                     lalm=ModelCapabilities(**asdict(model.capabilities), engine=model.kind,
                                            weights_bytes=model.weights_bytes))


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request, models: ModelsDep) -> ModelList:
    """The served models (a model's `id` is what requests put in `model`), with what each can do."""
    return ModelList(data=[_card(m, request.app.state.started) for m in models])


@router.get("/v1/models/{model:path}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
async def retrieve_model(model: str, request: Request) -> ModelCard:
    """One served model, with what it can do."""
    return _card(resolve_model(request, model), request.app.state.started)
