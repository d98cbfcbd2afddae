"""`lalm`: serve, train and evaluate audio-language models. Each area registers its commands from its own
module; heavy imports (torch, transformers, vLLM) happen inside commands so `lalm --help` is instant."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lalm.default_model.cli import register as register_default_model
from lalm.modeling.cli import register as register_modeling
from lalm.serve.cli import register as register_serve
from lalm.train_dpo.cli import register as register_training
from lalm.train_dpo.cli import train_app

if TYPE_CHECKING:
    from lalm.screen_text import ScreenText

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
register_default_model(train_app)  # `lalm train default-model`


@app.command()
def transcribe(
    file: Annotated[Path, typer.Argument(help="Audio or video file (wav, flac, mp3, ogg, m4a, webm, mp4, mkv, mov).")],
    model: Annotated[str, typer.Option(
        help="A built-in model name (default: Whisper base hears, SmolLM2 answers; whisper-base, whisper-tiny.en, "
        "default-lalm), a faster-whisper/CTranslate2 or Hugging Face Whisper folder, or a Qwen2-Audio folder.",
    )] = "default",
    task: Annotated[str, typer.Option(help="transcribe, translate, summarize, emotion, qa, describe.")] = "transcribe",
    question: Annotated[str | None, typer.Option(help="The question, for --task qa.")] = None,
    language: Annotated[str | None, typer.Option(help="The spoken language (ISO 639-1, e.g. en, fr); default: "
                                                      "the model decides.")] = None,
    context: Annotated[str | None, typer.Option(help="Names or terms that help recognition.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens generated per 30 s window.")] = 256,
    timestamps: Annotated[bool, typer.Option(help="Print one timestamped line per window.")] = False,
    output_format: Annotated[str, typer.Option(
        "--format", help="text, srt, vtt or verbose_json (with word times); subtitles for transcribe and translate.",
    )] = "text",
    screen_text: Annotated[bool | None, typer.Option(
        "--screen-text/--no-screen-text",
        help="For a video: read its on-screen text (slides, subtitles) as each window's context, as the server "
        "does with lalm_screen_text. Default: the screen_text setting (LALM_SCREEN_TEXT).",
        show_default=False,
    )] = None,
) -> None:
    """Run a task on a local file of any length in-process (no server needed), with the same transcription job
    as the server's endpoints (lalm.job). The file is decoded and cut into windows as it is read, with no size or
    length limit, and the answer is printed as the windows are done. With --screen-text the lines read from the
    picture are listed in verbose_json, or on stderr for the other formats. --task translate translates into
    English."""
    from lalm.audio import decode_chunks
    from lalm.config import Settings
    from lalm.formats import FORMATS, render
    from lalm.job import JobOptions, read_screen, run_job, stream_job
    from lalm.longform.windows import WindowStream
    from lalm.screen_text import screen_changes
    from lalm.serve.backend import local_engine
    from lalm.tasks import TaskError, get_task

    if output_format not in FORMATS or output_format == "json":
        typer.echo("error: --format must be text, srt, vtt or verbose_json", err=True)
        raise typer.Exit(2)

    async def go() -> None:
        preset = get_task(task)
        if output_format != "text" and not preset.joins_windows:
            raise TaskError(f"--format {output_format} needs --task transcribe or translate.")
        settings = Settings()
        screen = None
        if screen_text if screen_text is not None else settings.screen_text:
            screen = await asyncio.to_thread(read_screen, file, settings)
        # a local file: no upload limits; transcripts get windows of speech only (the VAD cuts them), also cut
        # where the slide changes when the screen is read
        cuts = screen_changes(screen.lines) if screen is not None and preset.joins_windows else ()
        windows = WindowStream(decode_chunks(file), speech_only=preset.joins_windows, cuts=cuts)
        await windows.prime()  # problems at the start of the file are reported before the model loads
        # transcripts and translations get the temperature fallback of the transcription endpoints
        options = JobOptions(task=task, language=language, prompt=context, question=question, max_tokens=max_tokens,
                             screen=screen.lines if screen is not None else None,
                             word_timestamps=output_format != "text")
        engine = local_engine(model, settings)
        await engine.start()
        try:
            if output_format != "text":
                # subtitles and word times need every window's words aligned: the whole result, then printed
                result = await run_job(engine, windows, options, settings)
                kind = "translate" if task == "translate" else "transcribe"
                spoken = "english" if kind == "translate" else language or result.language
                body = render(output_format, result, task=kind, language=spoken,
                              words=True, screen_lines=screen.lines if screen is not None else None,
                              warnings=[screen.warning] if screen is not None and screen.warning else ())
                if output_format != "verbose_json":  # verbose_json holds the lines and warnings itself
                    _report_screen_text(screen)
                typer.echo(json.dumps(body) if isinstance(body, dict) else body.rstrip("\n"))
                return
            _report_screen_text(screen)
            async for event in stream_job(engine, windows, options, settings, live=False):
                if timestamps and event.segment is not None:
                    s = event.segment
                    typer.echo(f"[{s.start:8.2f} -> {s.end:8.2f}] {s.text}")
                elif not timestamps and event.text:
                    typer.echo(event.text, nl=False)
            if not timestamps:
                typer.echo()
        finally:
            await engine.close()

    asyncio.run(go())


def _report_screen_text(screen: ScreenText | None) -> None:
    """The on-screen lines read and any warning, on stderr (stdout holds the answer or the subtitles)."""
    if screen is None:
        return
    for line in screen.lines:
        typer.echo(f"screen text [{line.start:8.2f} -> {line.end:8.2f}] {line.text}", err=True)
    if screen.warning:
        typer.echo(f"warning: {screen.warning}", err=True)


def main() -> None:
    """The `lalm` command. A LalmError from any command is the user's to fix (a missing folder, a bad file, a
    wrong option): printed as one line, `error: <message>`, with exit status 2, never as a traceback."""
    from lalm.errors import LalmError

    try:
        app(prog_name="lalm", args=sys.argv[1:])
    except LalmError as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
