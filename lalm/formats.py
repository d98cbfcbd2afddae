"""The response formats of a transcription or translation: json, text, srt, vtt, verbose_json — as `str` (text,
srt, vtt) or `dict` (json, verbose_json), for the gateway, the CLI and library callers alike (no web framework).

Segments are sentence-sized with word times (lalm.timestamps) for srt, vtt and verbose_json; srt and vtt cues
follow subtitle rules (lalm.subtitles). Segment fields lalm cannot measure get neutral values
(lalm.schema.TranscriptionSegment says which). The bodies are OpenAI's (audio.transcriptions.create).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from lalm import subtitles
from lalm.align import interpolate_words
from lalm.engines.base import Usage
from lalm.longform.fallback import compression_ratio
from lalm.longform.run import Segment, TaskResult
from lalm.schema import (
    DurationUsage,
    ScreenTextLine,
    TokenLogprob,
    TranscriptionJson,
    TranscriptionSegment,
    TranscriptionUsage,
    TranscriptionVerbose,
    TranscriptionWord,
)
from lalm.screen_text import ScreenLine
from lalm.subtitles import timestamp

__all__ = ["FORMATS", "MEDIA_TYPES", "ResponseFormat", "logprobs_body", "render", "srt", "timestamp",
           "transcription_usage", "vtt"]

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
FORMATS: tuple[str, ...] = get_args(ResponseFormat)
# the content type each format is answered with over HTTP
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain",
               "srt": "text/plain", "vtt": "text/vtt"}


def transcription_usage(usage: Usage) -> TranscriptionUsage:
    """The token usage of a transcription or translation (all its windows together)."""
    return TranscriptionUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                              total_tokens=usage.total_tokens)


def logprobs_body(logprobs: Sequence[tuple[str, float]]) -> list[dict]:
    """(token text, logprob) pairs as OpenAI's transcription `logprobs` list (`bytes`: the token's UTF-8)."""
    return [TokenLogprob(token=t, logprob=lp, bytes=list(t.encode())).model_dump() for t, lp in logprobs]


def _cues(segments: Sequence[Segment], until: float | None) -> list[subtitles.Cue]:
    """Subtitle cues of `segments`, none ending after `until` (seconds: the audio's end, when known); a segment
    without word times has its words spread over its span."""
    timed = [s.words or tuple(interpolate_words(s.text.split(), [None] * len(s.text.split()), s.end,
                                                [(s.start, s.end)])) for s in segments]
    return subtitles.cues(timed, until=until)


def srt(segments: Sequence[Segment], until: float | None = None) -> str:
    """SubRip cues of `segments` (lalm.subtitles rules), none ending after `until` seconds."""
    return subtitles.srt(_cues(segments, until))


def vtt(segments: Sequence[Segment], until: float | None = None) -> str:
    """WebVTT cues of `segments` (lalm.subtitles rules), none ending after `until` seconds."""
    return subtitles.vtt(_cues(segments, until))


def render(fmt: ResponseFormat, result: TaskResult, *, task: Literal["transcribe", "translate"],
           language: str | None, skipped_seconds: float = 0.0, words: bool = False,
           screen_lines: Sequence[ScreenLine] | None = None, warnings: Sequence[str] = (),
           logprobs: bool = False) -> str | dict:
    """`result` in the format `fmt`: text, srt and vtt as a string, json and verbose_json as a dict.

    verbose_json lists the words when `words`, the on-screen lines read when `screen_lines` is given (with
    `warnings`: what could not be done as asked), `skipped_seconds` of undecodable audio and the recording's
    duration; json has the tokens' `logprobs` when `logprobs`. `language`: what verbose_json reports (the
    request's or the detected language; "unknown" when None)."""
    if fmt == "text":
        return result.text
    until = result.seconds or None  # 0: the length was not measured
    if fmt == "srt":
        return srt(result.segments, until)
    if fmt == "vtt":
        return vtt(result.segments, until)
    if fmt == "json":
        body = TranscriptionJson(text=result.text, usage=transcription_usage(result.usage)).model_dump()
        if logprobs:
            body["logprobs"] = logprobs_body(result.logprobs)
        else:
            del body["logprobs"]
        return body
    segments = [
        TranscriptionSegment(id=i, seek=round(s.start * 100), start=round(s.start, 3), end=round(s.end, 3),
                             text=s.text, temperature=s.temperature, avg_logprob=s.avg_logprob,
                             compression_ratio=compression_ratio(s.text), no_speech_prob=s.no_speech_prob)
        for i, s in enumerate(result.segments)
    ]
    timed = [TranscriptionWord(word=w.word, start=w.start, end=w.end, aligned=w.aligned)
             for s in result.segments for w in s.words] if words else None
    lines = None if screen_lines is None else [ScreenTextLine(text=x.text, start=x.start, end=x.end)
                                               for x in screen_lines]
    body = TranscriptionVerbose(task=task, language=language or "unknown", duration=round(result.seconds, 3),
                                text=result.text, words=timed, segments=segments,
                                usage=DurationUsage(seconds=round(result.seconds, 3)),
                                lalm_skipped_seconds=round(skipped_seconds, 3),
                                lalm_screen_text=lines, lalm_warnings=list(warnings))
    return body.model_dump()
