"""The playground: a page at `/` to try lalm in a browser (files, tasks, timestamps, live microphone
transcription). Static files under lalm/serve/static, served by the gateway itself, with no build step and
nothing loaded from elsewhere; the page talks to the public API only, like any other client."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "mount_static", "router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["playground"])


@router.get("/", include_in_schema=False)
async def playground() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """Serve the page's scripts and styles at /static."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
