"""Realtime transcription over WebSocket (/v1/realtime?intent=transcription) with the real openai SDK's
realtime client against `lalm serve` on 127.0.0.1: VAD-cut turns streamed at real-time pace, manual commits,
API keys (header and the browser's subprotocol form), bad events answered with `error` events on a session
that stays up, and sessions freed when their clients vanish. (Latency lives in bench/realtime_latency.py.)"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import numpy as np
import pytest
import soxr
import websockets
from media import encode
from openai import AsyncOpenAI
from serve_support import AUDIO_TOKENS_PER_SECOND, start_gateway, stop_gateway

from lalm.audio import AudioError, PCM16Stream
from lalm.config import Settings
from lalm.engines.base import Delta, Engine, EngineError, Usage
from lalm.errors import LalmError
from lalm.job import JobOptions, stream_job
from lalm.serve.prometheus import Metrics
from lalm.serve.realtime import protocol as rt
from lalm.serve.realtime.session import MAX_TURN_SECONDS, TranscriptionSession
from lalm.synth import espeak

KEY = "sk-realtime-test"
CHUNK_BYTES = 64_000  # the keyed gateway's realtime_max_chunk_bytes
MAX_SESSIONS = 3  # the keyed gateway's realtime_max_sessions
TURN_TEXTS = ["The meeting starts at nine thirty on Monday.", "I would like to book a table for four people.",
              "The weather today is cloudy with a chance of rain."]
GAP_S = 1.5


@pytest.fixture(scope="module")
def three_turns() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Three sentences with 1.5 s pauses around them (16 kHz) and each sentence's (start, end) in seconds."""
    gap = np.zeros(int(GAP_S * 16000), np.float32)
    parts, spans, at = [gap], [], len(gap)
    for text in TURN_TEXTS:
        s = espeak(text)
        nz = np.flatnonzero(np.abs(s) > 1e-3)  # espeak pads with silence: the speech is where it is not silent
        spans.append(((at + nz[0]) / 16000, (at + nz[-1]) / 16000))
        parts += [s, gap]
        at += len(s) + len(gap)
    return np.concatenate(parts), spans


@pytest.fixture(params=["hf", "vllm"])
def gateway(request: pytest.FixtureRequest):
    """Both engines' gateways as real processes: a realtime session is a WebSocket on a loopback socket."""
    return request.getfixturevalue(f"gateway_{request.param}_process")


@pytest.fixture(scope="module")
def gateway_keyed(tiny_model, tmp_path_factory):
    """`lalm serve --engine hf` with an API key, small chunks and few sessions allowed."""
    log = tmp_path_factory.mktemp("gw-rt") / "serve.log"
    gw = start_gateway(["--engine", "hf", "--model", str(tiny_model), "--served-model-name", "tiny",
                        "--api-key", KEY], log,
                       env={"LALM_REALTIME_MAX_CHUNK_BYTES": str(CHUNK_BYTES),
                            "LALM_REALTIME_MAX_SESSIONS": str(MAX_SESSIONS)})
    yield gw
    stop_gateway(gw)


def _pcm16(samples: np.ndarray, rate: int) -> bytes:
    audio = samples if rate == 16000 else soxr.resample(samples, 16000, rate)
    return np.clip(np.rint(audio * 32768), -32768, 32767).astype("<i2").tobytes()  # exact for 16-bit sources


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _client(gw, key: str = KEY) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


# Client keepalive pings off: on two busy cores, with a vLLM server spinning beside, a pong can come later than
# websockets' 20 s and the client would drop a healthy session; every wait in these tests has its own timeout.
NO_PINGS = {"ping_interval": None}


def _connect(gw, key: str = KEY):
    return _client(gw, key).realtime.connect(extra_query={"intent": "transcription"},
                                             websocket_connection_options=NO_PINGS)


def _session(rate: int = 24000, vad: dict | None = None, **transcription: str) -> dict:
    return {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": rate}, "transcription": {"model": "tiny", **transcription},
        "turn_detection": vad}}}


