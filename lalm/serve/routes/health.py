"""GET /health: 200 when the engine can take requests (for the vLLM engine: an upstream vLLM answers its own
/health), else 503, so a load balancer stops sending traffic while vLLM restarts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lalm.serve.deps import EngineDep

router = APIRouter(tags=["operations"])


@router.get("/health", responses={503: {"description": "The engine (or every upstream vLLM) is down."}})
async def health(engine: EngineDep) -> JSONResponse:
    if await engine.ready():
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable", "detail": "The model engine is not ready (starting, restarting "
                                                            "or down)."}, status_code=503)
