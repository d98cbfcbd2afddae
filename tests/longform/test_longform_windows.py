"""The window cutter (lalm.longform.windows) and the long-form runner (lalm.longform.run), as units.

The runner is driven here by a scripted engine at the Engine seam, to pin down what no real model can be
made to do on cue: answer the no-speech phrase, fail on one window, or show how many windows it holds at
once. The endpoints themselves are tested with real engines in the other test files."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from media import tone

from lalm.audio import SAMPLE_RATE, decode_chunks, encode_wav
from lalm.engines.base import Completion, Delta, Engine, EngineError, SamplingParams, Usage
from lalm.longform.run import TaskOptions, run_task, stream_task
from lalm.longform.windows import WindowCutter, WindowStream, plan_windows
from lalm.synth import espeak, speech_and_noise_recording
from lalm.tasks import NO_SPEECH, get_task


def _speechlike(seconds: float, pauses_every: float = 7.0, pause: float = 0.6) -> np.ndarray:
    """Tones (stand-ins for sentences) separated by silent pauses."""
    parts, total, i = [], 0.0, 0
    while total < seconds:
        parts += [tone(pauses_every, freq=300 + 50 * (i % 5)), np.zeros(int(pause * SAMPLE_RATE), np.float32)]
        total += pauses_every + pause
        i += 1
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


_SENTENCE: list[np.ndarray] = []


def _spoken(seconds: float, pause: float = 0.6) -> np.ndarray:
    """A spoken sentence (espeak-ng, made once) repeated with silent pauses: what transcription windows,
    cut by the voice-activity detector, are made of."""
    if not _SENTENCE:
        _SENTENCE.append(espeak("The meeting starts at nine thirty on Monday, and the report is due on Friday."))
    unit = np.concatenate([_SENTENCE[0], np.zeros(int(pause * SAMPLE_RATE), np.float32)])
    return np.resize(unit, int(seconds * SAMPLE_RATE))


def test_windows_cover_the_sound_in_order_and_cut_in_pauses():
    x = _speechlike(200.0)
    windows = plan_windows(x)
    assert windows[0].start == 0 and windows[-1].end == len(x)
    for a, b in itertools.pairwise(windows):
        assert a.end <= b.start
        assert np.abs(x[a.end:b.start]).max(initial=0) == 0  # only silence between windows
    assert all(0 < w.end - w.start <= 30 * SAMPLE_RATE for w in windows)
    # no sound is left out: every non-silent sample is inside a window
    covered = np.zeros(len(x), bool)
    for w in windows:
        covered[w.start:w.end] = True
    assert covered[np.abs(x) > 0].all()


def test_continuous_sound_is_cut_at_most_every_30_seconds():
    windows = plan_windows(tone(75.0))
    assert [w.start for w in windows[1:]] == [w.end for w in windows[:-1]]
    assert windows[0].start == 0 and windows[-1].end == 75 * SAMPLE_RATE
    assert all(20 * SAMPLE_RATE <= w.end - w.start <= 30 * SAMPLE_RATE for w in windows[:-1])


def test_silence_makes_no_windows():
    assert plan_windows(np.zeros(90 * SAMPLE_RATE, np.float32)) == []
    assert plan_windows(np.zeros(0, np.float32)) == []


def test_online_cutting_equals_planning_and_emits_early():
    x = _speechlike(300.0)
    cutter = WindowCutter()
    online = []
    for start in range(0, len(x), SAMPLE_RATE):
        online += [(w, start + SAMPLE_RATE) for w, _ in cutter.feed(x[start:start + SAMPLE_RATE])]
        assert len(cutter._buf) + cutter._pending_n <= 61 * SAMPLE_RATE  # two windows and a chunk at most
    online += [(w, len(x)) for w, _ in cutter.finish()]
    assert [w for w, _ in online] == plan_windows(x)
    # each window is handed out at most ~60 s of audio after it starts, not at the end of the recording
    assert all(fed - w.start <= 61 * SAMPLE_RATE for w, fed in online[:-2])


def test_window_stream_reads_a_decoder_lazily():
    wav = encode_wav(_speechlike(120.0))
    stream = WindowStream(decode_chunks(wav, max_bytes=len(wav), max_seconds=200))

    async def first_then_rest():
        await stream.prime()
        seen_at_first = stream.seconds
        rest = [w async for w, _ in stream]
        return seen_at_first, rest

    seen_at_first, windows = asyncio.run(first_then_rest())
    assert seen_at_first < 70 and stream.seconds == pytest.approx(120.0) and stream.exhausted
    assert len(windows) >= 4


class ScriptedEngine(Engine):
    """Answers each window with the next scripted text, recording how many calls overlap."""

    model_name = "scripted"

    def __init__(self, answers: list[str], delay: float = 0.01) -> None:
        self.answers = iter(answers)
        self.delay = delay
        self.running = self.most_running = 0
        self.prompts: list[list] = []

    async def generate(self, messages, params: SamplingParams) -> Completion:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.prompts.append(list(messages))
        try:
            await asyncio.sleep(self.delay)
            text = next(self.answers)
            if text == "FAIL":
                raise EngineError("upstream died", 502, "upstream_error")
            return Completion(text, "stop", Usage(10, 2))
        finally:
            self.running -= 1

    async def stream(self, messages, params: SamplingParams):
        out = await self.generate(messages, params)
        for word in out.text.split(" "):
            yield Delta(word + " ")
        yield Delta("", out.finish_reason, out.usage)


def test_speech_only_windows_keep_the_speech_and_drop_noise_and_music():
    x, speech = speech_and_noise_recording()

    def seconds(spans) -> float:
        return sum(e - s for s, e in spans)

    def overlap(windows) -> float:
        return sum(max(0.0, min(w.end_s, e) - max(w.start_s, s)) for w in windows for s, e in speech)

    everything, voiced = plan_windows(x), plan_windows(x, speech_only=True)
    # the energy cutter sends the noise and music; the VAD keeps >= 98% of the speech and drops >= 80% of them
    assert overlap(voiced) >= 0.98 * seconds(speech)
    non_speech = [sum(w.end_s - w.start_s for w in ws) - overlap(ws) for ws in (everything, voiced)]
    assert non_speech[1] <= 0.2 * non_speech[0]
    assert all(0 < w.end - w.start <= 30 * SAMPLE_RATE for w in voiced)
    assert all(a.end <= b.start for a, b in itertools.pairwise(voiced))


def test_speech_windows_cut_only_between_sentences():
    """Window seams fall in pauses: every sentence of a ~3 minute talk lies inside exactly one window, so no
    word of it is lost or heard twice across a seam."""
    rng = np.random.default_rng(2)
    texts = ("The report is due on Friday, after the board meeting.",
             "Can you hear me now? Yes, I can hear you clearly.", "Please send the slides to Maria before the call.")
    sentences = [espeak(text, voice=voice) for text in texts for voice in ("en-us", "en-gb")]
    parts, spans, t = [], [], 0
    while t < 180 * SAMPLE_RATE:
        clip = sentences[len(spans) % len(sentences)]
        gap = np.zeros(int(rng.uniform(0.35, 1.5) * SAMPLE_RATE), np.float32)
        sound = np.flatnonzero(np.abs(clip) > 1e-3)  # the sentence without espeak's own silent edges
        spans.append((t + sound[0], t + sound[-1] + 1))
        parts += [clip, gap]
        t += len(clip) + len(gap)
    windows = plan_windows(np.concatenate(parts), speech_only=True)
    assert all(0 < w.end - w.start <= 30 * SAMPLE_RATE for w in windows)
    assert all(a.end <= b.start for a, b in itertools.pairwise(windows))
    for start, end in spans:
        assert sum(w.start <= start and end <= w.end for w in windows) == 1, (start, end)


def test_transcription_sends_no_window_without_speech():
    x = np.concatenate([tone(40.0), _spoken(10.0), tone(40.0)])
    engine = ScriptedEngine(["hello"] * 10)
    result = asyncio.run(run_task(engine, x, get_task("transcribe"), SamplingParams()))
    assert len(engine.prompts) == 1 and result.text == "hello"
    (window,) = [p for m in engine.prompts[0] for p in m.audios]
    assert len(window.samples) < 12 * SAMPLE_RATE
    # describing the sound still hears all of it
    engine = ScriptedEngine(["a tone"] * 10)
    asyncio.run(run_task(engine, x, get_task("describe"), SamplingParams()))
    assert len(engine.prompts) >= 4


def test_no_speech_windows_add_nothing_to_a_transcript():
    x = _spoken(100.0)
    n = len(plan_windows(x, speech_only=True))
    answers = ["one", NO_SPEECH, " (No speech). ", "four", *["more"] * (n - 4)]
    result = asyncio.run(run_task(ScriptedEngine(answers), x, get_task("transcribe"), SamplingParams()))
    assert [s.text for s in result.segments] == ["one", "four", *["more"] * (n - 4)]
    assert result.text == " ".join(["one", "four", *["more"] * (n - 4)])
    assert result.usage == Usage(10 * n, 2 * n) and result.seconds == pytest.approx(100.0)


def test_only_no_speech_transcribes_to_empty_text_also_when_streamed():
    x = _spoken(20.0)

    async def streamed():
        return [e async for e in stream_task(ScriptedEngine([NO_SPEECH]), x, get_task("transcribe"),
                                             SamplingParams())]

    events = asyncio.run(streamed())
    assert "".join(e.text for e in events) == "" and events[-1].finish_reason == "stop"


def test_windows_in_flight_are_bounded_and_answers_stay_in_order():
    x = _spoken(400.0)
    n = len(plan_windows(x, speech_only=True))
    engine = ScriptedEngine([f"w{i}" for i in range(n)], delay=0.05)
    result = asyncio.run(run_task(engine, x, get_task("transcribe"), SamplingParams(), TaskOptions(concurrency=3)))
    assert engine.most_running == 3
    assert result.text == " ".join(f"w{i}" for i in range(n))


def test_reduction_quotes_the_window_answers():
    x = _speechlike(70.0)
    n = len(plan_windows(x))
    engine = ScriptedEngine([f"part {i}" for i in range(n)] + ["the summary"])
    result = asyncio.run(run_task(engine, x, get_task("summarize"), SamplingParams()))
    assert result.text == "the summary" and result.usage == Usage(10 * (n + 1), 2 * (n + 1))
    reduction = engine.prompts[-1][0]
    assert reduction.audios == [] and all(f"Part {i + 1}: part {i}" in reduction.content for i in range(n))


def test_a_failing_window_fails_the_task():
    x = _spoken(70.0)
    with pytest.raises(EngineError):
        asyncio.run(run_task(ScriptedEngine(["ok", "FAIL", "ok", "ok"]), x, get_task("transcribe"),
                             SamplingParams()))


def test_windows_end_at_the_cuts_and_cutting_online_equals_planning():
    """`cuts` (e.g. slide changes) split what pauses alone would pack into one window: no window holds sound
    from both sides of a cut that falls in a pause, and the online cutter, which sees the cuts on its own
    clock, cuts the same as the planner."""
    sentence = espeak("The report is due on Friday, after the board meeting.")
    gap = np.zeros(SAMPLE_RATE, np.float32)  # 1 s: pieces this close are packed together without a cut
    x = np.concatenate([sentence, gap] * 30)
    step = (len(sentence) + len(gap)) / SAMPLE_RATE
    cuts = [round(k * step - 0.5, 2) for k in (3, 7, 16, 25)]  # inside the pauses after sentences 3, 7, 16, 25
    plain, cut = plan_windows(x, speech_only=True), plan_windows(x, speech_only=True, cuts=cuts)
    assert len(cut) > len(plain)
    assert not any(w.start_s < c < w.end_s for c in cuts for w in cut), cut
    # without them, windows span most of those pauses (one may be a seam of its own by chance)
    assert sum(w.start_s < c < w.end_s for c in cuts for w in plain) >= 3, plain
    cutter, online = WindowCutter(speech_only=True, cuts=cuts), []
    for start in range(0, len(x), SAMPLE_RATE):
        online += [w for w, _ in cutter.feed(x[start:start + SAMPLE_RATE])]
    assert online + [w for w, _ in cutter.finish()] == cut