async def _next(conn, *types: str, timeout: float = 120):
    """The next event of one of `types` (other events in between are returned too when types is empty)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await conn.recv()
            if not types or event.type in types:
                return event


async def _configure(conn, **kw) -> None:
    assert (await _next(conn)).type == "session.created"
    await conn.session.update(session=_session(**kw))
    assert (await _next(conn)).type == "session.updated"


def _run(coro):
    return asyncio.run(coro)


def test_three_turns_at_real_time_pace(gateway, three_turns):
    audio, spans = three_turns
    pcm = _pcm16(audio, 24000)
    chunk = 4800  # 100 ms at 24 kHz, 16-bit

    async def main() -> list:
        async with _connect(gateway, "unused") as conn:
            await _configure(conn, rate=24000, vad={"type": "server_vad", "silence_duration_ms": 500})
            t0 = time.monotonic()

            async def send() -> None:
                for i in range(0, len(pcm), chunk):
                    await conn.input_audio_buffer.append(audio=_b64(pcm[i:i + chunk]))
                    await asyncio.sleep(max(0.0, t0 + (i + chunk) / 48000 - time.monotonic()))

            sender = asyncio.create_task(send())
            events = []
            while sum(e.type == "conversation.item.done" for e in events) < 3:
                events.append(await _next(conn))
                assert events[-1].type != "error", events[-1]
            await sender
            return events

    events = _run(main())
    items = [e.item_id for e in events if e.type == "input_audio_buffer.committed"]
    assert len(items) == 3 and len(set(items)) == 3
    assert [e.item_id for e in events if e.type.endswith(".completed")] == items
    for n, (item, (start, end)) in enumerate(zip(items, spans, strict=True)):
        mine = [e for e in events if getattr(e, "item_id", None) == item]
        kinds = [e.type.rsplit(".", 1)[-1] for e in mine]
        assert kinds[:3] == ["speech_started", "speech_stopped", "committed"], kinds
        assert kinds[3:-1] and set(kinds[3:-1]) == {"delta"} and kinds[-1] == "completed", kinds
        # the VAD's turn holds the whole sentence and none of the next one
        turn_start, turn_end = mine[0].audio_start_ms / 1000, mine[1].audio_end_ms / 1000
        assert turn_start <= start + 0.1 and turn_end >= end - 0.1, (turn_start, turn_end, start, end)
        assert turn_end < (spans[n + 1][0] if n + 1 < len(spans) else len(audio) / 16000)
        completed = mine[-1]
        assert completed.transcript == "".join(e.delta for e in mine[3:-1]) and completed.transcript
        assert completed.usage.input_tokens > AUDIO_TOKENS_PER_SECOND * (end - start)
        assert completed.content_index == 0
    # the deltas of a turn arrive before the next turn's are started
    order = [e.item_id for e in events if e.type.endswith((".delta", ".completed"))]
    assert order == sorted(order, key=items.index)
    # each turn is a user item: added right after its commit, done with its transcript after `.completed`
    added = [e for e in events if e.type == "conversation.item.added"]
    done = [e for e in events if e.type == "conversation.item.done"]
    assert [e.item.id for e in added] == items == [e.item.id for e in done]
    assert [e.previous_item_id for e in added] == [None, *items[:-1]] == [e.previous_item_id for e in done]
    for item, a, d in zip(items, added, done, strict=True):
        committed = next(e for e in events if e.type == "input_audio_buffer.committed" and e.item_id == item)
        completed = next(e for e in events if e.type.endswith(".completed") and e.item_id == item)
        assert events.index(a) == events.index(committed) + 1 and events.index(d) > events.index(completed)
        assert a.item.role == "user" and a.item.type == "message" and a.item.status == "completed"
        assert [(c.type, c.transcript) for c in a.item.content] == [("input_audio", None)]
        assert [(c.type, c.transcript) for c in d.item.content] == [("input_audio", completed.transcript)]


def test_manual_commit_at_16k_equals_the_http_transcription(gateway_keyed, speech):
    wav = encode(speech, "wav")  # 16-bit PCM: the same samples as the realtime PCM below
    http = gateway_keyed.client(KEY).audio.transcriptions.create(
        model="tiny", file=("s.wav", wav), temperature=0, language="en", prompt="Names: Maria.")

    async def main():
        async with _connect(gateway_keyed) as conn:
            await _configure(conn, rate=16000, vad=None, language="en", prompt="Names: Maria.")
            pcm = _pcm16(speech, 16000)
            for i in range(0, len(pcm), 32000):
                await conn.input_audio_buffer.append(audio=_b64(pcm[i:i + 32000]))
            await conn.input_audio_buffer.commit()
            committed = await _next(conn, "input_audio_buffer.committed")
            added, first = await _next(conn), await _next(conn)
            done = await _next(conn, "conversation.item.input_audio_transcription.completed")
            return committed, added, first, done

    committed, added, first, done = _run(main())
    assert added.type == "conversation.item.added" and added.item.id == committed.item_id
    assert first.type == "conversation.item.input_audio_transcription.delta" and first.item_id == committed.item_id
    assert done.item_id == committed.item_id
    assert done.transcript == http.text
    assert done.usage.input_tokens == http.usage.input_tokens


def test_logprobs_when_the_session_includes_them(gateway_keyed, speech):
    async def main():
        async with _connect(gateway_keyed) as conn:
            assert (await _next(conn)).type == "session.created"
            await conn.session.update(session={**_session(rate=16000, vad=None),
                                               "include": ["item.input_audio_transcription.logprobs"]})
            updated = await _next(conn)
            pcm = _pcm16(speech, 16000)
            for i in range(0, len(pcm), 32000):  # within the gateway's chunk limit
                await conn.input_audio_buffer.append(audio=_b64(pcm[i:i + 32000]))
            await conn.input_audio_buffer.commit()
            events = [await _next(conn, "input_audio_buffer.committed")]
            while events[-1].type != "conversation.item.input_audio_transcription.completed":
                events.append(await _next(conn))
            return updated, events

    updated, events = _run(main())
    assert updated.type == "session.updated" and updated.session.include == ["item.input_audio_transcription.logprobs"]
    deltas = [e for e in events if e.type.endswith(".delta")]
    completed = events[-1]
    assert deltas and all(e.logprobs for e in deltas)
    assert [t.model_dump() for e in deltas for t in e.logprobs] == [t.model_dump() for t in completed.logprobs]
    ascii_ = "".join(c for c in completed.transcript if c.isascii() and not c.isspace())
    assert "".join(c for t in completed.logprobs for c in t.token if c.isascii() and not c.isspace()) == ascii_
    assert all(t.logprob <= 0 and t.bytes == list(t.token.encode()) for t in completed.logprobs)


def test_bad_events_get_errors_and_the_session_stays_up(gateway_keyed, speech):
    async def main() -> list:
        errors = []
        async with _connect(gateway_keyed) as conn:
            assert (await _next(conn)).type == "session.created"

            async def expect(code: str, send) -> None:
                await send
                event = await _next(conn)
                assert event.type == "error" and event.error.code == code, event
                assert event.error.message and event.error.type == "invalid_request_error"
                errors.append(event.error)

            await expect("session_not_configured", conn.input_audio_buffer.append(audio=_b64(b"\0\0" * 1600)))
            await expect("invalid_json", conn.send_raw("{not json"))
            await expect("invalid_event", conn.send_raw("[1, 2]"))
            await expect("unknown_event", conn.send_raw(json.dumps({"type": "response.create", "event_id": "e7"})))
            assert errors[-1].event_id == "e7" and errors[-1].param == "type"
            await expect("invalid_value", conn.send_raw(json.dumps(
                {"type": "session.update", "session": _session(rate=44100)})))
            assert errors[-1].param == "session.audio.input.format.rate"
            await expect("unsupported_value", conn.send_raw(json.dumps(
                {"type": "session.update", "session": _session(vad={"type": "semantic_vad"})})))
            await expect("model_not_found", conn.send_raw(json.dumps(
                {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                    "transcription": {"model": "whisper-1"}}}}})))
            await conn.session.update(session=_session(rate=16000, vad=None))
            assert (await _next(conn)).type == "session.updated"
            await expect("audio_chunk_too_large", conn.input_audio_buffer.append(audio=_b64(b"\0" * (CHUNK_BYTES + 2))))
            await expect("audio_chunk_too_large", conn.send_raw(json.dumps(
                {"type": "input_audio_buffer.append", "audio": "A" * (CHUNK_BYTES * 2)})))
            await expect("invalid_audio", conn.input_audio_buffer.append(audio=_b64(b"\0\0\0")))
            await expect("invalid_audio", conn.input_audio_buffer.append(audio="@@not base64@@"))
            await expect("input_audio_buffer_commit_empty", conn.input_audio_buffer.commit())
            # after all that, the session still transcribes
            pcm = _pcm16(speech, 16000)
            for i in range(0, len(pcm), 32000):
                await conn.input_audio_buffer.append(audio=_b64(pcm[i:i + 32000]))
            await conn.input_audio_buffer.clear()
            assert (await _next(conn)).type == "input_audio_buffer.cleared"
            await expect("input_audio_buffer_commit_empty", conn.input_audio_buffer.commit())
            for i in range(0, len(pcm), 32000):
                await conn.input_audio_buffer.append(audio=_b64(pcm[i:i + 32000]))
            await conn.input_audio_buffer.commit()
            done = await _next(conn, "conversation.item.input_audio_transcription.completed")
            assert done.transcript
        return errors

    errors = _run(main())
    assert len(errors) == 13
    assert gateway_keyed.healthy()


def test_api_keys_header_and_browser_subprotocol(gateway_keyed):
    async def refused(key: str) -> tuple:
        async with _connect(gateway_keyed, key) as conn:
            event = await _next(conn)
            with pytest.raises(Exception, match="1008"):
                await _next(conn, timeout=30)
            return event

    bad = _run(refused("sk-wrong"))
    assert bad.type == "error" and bad.error.code == "invalid_api_key" and bad.error.type == "authentication_error"

    ws_url = gateway_keyed.url.replace("http", "ws") + "/v1/realtime?intent=transcription"

    async def browser_style(protocols: list[str]) -> tuple[str | None, dict]:
        async with websockets.connect(ws_url, subprotocols=protocols, **NO_PINGS) as ws:
            return ws.subprotocol, json.loads(await ws.recv())

    protocol, first = _run(browser_style(["realtime", f"openai-insecure-api-key.{KEY}"]))
    assert protocol == "realtime" and first["type"] == "session.created"
    assert first["session"]["type"] == "transcription" and first["session"]["id"].startswith("sess_")
    protocol, first = _run(browser_style(["realtime"]))
    assert first["type"] == "error" and first["error"]["code"] == "missing_api_key"
    # the HTTP API takes the same keys
    assert httpx.get(f"{gateway_keyed.url}/v1/models").status_code == 401


def test_intent_binary_frames_and_session_cap(gateway_keyed):
    base = gateway_keyed.url.replace("http", "ws") + "/v1/realtime"
    auth = {"Authorization": f"Bearer {KEY}"}
    opts = {"additional_headers": auth, **NO_PINGS}

    async def main() -> None:
        async with websockets.connect(f"{base}?model=tiny", **opts) as ws:
            event = json.loads(await ws.recv())
            assert event["error"]["code"] == "unsupported_intent"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1008
        url = f"{base}?intent=transcription"
        open_ = [await websockets.connect(url, **opts) for _ in range(MAX_SESSIONS)]
        for ws in open_:
            assert json.loads(await ws.recv())["type"] == "session.created"
        await open_[0].send(b"\x00\x01")
        assert json.loads(await open_[0].recv())["error"]["code"] == "invalid_event"
        async with websockets.connect(url, **opts) as extra:
            assert json.loads(await extra.recv())["error"]["code"] == "rate_limit_exceeded"
        # a client that vanishes without a closing handshake frees its session
        open_[0].transport.abort()
        for _ in range(100):
            async with websockets.connect(url, **opts) as again:
                if json.loads(await again.recv())["type"] == "session.created":
                    break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the vanished client's session was never freed")
        for ws in open_[1:]:
            await ws.close()

    _run(main())
    assert gateway_keyed.healthy()


def test_turns_never_exceed_the_window():
    """Speech with only short pauses for 70 s, a VAD that waits 10 s of silence: the session cuts turns of at
    most 30 s itself, inside pauses (in-process: the session without a socket or an engine)."""
    sentences = [espeak(t) for t in TURN_TEXTS]
    gap = np.zeros(int(0.6 * 16000), np.float32)
    parts, total = [], 0
    while total < 70 * 16000:
        s = sentences[len(parts) % 3]
        parts += [s, gap]
        total += len(s) + len(gap)
    audio = np.concatenate(parts)
    events: list[rt.ServerEvent] = []
    session = TranscriptionSession(None, Settings(), "tiny", Metrics(), events.append)
    session.handle(json.dumps({"type": "session.update", "session": _session(
        rate=16000, vad={"type": "server_vad", "silence_duration_ms": 10000})}))
    pcm = _pcm16(audio, 16000)
    for i in range(0, len(pcm), 3200):
        session.handle(json.dumps({"type": "input_audio_buffer.append", "audio": _b64(pcm[i:i + 3200])}))
    kinds = [e.type for e in events]
    assert "error" not in kinds
    starts = [e for e in events if isinstance(e, rt.SpeechStarted)]
    stops = [e for e in events if isinstance(e, rt.SpeechStopped)]
    assert len(stops) >= 2 and len(starts) == len(stops) + 1  # the last turn is still open
    for a, b in zip(starts, stops, strict=False):
        assert a.item_id == b.item_id
        assert 0 < b.audio_end_ms - a.audio_start_ms <= MAX_TURN_SECONDS * 1000
        # the cut is in a pause: the audio around it is quiet
        cut = b.audio_end_ms * 16
        assert np.sqrt(np.mean(audio[cut - 800:cut + 800] ** 2)) < 0.01
    assert [e.item_id for e in events if isinstance(e, rt.Committed)] == [e.item_id for e in stops]


def test_pcm_in_chunks_decodes_like_pcm_sent_whole(speech):
    pcm = _pcm16(speech, 24000)
    whole = PCM16Stream(24000).push(pcm)
    stream = PCM16Stream(24000)
    chunked = np.concatenate([stream.push(pcm[i:i + 4800]) for i in range(0, len(pcm), 4800)])
    assert np.array_equal(whole, chunked)
    assert len(whole) + len(stream.flush()) == len(speech)  # flushed, every sample is there
    assert np.array_equal(stream.push(pcm), whole)  # and then starts afresh
    quantized = np.frombuffer(_pcm16(speech, 16000), "<i2") / np.float32(32768)
    assert np.array_equal(PCM16Stream(16000).push(_pcm16(speech, 16000)), quantized)  # 16 kHz: not resampled
    with pytest.raises(AudioError, match="even number"):
        PCM16Stream(16000).push(b"\0\0\0")


class _SeamEngine(Engine):
    """The engine seam for the two tests below: a stream that fails at once, or one that never ends and
    records that it was cancelled."""

    model_name = "tiny"

    def __init__(self, fail: bool) -> None:
        self.fail, self.started, self.cancelled = fail, asyncio.Event(), asyncio.Event()

    async def generate(self, messages, params):
        raise NotImplementedError

    async def stream(self, messages, params):
        if self.fail:
            raise EngineError("The vLLM upstream is restarting.", 503, "upstream_unavailable")
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        yield


async def _one_manual_turn(engine: Engine, events: list[rt.ServerEvent], speech: np.ndarray,
                           settings: Settings | None = None, **transcription: str) -> TranscriptionSession:
    session = TranscriptionSession(engine, settings or Settings(), "tiny", Metrics(), events.append)
    session.start()
    session.handle(json.dumps({"type": "session.update", "session": _session(rate=16000, vad=None,
                                                                             **transcription)}))
    session.handle(json.dumps({"type": "input_audio_buffer.append", "audio": _b64(_pcm16(speech, 16000))}))
    session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
    return session


def test_a_failed_turn_is_reported_and_the_session_goes_on(speech):
    async def main() -> list[rt.ServerEvent]:
        events: list[rt.ServerEvent] = []
        session = await _one_manual_turn(_SeamEngine(fail=True), events, speech)
        async with asyncio.timeout(30):
            while not any(isinstance(e, rt.TranscriptionFailed) for e in events):
                await asyncio.sleep(0.01)
        session.handle(json.dumps({"type": "input_audio_buffer.commit"}))  # the session still answers
        await session.close()
        return events

    events = _run(main())
    committed = next(e for e in events if isinstance(e, rt.Committed))
    failed = next(e for e in events if isinstance(e, rt.TranscriptionFailed))
    assert failed.item_id == committed.item_id and failed.content_index == 0
    assert failed.error.code == "upstream_unavailable" and "restarting" in failed.error.message
    assert failed.error.type == "server_error"
    done = next(e for e in events if isinstance(e, rt.ItemDone))
    assert events.index(done) > events.index(failed) and done.item.id == committed.item_id
    assert [(c.type, c.transcript) for c in done.item.content] == [("input_audio", None)]
    assert isinstance(events[-1], rt.ErrorEvent) and events[-1].error.code == "input_audio_buffer_commit_empty"


def test_closing_a_session_cancels_its_engine_work(speech):
    async def main() -> bool:
        engine = _SeamEngine(fail=False)
        session = await _one_manual_turn(engine, [], speech)
        async with asyncio.timeout(30):
            await engine.started.wait()  # the turn is being transcribed
        await session.close()  # what the route does when its client goes away
        async with asyncio.timeout(10):
            await engine.cancelled.wait()
        return engine.cancelled.is_set()

    assert _run(main())


class _LoopingStream(Engine):
    """Streams a looping answer word by word, recording the temperatures and messages of its calls."""

    model_name = "tiny"

    def __init__(self) -> None:
        self.temperatures: list[float] = []
        self.asked: list = []

    async def generate(self, messages, params):
        raise NotImplementedError

    async def stream(self, messages, params):
        self.temperatures.append(params.temperature)
        self.asked.append(messages)
        for i in range(12):
            yield Delta("the" if i == 0 else " the")
        yield Delta("", "stop", Usage(10, 12))


def test_turns_stream_token_by_token_without_the_temperature_fallback(speech):
    """Live text first: a realtime turn is decoded once, greedily, and its deltas arrive as they are made, even
    with the transcription endpoints' fallback schedule set and an answer it would decode again."""
    schedule = Settings.model_fields["fallback_temperatures"].default  # the tests' environment turns it off

    async def main() -> tuple[_LoopingStream, list[rt.ServerEvent]]:
        engine, events = _LoopingStream(), []
        session = await _one_manual_turn(engine, events, speech, Settings(fallback_temperatures=schedule))
        async with asyncio.timeout(30):
            while not any(isinstance(e, rt.TranscriptionCompleted) for e in events):
                await asyncio.sleep(0.01)
        await session.close()
        return engine, events

    engine, events = _run(main())
    assert engine.temperatures == [0.0]
    assert len([e for e in events if isinstance(e, rt.TranscriptionDelta)]) > 1
    assert next(e for e in events if isinstance(e, rt.TranscriptionCompleted)).transcript == "the" + " the" * 11


