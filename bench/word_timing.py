"""Benchmark: word-timing accuracy of lalm's forced aligner (lalm.align, PocketSphinx) against the word
timestamps of faster-whisper with Whisper tiny.en (cross-attention DTW), measured in the same run on the
same audio. Goal (issue "Timestamps people can use"): boundary error median <= 50 ms, p90 <= 150 ms.

    .venv/bin/python bench/word_timing.py               # 16 clips per condition
    .venv/bin/python bench/word_timing.py --clips 32 --no-whisper
    .venv/bin/python bench/word_timing.py --quick       # 1 clip per condition

The audio has word times known by construction (lalm.synth.word_timing_set): espeak-ng speaks each word
alone, the clips are joined with gaps of 50-350 ms ("pauses") or 0-20 ms ("no pauses", like continuous
speech), four voices, light noise; two sentences hold words outside the CMU dictionary. The error of a
word is |start - true start| and |end - true end|, pooled. lalm aligns the known text (every word kept;
interpolated ones are counted and left out of the error); faster-whisper transcribes by itself, so only
its words that match the reference (difflib over normalised words) are scored.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quick import parse_args
from lalm.align import align_words, boundary_errors
from lalm.synth import word_timing_set

CONDITIONS = {"pauses": (0.05, 0.35), "no pauses": (0.0, 0.02)}


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def _whisper_errors(model, audio: np.ndarray, truth: list[tuple[str, float, float]]) -> tuple[list[float], int]:
    segments, _ = model.transcribe(audio, language="en", word_timestamps=True, beam_size=1,
                                   condition_on_previous_text=False)
    words = [w for s in segments for w in (s.words or [])]
    ref, hyp = [_norm(t[0]) for t in truth], [_norm(w.word) for w in words]
    errors, matched = [], 0
    for block in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            (_, s, e), w = truth[block.a + k], words[block.b + k]
            errors += [abs(w.start - s), abs(w.end - e)]
            matched += 1
    return errors, matched


def _figures(errors: list[float] | np.ndarray) -> str:
    e = np.asarray(errors, float) * 1000
    return f"median {np.median(e):5.1f} ms  p90 {np.percentile(e, 90):6.1f} ms" if len(e) else "no words"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16, help="clips per condition")
    parser.add_argument("--no-whisper", action="store_true", help="skip the faster-whisper baseline")
    args = parse_args(parser, {"clips": 1})
    whisper = None
    if not args.no_whisper:
        from faster_whisper import WhisperModel

        from lalm.modeling.assets import asset_path

        whisper = WhisperModel(str(asset_path("whisper-tiny.en")), device="cpu", compute_type="float32",
                               cpu_threads=2)
    for name, gaps in CONDITIONS.items():
        clips = word_timing_set(args.clips, gaps=gaps)
        n_words = sum(len(t) for _, _, t in clips)
        seconds = sum(len(a) for a, _, _ in clips) / 16000
        errors, unplaced, started = [], 0, time.perf_counter()
        for audio, text, truth in clips:
            words = align_words(audio, text)
            errors.append(boundary_errors(words, truth))
            unplaced += sum(not w.aligned for w in words)
        took = time.perf_counter() - started
        print(f"[{name}] {len(clips)} clips, {n_words} words, {seconds:.0f} s of audio")
        print(f"  lalm.align (PocketSphinx)     {_figures(np.concatenate(errors))}  "
              f"interpolated {unplaced}/{n_words}  {seconds / took:.1f}x real time")
        if whisper is not None:
            w_errors, matched, started = [], 0, time.perf_counter()
            for audio, _, truth in clips:
                e, m = _whisper_errors(whisper, audio, truth)
                w_errors += e
                matched += m
            took = time.perf_counter() - started
            print(f"  faster-whisper tiny.en words  {_figures(w_errors)}  matched {matched}/{n_words}  "
                  f"{seconds / took:.1f}x real time")


if __name__ == "__main__":
    main()
