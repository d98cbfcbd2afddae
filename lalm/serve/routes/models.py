"""GET /v1/models: the one model this gateway serves."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lalm.serve.deps import check_model
from lalm.serve.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter(tags=["models"])


def _card(request: Request) -> ModelCard:
    return ModelCard(id=request.app.state.model_name, created=request.app.state.started)


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """The served model (its name is what requests put in `model`)."""
    return ModelList(data=[_card(request)])


@router.get("/v1/models/{model:path}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
async def retrieve_model(model: str, request: Request) -> ModelCard:
    check_model(model, request)
    return _card(request)