def _asked(messages) -> list[tuple]:
    """What a call asked of the engine, without the audio samples: each message's role, text and speech request."""
    return [(m.role, m.content if isinstance(m.content, str) else [p for p in m.content if isinstance(p, str)],
             m.speech) for m in messages]


def test_a_turn_asks_the_engine_what_the_transcription_job_asks(speech):
    """A turn is the one transcription job (lalm.job) with the session's language and prompt: the engine is
    asked exactly what `stream_job` asks for the same audio (in-process: the session and an engine seam)."""
    audio = np.frombuffer(_pcm16(speech, 16000), "<i2") / np.float32(32768)  # what the session hears

    async def main() -> tuple[list, list]:
        engine, events = _LoopingStream(), []
        session = await _one_manual_turn(engine, events, speech, language="fr", prompt="Names: Maria.")
        async with asyncio.timeout(30):
            while not any(isinstance(e, rt.TranscriptionCompleted) for e in events):
                await asyncio.sleep(0.01)
        await session.close()
        direct = _LoopingStream()
        options = JobOptions(task="transcribe", language="fr", prompt="Names: Maria.", fallback=False)
        async for _ in stream_job(direct, audio.astype(np.float32), options, Settings()):
            pass
        return engine.asked, direct.asked

    turn, job = _run(main())
    assert len(turn) == len(job) == 1
    assert _asked(turn[0]) == _asked(job[0])
    assert turn[0][-1].speech is not None and turn[0][-1].speech.language == "fr"
    assert any("Maria" in str(part) for m in _asked(turn[0]) for part in m[1])


