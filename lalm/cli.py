"""`lalm`: serve, train and evaluate audio-language models. Each area registers its commands from its own
module; heavy imports (torch, transformers, vLLM) happen inside commands so `lalm --help` is instant."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from lalm.modeling.cli import register as register_modeling
from lalm.serve.cli import register as register_serve
from lalm.train_dpo.cli import register as register_training

app = typer.Typer(
    name="lalm",
    help="Serve, train and evaluate Qwen2-Audio-style audio-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register_modeling(app)
register_serve(app)
register_training(app)


@app.command()
def transcribe(
    file: Annotated[Path, typer.Argument(help="Audio or video file (wav, flac, mp3, ogg, m4a, webm, mp4, mkv, mov).")],
    model: Annotated[Path, typer.Option(help="Qwen2-Audio checkpoint folder.")],
    task: Annotated[str, typer.Option(help="transcribe, translate, summarize, emotion, qa, describe.")] = "transcribe",
    question: Annotated[str | None, typer.Option(help="The question, for --task qa.")] = None,
    language: Annotated[str | None, typer.Option(help="Target language, for --task translate.")] = None,
    context: Annotated[str | None, typer.Option(help="Names or terms that help recognition.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens generated per 30 s window.")] = 256,
    timestamps: Annotated[bool, typer.Option(help="Print one timestamped line per segment.")] = False,
    output_format: Annotated[str, typer.Option(
        "--format", help="text, srt, vtt or verbose_json (with word times); subtitles for transcribe and translate.",
    )] = "text",
) -> None:
    """Run a task on a local file of any length with the transformers engine (no server needed)."""
    from lalm.audio import AudioError, decode_audio
    from lalm.engines.base import SamplingParams
    from lalm.engines.hf import HFEngine
    from lalm.serve.longform import run_task
    from lalm.tasks import TaskError, get_task

    if output_format not in ("text", "srt", "vtt", "verbose_json"):
        typer.echo("error: --format must be text, srt, vtt or verbose_json", err=True)
        raise typer.Exit(2)
    try:
        preset = get_task(task)
        if output_format != "text" and not preset.joins_windows:
            raise TaskError(f"--format {output_format} needs --task transcribe or translate.")
        audio = decode_audio(file)
    except (AudioError, TaskError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def go() -> None:
        engine = HFEngine(model)
        await engine.start()
        try:
            result = await run_task(engine, audio.samples, preset, SamplingParams(temperature=0, max_tokens=max_tokens),
                                    question=question, language=language, context=context,
                                    timestamps=timestamps or output_format != "text",
                                    word_language="en" if task == "translate" else None)
        finally:
            await engine.close()
        if output_format != "text":
            from lalm.serve.formats import render

            kind = "translate" if task == "translate" else "transcribe"
            response = render(output_format, result, task=kind, language=language, temperature=0.0, words=True)
            typer.echo(response.body.decode().rstrip("\n"))
        elif timestamps:
            for s in result.segments:
                typer.echo(f"[{s.start:8.2f} -> {s.end:8.2f}] {s.text}")
        else:
            typer.echo(result.text)

    try:
        asyncio.run(go())
    except TaskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app(prog_name="lalm", args=sys.argv[1:])


if __name__ == "__main__":
    main()
