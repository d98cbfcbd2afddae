"""Benchmark: word-timing accuracy of lalm's forced aligner (lalm.align, PocketSphinx) against the word
timestamps of faster-whisper with Whisper tiny.en (cross-attention DTW), measured in the same run on the
same audio. Goal (issue "Timestamps people can use"): boundary error median <= 50 ms, p90 <= 150 ms.

    .venv/bin/python bench/word_timing.py               # 16 clips per condition
    .venv/bin/python bench/word_timing.py --clips 32 --no-whisper
    .venv/bin/python bench/word_timing.py --quick       # 1 clip per condition
    .venv/bin/python bench/word_timing.py --model default   # also the words of `default`'s own transcripts

The audio has word times known by construction (lalm.synth.word_timing_set): espeak-ng speaks each word
alone, the clips are joined with gaps of 50-350 ms ("pauses") or 0-20 ms ("no pauses", like continuous
speech), four voices, light noise; two sentences hold words outside the CMU dictionary. The error of a
word is |start - true start| and |end - true end|, pooled. lalm aligns the known text (every word kept;
interpolated ones are counted and left out of the error); faster-whisper transcribes by itself, so only
its words that match the reference (difflib over normalised words) are scored. With `--model`, so does the
model's own transcript through lalm's transcription job (its words timed as lalm times them).
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


def _matches(words: list, truth: list[tuple[str, float, float]]) -> list[tuple[object, tuple[str, float, float]]]:
    """The transcribed `words` (.word, .start, .end) that match the reference words (difflib over normalised
    words), paired with their true (word, start, end)."""
    ref, hyp = [_norm(t[0]) for t in truth], [_norm(w.word) for w in words]
    return [(words[block.b + k], truth[block.a + k])
            for block in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_matching_blocks()
            for k in range(block.size)]


def _whisper_errors(model, audio: np.ndarray, truth: list[tuple[str, float, float]]) -> tuple[list[float], int]:
    segments, _ = model.transcribe(audio, language="en", word_timestamps=True, beam_size=1,
                                   condition_on_previous_text=False)
    pairs = _matches([w for s in segments for w in (s.words or [])], truth)
    return [x for w, (_, s, e) in pairs for x in (abs(w.start - s), abs(w.end - e))], len(pairs)


def _model_errors(engine, settings, audio: np.ndarray, truth: list[tuple[str, float, float]]
                  ) -> tuple[list[float], int, int]:
    """The words of the model's own transcript through the transcription job (lalm.job, word_timestamps, the
    language not given) matched to the reference: the boundary errors of those placed in the audio, how many
    matched, and how many of them were interpolated (left out of the errors)."""
    import asyncio

    from lalm.job import JobOptions, run_job

    result = asyncio.run(run_job(engine, audio, JobOptions(word_timestamps=True), settings))
    pairs = _matches([w for s in result.segments for w in s.words], truth)
    errors = [x for w, (_, s, e) in pairs if w.aligned for x in (abs(w.start - s), abs(w.end - e))]
    return errors, len(pairs), sum(not w.aligned for w, _ in pairs)


def _figures(errors: list[float] | np.ndarray) -> str:
    e = np.asarray(errors, float) * 1000
    return f"median {np.median(e):5.1f} ms  p90 {np.percentile(e, 90):6.1f} ms" if len(e) else "no words"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16, help="clips per condition")
    parser.add_argument("--no-whisper", action="store_true", help="skip the faster-whisper baseline")
    parser.add_argument("--model", help="also time the words of this lalm model's own transcripts (a built-in name "
                                        "such as default, or a folder), through the transcription job in-process")
    args = parse_args(parser, {"clips": 1})
    engine = settings = None
    if args.model:
        import asyncio

        from lalm.config import Settings
        from lalm.serve.backend import local_engine

        settings = Settings()
        engine = local_engine(args.model, settings)
        asyncio.run(engine.start())
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
        if engine is not None:
            m_errors, matched, unplaced, started = [], 0, 0, time.perf_counter()
            for audio, _, truth in clips:
                e, m, u = _model_errors(engine, settings, audio, truth)
                m_errors += e
                matched += m
                unplaced += u
            took = time.perf_counter() - started
            print(f"  lalm {args.model} transcript words  {_figures(m_errors)}  matched {matched}/{n_words}  "
                  f"interpolated {unplaced}  {seconds / took:.1f}x real time")


if __name__ == "__main__":
    main()
