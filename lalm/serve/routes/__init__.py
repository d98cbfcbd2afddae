"""The gateway's endpoints, one module per group; `ROUTERS` is what lalm.serve.app mounts."""

from lalm.serve.routes import audio, chat, health, metrics, models

ROUTERS = [chat.router, audio.router, models.router, health.router, metrics.router]

__all__ = ["ROUTERS"]
