"""POST /v1/audio/transcriptions and /v1/audio/translations (multipart, OpenAI fields), for recordings and
videos of any length: the upload is decoded and cut into windows of at most 30 s as it is read
(lalm.serve.windows), so memory stays flat however long it is."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from lalm.audio import AudioError, DecodeReport, decode_chunks
from lalm.config import Settings
from lalm.engines.base import Engine, SamplingParams
from lalm.serve.deps import EngineDep, MetricsDep, SettingsDep, check_model, record_engine_error
from lalm.serve.errors import APIError, to_api_error
from lalm.serve.formats import ResponseFormat, render
from lalm.serve.longform import run_task, stream_task
from lalm.serve.prometheus import Metrics
from lalm.serve.protocol import ErrorResponse, TranscriptionJson, TranscriptionVerbose
from lalm.serve.sse import primed, sse_response
from lalm.serve.windows import WindowStream
from lalm.tasks import Task, get_task

router = APIRouter(tags=["audio"])

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
_RESPONSES = {
    200: {"description": "json / verbose_json as below; text and srt as text/plain, vtt as text/vtt; with "
                         "stream=true, text/event-stream.",
          "content": {"text/plain": {}, "text/vtt": {}, "text/event-stream": {}}},
    **{status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 429, 502, 503, 504)},
}
_ROUTE = {"response_model": TranscriptionJson | TranscriptionVerbose, "responses": _RESPONSES}

FileField = Annotated[UploadFile, File(description="Audio or video: wav, flac, mp3, ogg, opus, m4a, aac, webm, "
                                                   "mp4, mkv, mov. Any length up to the server's limit.")]
ModelField = Annotated[str, Form(description="The served model name (GET /v1/models).")]
PromptField = Annotated[str | None, Form(description="Context that biases recognition: names, terms, slide or "
                                                     "subtitle text (it need not all be spoken).")]
FormatField = Annotated[ResponseFormat, Form(description="json, text, srt, vtt or verbose_json (sentence-sized "
                                                         "segments with start/end, words with "
                                                         "timestamp_granularities[]=word).")]
TemperatureField = Annotated[float, Form(ge=0.0, le=1.0)]
GranularityField = Annotated[list[Literal["segment", "word"]] | None,
                             Form(alias="timestamp_granularities[]",
                                  description="With verbose_json: `word` adds `words` (times by forced "
                                              "alignment of the model's text), `segment` is always given.")]
StreamField = Annotated[bool, Form(description="SSE events transcript.text.delta / transcript.text.done "
                                               "(response_format json or text).")]


@router.post("/v1/audio/transcriptions", **_ROUTE)
async def transcriptions(request: Request, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep,
                         file: FileField, model: ModelField,
                         language: Annotated[str | None, Form(description="ISO-639-1 code of the speech, "
                                                                          "passed to the model as a hint.")] = None,
                         prompt: PromptField = None, response_format: FormatField = "json",
                         temperature: TemperatureField = 0.0, timestamp_granularities: GranularityField = None,
                         stream: StreamField = False) -> Response:
    """Transcribe speech in the language spoken. Audio longer than 30 s is cut into windows at pauses and
    the transcripts joined; verbose_json / srt / vtt get sentence-sized segments and cues with word times."""
    if language is not None and not _LANGUAGE.match(language):
        raise APIError("language must be an ISO-639-1 code such as en or fr.", 400, param="language",
                       code="invalid_value")
    context = " ".join(filter(None, [f"(language: {language})" if language else None, prompt])) or None
    return await _run(request, engine, settings, metrics, file, model, "transcribe", response_format,
                      temperature, timestamp_granularities, stream, language=language, context=context)


@router.post("/v1/audio/translations", **_ROUTE)
async def translations(request: Request, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep,
                       file: FileField, model: ModelField, prompt: PromptField = None,
                       response_format: FormatField = "json", temperature: TemperatureField = 0.0,
                       timestamp_granularities: GranularityField = None, stream: StreamField = False) -> Response:
    """Translate speech into English, window by window like transcriptions."""
    return await _run(request, engine, settings, metrics, file, model, "translate", response_format,
                      temperature, timestamp_granularities, stream, language="english", context=prompt)


async def _run(request: Request, engine: Engine, settings: Settings, metrics: Metrics, file: UploadFile, model: str,
               task_name: Literal["transcribe", "translate"], fmt: ResponseFormat, temperature: float,
               granularities: list[str] | None, stream: bool, *, language: str | None,
               context: str | None) -> Response:
    check_model(model, request)
    if stream and fmt not in ("json", "text"):
        raise APIError("stream=true works with response_format json or text.", 400, param="stream",
                       code="unsupported_value")
    skipped = DecodeReport()
    windows = WindowStream(decode_chunks(file.file, max_bytes=settings.max_upload_bytes,
                                         max_seconds=settings.max_audio_seconds,
                                         min_seconds=settings.min_audio_seconds, report=skipped),
                           speech_only=True)
    try:
        await windows.prime()
    except AudioError as exc:
        raise to_api_error(exc, "file") from None
    task = get_task(task_name)
    # the target language of a translation is the task's; a transcription's language is only a hint
    target = "English" if task_name == "translate" else None
    params = SamplingParams(temperature=temperature, max_tokens=settings.window_max_tokens)
    if stream:
        events = _stream_events(engine, windows, task, params, target, context, settings.window_concurrency,
                                metrics, task_name, skipped)
        return sse_response(await primed(events), done_marker=False,
                            on_error=lambda exc, _: record_engine_error(metrics, exc))
    try:
        result = await run_task(engine, windows, task, params, language=target, context=context,
                                concurrency=settings.window_concurrency,
                                timestamps=fmt in ("srt", "vtt", "verbose_json"),
                                word_language="en" if task_name == "translate" else language)
    except AudioError as exc:
        raise to_api_error(exc, "file") from None
    finally:
        metrics.audio_seconds.labels(route=task_name).inc(windows.seconds)
    return render(fmt, result, task=task_name, language=language, temperature=temperature, skipped=skipped,
                  words=bool(granularities and "word" in granularities))


async def _stream_events(engine: Engine, windows: WindowStream, task: Task, params: SamplingParams, target: str | None,
                         context: str | None, concurrency: int, metrics: Metrics, route: str,
                         skipped: DecodeReport) -> AsyncIterator[dict]:
    text = []
    try:
        async for event in stream_task(engine, windows, task, params, language=target, context=context,
                                       concurrency=concurrency):
            if event.text:
                text.append(event.text)
                yield {"type": "transcript.text.delta", "delta": event.text}
            if event.finish_reason is not None:
                u = event.usage
                yield {"type": "transcript.text.done", "text": "".join(text),
                       "usage": {"type": "tokens", "input_tokens": u.prompt_tokens,
                                 "output_tokens": u.completion_tokens, "total_tokens": u.total_tokens},
                       "lalm_skipped_seconds": round(skipped.skipped_seconds, 3)}
    finally:
        metrics.audio_seconds.labels(route=route).inc(windows.seconds)
