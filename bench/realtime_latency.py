"""How soon realtime transcription answers: the time from the end of a spoken turn to the first transcription
delta of that turn, over /v1/realtime?intent=transcription with the openai SDK's realtime client.

    .venv/bin/python bench/realtime_latency.py                  # tiny random model, vLLM engine
    .venv/bin/python bench/realtime_latency.py --engine hf      # transformers in-process instead
    .venv/bin/python bench/realtime_latency.py --model DIR      # any Qwen2-Audio checkpoint
    .venv/bin/python bench/realtime_latency.py --quick          # one session of one sentence, hf engine

A recording of three sentences with pauses is streamed at real-time pace in 100 ms chunks of 24 kHz PCM16,
each chunk sent when its audio has been "spoken"; turns are cut by the server's VAD
(`silence_duration_ms`, default 500). For every turn it records, from the moment its speech ends in the
stream: when `speech_stopped` arrives (the VAD's wait for silence), and when the first delta arrives (goal:
within 1.5 s). The baseline, measured in the same run on the same gateway, is the time to the first
`transcript.text.delta` of POST /v1/audio/transcriptions (stream=true) for the same sentence: what the engine
needs once it has the audio (the gateway runs without the temperature fallback, as realtime turns do).
Printed: per-session medians, then the medians over all turns and the ratio of realtime (commit to first delta)
to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soxr
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402
from bench.servers import start_gateway, start_vllm  # noqa: E402
from lalm.audio import encode_wav  # noqa: E402
from lalm.synth import espeak  # noqa: E402

TEXTS = ["The meeting starts at nine thirty on Monday.", "I would like to book a table for four people.",
         "The weather today is cloudy with a chance of rain."]
CHUNK_S = 0.1
# Realtime turns are decoded once, without the temperature fallback (live text first); the baseline's streamed
# transcription at temperature 0 would otherwise wait for the fallback's verdict on its window (with a random
# model, every temperature in turn) before its first delta, and measure that instead of the engine.
GATEWAY_ENV = {"LALM_FALLBACK_TEMPERATURES": "[0.0]"}


def recording(gap_s: float, n: int = len(TEXTS)) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    """The first `n` sentences with `gap_s` pauses around them (16 kHz), each sentence alone, and the second
    at which each sentence's speech ends."""
    gap = np.zeros(int(gap_s * 16000), np.float32)
    parts, sentences, ends, at = [gap], [], [], len(gap)
    for text in TEXTS[:n]:
        s = espeak(text)
        ends.append((at + np.flatnonzero(np.abs(s) > 1e-3)[-1]) / 16000)
        sentences.append(s)
        parts += [s, gap]
        at += len(s) + len(gap)
    return np.concatenate(parts), sentences, ends


async def realtime_session(url: str, audio: np.ndarray, ends: list[float], silence_ms: int) -> list[dict]:
    """Stream `audio` at real-time pace; per turn: seconds from its speech end to speech_stopped, to
    committed and to the first delta."""
    pcm = (np.clip(soxr.resample(audio, 16000, 24000), -1, 1) * 32767).astype("<i2").tobytes()
    step = int(24000 * CHUNK_S) * 2
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "tiny"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": silence_ms}}}})
        assert (await conn.recv()).type == "session.updated"
        t0 = time.perf_counter()

        async def send() -> None:
            for n, i in enumerate(range(0, len(pcm), step), start=1):
                await asyncio.sleep(max(0.0, t0 + n * CHUNK_S - time.perf_counter()))
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + step]).decode())

        sender = asyncio.create_task(send())
        turns: list[dict] = []
        seen: dict[str, dict] = {}
        while sum("completed" in t for t in turns) < len(ends):
            event = await asyncio.wait_for(conn.recv(), 300)
            now = time.perf_counter() - t0
            if event.type == "error":
                raise RuntimeError(event.error.message)
            item = getattr(event, "item_id", None)
            if event.type == "input_audio_buffer.speech_stopped":
                seen[item] = {"end": ends[len(turns)], "stopped": now}
                turns.append(seen[item])
            elif event.type == "input_audio_buffer.committed":
                seen[item]["committed"] = now
            elif event.type.endswith(".delta") and "first_delta" not in seen[item]:
                seen[item]["first_delta"] = now
            elif event.type.endswith(".completed"):
                seen[item]["completed"] = now
        await sender
    return [{"vad_wait": t["stopped"] - t["end"], "commit_to_delta": t["first_delta"] - t["committed"],
             "first_delta": t["first_delta"] - t["end"]} for t in turns]


