"""CLI commands that make checkpoints: `lalm make-tiny`, `lalm assemble`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def make_tiny(
    out: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
) -> None:
    """Build a tiny random Qwen2-Audio checkpoint (~2 MB, seconds, no download) for tests and demos."""
    from lalm.modeling.tiny import make_tiny as build

    typer.echo(build(out, seed=seed))


def register(app: typer.Typer) -> None:
    app.command("make-tiny")(make_tiny)
