"""The response formats of /v1/audio/transcriptions and /translations: json, text, srt, vtt, verbose_json.

Each segment is one window of at most 30 s (lalm.longform.windows) with its place in the recording. Segment
fields lalm cannot measure get neutral values (protocol.TranscriptionSegment says which).
"""

from __future__ import annotations

import zlib
from typing import Literal

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from lalm.audio import DecodeReport
from lalm.longform.run import Segment, TaskResult
from lalm.serve.events import transcription_usage
from lalm.serve.inputs import skipped_headers
from lalm.serve.protocol import (
    DurationUsage,
    ResponseFormat,
    TranscriptionJson,
    TranscriptionSegment,
    TranscriptionVerbose,
)

__all__ = ["compression_ratio", "render", "srt", "timestamp", "vtt"]


def timestamp(seconds: float, decimal: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT) or, with decimal ".", `HH:MM:SS.mmm` (WebVTT)."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def _cue_text(text: str) -> str:
    """Segment text on one line without the cue-timing arrow, so no text can break the cue structure."""
    return " ".join(text.replace("-->", "->").split())


def srt(segments: list[Segment]) -> str:
    return "".join(f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n{_cue_text(s.text)}\n\n"
                   for i, s in enumerate(segments, 1))


def vtt(segments: list[Segment]) -> str:
    return "WEBVTT\n\n" + "".join(f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{_cue_text(s.text)}\n\n"
                                  for s in segments)


def compression_ratio(text: str) -> float:
    """Whisper's repetition signal: bytes of the text over bytes of its zlib compression."""
    data = text.encode()
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def render(fmt: ResponseFormat, result: TaskResult, *, task: Literal["transcribe", "translate"],
           language: str | None, temperature: float, skipped: DecodeReport | None = None) -> Response:
    """The response for `result` in the requested format; `skipped`: what the decoder left out."""
    skipped = skipped or DecodeReport()
    headers = skipped_headers(skipped)
    if fmt == "text":
        return PlainTextResponse(result.text, headers=headers)
    if fmt == "srt":
        return PlainTextResponse(srt(result.segments), headers=headers)
    if fmt == "vtt":
        return PlainTextResponse(vtt(result.segments), media_type="text/vtt", headers=headers)
    if fmt == "json":
        body = TranscriptionJson(text=result.text, usage=transcription_usage(result.usage))
        return JSONResponse(body.model_dump(), headers=headers)
    segments = [
        TranscriptionSegment(id=i, seek=round(s.start * 100), start=round(s.start, 3), end=round(s.end, 3),
                             text=s.text, temperature=temperature, compression_ratio=compression_ratio(s.text))
        for i, s in enumerate(result.segments)
    ]
    body = TranscriptionVerbose(task=task, language=language or "unknown", duration=round(result.seconds, 3),
                                text=result.text, segments=segments,
                                usage=DurationUsage(seconds=round(result.seconds, 3)),
                                lalm_skipped_seconds=round(skipped.skipped_seconds, 3))
    return JSONResponse(body.model_dump(), headers=headers)
