"""The gateway's endpoints, one module per group; `ROUTERS` is what lalm.serve.app mounts."""

from lalm.serve.realtime import router as realtime
from lalm.serve.routes import audio, chat, health, metrics, models, playground

ROUTERS = [chat.router, audio.router, realtime.router, models.router, health.router, metrics.router,
           playground.router]

__all__ = ["ROUTERS"]