def test_bad_client_events_are_error_models_in_process():
    """Client events are parsed into typed models; each bad one becomes an `error` event model with its code and
    param, and the session goes on (in-process: no socket, no engine)."""
    events: list[rt.ServerEvent] = []
    session = TranscriptionSession(None, Settings(), "tiny", Metrics(), events.append)
    for text in ["{nope", "[1]", json.dumps({"type": "response.create", "event_id": "e1"}),
                 json.dumps({"type": "session.update", "session": 5, "event_id": "e2"}),
                 json.dumps({"type": "input_audio_buffer.append", "audio": 5}),
                 json.dumps({"type": "input_audio_buffer.append", "audio": _b64(b"\0\0")}),
                 json.dumps({"type": "session.update", "session": {"include": ["nope"]}})]:
        session.handle(text)
    errors = [(e.error.code, e.error.param, e.error.event_id) for e in events]
    assert all(isinstance(e, rt.ErrorEvent) and e.error.type == "invalid_request_error" for e in events)
    assert errors == [("invalid_json", None, None), ("invalid_event", "type", None), ("unknown_event", "type", "e1"),
                      ("invalid_value", "session", "e2"), ("invalid_value", "audio", None),
                      ("session_not_configured", None, None), ("invalid_value", "session.include.0", None)]
    session.handle(json.dumps({"type": "session.update", "session": _session(rate=16000, vad=None)}))
    assert isinstance(events[-1], rt.SessionUpdated) and events[-1].session.audio.input.format.rate == 16000


