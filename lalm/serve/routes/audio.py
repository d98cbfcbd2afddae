"""POST /v1/audio/transcriptions and /v1/audio/translations (multipart, OpenAI fields), for recordings and
videos of any length: the upload is decoded and cut into windows of at most 30 s as it is read
(lalm.longform.windows), so memory stays flat however long it is."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from lalm.audio import AudioError, DecodeReport, decode_chunks
from lalm.config import Settings
from lalm.engines.base import Engine, SamplingParams
from lalm.errors import LalmError
from lalm.longform.fallback import Fallback
from lalm.longform.run import TaskOptions, run_task, stream_task
from lalm.longform.windows import WindowStream
from lalm.serve.cancel import cancel_on_disconnect
from lalm.serve.deps import EngineDep, MetricsDep, SettingsDep, check_model
from lalm.serve.errors import as_lalm_error
from lalm.serve.events import transcript_events
from lalm.serve.formats import render
from lalm.serve.prometheus import Metrics
from lalm.serve.protocol import (
    ErrorResponse,
    TranscriptionJson,
    TranscriptionRequest,
    TranscriptionVerbose,
    TranslationRequest,
)
from lalm.serve.screen import upload_screen_text, wanted
from lalm.serve.sse import primed, sse_response
from lalm.tasks import get_task, with_language_hint

router = APIRouter(tags=["audio"])

_RESPONSES = {
    200: {"description": "json / verbose_json as below; text and srt as text/plain, vtt as text/vtt; with "
                         "stream=true, text/event-stream.",
          "content": {"text/plain": {}, "text/vtt": {}, "text/event-stream": {}}},
    **{status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 502, 503, 504)},
}
_ROUTE = {"response_model": TranscriptionJson | TranscriptionVerbose, "responses": _RESPONSES}


@router.post("/v1/audio/transcriptions", **_ROUTE)
@cancel_on_disconnect
async def transcriptions(form: Annotated[TranscriptionRequest, Form()], request: Request, engine: EngineDep,
                         settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Transcribe speech in the language spoken. Audio longer than 30 s is cut into windows at pauses and
    the transcripts joined; verbose_json / srt / vtt get sentence-sized segments and cues with word times."""
    return await _answer(request, engine, settings, metrics, form)


@router.post("/v1/audio/translations", **_ROUTE)
@cancel_on_disconnect
async def translations(form: Annotated[TranslationRequest, Form()], request: Request, engine: EngineDep,
                       settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Translate speech into English, window by window like transcriptions."""
    return await _answer(request, engine, settings, metrics, form)


async def _answer(request: Request, engine: Engine, settings: Settings, metrics: Metrics,
                  form: TranscriptionRequest | TranslationRequest) -> Response:
    """Transcribe or translate (by the form's kind) the form's file and answer in its format."""
    task_name: Literal["transcribe", "translate"]
    if isinstance(form, TranscriptionRequest):
        # the spoken language is only a hint, given to the model with the client's prompt
        task_name, target, language = "transcribe", None, form.language
        context = with_language_hint(form.prompt, form.language)
    else:
        # a translation's target language is the task's; verbose_json reports it
        task_name, target, context, language = "translate", "English", form.prompt, "english"
    check_model(form.model, request)
    if form.stream and form.response_format not in ("json", "text"):
        raise LalmError("stream=true works with response_format json or text.", param="stream",
                        code="unsupported_value")
    logprobs = isinstance(form, TranscriptionRequest) and bool(form.include)
    if logprobs and form.response_format != "json":
        raise LalmError("include[]=logprobs works with response_format json.", param="include[]",
                        code="unsupported_value")
    screen = await upload_screen_text(form.file.file, settings) if wanted(form.lalm_screen_text, settings) else None
    window_context = None
    if screen is not None:
        window_context = screen.for_window(form.prompt, form.language if task_name == "transcribe" else None)
    skipped = DecodeReport()
    windows = WindowStream(decode_chunks(form.file.file, max_bytes=settings.max_upload_bytes,
                                         max_seconds=settings.max_audio_seconds,
                                         min_seconds=settings.min_audio_seconds, report=skipped),
                           speech_only=True)
    try:
        await windows.prime()
    except AudioError as exc:
        raise as_lalm_error(exc, "file") from None
    except asyncio.CancelledError:
        # the client left while a long stretch without speech was being read: what was read still counts
        metrics.audio_seconds.labels(route=task_name).inc(windows.seconds)
        raise
    task = get_task(task_name)
    params = SamplingParams(temperature=form.temperature, max_tokens=settings.window_max_tokens)
    # temperature 0: Whisper's temperature fallback, as OpenAI documents for these endpoints
    options = TaskOptions(language=target, context=context, concurrency=settings.window_concurrency,
                          window_context=window_context, logprobs=logprobs, fallback=Fallback.from_settings(settings))
    if form.stream:
        events = stream_task(engine, windows, task, params, options)
        counted = _count_seconds(transcript_events(events, skipped, logprobs=logprobs), windows, metrics, task_name)
        response = sse_response(await primed(counted, settings.sse_heartbeat_s), done_marker=False, metrics=metrics)
        response.headers.update(screen.headers() if screen else {})
        return response
    try:
        result = await run_task(engine, windows, task, params, dataclasses.replace(
            options, timestamps=form.response_format in ("srt", "vtt", "verbose_json"),
            word_language="en" if task_name == "translate" else form.language))
    except AudioError as exc:
        raise as_lalm_error(exc, "file") from None
    finally:
        metrics.audio_seconds.labels(route=task_name).inc(windows.seconds)
    return render(form.response_format, result, task=task_name, language=language, skipped=skipped,
                  words=bool(form.timestamp_granularities and "word" in form.timestamp_granularities),
                  screen=screen, logprobs=logprobs)


async def _count_seconds(events: AsyncIterator[dict], windows: WindowStream, metrics: Metrics,
                         route: str) -> AsyncIterator[dict]:
    """`events`, counting the seconds of audio read once the stream ends (however it ends)."""
    try:
        async for event in events:
            yield event
    finally:
        metrics.audio_seconds.labels(route=route).inc(windows.seconds)
