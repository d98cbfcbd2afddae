"""Long recordings end to end: 1, 10 and 60 minutes of speech transcribed through the gateway.

    .venv/bin/python bench/long_audio.py                        # tiny random model, built on the fly
    .venv/bin/python bench/long_audio.py --minutes 1 10 60 --model DIR
    .venv/bin/python bench/long_audio.py --quick --model DIR --upstream URL   # 15 and 30 s, a running vLLM

One vLLM server is started on the model; for each duration a fresh gateway (`lalm serve --upstream`) gets
one upload (Ogg/Opus at 32 kbit/s: an hour is ~14 MB) on /v1/audio/transcriptions with verbose_json.
Printed per duration: audio seconds per wall second end to end, the number of windows (segments), and the
gateway process's peak resident memory (sampled every 20 ms) next to its resident memory when idle. The
gateway decodes the upload as it reads it and holds at most a few windows at once, so its peak memory
should not grow with the duration. The tiny model's text is noise; `--window-max-tokens` (default 128,
about what 30 s of real speech needs) bounds how much of it each window generates.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quick import parse_args  # noqa: E402
from bench.servers import start_gateway, start_vllm  # noqa: E402
from lalm.synth import espeak  # noqa: E402

SENTENCES = [
    "The meeting starts at nine thirty on Monday, and the report is due on Friday.",
    "I would like to book a table for four people tomorrow evening at seven.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "Please send the slides to Maria before the call with the Berlin office.",
    "Can you hear me now? Yes, I can hear you clearly.",
    "Revenue grew by twelve percent in the third quarter, mostly from new customers.",
    "Turn left at the second light, then keep going until you see the station.",
    "We will review the budget again next week, after the audit is finished.",
]


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """`seconds` of espeak sentences (several voices) separated by pauses of 0.3-1.5 s."""
    rng = np.random.default_rng(seed)
    voices = ["en-us", "en-us+f3", "en-gb", "en-us+m3"]
    pool = [espeak(s, voice=v) for s in SENTENCES for v in voices]
    parts, total = [], 0
    while total < seconds * 16000:
        clip = pool[rng.integers(len(pool))]
        gap = np.zeros(int(rng.uniform(0.3, 1.5) * 16000), np.float32)
        parts += [clip, gap]
        total += len(clip) + len(gap)
    return np.concatenate(parts)[: int(seconds * 16000)]


def opus(samples: np.ndarray, bitrate: int = 32000) -> bytes:
    """Ogg/Opus at `bitrate`, 16 kHz mono."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=16000, layout="mono")
        stream.bit_rate = bitrate
        size = stream.codec_context.frame_size or 320
        pts = 0
        for start in range(0, len(samples), size):
            block = samples[start:start + size]
            block = np.pad(block, (0, size - len(block)))[None, :].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, pts, Fraction(1, 16000)
            pts += size
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


class PeakRSS(threading.Thread):
    """Samples a process's resident memory every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="Qwen2-Audio checkpoint folder (default: a tiny random one)")
    ap.add_argument("--upstream", help="a vLLM server already running (serving --model as 'tiny') instead of one "
                                       "started here")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--window-max-tokens", type=int, default=128)
    args = parse_args(ap, {"minutes": [0.25, 0.5], "window_max_tokens": 8})

    work = Path(tempfile.mkdtemp(prefix="lalm-bench-long-"))
    vllm, model = start_vllm(args.model, work, args.upstream)
    rows = []
    try:
        for minutes in args.minutes:
            seconds = minutes * 60
            upload = opus(speech(seconds))
            gateway = start_gateway(
                vllm.url, model, work / f"gateway-{minutes:g}.log",
                "--max-upload-bytes", str(200 * 1024 * 1024), "--request-timeout-s", "7200",
                env={"LALM_WINDOW_MAX_TOKENS": str(args.window_max_tokens)})
            try:
                idle = psutil.Process(gateway.pid).memory_info().rss
                sampler = PeakRSS(gateway.pid)
                sampler.start()
                start = time.perf_counter()
                resp = httpx.post(f"{gateway.url}/v1/audio/transcriptions", timeout=7200,
                                  files={"file": ("speech.ogg", upload)},
                                  data={"model": "tiny", "response_format": "verbose_json"})
                wall = time.perf_counter() - start
                sampler.done.set()
                sampler.join()
                resp.raise_for_status()
                body = resp.json()
                segs = body["segments"]
                covered = segs[-1]["end"] - segs[0]["start"] if segs else 0.0
                rows.append((minutes, len(upload) / 1e6, body["duration"], wall, len(segs), covered,
                             idle / 2**20, sampler.peak / 2**20))
                print(f"{minutes:g} min: {wall:.1f} s, {body['duration'] / wall:.1f} audio s per s, {len(segs)} "
                      f"segments, peak RSS {sampler.peak / 2**20:.0f} MiB (idle {idle / 2**20:.0f} MiB)", flush=True)
            finally:
                gateway.stop(60)
    finally:
        vllm.stop()
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; window_max_tokens "
          f"{args.window_max_tokens}")
    print(f"{'minutes':>7} {'upload MB':>9} {'audio s':>8} {'wall s':>7} {'audio s/s':>9} {'segments':>8} "
          f"{'covered s':>9} {'idle MiB':>8} {'peak MiB':>8}")
    for m, mb, dur, wall, n, cov, idle, peak in rows:
        print(f"{m:7g} {mb:9.1f} {dur:8.1f} {wall:7.1f} {dur / wall:9.1f} {n:8d} {cov:9.1f} {idle:8.0f} {peak:8.0f}")


if __name__ == "__main__":
    main()
