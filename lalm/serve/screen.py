"""On-screen text for a request that asks for it (`lalm_screen_text`, or the `screen_text` setting): read
from the uploaded video or the video parts of a chat message (lalm.screen_text), in a worker thread, while the
audio windows are decoded and run; and what the response says about it (verbose_json's `lalm_screen_text`, the
`X-Lalm-Warning` header). A picture that cannot be read never fails the request: it is answered from the
audio alone, with a warning.

The reading and the windows overlap: a window waits only until the reading has passed its end plus the margin
of the lines it is given (`screen_text_margin_seconds`), so most of the scan's time is hidden behind decoding
and the model; the response itself (its header, verbose_json's lines) waits for the whole scan."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from lalm.audio import SAMPLE_RATE, b64decode_limited
from lalm.config import Settings
from lalm.engines.base import Message
from lalm.screen_text import ScreenLine, ScreenText, read_screen_text, window_context
from lalm.serve.chat_planner import ChatJob
from lalm.serve.protocol import AudioURLPart, ChatRequestMessage, InputAudioPart, ScreenTextLine
from lalm.serve.sse import primed
from lalm.tasks import context_note, with_language_hint

__all__ = ["WARNING_HEADER", "ScreenContext", "chat_screen_text", "file_screen_text", "primed_after",
           "upload_screen_text", "wanted"]

WARNING_HEADER = "X-Lalm-Warning"
_GAP_SECONDS = 1.0  # lalm.serve.chat_planner joins a message's audio parts with this much silence

Source = bytes | BinaryIO | Path
# A video to read, opened (e.g. its base64 decoded) in the reading thread when its turn comes: one at a time
Opener = Callable[[], Source]


class ScreenContext:
    """The on-screen lines of a request (times on its audio's clock) and the warnings to report, read in the
    background by `start`: `lines` grows as the video is read up to `read_to` seconds (infinite once done).
    Call `finish` before answering and `close` on the way out (it stops a reading nobody waits for)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lines: list[ScreenLine] = []
        self.warnings: list[str] = []
        self.read_to = 0.0
        self._moved = asyncio.Event()
        self._task: asyncio.Task | None = None

    @classmethod
    def start(cls, settings: Settings, sources: Sequence[tuple[Opener, float]],
              max_seconds: float | None) -> ScreenContext:
        """Start reading `sources` one after the other in a worker thread: (what opens a video, the time in
        seconds on the request's clock at which its audio starts), in order, at most `max_seconds` of each.
        Needs a running event loop."""
        out = cls(settings)
        out._task = asyncio.create_task(out._read_all(sources, max_seconds))
        return out

    async def finish(self) -> None:
        """Wait for the whole reading (raising what it raised)."""
        if self._task is not None:
            await self._task

    def close(self) -> None:
        """Stop the reading if it is still going (the request ended without waiting for it)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def until(self, seconds: float) -> None:
        """Wait until the lines of the first `seconds` are known (every line starting by then is in `lines`)."""
        while self.read_to < seconds:
            await self._moved.wait()

    def for_window(self, prompt: str | None,
                   language: str | None = None) -> Callable[[float, float], Awaitable[str | None]]:
        """Each window's context: the `prompt` with the lines shown around the window (lalm.screen_text),
        after the spoken-language hint of `language` when a transcription names it; it waits until the reading
        has passed the window's end plus the margin."""
        s = self.settings

        async def context(start: float, end: float) -> str | None:
            await self.until(end + s.screen_text_margin_seconds)
            return with_language_hint(window_context(self.lines, start, end, prompt=prompt,
                                                     margin=s.screen_text_margin_seconds,
                                                     max_tokens=s.screen_text_max_tokens), language)
        return context

    async def chat_job(self, job: ChatJob) -> ChatJob:
        """`job` with the on-screen text: per window for a task (with the request's `context`); for plain
        chat, the lines of the whole audio (within the token budget, once all are read) as a context note after
        the last user message's parts."""
        if job.task is not None:
            return dataclasses.replace(job, window_context=self.for_window(job.context))
        last = job.messages[-1]
        seconds = sum(len(a.samples) / SAMPLE_RATE + _GAP_SECONDS for a in last.audios)
        context = await self.for_window(None)(0.0, seconds)
        if context is None:
            return job
        return dataclasses.replace(job, messages=[*job.messages[:-1],
                                                  Message(last.role, [*last.content, context_note(context)])])

    def response_lines(self) -> list[ScreenTextLine]:
        return [ScreenTextLine(text=x.text, start=x.start, end=x.end) for x in self.lines]

    def headers(self) -> dict[str, str]:
        return {WARNING_HEADER: " ".join(self.warnings)} if self.warnings else {}

    def _advance(self, to: float, lines: list[ScreenLine]) -> None:
        if to < self.read_to:  # a progress report overtaken by a later one
            return
        self.read_to, self.lines = to, lines
        self._moved.set()
        self._moved = asyncio.Event()

    async def _read_all(self, sources: Sequence[tuple[Opener, float]], max_seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            for k, (source, offset) in enumerate(sources):
                before = list(self.lines)

                def progress(t: float, lines: list[ScreenLine], before: list = before, offset: float = offset) -> None:
                    loop.call_soon_threadsafe(self._advance, offset + t, before + _shifted(lines, offset))

                found = await _scan(source, self.settings, max_seconds, progress)
                then = sources[k + 1][1] if k + 1 < len(sources) else math.inf
                self._advance(then, before + _shifted(found.lines, offset))
                if found.warning:
                    self.warnings.append(found.warning)
        finally:
            self._advance(math.inf, self.lines)  # nobody waits for a reading that ended, however it ended


async def primed_after(events: AsyncGenerator[dict], screen: ScreenContext | None) -> AsyncIterator[dict]:
    """`events` primed (lalm.serve.sse.primed: its windows start now), returned once the reading of `screen`
    is done too, so that the stream's headers carry its warnings. `events` is closed (its windows stopped)
    when the reading fails or the request is cancelled meanwhile."""
    stream = await primed(events)
    if screen is not None:
        try:
            await screen.finish()
        except BaseException:
            await events.aclose()
            raise
    return stream


def wanted(flag: bool | None, settings: Settings) -> bool:
    """Whether a request reads on-screen text: its own `lalm_screen_text`, else the server's default."""
    return settings.screen_text if flag is None else flag


def _shifted(lines: list[ScreenLine], offset: float) -> list[ScreenLine]:
    return [ScreenLine(x.text, x.start + offset, x.end + offset, x.score) for x in lines] if offset else lines


async def _scan(source: Opener, settings: Settings, max_seconds: float | None,
                progress: Callable[[float, list[ScreenLine]], None]) -> ScreenText:
    """read_screen_text of the opened `source` in a worker thread. A cancelled request (its client left) stops
    the reading at the next frame looked at, not at the end of the video."""
    stop = threading.Event()

    def read() -> ScreenText:
        return read_screen_text(source(), probe_seconds=settings.screen_text_probe_seconds,
                                max_frames_per_minute=settings.screen_text_max_frames_per_minute,
                                min_score=settings.screen_text_min_score, max_seconds=max_seconds, stop=stop,
                                progress=progress)
    try:
        return await asyncio.to_thread(read)
    except asyncio.CancelledError:
        stop.set()
        raise


class _PositionalReader(io.RawIOBase):
    """A second reader of an open file with a position of its own (os.pread), so that the picture is read in a
    worker thread while the audio decoder reads the same upload through the original handle."""

    def __init__(self, fd: int) -> None:
        self._fd, self._pos = fd, 0
        self._size = os.fstat(fd).st_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        data = os.pread(self._fd, len(buffer), self._pos)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _second_reader(file: BinaryIO) -> Source:
    """A reader of `file` from its start that does not move `file`'s position."""
    try:
        fd = file.fileno()  # a spooled upload still in memory is moved to a temporary file here
    except (OSError, io.UnsupportedOperation):  # an in-memory file: a copy of its bytes
        position = file.tell()
        file.seek(0)
        data = file.read()
        file.seek(position)
        return data
    file.flush()  # what the handle still buffers, into the file pread reads
    return _PositionalReader(fd)


def upload_screen_text(file: BinaryIO, settings: Settings) -> ScreenContext:
    """Start reading the on-screen text of an uploaded file (from its start, up to the server's
    `max_audio_seconds`), beside the decoder reading `file` (whose position is left alone)."""
    reader = _second_reader(file)
    return ScreenContext.start(settings, [(lambda: reader, 0.0)], settings.max_audio_seconds)


def file_screen_text(path: Path, settings: Settings) -> ScreenContext:
    """Start reading the on-screen text of a local file (`lalm transcribe`): all of it, like its audio."""
    return ScreenContext.start(settings, [(lambda: path, 0.0)], None)


def chat_screen_text(request_message: ChatRequestMessage, decoded: Message, settings: Settings,
                     fetched: dict[int, bytes]) -> ScreenContext:
    """Start reading the on-screen text of the video parts of a chat message (`request_message` as sent,
    `decoded` as lalm.serve.inputs made it, `fetched` the bytes it fetched for http(s) audio_url parts, by
    content index, let go of as they are read), on the clock of its audio parts joined as
    lalm.serve.chat_planner joins them."""
    def opener(j: int, part: InputAudioPart | AudioURLPart) -> Opener:
        if j in fetched:
            return lambda: fetched.pop(j)
        data = part.input_audio.data if isinstance(part, InputAudioPart) else part.audio_url.url.strip()
        # the same data decoded as audio already, so it is valid base64 within the limit
        return lambda: b64decode_limited(data, settings.max_upload_bytes)

    parts = [(j, p) for j, p in enumerate(request_message.content or ())
             if isinstance(p, InputAudioPart | AudioURLPart)]
    sources: list[tuple[Opener, float]] = []
    offset = 0.0
    for (j, part), audio in zip(parts, decoded.audios, strict=True):
        sources.append((opener(j, part), offset))
        offset += len(audio.samples) / SAMPLE_RATE + _GAP_SECONDS
    return ScreenContext.start(settings, sources, settings.max_audio_seconds)
