"""CLI commands that make checkpoints: `lalm make-tiny`, `lalm assemble`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def make_tiny(
    out: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
    shape: Annotated[str, typer.Option(help="tiny (~2 MB, tests) or small (real default-model shapes, ~600 MB, "
                                            "benchmarks).")] = "tiny",
) -> None:
    """Build a random Qwen2-Audio checkpoint in seconds, no download: for tests, demos and benchmarks."""
    from lalm.modeling.tiny import SHAPES
    from lalm.modeling.tiny import make_tiny as build

    if shape not in SHAPES:
        raise typer.BadParameter(f"choose one of {', '.join(SHAPES)}", param_hint="--shape")
    typer.echo(build(out, seed=seed, shape=shape))


def register(app: typer.Typer) -> None:
    app.command("make-tiny")(make_tiny)
