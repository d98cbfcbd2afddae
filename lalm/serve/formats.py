"""The response formats of /v1/audio/transcriptions and /translations: json, text, srt, vtt, verbose_json.

Segments are sentence-sized with word times (lalm.timestamps) for srt, vtt and verbose_json; srt and vtt
cues follow subtitle rules (lalm.subtitles). Segment fields lalm cannot measure get neutral values
(protocol.TranscriptionSegment says which).
"""

from __future__ import annotations

from typing import Literal

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from lalm import subtitles
from lalm.align import interpolate_words
from lalm.audio import DecodeReport
from lalm.longform.fallback import compression_ratio
from lalm.longform.run import Segment, TaskResult
from lalm.serve.events import logprobs_body, transcription_usage
from lalm.serve.inputs import skipped_headers
from lalm.serve.protocol import (
    DurationUsage,
    ResponseFormat,
    TranscriptionJson,
    TranscriptionSegment,
    TranscriptionVerbose,
    TranscriptionWord,
)
from lalm.serve.screen import ScreenContext
from lalm.subtitles import timestamp

__all__ = ["render", "srt", "timestamp", "vtt"]


def _cues(segments: list[Segment]) -> list[subtitles.Cue]:
    """Subtitle cues of `segments`; a segment without word times has its words spread over its span."""
    timed = [s.words or tuple(interpolate_words(s.text.split(), [None] * len(s.text.split()), s.end,
                                                [(s.start, s.end)])) for s in segments]
    return subtitles.cues(timed)


def srt(segments: list[Segment]) -> str:
    """SubRip cues of `segments` (lalm.subtitles rules)."""
    return subtitles.srt(_cues(segments))


def vtt(segments: list[Segment]) -> str:
    """WebVTT cues of `segments` (lalm.subtitles rules)."""
    return subtitles.vtt(_cues(segments))


def render(fmt: ResponseFormat, result: TaskResult, *, task: Literal["transcribe", "translate"],
           language: str | None, skipped: DecodeReport | None = None,
           words: bool = False, screen: ScreenContext | None = None, logprobs: bool = False) -> Response:
    """The response for `result` in the requested format; `skipped`: what the decoder left out; verbose_json
    lists the words when `words`, and the on-screen lines used when `screen` (which also adds its warnings);
    json has the tokens' `logprobs` when `logprobs`."""
    skipped = skipped or DecodeReport()
    headers = {**skipped_headers(skipped), **(screen.headers() if screen else {})}
    if fmt == "text":
        return PlainTextResponse(result.text, headers=headers)
    if fmt == "srt":
        return PlainTextResponse(srt(result.segments), headers=headers)
    if fmt == "vtt":
        return PlainTextResponse(vtt(result.segments), media_type="text/vtt", headers=headers)
    if fmt == "json":
        body = TranscriptionJson(text=result.text, usage=transcription_usage(result.usage)).model_dump()
        if logprobs:
            body["logprobs"] = logprobs_body(result.logprobs)
        else:
            del body["logprobs"]
        return JSONResponse(body, headers=headers)
    segments = [
        TranscriptionSegment(id=i, seek=round(s.start * 100), start=round(s.start, 3), end=round(s.end, 3),
                             text=s.text, temperature=s.temperature, avg_logprob=s.avg_logprob,
                             compression_ratio=compression_ratio(s.text), no_speech_prob=s.no_speech_prob)
        for i, s in enumerate(result.segments)
    ]
    timed = [TranscriptionWord(word=w.word, start=w.start, end=w.end, aligned=w.aligned)
             for s in result.segments for w in s.words] if words else None
    body = TranscriptionVerbose(task=task, language=language or "unknown", duration=round(result.seconds, 3),
                                text=result.text, words=timed, segments=segments,
                                usage=DurationUsage(seconds=round(result.seconds, 3)),
                                lalm_skipped_seconds=round(skipped.skipped_seconds, 3),
                                lalm_screen_text=screen.response_lines() if screen else None,
                                lalm_warnings=screen.warnings if screen else [])
    return JSONResponse(body.model_dump(), headers=headers)
