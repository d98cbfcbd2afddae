"""Benchmark: what reading on-screen text costs (issue 13), and, with a model that hears, what it does to
insertions.

    .venv/bin/python bench/screen_text.py                        # OCR cost per minute of 720p video + request share
    .venv/bin/python bench/screen_text.py --model DIR --unspoken # + insertions with vs without screen text
    .venv/bin/python bench/screen_text.py --model DIR --spoken   # + errors on spoken names with vs without

Videos (lalm.synth_video, 1280x720 at --fps, --minutes long, espeak-ng speech every ~6 s):
- `slides`: a new slide of three lines of names and terms every 10 s (a talk);
- `subtitles`: a slide plus a burned-in subtitle line that changes every 2.5 s;
- `dense`: a new slide every 2 s (more changes than the per-minute cap of 20 reads allows);
- `no text`: a black screen.
Per video, medians over --repeats: OCR CPU seconds per minute of video (CPU of the OCR calls), CPU seconds of
the whole scan per minute (decoding, thumbnails and OCR), frames read per minute.

Share of the request: /v1/audio/transcriptions (verbose_json) of the `slides` video through the gateway in
this process (hf engine; the tiny random model built on the fly unless --model), wall time with and without
`lalm_screen_text`; the share is the scan's wall time over the whole request's. The tiny model's output is
noise, so its request time is only the gateway's and a tiny model's: with a real model the share is smaller.

--unspoken (needs a model that hears, --model): the `slides` video, whose slides are never spoken, transcribed
with and without screen text; word errors against the spoken sentences (lalm.metrics: S/D/I), and how many
inserted words are words of the slides (the insertion failure: reading the screen aloud).

--spoken (needs --model): the `slides` video's slides over speech that says, every ~6 s, one of the names on the
slide on screen ("Next, Zorblax Quintavell joins us."), transcribed with and without screen text; word errors
(S/D/I) and how many of the spoken names' words the transcript gets right (the gain screen text is for).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lalm.metrics import normalize, score_corpus  # noqa: E402
from lalm.screen_text import read_screen_text  # noqa: E402
from lalm.synth_video import Slide, slide_video  # noqa: E402

NAMES = ["Zorblax Quintavell", "Fjordheim glacier ablation", "Przemysl Kelvinator", "Oksanavich Brumley",
         "Quillfeather Dynamics", "Vexillology symposium", "Nakamura-Holt reagent", "Tessaract Vandermolen",
         "Brennmark isotherm survey", "Ulvenshade cryostat", "Marwick-Oyelaran lemma", "Castelvetrano basin"]
SENTENCES = ["The meeting starts at nine thirty on Monday.", "I would like to book a table for four people.",
             "The weather today is cloudy with a chance of rain.", "Can you hear me now? Yes, I can hear you.",
             "Please send the report before the end of the week.", "We will talk about the budget next time."]


def _slide(i: int, start: float, end: float) -> Slide:
    return Slide(start, end, tuple(f"{NAMES[(3 * i + k) % len(NAMES)]} {i}" for k in range(3)))


def _speech_starts(seconds: float) -> range:
    """When each utterance of a `seconds`-long video starts (seconds): every 6 s from 1 s, ending 5 s early."""
    return range(1, int(seconds) - 5, 6)


def _talk_slides(seconds: float) -> list[Slide]:
    """The `slides` video's slides: three names a slide, a new one every 10 s."""
    return [_slide(i, i * 10.0, (i + 1) * 10.0) for i in range(int(seconds // 10))]


def videos(minutes: float, fps: int) -> dict[str, tuple[bytes, str]]:
    """name -> (720p video bytes, the spoken reference text)."""
    seconds = minutes * 60
    speech = [(t, SENTENCES[k % len(SENTENCES)]) for k, t in enumerate(_speech_starts(seconds))]
    reference = " ".join(text for _, text in speech)
    slides = _talk_slides(seconds)
    subtitles = [Slide(0, seconds, ("Weekly review", "Castelvetrano basin"))] + [
        Slide(i * 2.5, (i + 1) * 2.5, (f"{NAMES[i % len(NAMES)]} says part {i}",), bottom=True)
        for i in range(int(seconds / 2.5))]
    dense = [_slide(i, i * 2.0, (i + 1) * 2.0) for i in range(int(seconds // 2))]
    made = {"slides": slides, "subtitles": subtitles, "dense": dense, "no text": [Slide(0, seconds, ())]}
    return {name: (slide_video(s, speech, seconds=seconds, fps=fps), reference) for name, s in made.items()}


def named_video(minutes: float, fps: int) -> tuple[bytes, str, list[str]]:
    """The `slides` video's slides over speech naming one of the names on screen every ~6 s: (720p video
    bytes, the spoken reference text, the spoken names)."""
    seconds = minutes * 60
    starts = _speech_starts(seconds)
    # utterance k says name k % 3 of the slide on screen when it starts (slide i shows names 3i, 3i+1, 3i+2)
    names = [NAMES[(3 * int(t // 10) + k % 3) % len(NAMES)] for k, t in enumerate(starts)]
    speech = [(t, f"Next, {name} joins us.") for t, name in zip(starts, names, strict=True)]
    data = slide_video(_talk_slides(seconds), speech, seconds=seconds, fps=fps)
    return data, " ".join(text for _, text in speech), names


def ocr_cost(data: bytes, minutes: float, repeats: int) -> dict[str, float]:
    ocr, scan, frames = [], [], []
    for _ in range(repeats):
        before = time.process_time()
        result = read_screen_text(data)
        scan.append((time.process_time() - before) / minutes)
        ocr.append(result.ocr_cpu_seconds / minutes)
        frames.append(result.frames_read / minutes)
    return {"ocr": statistics.median(ocr), "scan": statistics.median(scan), "frames": statistics.median(frames)}


def request_times(model: str, data: bytes, repeats: int) -> tuple[float, float, float, list[dict]]:
    """Median wall seconds of a transcription without and with screen text, the median wall seconds of the
    scan alone, and the verbose_json bodies (without, with) of the last run."""
    from fastapi.testclient import TestClient

    from lalm.config import Settings
    from lalm.serve.app import create_app

    settings = Settings(engine="hf", model=model, served_model_name="bench", window_max_tokens=128)
    without, with_text, scan, bodies = [], [], [], []
    with TestClient(create_app(settings)) as http:
        for _ in range(repeats):
            bodies = []
            for flag, out in (("false", without), ("true", with_text)):
                start = time.perf_counter()
                resp = http.post("/v1/audio/transcriptions", files={"file": ("talk.mp4", data)}, timeout=600,
                                 data={"model": "bench", "response_format": "verbose_json", "lalm_screen_text": flag,
                                       "temperature": "0"})
                out.append(time.perf_counter() - start)
                resp.raise_for_status()
                bodies.append(resp.json())
            start = time.perf_counter()
            read_screen_text(data)
            scan.append(time.perf_counter() - start)
    return statistics.median(without), statistics.median(with_text), statistics.median(scan), bodies


def compare(bodies: list[dict], reference: str, count: Callable[[list[str]], str]) -> None:
    """Print, for the transcripts without and with screen text, S/D/I and WER against `reference`,
    `count(normalised words)` and the transcript's start."""
    for label, body in zip(("without screen text", "with screen text"), bodies, strict=True):
        report = score_corpus([reference], [body["text"]])
        print(f"  {label:20s} S={report.substitutions} D={report.deletions} I={report.insertions} "
              f"WER={report.wer:.3f}  {count(normalize(body['text']).split())}")
        print(f"    {body['text'][:200]!r}")


def insertions(bodies: list[dict], reference: str) -> None:
    slide_words = {w for name in NAMES for w in normalize(name).split()} - set(normalize(reference).split())
    compare(bodies, reference, lambda hyp: f"slide words in the transcript: {sum(w in slide_words for w in hyp)}")


def name_errors(bodies: list[dict], reference: str, names: list[str]) -> None:
    spoken = collections.Counter(w for name in names for w in normalize(name).split())

    def right(hyp: list[str]) -> str:
        got = collections.Counter(hyp)
        return f"spoken name words transcribed: {sum(min(n, got[w]) for w, n in spoken.items())}/{spoken.total()}"

    compare(bodies, reference, right)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", help="checkpoint folder for the request share (default: the tiny random model)")
    ap.add_argument("--unspoken", action="store_true", help="score insertions with vs without screen text")
    ap.add_argument("--spoken", action="store_true", help="score spoken names with vs without screen text")
    ap.add_argument("--skip-ocr-cost", action="store_true", help="no OCR cost table")
    ap.add_argument("--skip-request", action="store_true", help="no request share (unless --unspoken needs it)")
    args = ap.parse_args()
    if (args.unspoken or args.spoken) and not args.model:
        ap.error("--unspoken/--spoken need --model: a model that hears (the tiny random model's text is noise)")
    made = videos(args.minutes, args.fps)
    if not args.skip_ocr_cost:
        print(f"OCR cost per minute of 1280x720 video at {args.fps} fps ({args.minutes:g} min, median of "
              f"{args.repeats}):")
        print(f"  {'video':10s} {'OCR CPU s/min':>14s} {'scan CPU s/min':>15s} {'frames read/min':>16s}")
        for name, (data, _) in made.items():
            cost = ocr_cost(data, args.minutes, args.repeats)
            print(f"  {name:10s} {cost['ocr']:14.2f} {cost['scan']:15.2f} {cost['frames']:16.1f}")
    if not args.skip_request or args.unspoken:
        with tempfile.TemporaryDirectory() as tmp:
            model = args.model
            if model is None:
                from lalm.modeling.tiny import make_tiny

                model = str(make_tiny(Path(tmp) / "tiny"))
            data, reference = made["slides"]
            plain, screen, scan, bodies = request_times(model, data, args.repeats)
        print(f"Request (slides video, {'tiny random model' if args.model is None else args.model}, median of "
              f"{args.repeats}): without screen text {plain:.2f} s, with {screen:.2f} s (+{screen - plain:.2f} s); "
              f"the scan alone {scan:.2f} s = {scan / screen:.0%} of the request with screen text")
        if args.unspoken:
            print("Insertions on a video whose slides are not spoken:")
            insertions(bodies, reference)
    if args.spoken:
        data, reference, names = named_video(args.minutes, args.fps)
        bodies = request_times(args.model, data, args.repeats)[3]
        print("Errors on a video whose speech says names shown on its slides:")
        name_errors(bodies, reference, names)

if __name__ == "__main__":
    main()
