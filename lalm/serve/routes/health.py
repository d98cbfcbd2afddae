"""GET /health: 200 when every served model's engine can take requests (for the vLLM engine: an upstream vLLM
answers its own /health), else 503 naming the models that cannot, so a load balancer stops sending traffic
while vLLM restarts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lalm.serve.deps import ModelsDep

router = APIRouter(tags=["operations"])


@router.get("/health", responses={503: {"description": "A model's engine (or every upstream vLLM) is down."}})
async def health(models: ModelsDep) -> JSONResponse:
    down = await models.not_ready()
    if not down:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable", "detail": f"The engine of {', '.join(down)} is not ready "
                                                            "(starting, restarting or down)."}, status_code=503)