def http_first_delta(url: str, sentence: np.ndarray) -> float:
    """Seconds from sending a sentence to POST /v1/audio/transcriptions (stream=true) to its first delta."""
    wav = encode_wav(sentence)
    start = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/audio/transcriptions", timeout=300,
                      data={"model": "tiny", "stream": "true", "temperature": "0"},
                      files={"file": ("s.wav", wav, "audio/wav")}) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:]).get("type") == "transcript.text.delta":
                return time.perf_counter() - start
    raise RuntimeError("the transcription streamed no delta")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="Qwen2-Audio checkpoint folder (default: a tiny random one)")
    ap.add_argument("--engine", choices=["vllm", "hf"], default="vllm")
    ap.add_argument("--sessions", type=int, default=5, help="sessions, one after another")
    ap.add_argument("--sentences", type=int, choices=range(1, len(TEXTS) + 1), default=len(TEXTS),
                    help="sentences (turns) per session")
    ap.add_argument("--silence-ms", type=int, default=500, help="server_vad silence_duration_ms")
    ap.add_argument("--gap", type=float, default=1.5, help="seconds of pause between the sentences")
    args = parse_args(ap, {"engine": "hf", "sessions": 1, "sentences": 1, "gap": 0.8})

    work = Path(tempfile.mkdtemp(prefix="lalm-bench-"))
    vllm = gateway = None
    try:
        if args.engine == "vllm":
            vllm, model = start_vllm(args.model, work)
            gateway = start_gateway(vllm.url, model, work / "gateway.log", env=GATEWAY_ENV)
        else:
            from lalm.modeling.tiny import make_tiny

            model = args.model or str(make_tiny(work / "tiny"))
            gateway = start_gateway(None, model, work / "gateway.log", env=GATEWAY_ENV)
        url = gateway.url
        audio, sentences, ends = recording(args.gap, args.sentences)
        asyncio.run(realtime_session(url, audio, ends, args.silence_ms))  # warm up
        print(f"{args.engine} engine, {args.sessions} sessions x {len(ends)} turns, silence_duration_ms "
              f"{args.silence_ms}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"{'session':>7} {'VAD wait s':>11} {'commit->delta s':>16} {'end->first delta s':>19} "
              f"{'HTTP first delta s':>19}")
        turns, baseline = [], []
        for n in range(args.sessions):
            mine = asyncio.run(realtime_session(url, audio, ends, args.silence_ms))
            http = [http_first_delta(url, s) for s in sentences]
            turns += mine
            baseline += http
            med = {k: statistics.median(t[k] for t in mine) for k in mine[0]}
            print(f"{n:>7} {med['vad_wait']:11.3f} {med['commit_to_delta']:16.3f} {med['first_delta']:19.3f} "
                  f"{statistics.median(http):19.3f}", flush=True)
        med = {k: statistics.median(t[k] for t in turns) for k in turns[0]}
        worst = max(t["first_delta"] for t in turns)
        base = statistics.median(baseline)
        print(f"\nmedian over {len(turns)} turns: speech end -> first delta {med['first_delta']:.3f} s "
              f"(max {worst:.3f} s; goal <= 1.5 s), of which VAD wait {med['vad_wait']:.3f} s and commit -> first "
              f"delta {med['commit_to_delta']:.3f} s")
        print(f"baseline (HTTP streamed transcription, first delta): {base:.3f} s; "
              f"realtime commit -> first delta / baseline = {med['commit_to_delta'] / base:.2f}")
    finally:
        if gateway is not None:
            gateway.stop(60)
        if vllm is not None:
            vllm.stop()


if __name__ == "__main__":
    main()
