"""POST /v1/audio/transcriptions and /v1/audio/translations (multipart, OpenAI fields), for recordings and
videos of any length: the upload is decoded and cut into windows of at most 30 s as it is read
(lalm.longform.windows), so memory stays flat however long it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from lalm.audio import AudioError, DecodeReport, decode_chunks
from lalm.config import Settings
from lalm.errors import LalmError
from lalm.formats import MEDIA_TYPES, render
from lalm.job import JobOptions, run_job, stream_job
from lalm.longform.windows import WindowStream
from lalm.schema import TranscriptionJson, TranscriptionVerbose
from lalm.screen_text import screen_changes
from lalm.serve.cancel import cancel_on_disconnect
from lalm.serve.deps import MetricsDep, SettingsDep, require, resolve_model
from lalm.serve.errors import as_lalm_error
from lalm.serve.events import transcript_events
from lalm.serve.inputs import skipped_headers
from lalm.serve.prometheus import Metrics
from lalm.serve.protocol import (
    ErrorResponse,
    TranscriptionRequest,
    TranslationRequest,
)
from lalm.serve.screen import upload_screen_text, wanted
from lalm.serve.sse import primed, sse_response

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
async def transcriptions(form: Annotated[TranscriptionRequest, Form()], request: Request,
                         settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Transcribe speech in the language spoken. Audio longer than 30 s is cut into windows at pauses and
    the transcripts joined; verbose_json / srt / vtt get sentence-sized segments and cues with word times."""
    return await _answer(request, settings, metrics, form)


@router.post("/v1/audio/translations", **_ROUTE)
@cancel_on_disconnect
async def translations(form: Annotated[TranslationRequest, Form()], request: Request,
                       settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Translate speech into English, window by window like transcriptions."""
    return await _answer(request, settings, metrics, form)


async def _answer(request: Request, settings: Settings, metrics: Metrics,
                  form: TranscriptionRequest | TranslationRequest) -> Response:
    """Transcribe or translate (by the form's kind) the form's file with the one transcription job (lalm.job) and
    answer in its format."""
    transcribe = isinstance(form, TranscriptionRequest)
    task_name: Literal["transcribe", "translate"] = "transcribe" if transcribe else "translate"
    served = resolve_model(request, form.model)
    require(served, task="transcribe" if transcribe else None, translation=not transcribe,
            language=form.language if transcribe else None)
    engine = served.engine
    if form.stream and form.response_format not in ("json", "text"):
        raise LalmError("stream=true works with response_format json or text.", param="stream",
                        code="unsupported_value")
    logprobs = transcribe and bool(form.include)
    if logprobs and form.response_format != "json":
        raise LalmError("include[]=logprobs works with response_format json.", param="include[]",
                        code="unsupported_value")
    if logprobs and not engine.capabilities.logprobs:
        raise LalmError(f"The model {form.model!r} does not report token logprobs (a Whisper model gives a window's "
                        "mean only); ask without include[]=logprobs.", param="include[]", code="model_capability")
    screen = await upload_screen_text(form.file.file, settings) if wanted(form.lalm_screen_text, settings) else None
    skipped = DecodeReport()
    windows = WindowStream(decode_chunks(form.file.file, max_bytes=settings.max_upload_bytes,
                                         max_seconds=settings.max_audio_seconds,
                                         min_seconds=settings.min_audio_seconds, report=skipped),
                           speech_only=True, cuts=screen_changes(screen.lines) if screen is not None else ())
    try:
        await windows.prime()
    except AudioError as exc:
        raise as_lalm_error(exc, "file") from None
    except asyncio.CancelledError:
        # the client left while a long stretch without speech was being read: what was read still counts
        metrics.audio_seconds.labels(route=task_name).inc(windows.seconds)
        raise
    # temperature 0: Whisper's temperature fallback, as OpenAI documents for these endpoints
    options = JobOptions(task=task_name, language=form.language if transcribe else None, prompt=form.prompt,
                         temperature=form.temperature, logprobs=logprobs,
                         screen=screen.lines if screen is not None else None,
                         word_timestamps=form.response_format in ("srt", "vtt", "verbose_json"))
    headers = {**skipped_headers(skipped), **(screen.headers() if screen else {})}
    if form.stream:
        events = stream_job(engine, windows, options, settings)
        counted = _count_seconds(transcript_events(events, skipped, logprobs=logprobs), windows, metrics, task_name)
        response = sse_response(await primed(counted, settings.sse_heartbeat_s), done_marker=False, metrics=metrics)
        response.headers.update(screen.headers() if screen else {})
        return response
    try:
        result = await run_job(engine, windows, options, settings)
    except AudioError as exc:
        raise as_lalm_error(exc, "file") from None
    finally:
        metrics.audio_seconds.labels(route=task_name).inc(windows.seconds)
    body = render(form.response_format, result, task=task_name,
                  language=(form.language or result.language) if transcribe else "english",
                  skipped_seconds=skipped.skipped_seconds,
                  words=bool(form.timestamp_granularities and "word" in form.timestamp_granularities),
                  screen_lines=screen.lines if screen is not None else None,
                  warnings=screen.warnings if screen is not None else (), logprobs=logprobs)
    if isinstance(body, dict):
        return JSONResponse(body, headers=headers)
    return PlainTextResponse(body, media_type=MEDIA_TYPES[form.response_format], headers=headers)


async def _count_seconds(events: AsyncIterator[dict], windows: WindowStream, metrics: Metrics,
                         route: str) -> AsyncIterator[dict]:
    """`events`, counting the seconds of audio read once the stream ends (however it ends)."""
    try:
        async for event in events:
            yield event
    finally:
        metrics.audio_seconds.labels(route=route).inc(windows.seconds)