def test_events_on_the_wire_keep_their_shape():
    """What the socket sends (`to_json`): explicit nulls are sent, options a session did not ask for are not, and
    the session object is whole: the fields and values OpenAI's clients read."""
    created = json.loads(rt.SessionCreated(session=rt.session_object("sess_1", rt.SessionConfig(), "tiny")).to_json())
    assert created["type"] == "session.created" and created["event_id"].startswith("event_")
    assert created["session"] == {
        "id": "sess_1", "object": "realtime.transcription_session", "type": "transcription", "include": None,
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "tiny", "language": None, "prompt": None},
                            "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                               "silence_duration_ms": 500},
                            "noise_reduction": None}}}
    committed = json.loads(rt.Committed(item_id="item_1", previous_item_id=None).to_json())
    assert {k: v for k, v in committed.items() if k != "event_id"} == {
        "type": "input_audio_buffer.committed", "item_id": "item_1", "previous_item_id": None}
    added = json.loads(rt.ItemAdded(previous_item_id=None, item=rt.user_audio_item("item_1", None)).to_json())
    assert added["previous_item_id"] is None and added["item"] == {
        "id": "item_1", "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
        "content": [{"type": "input_audio", "transcript": None}]}
    delta = json.loads(rt.transcription_delta("item_1", "hi").to_json())
    assert {k: v for k, v in delta.items() if k != "event_id"} == {
        "type": "conversation.item.input_audio_transcription.delta", "item_id": "item_1", "content_index": 0,
        "delta": "hi"}
    completed = json.loads(rt.transcription_completed("item_1", "hi", Usage(3, 1)).to_json())
    assert "logprobs" not in completed and completed["usage"] == {
        "type": "tokens", "input_tokens": 3, "output_tokens": 1, "total_tokens": 4}
    error = json.loads(rt.error_event(LalmError("bad", code="invalid_json")).to_json())
    assert error["type"] == "error" and error["error"] == {
        "type": "invalid_request_error", "code": "invalid_json", "message": "bad", "param": None, "event_id": None}
