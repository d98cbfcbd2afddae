"""On-screen text for a request that asks for it (`lalm_screen_text`, or the `screen_text` setting): read
from the uploaded video or the video parts of a chat message (lalm.screen_text), in a worker thread, before
the audio windows run; and what the response says about it (verbose_json's `lalm_screen_text`, the
`X-Lalm-Warning` header). A picture that cannot be read never fails the request: it is answered from the
audio alone, with a warning."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from lalm.audio import b64decode_limited
from lalm.config import Settings
from lalm.engines.base import AudioPart, Message
from lalm.job import read_screen, screen_context, screen_prompt
from lalm.screen_text import ScreenLine, lines_within
from lalm.serve.chat_planner import ChatJob, part_spans
from lalm.serve.protocol import AudioURLPart, ChatRequestMessage, InputAudioPart
from lalm.tasks import context_note

__all__ = ["WARNING_HEADER", "ScreenContext", "chat_screen_text", "upload_screen_text", "wanted"]

WARNING_HEADER = "X-Lalm-Warning"


@dataclass
class ScreenContext:
    """The on-screen lines of a request (times on its audio's clock) and the warnings to report."""

    settings: Settings
    lines: list[ScreenLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def for_window(self, prompt: str | None, language: str | None = None) -> Callable[[float, float], str | None]:
        """Each window's context: the `prompt` with the lines shown around the window (lalm.screen_text),
        after the spoken-language hint of `language` when a transcription names it."""
        return screen_context(self.lines, prompt, language, self.settings)

    def chat_job(self, job: ChatJob) -> ChatJob:
        """`job` with the on-screen text: per window for a task (with the request's `context`), in the
        instruction and in the previous-text prompt of the Whisper model that hears it (a transcript or
        translation, or a composed model's transcript); for plain chat, the lines of the whole audio (within the
        token budget) as a context note after the last user message's parts, and each audio part carries its own
        lines (AudioPart.screen, for a composed model's Whisper)."""
        if job.task is not None:
            return dataclasses.replace(job, window_context=self.for_window(job.context),
                                       window_screen=screen_prompt(self.lines, job.context, self.settings),
                                       screen=tuple(self.lines))
        last = job.messages[-1]
        spans = part_spans(last.audios)
        shown = iter(tuple(lines_within(self.lines, start, end)) for start, end in spans)
        content = [dataclasses.replace(p, screen=next(shown)) if isinstance(p, AudioPart) else p
                   for p in last.content]
        context = self.for_window(None)(0.0, spans[-1][1])
        note = [context_note(context)] if context is not None else []
        return dataclasses.replace(job, messages=[*job.messages[:-1], Message(last.role, [*content, *note])])

    def headers(self) -> dict[str, str]:
        return {WARNING_HEADER: " ".join(self.warnings)} if self.warnings else {}


def wanted(flag: bool | None, settings: Settings) -> bool:
    """Whether a request reads on-screen text: its own `lalm_screen_text`, else the server's default."""
    return settings.screen_text if flag is None else flag


async def _read(source: bytes | BinaryIO | Path, settings: Settings, offset: float, out: ScreenContext,
                max_seconds: float | None) -> None:
    """Read `source` (at most `max_seconds` of it) in a worker thread into `out`, its times shifted by `offset`
    seconds. A cancelled request (its client left) stops the reading at the next frame looked at, not at the
    end of the video."""
    stop = threading.Event()
    try:
        found = await asyncio.to_thread(read_screen, source, settings, max_seconds=max_seconds, stop=stop)
    except asyncio.CancelledError:
        stop.set()
        raise
    out.lines += [ScreenLine(x.text, x.start + offset, x.end + offset, x.score) for x in found.lines]
    if found.warning:
        out.warnings.append(found.warning)


async def upload_screen_text(file: BinaryIO, settings: Settings) -> ScreenContext:
    """The on-screen text of an uploaded file (read from its start; its position is restored), up to the
    server's `max_audio_seconds`."""
    out = ScreenContext(settings)
    await _read(file, settings, 0.0, out, settings.max_audio_seconds)
    return out


async def chat_screen_text(request_message: ChatRequestMessage, decoded: Message, settings: Settings,
                           fetched: Mapping[int, bytes]) -> ScreenContext:
    """The on-screen text of the video parts of a chat message (`request_message` as sent, `decoded` as
    lalm.serve.inputs made it, `fetched` the bytes it fetched for http(s) audio_url parts, by content index),
    on the clock of its audio parts joined as lalm.serve.chat_planner joins them."""
    out = ScreenContext(settings)
    parts = [(j, p) for j, p in enumerate(request_message.content or ())
             if isinstance(p, InputAudioPart | AudioURLPart)]
    for (j, part), (offset, _) in zip(parts, part_spans(decoded.audios), strict=True):
        if j in fetched:
            raw = fetched[j]
        else:
            data = part.input_audio.data if isinstance(part, InputAudioPart) else part.audio_url.url.strip()
            # the same data decoded as audio already, so it is valid base64 within the limit
            raw = b64decode_limited(data, settings.max_upload_bytes)
        await _read(raw, settings, offset, out, settings.max_audio_seconds)
    return out
