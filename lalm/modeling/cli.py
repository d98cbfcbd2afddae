"""CLI commands that make checkpoints: `lalm make-tiny`, `lalm assemble`, `lalm convert-whisper`."""

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


def assemble(
    encoder: Annotated[str, typer.Option(help="Whisper encoder: a CTranslate2 folder (model.bin, e.g. faster-whisper) "
                                              "or a transformers Whisper folder, or the asset name whisper-tiny.en.")],
    llm: Annotated[str, typer.Option(help="LLM: a transformers folder or a .gguf file of a Qwen2- or Llama-family "
                                          "model (Llama is converted to Qwen2 layout exactly), or the asset name "
                                          "smollm2-135m-instruct.")],
    out: Annotated[Path, typer.Option(help="Folder to write the Qwen2-Audio checkpoint to.")],
    seed: Annotated[int, typer.Option(help="Random seed for the new projector.")] = 0,
    weights: Annotated[Path | None, typer.Option(help="Trained default-model weights to apply (models/default: "
                                                      "audio head + LoRA, sha256-checked); the result is the "
                                                      "default model.")] = None,
) -> None:
    """Assemble a new Qwen2-Audio checkpoint: a Whisper encoder + a projector (freshly initialised, to be trained)
    + an LLM, saved in the format vLLM and transformers load. Asset names are resolved from installed packages
    and their sha256 checked. With --weights, the trained default-model weights are applied on top."""
    import tempfile

    from lalm.errors import LalmError
    from lalm.modeling.assemble import assemble as build
    from lalm.modeling.trained_weights import build_default_model

    try:
        if weights is None:
            build(encoder=encoder, llm=llm, out=out, seed=seed, log=typer.echo)
        else:
            with tempfile.TemporaryDirectory(prefix="lalm-base-") as tmp:
                base = build(encoder=encoder, llm=llm, out=Path(tmp) / "base", seed=seed, log=typer.echo)
                build_default_model(weights, out, base=base, log=typer.echo)
    except LalmError as exc:  # a bad source, a missing asset, weights that are not the recorded ones
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def convert_whisper(
    src: Annotated[str, typer.Argument(help="A faster-whisper/CTranslate2 Whisper folder (model.bin), or 'base' / "
                                            "'tiny.en' for the Whisper weights lalm ships.")],
    dst: Annotated[Path, typer.Argument(help="New folder for the transformers Whisper checkpoint.")],
) -> None:
    """Convert a faster-whisper/CTranslate2 Whisper model into a transformers checkpoint that vLLM serves (through
    lalm's vLLM plugin, which fixes vLLM's Whisper prompts) and transformers loads."""
    from lalm.errors import LalmError
    from lalm.modeling.whisper import whisper_folder
    from lalm.modeling.whisper_convert import convert_ct2_to_hf

    try:
        folder = whisper_folder(src) if src in ("base", "tiny.en") and not Path(src).exists() else Path(src)
        convert_ct2_to_hf(folder, dst, log=typer.echo)
    except LalmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command("make-tiny")(make_tiny)
    app.command("assemble")(assemble)
    app.command("convert-whisper")(convert_whisper)
