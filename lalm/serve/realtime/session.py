"""One realtime transcription session: the input audio buffer, turn detection and the transcription of
each turn, independent of the WebSocket that carries it (lalm.serve.realtime.router feeds it client events
as text and sends the event models it emits).

Audio is kept at 16 kHz from the moment it arrives. With `server_vad`, Silero VAD (lalm.vad.StreamingVAD)
finds where speech starts and stops; a turn runs from its start (with the prefix padding) to its stop and is
committed by the server. Without turn detection the client commits. Either way a turn never exceeds the
model's 30 s window: a longer one is cut at a pause (lalm.longform.windows.plan_windows), the rest starting
the next turn. Committed turns are transcribed one after another by the one transcription job (lalm.job,
`transcribe`, the session's language and prompt), streamed token by token as deltas and decoded once, without
the temperature fallback (live text first), so their `completed` events arrive in the order the turns were
spoken.
(The event flow follows OpenAI's Realtime API; the shape of the buffer/VAD loop follows speaches'.)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable

import numpy as np

from lalm.audio import SAMPLE_RATE, AudioError, PCM16Stream
from lalm.config import Settings
from lalm.engines.base import Engine, Usage
from lalm.engines.messages import WINDOW_SECONDS
from lalm.errors import LalmError
from lalm.job import JobOptions, stream_job
from lalm.longform.windows import plan_windows
from lalm.serve.errors import as_lalm_error
from lalm.serve.events import logprobs_body
from lalm.serve.prometheus import Metrics
from lalm.serve.realtime import protocol as rt
from lalm.vad import StreamingVAD

__all__ = ["MAX_TURN_SECONDS", "MIN_COMMIT_SECONDS", "TranscriptionSession"]

log = logging.getLogger("lalm.serve.realtime")

MAX_TURN_SECONDS = WINDOW_SECONDS  # a turn is one model window
MIN_COMMIT_SECONDS = 0.1  # OpenAI refuses to commit less than 100 ms of audio
_MAX_TURN = int(MAX_TURN_SECONDS * SAMPLE_RATE)
_IDLE_KEEP_SECONDS = 1.0  # audio kept before speech, beyond the prefix padding, while nobody speaks


class TranscriptionSession:
    """The state of one session. `emit` receives each server event (a protocol model) in order; `handle` takes
    each client message (the WebSocket text); `close` stops the transcription still running."""

    def __init__(self, engine: Engine, settings: Settings, model_name: str, metrics: Metrics,
                 emit: Callable[[rt.ServerEvent], None]) -> None:
        self.engine, self.settings, self.model_name, self.metrics = engine, settings, model_name, metrics
        self.emit = emit
        self.id = rt.new_id("sess")
        self.config = rt.SessionConfig()
        self.configured = False  # audio is refused until the client has said what format it sends
        self._pcm = PCM16Stream(self.config.input.format.rate)
        self._received = 0  # samples (16 kHz) received in this session
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # session sample of the buffer's first sample
        self._vad: StreamingVAD | None = None
        self._vad_origin = 0  # session sample where the current detector started
        self._speech_item: str | None = None  # the item of the speech in progress (server_vad)
        self._last_item: str | None = None
        self._turns: asyncio.Queue[tuple[str, str | None, np.ndarray]] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Send session.created (the defaults) and start the transcription worker."""
        self._worker = asyncio.create_task(self._transcribe_turns())
        self.emit(rt.SessionCreated(session=rt.session_object(self.id, self.config, self.model_name)))

    async def close(self) -> None:
        """Cancel the turn being transcribed (its engine work too) and drop the queued ones."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    # --- client events ---
    def handle(self, text: str) -> None:
        """Act on one client message; a bad one is answered with an `error` event."""
        event_id = None
        try:
            if len(text) > self.settings.realtime_max_chunk_bytes * 4 // 3 + 1024:
                raise LalmError(
                    f"The event is larger than the limit of {self.settings.realtime_max_chunk_bytes} bytes of "
                    "audio per input_audio_buffer.append; send smaller chunks (100 ms is typical).",
                    code="audio_chunk_too_large", param="audio")
            data = rt.read_message(text)
            event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
            self._dispatch(rt.parse_client_event(data))
        except LalmError as exc:
            self.emit(rt.error_event(exc, event_id=event_id))

    def _dispatch(self, event: rt.ClientEvent) -> None:
        if isinstance(event, rt.SessionUpdate):
            self._update(event.session)
        elif event.type == "input_audio_buffer.append":
            self._append(event.audio)
        elif event.type == "input_audio_buffer.commit":
            self._commit_buffer()
        else:
            self._clear()
            self.emit(rt.Cleared())

    def _update(self, update: dict) -> None:
        config = rt.updated_config(self.config, update)
        model = config.input.transcription.model
        if model is not None and model != self.model_name:
            raise LalmError(f"The model {model!r} does not exist; this server serves {self.model_name!r}.",
                            code="model_not_found", param="session.audio.input.transcription.model")
        if config.input.format.rate != self._pcm.sample_rate:
            self._pcm = PCM16Stream(config.input.format.rate)
        if not self.configured or config.input.turn_detection != self.config.input.turn_detection:
            self._restart_vad(config)
        self.config, self.configured = config, True
        self.emit(rt.SessionUpdated(session=rt.session_object(self.id, config, self.model_name)))

    def _append(self, audio: str) -> None:
        if not self.configured:
            raise LalmError(
                "Send session.update first: it says which audio format (audio/pcm at 16000 or 24000 Hz) the "
                "session receives.", code="session_not_configured")
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise LalmError("`audio` is not valid base64.", code="invalid_audio", param="audio") from None
        if len(raw) > self.settings.realtime_max_chunk_bytes:
            raise LalmError(
                f"The chunk holds {len(raw)} bytes of audio, more than the limit of "
                f"{self.settings.realtime_max_chunk_bytes}; send smaller chunks (100 ms is typical).",
                code="audio_chunk_too_large", param="audio")
        try:
            samples = self._pcm.push(raw)
        except AudioError as exc:
            raise LalmError(exc.message, code="invalid_audio", param="audio") from None
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += len(samples)
        if self._vad is not None:
            self._detect(samples)
        while self._vad is None and len(self._buffer) > _MAX_TURN:
            self._commit(rt.new_id("item"), self._long_turn_end())

    def _commit_buffer(self) -> None:
        tail = self._pcm.flush()  # the client says its audio ends here: nothing may stay in the resampler
        self._buffer = np.concatenate([self._buffer, tail])
        self._received += len(tail)
        have = len(self._buffer) / SAMPLE_RATE
        if have < MIN_COMMIT_SECONDS:
            raise LalmError(
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_SECONDS * 1000:.0f}ms of audio, but buffer only has {have * 1000:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty")
        item = self._speech_item or rt.new_id("item")
        self._commit(item, len(self._buffer))
        self._restart_vad(self.config)

    def _clear(self) -> None:
        self._buffer_start += len(self._buffer)
        self._buffer = self._buffer[:0]
        self._restart_vad(self.config)

    # --- turns ---
    def _restart_vad(self, config: rt.SessionConfig) -> None:
        """A fresh detector from the current position (after a commit, a clear or new VAD settings)."""
        vad = config.input.turn_detection
        self._speech_item = None
        self._vad_origin = self._received
        self._vad = None if vad is None else StreamingVAD(
            threshold=vad.threshold, min_silence_ms=vad.silence_duration_ms, speech_pad_ms=vad.prefix_padding_ms)

    def _detect(self, samples: np.ndarray) -> None:
        for kind, seconds in self._vad.feed(samples):
            at = max(self._vad_origin + round(seconds * SAMPLE_RATE), self._buffer_start)
            if kind == "speech_started":
                self._speech_item = rt.new_id("item")
                self._drop_before(at)
                self.emit(rt.SpeechStarted(audio_start_ms=_ms(at), item_id=self._speech_item))
            elif self._speech_item is not None:
                item, self._speech_item = self._speech_item, None
                self.emit(rt.SpeechStopped(audio_end_ms=_ms(at), item_id=item))
                self._commit(item, at - self._buffer_start)
        if self._speech_item is None:
            keep = self.config.input.turn_detection.prefix_padding_ms / 1000 + _IDLE_KEEP_SECONDS
            self._drop_before(self._received - int(keep * SAMPLE_RATE))
        while self._speech_item is not None and len(self._buffer) > _MAX_TURN:
            # speech without a pause long enough to stop it: the window is full, cut it and go on
            item, self._speech_item = self._speech_item, rt.new_id("item")
            end = self._long_turn_end()
            cut = self._buffer_start + end
            self.emit(rt.SpeechStopped(audio_end_ms=_ms(cut), item_id=item))
            self._commit(item, end)
            self.emit(rt.SpeechStarted(audio_start_ms=_ms(cut), item_id=self._speech_item))

    def _long_turn_end(self) -> int:
        """Where to cut a buffer longer than the window (in samples from its start): the last pause within
        30 s, found by the long-audio window planner asked for windows of half that (their ends lie in
        pauses, or at the quietest moment of speech that has none)."""
        ends = [w.end for w in plan_windows(self._buffer, max_seconds=MAX_TURN_SECONDS / 2)
                if w.end < len(self._buffer)]
        return min(max(ends), _MAX_TURN) if ends else _MAX_TURN

    def _drop_before(self, sample: int) -> None:
        if sample > self._buffer_start:
            self._buffer = self._buffer[sample - self._buffer_start:]
            self._buffer_start = sample

    def _commit(self, item: str, length: int) -> None:
        """Commit the first `length` samples of the buffer as turn `item` and queue its transcription."""
        samples, self._buffer = self._buffer[:length], self._buffer[length:]
        self._buffer_start += len(samples)
        previous, self._last_item = self._last_item, item
        self.emit(rt.Committed(item_id=item, previous_item_id=previous))
        self.emit(rt.ItemAdded(previous_item_id=previous, item=rt.user_audio_item(item, None)))
        self._turns.put_nowait((item, previous, samples))

    async def _transcribe_turns(self) -> None:
        while True:
            item, previous, samples = await self._turns.get()
            transcript = await self._transcribe(item, samples)
            self.emit(rt.ItemDone(previous_item_id=previous, item=rt.user_audio_item(item, transcript)))

    async def _transcribe(self, item: str, samples: np.ndarray) -> str | None:
        """Transcribe one turn, emitting its deltas and `.completed` (or `.failed`); returns the transcript,
        None when it failed."""
        transcription, logprobs = self.config.input.transcription, self.config.logprobs
        options = JobOptions(task="transcribe", language=transcription.language, prompt=transcription.prompt,
                             logprobs=logprobs, fallback=False)
        self.metrics.audio_seconds.labels(route="realtime").inc(len(samples) / SAMPLE_RATE)
        text, usage, tokens = [], Usage(), []
        try:
            async for event in stream_job(self.engine, samples, options, self.settings, live=True):
                if event.text:
                    text.append(event.text)
                    tokens += event.logprobs
                    self.emit(rt.transcription_delta(item, event.text,
                                                     logprobs_body(event.logprobs) if logprobs else None))
                if event.finish_reason is not None:
                    usage = event.usage or usage
        except Exception as exc:
            err = as_lalm_error(exc)
            log.warning("transcription of %s failed: %s", item, err.message)
            self.emit(rt.transcription_failed(item, err))
            return None
        self.emit(rt.transcription_completed(item, "".join(text), usage, logprobs_body(tokens) if logprobs else None))
        return "".join(text)


def _ms(sample: int) -> int:
    return round(sample * 1000 / SAMPLE_RATE)

