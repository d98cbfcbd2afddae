"""Benchmark: which audio is sent to the model for transcription — the energy cutter (every sound: what
lalm sent before) against the voice-activity detector (lalm.vad, Silero), measured in the same run.
Goal (issue "Timestamps people can use"): >= 98% of speech seconds sent, non-speech seconds sent down >= 80%.

    .venv/bin/python bench/vad.py              # 4 recordings
    .venv/bin/python bench/vad.py --recordings 8
    .venv/bin/python bench/vad.py --quick      # 1 recording

Each recording (lalm.synth.speech_and_noise_recording, ~75 s) alternates espeak-ng sentences (half of them
over white noise or music ~12 dB below the voice) with clips that hold no speech (white noise, music
loops from Debian's sonic-pi-samples, a hum), with short near-silent gaps. Speech seconds are the spans
of the sentence clips; everything else is non-speech.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quick import parse_args
from lalm.longform.windows import plan_windows
from lalm.synth import speech_and_noise_recording


def _overlap(windows, spans) -> float:
    return sum(max(0.0, min(w.end_s, e) - max(w.start_s, s)) for w in windows for s, e in spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=4)
    args = parse_args(parser, {"recordings": 1})
    totals = {"energy": [0.0, 0.0, 0.0, 0], "vad": [0.0, 0.0, 0.0, 0]}  # speech sent, non-speech sent, s, windows
    speech_s = non_speech_s = audio_s = 0.0
    for seed in range(args.recordings):
        audio, speech = speech_and_noise_recording(seed)
        duration = len(audio) / 16000
        spoken = sum(e - s for s, e in speech)
        speech_s, non_speech_s, audio_s = speech_s + spoken, non_speech_s + duration - spoken, audio_s + duration
        for name, speech_only in (("energy", False), ("vad", True)):
            started = time.perf_counter()
            windows = plan_windows(audio, speech_only=speech_only)
            took = time.perf_counter() - started
            sent = sum(w.end_s - w.start_s for w in windows)
            voiced = _overlap(windows, speech)
            t = totals[name]
            t[0], t[1], t[2], t[3] = t[0] + voiced, t[1] + sent - voiced, t[2] + took, t[3] + len(windows)
    print(f"{args.recordings} recordings, {audio_s:.0f} s: {speech_s:.0f} s of speech, {non_speech_s:.0f} s without")
    for name, (voiced, other, took, n) in totals.items():
        print(f"  {name:6s} cutter: {n:3d} windows, speech sent {voiced / speech_s:6.1%}, "
              f"non-speech sent {other:6.1f} s ({other / non_speech_s:5.1%}), {audio_s / took:5.0f}x real time")
    cut = 1 - totals["vad"][1] / totals["energy"][1]
    print(f"  non-speech seconds sent: -{cut:.1%} with the VAD; speech recall {totals['vad'][0] / speech_s:.2%}")


if __name__ == "__main__":
    main()
