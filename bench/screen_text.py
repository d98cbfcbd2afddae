"""Benchmark: what on-screen text does to a transcript (names from slides fixed, nothing read aloud that was not
spoken), and what reading it costs.

    .venv/bin/python bench/screen_text.py                        # all three, on the built-in `default`, in-process
    .venv/bin/python bench/screen_text.py --model whisper-tiny.en --spoken
    .venv/bin/python bench/screen_text.py --url http://127.0.0.1:8000 --model default   # through `lalm serve`
    .venv/bin/python bench/screen_text.py --quick                # 1 voice, 20 s of video at 5 fps, once

The talks (lalm.synth_video, 1280x720, made here): a slide every 15 s, each a title naming a term, a line
naming a speaker and their home town, one naming a sponsor, and a room line nobody says. Names and terms are
rare (made-up people, places, firms; real but rare terms). Speech every 5 s, by voices the project does not train
on (--voices: held-out espeak-ng variants of lalm.default_model.corpus and festival's ked_diphone; training uses
festival's slt and kal):
- `--spoken`: the three utterances of a slide say its names ("Our speaker is Ingrid Haldorsdottir, from
  Skibbereen."); scored: the name words right without vs with screen text, and S/D/I on the names (a word of a
  name substituted or deleted; a word inserted inside or at the edge of a name), and the whole talk's WER.
- `--unspoken`: the same slides over everyday sentences that say nothing on them; scored: how many transcript
  words are screen-only (on a slide, never spoken: the model reading the screen aloud) and the WER.
Each transcription is at temperature 0, with the temperature fallback behind it, as the endpoint runs (a Whisper
model decodes with the `whisper_beam_size` setting's beams there: LALM_WHISPER_BEAM_SIZE=1 is greedy). With screen
text the job also cuts the windows where the slide changes (lalm.job.screen_windows). The fallback samples, so a
window no greedy try decodes well reads differently from run to run, with or without screen text: `--runs N`
transcribes each talk N times per condition and pools the counts. The wall time of the transcriptions is printed
for each condition (with screen text: the scan, and the second greedy decode of a window that says none of it).

Where it runs: `--model NAME` (any name `lalm.serve.backend.local_engine` knows, or a model folder) runs the
endpoint's own job in this process (lalm.job: read_screen, then run_job with the lines); `--url` posts each
video to a running gateway's /v1/audio/transcriptions with `lalm_screen_text` false and true.

`--ocr-cost`: OCR CPU seconds per minute of 720p video for four videos (`talk`: a new slide every 15 s;
`subtitles`: a burned-in line that changes every 2.5 s; `dense`: a new slide every 2 s, more changes than the
per-minute cap of reads allows; `no text`: black), medians over --repeats; and, in-process, the scan's share of
the wall time of each transcription with screen text above (the median over the talks).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.quick import parse_args  # noqa: E402
from lalm.metrics import normalize  # noqa: E402
from lalm.screen_text import read_screen_text  # noqa: E402
from lalm.synth_video import Slide, slide_video  # noqa: E402

PEOPLE = ("Zorblax Quintavell", "Oksanavich Brumley", "Tessaract Vandermolen", "Przemysl Kelvinator",
          "Ingrid Haldorsdottir", "Kwabena Osei-Tutu", "Mireille Fauchon", "Teodor Vasylenko",
          "Aurelio Castagnetti", "Saoirse Dunleavy", "Radoslaw Wieczorek", "Thandiwe Mabuza")
PLACES = ("Castelvetrano", "Fjordheim", "Ulvenshade", "Skibbereen", "Quillhaven", "Tervuren", "Karlskoga",
          "Vexholm", "Ambleside", "Brennmark", "Oyelaran", "Zywiec")
TERMS = ("glacier ablation", "vexillology", "isotherm surveys", "cryostat calibration", "the Nakamura-Holt reagent",
         "the Marwick-Oyelaran lemma", "photogrammetry", "dendrochronology", "ferrofluid dynamics",
         "bathymetric mapping", "stromatolite growth", "zeolite catalysis")
FIRMS = ("Quillfeather Dynamics", "Brennmark Instruments", "Vandermolen Labs", "Halcyon Biotics", "Sorvani Systems",
         "Kestrel Ptarmigan Trust", "Orsolya Kereszturi Fund", "Tamberlane Optics", "Ngata Hydrographics",
         "Velloziaceae Partners", "Corvinus Thermal", "Ashgrove Pellucid")
EVERYDAY = ("The meeting starts at nine thirty on Monday.", "I would like to book a table for four people.",
            "The weather today is cloudy with a chance of rain.", "Can you hear me now? Yes, I can hear you.",
            "Please send the report before the end of the week.", "We will talk about the budget next time.",
            "My sister bought a new bicycle last summer.", "The train was late again this morning.",
            "Do not forget to water the plants.", "He left his umbrella on the bus.",
            "We had soup and bread for lunch.", "The children played in the garden until dark.")
# espeak-ng voice+variant names held out of lalm's training corpus, and festival voices it does not use
VOICES = ("espeak:en-us+f4", "espeak:en-gb+m7", "espeak:en-us+Andy", "festival:ked_diphone")
SLIDE_SECONDS, SPEECH_EVERY = 15.0, 5.0
ORDINALS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


@dataclass(frozen=True)
class Talk:
    """One video of the set: its bytes, the spoken reference as (text, is_name) pieces, the slides."""

    name: str
    video: bytes
    pieces: tuple[tuple[str, bool], ...]
    slides: tuple[Slide, ...]

    @property
    def reference(self) -> str:
        return " ".join(text for text, _ in self.pieces)


def _say(voice: str) -> Callable[[str], np.ndarray]:
    from lalm.synth import espeak, festival

    engine, name = voice.split(":", 1)
    if engine == "festival":
        return lambda text: festival(text, voice=name)
    return lambda text: espeak(text, voice=name)


def _slide_of(k: int, n: int) -> tuple[Slide, list[list[tuple[str, bool]]]]:
    """Slide `n` (0-based) of talk `k`: the slide and its three spoken utterances as (text, is_name) pieces."""
    i = 4 * k + n  # talks of four slides: each a new set of names, for three talks
    person, place, term, firm = (PEOPLE[i % 12], PLACES[(i + 5) % 12], TERMS[(i + 2) % 12],
                                 FIRMS[(i + 7 + k // 3) % 12])
    bare = term.removeprefix("the ")
    lines = (f"Part {n + 1}: {bare[0].upper()}{bare[1:]}", f"{person}, {place}", f"Sponsor: {firm}",
             f"Room {k + 2}{'ABCD'[n % 4]}, {9 + n}:{15 * (k % 4):02d}")
    said = [[(f"Welcome to part {ORDINALS[n]}, on", False), (term.removeprefix("the ") if term.startswith("the ")
                                                              else term, True), (".", False)],
            [("Our speaker is", False), (person, True), (", from", False), (place, True), (".", False)],
            [("This part is supported by", False), (firm, True), (".", False)]]
    if term.startswith("the "):
        said[0][0] = (f"Welcome to part {ORDINALS[n]}, on the", False)
    start = n * SLIDE_SECONDS
    return Slide(start, start + SLIDE_SECONDS, lines), said


def talk(k: int, voice: str, *, spoken: bool, seconds: float, fps: int) -> Talk:
    """Talk `k` of the set, `seconds` long, spoken by `voice` ("espeak:VOICE+VARIANT" or "festival:VOICE"): its
    slides' names said (`spoken`) or everyday sentences under them."""
    slides, speech, pieces = [], [], []
    for n in range(int(seconds // SLIDE_SECONDS) + (seconds % SLIDE_SECONDS > 0)):
        slide, said = _slide_of(k, n)
        slides.append(Slide(slide.start, min(slide.end, seconds), slide.lines))
        for u, utterance in enumerate(said):
            t = slide.start + 1 + u * SPEECH_EVERY
            if t + 4 > seconds:
                break
            if not spoken:
                utterance = [(EVERYDAY[(3 * n + u + k) % len(EVERYDAY)], False)]
            text = " ".join(x for x, _ in utterance).replace(" .", ".").replace(" ,", ",")
            speech.append((t, text))
            pieces += utterance
    video = slide_video(slides, speech, seconds=seconds, fps=fps, say=_say(voice))
    return Talk(f"{'spoken' if spoken else 'unspoken'} {k} {voice}", video, tuple(pieces), tuple(slides))


def talks(voices: Sequence[str], *, spoken: bool, seconds: float, fps: int) -> list[Talk]:
    return [talk(k, v, spoken=spoken, seconds=seconds, fps=fps) for k, v in enumerate(voices)]


# --- scoring ---

@dataclass
class Score:
    """Counts over a set: reference words and S/D/I of the whole text; name words and S/D/I on them; words of
    the transcript that are only on screen."""

    words: int = 0
    s: int = 0
    d: int = 0
    i: int = 0
    name_words: int = 0
    name_s: int = 0
    name_d: int = 0
    name_i: int = 0
    screen_only: int = 0
    seconds: float = 0.0  # wall time of the transcriptions

    @property
    def wer(self) -> float:
        return (self.s + self.d + self.i) / max(1, self.words)

    @property
    def names_wrong(self) -> int:
        return self.name_s + self.name_d


def score(t: Talk, hypothesis: str, into: Score) -> list[str]:
    """Add `hypothesis` (the transcript of `t`) to `into`; returns the screen-only words it holds."""
    import jiwer

    ref: list[str] = []
    spans: list[tuple[int, int]] = []
    for text, is_name in t.pieces:
        words = normalize(text).split()
        if is_name:
            spans.append((len(ref), len(ref) + len(words)))
        ref += words
    hyp = normalize(hypothesis).split()
    # words that can only come from the screen: on a slide, never said (numbers and one- or two-letter pieces such
    # as the "a" of "Room 4A" left out: speech misheard as "four" or "a" is no reading of the screen)
    screen = {w for s in t.slides for line in s.lines for w in normalize(line).split()
              if w.isalpha() and len(w) > 2} - set(ref)
    in_name = [False] * (len(ref) + 1)
    for a, b in spans:
        for j in range(a, b):
            in_name[j] = True
    into.words += len(ref)
    into.name_words += sum(b - a for a, b in spans)
    if not hyp:
        into.d += len(ref)
        into.name_d += sum(b - a for a, b in spans)
        return []
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    for c in out.alignments[0]:
        n = c.ref_end_idx - c.ref_start_idx
        if c.type == "substitute":
            into.s += n
            into.name_s += sum(in_name[c.ref_start_idx:c.ref_end_idx])
        elif c.type == "delete":
            into.d += n
            into.name_d += sum(in_name[c.ref_start_idx:c.ref_end_idx])
        elif c.type == "insert":
            m = c.hyp_end_idx - c.hyp_start_idx
            into.i += m
            p = c.ref_start_idx  # inserted before reference word p: inside or at the edge of a name
            if any(a <= p <= b for a, b in spans):
                into.name_i += m
    read = [w for w in hyp if w in screen]
    into.screen_only += len(read)
    return read


# --- where it runs ---

class Runner:
    """Transcribes a video without and with its on-screen text: in-process (the endpoint's job) or over HTTP."""

    def __init__(self, model: str, url: str | None) -> None:
        from lalm.config import Settings

        self.model, self.url, self.settings = model, url, Settings()
        self.engine = None
        if url is None:
            from lalm.serve.backend import local_engine

            self.engine = local_engine(model, self.settings)
            asyncio.run(self.engine.start())

    def transcribe(self, video: bytes, screen: bool) -> tuple[str, float, float]:
        """(text, wall seconds of the whole transcription, wall seconds of the screen scan in it)."""
        start = time.perf_counter()
        if self.url is not None:
            import httpx

            resp = httpx.post(f"{self.url.rstrip('/')}/v1/audio/transcriptions", timeout=1800,
                              files={"file": ("talk.mp4", video)},
                              data={"model": self.model, "response_format": "json", "temperature": "0",
                                    "lalm_screen_text": str(screen).lower()})
            resp.raise_for_status()
            return resp.json()["text"], time.perf_counter() - start, float("nan")
        import io

        from lalm.audio import decode_audio
        from lalm.job import JobOptions, read_screen, run_job

        lines = None
        scan = 0.0
        if screen:
            lines = read_screen(video, self.settings).lines
            scan = time.perf_counter() - start
        samples = decode_audio(io.BytesIO(video)).samples
        result = asyncio.run(run_job(self.engine, samples, JobOptions(screen=lines), self.settings))
        return result.text, time.perf_counter() - start, scan


def compare(runner: Runner, made: list[Talk], *, show: bool, runs: int = 1) -> tuple[Score, Score, list[float]]:
    """Score every talk without and with screen text, `runs` times over (the counts pooled: the temperature
    fallback samples, so a window no greedy try decodes well reads differently from run to run); the shares of
    the scan in each request with it."""
    without, with_text, shares = Score(), Score(), []
    for run in range(runs):
        for t in made:
            for screen, into in ((False, without), (True, with_text)):
                text, wall, scan = runner.transcribe(t.video, screen)
                read = score(t, text, into)
                into.seconds += wall
                if screen:
                    shares.append(scan / wall)
                if show:
                    which = f"screen text {'on' if screen else 'off'}{f', run {run + 1}' if runs > 1 else ''}"
                    print(f"    [{t.name}, {which}] {text}" + (f"\n      screen-only words: {read}" if read else ""),
                          flush=True)
    return without, with_text, shares


def time_line(without: Score, with_text: Score) -> None:
    print(f"  wall time of the transcriptions: {without.seconds:.1f} s without, {with_text.seconds:.1f} s with "
          f"screen text ({with_text.seconds / max(without.seconds, 1e-9):.2f}x; with it: the scan and any second "
          "decode of a window)")


def names_table(without: Score, with_text: Score) -> None:
    print(f"  {'':20s} {'name words right':>17s} {'S':>4s} {'D':>4s} {'I':>4s} {'WER':>7s} {'screen-only':>12s}")
    for label, s in (("without screen text", without), ("with screen text", with_text)):
        print(f"  {label:20s} {s.name_words - s.names_wrong:8d}/{s.name_words:<8d} {s.name_s:4d} {s.name_d:4d} "
              f"{s.name_i:4d} {s.wer:7.3f} {s.screen_only:12d}")
    if without.names_wrong:
        print(f"  name words wrong: {without.names_wrong} -> {with_text.names_wrong} "
              f"({with_text.names_wrong / without.names_wrong - 1:+.0%}); WER {without.wer:.3f} -> {with_text.wer:.3f}")


def unspoken_table(without: Score, with_text: Score) -> None:
    print(f"  {'':20s} {'words':>6s} {'S':>4s} {'D':>4s} {'I':>4s} {'WER':>7s} {'screen-only words':>18s}")
    for label, s in (("without screen text", without), ("with screen text", with_text)):
        print(f"  {label:20s} {s.words:6d} {s.s:4d} {s.d:4d} {s.i:4d} {s.wer:7.3f} {s.screen_only:18d}")
    print(f"  WER {without.wer:.3f} -> {with_text.wer:.3f} ({100 * (with_text.wer - without.wer):+.1f} pt)")


# --- OCR cost ---

def cost_videos(seconds: float, fps: int) -> dict[str, bytes]:
    """name -> a 720p video of `seconds` with everyday speech every 5 s (espeak-ng)."""
    speech = [(t, EVERYDAY[k % len(EVERYDAY)]) for k, t in enumerate(np.arange(1, seconds - 4, SPEECH_EVERY))]
    slides = [_slide_of(0, n)[0] for n in range(int(np.ceil(seconds / SLIDE_SECONDS)))]
    subtitles = [Slide(0, seconds, ("Weekly review", "Castelvetrano basin"))] + [
        Slide(i * 2.5, (i + 1) * 2.5, (f"{PEOPLE[i % len(PEOPLE)]} says part {i}",), bottom=True)
        for i in range(int(seconds / 2.5))]
    dense = [Slide(i * 2.0, (i + 1) * 2.0, (f"{TERMS[i % 12]} {i}", PEOPLE[i % 12], FIRMS[i % 12]))
             for i in range(int(seconds // 2))]
    made = {"talk": slides, "subtitles": subtitles, "dense": dense, "no text": [Slide(0, seconds, ())]}
    return {name: slide_video(s, speech, seconds=seconds, fps=fps) for name, s in made.items()}


def ocr_cost(data: bytes, minutes: float, repeats: int) -> dict[str, float]:
    ocr, scan, frames = [], [], []
    for _ in range(repeats):
        before = time.process_time()
        result = read_screen_text(data)
        scan.append((time.process_time() - before) / minutes)
        ocr.append(result.ocr_cpu_seconds / minutes)
        frames.append(result.frames_read / minutes)
    return {"ocr": statistics.median(ocr), "scan": statistics.median(scan), "frames": statistics.median(frames)}


def _over(runs: int) -> str:
    return f", {runs} runs pooled" if runs > 1 else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a model name local_engine knows, or a folder (in-process); "
                    "with --url, the served model's name")
    ap.add_argument("--url", help="a running gateway (lalm serve) to post the videos to")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each talk")
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="OCR cost: median of this many scans")
    ap.add_argument("--voices", nargs="+", default=list(VOICES), help="espeak:VOICE+VARIANT or festival:VOICE")
    ap.add_argument("--spoken", action="store_true", help="spoken names without vs with screen text")
    ap.add_argument("--unspoken", action="store_true", help="screen-only words without vs with screen text")
    ap.add_argument("--ocr-cost", action="store_true", help="OCR cost per minute and its share of a request")
    ap.add_argument("--show", action="store_true", help="print every transcript")
    ap.add_argument("--runs", type=int, default=1, help="transcribe each talk this many times per condition "
                    "(spoken and unspoken; counts pooled)")
    args = parse_args(ap, {"seconds": 20.0, "fps": 5, "repeats": 1, "voices": [VOICES[0]],
                           "model": "whisper-tiny.en"})
    if not (args.spoken or args.unspoken or args.ocr_cost):
        args.spoken = args.unspoken = args.ocr_cost = True
    where = f"through {args.url}" if args.url else "in-process (lalm.job.run_job)"
    runner = Runner(args.model, args.url)
    print(f"Model {args.model}, {where}, temperature 0; {len(args.voices)} talks of {args.seconds:g} s at 1280x720, "
          f"{args.fps} fps; voices: {', '.join(args.voices)}", flush=True)
    shares: list[float] = []
    if args.spoken:
        made = talks(args.voices, spoken=True, seconds=args.seconds, fps=args.fps)
        without, with_text, shares = compare(runner, made, show=args.show, runs=args.runs)
        print(f"Spoken names (the speech says the names on the slides){_over(args.runs)}:")
        names_table(without, with_text)
        time_line(without, with_text)
    if args.unspoken:
        made = talks(args.voices, spoken=False, seconds=args.seconds, fps=args.fps)
        without, with_text, more = compare(runner, made, show=args.show, runs=args.runs)
        shares += more
        print(f"Unspoken slides (the speech says nothing on them){_over(args.runs)}:")
        unspoken_table(without, with_text)
        time_line(without, with_text)
    if args.ocr_cost:
        minutes = args.seconds / 60
        print(f"OCR cost per minute of 1280x720 video at {args.fps} fps ({args.seconds:g} s, median of "
              f"{args.repeats}):")
        print(f"  {'video':10s} {'OCR CPU s/min':>14s} {'scan CPU s/min':>15s} {'frames read/min':>16s}")
        for name, data in cost_videos(args.seconds, args.fps).items():
            cost = ocr_cost(data, minutes, args.repeats)
            print(f"  {name:10s} {cost['ocr']:14.2f} {cost['scan']:15.2f} {cost['frames']:16.1f}")
        if shares and args.url is None:
            print(f"  the scan's share of a transcription with screen text (wall): median "
                  f"{statistics.median(shares):.0%} over {len(shares)} talks")


if __name__ == "__main__":
    main()
