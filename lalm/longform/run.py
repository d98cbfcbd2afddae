"""Tasks on audio of any length: run every window (lalm.longform.windows) through the engine and put the
answers back together, never sending the model more than 30 s at once.

Transcription and translation join the windows' texts, each window becoming one timestamped segment, or,
with `timestamps=True`, sentence-sized segments with word times (lalm.timestamps); the no-speech answer of
a window is dropped, so a recording without speech transcribes to empty text. Their windows hold only
speech (the VAD cuts them, lalm.longform.windows), so noise and music are never sent to be transcribed. Other
tasks answer per window and then reduce the answers with text-only calls (tasks.py), in levels when they do
not fit one prompt (lalm.longform.reduce), each window answering no more than a reduction can hold; a recording
that fits one window is answered directly.

Windows run concurrently (engines batch them), at most `concurrency` at a time so memory stays flat
however long the recording is, and their results are yielded in order. With `live=True` text is streamed
as the engine produces it (the window at the head streams, later ones are buffered until it is done).

Transcription and translation asked for at temperature 0 decode each window with Whisper's temperature fallback
when `TaskOptions.fallback` is given (lalm.longform.fallback): a try that loops or that the model is unsure of is
decoded again at a higher temperature, and a window whose text is far too short for its speech is decoded again
as two (lalm.longform.early_end). Streamed text cannot be taken back, so with a fallback every window is
shown, live too, once the try to keep is known: whole, as soon as it is decided, the windows after it still
decoded meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lalm.engines.base import AudioPart, Delta, Engine, Message, SamplingParams, SpeechRequest, Usage
from lalm.engines.messages import is_control_token
from lalm.longform.early_end import decode_window
from lalm.longform.fallback import Fallback
from lalm.longform.reduce import reduce_budget, reduce_to_final
from lalm.longform.windows import Window, WindowStream, plan_windows
from lalm.screen_text import ScreenLine, lines_within
from lalm.tasks import NO_SPEECH, Task, is_no_speech
from lalm.timestamps import Segment, window_segments

__all__ = ["Segment", "TaskEvent", "TaskOptions", "TaskResult", "Window", "plan_windows", "run_task", "stream_task"]


@dataclass(frozen=True)
class TaskOptions:
    """How `stream_task` / `run_task` run a task; every field has a default.

    `question` (qa), `language` and `context` go into the task's instruction (lalm.tasks). `history`
    (earlier chat turns) is sent before each window; at most `concurrency` windows run at once. With
    `timestamps` (tasks that join windows, not live) segments are sentence-sized with word times, aligned as
    `word_language` (an ISO code; None tries English). `window_context(start, end)` (seconds), when given, is
    each window's own context in place of `context` (e.g. the on-screen text around it, lalm.screen_text).
    With `logprobs` (tasks that join windows) text events carry the logprobs of the tokens behind them. With
    `fallback` (tasks that join windows, asked for at temperature 0 only: a temperature above 0 is used as it is)
    each window is decoded with the temperature fallback of lalm.longform.fallback, and again as two windows when
    the model ended it early (lalm.longform.early_end). `speech` (tasks that join
    windows) is the same request as a Whisper model reads it, sent with every window (engines.base.SpeechRequest);
    `window_screen(start, end)`, when given, is each window's on-screen text for a Whisper model (SpeechRequest.screen).
    `screen`: the on-screen lines of the recording (times on its clock); a window sent without a SpeechRequest
    (a task that does not join windows) carries those shown during it (engines.base.AudioPart.screen), for a
    composed model's Whisper."""

    question: str | None = None
    language: str | None = None
    context: str | None = None
    history: Sequence[Message] = ()
    concurrency: int = 8
    timestamps: bool = False
    word_language: str | None = "en"
    window_context: Callable[[float, float], str | None] | None = None
    logprobs: bool = False
    fallback: Fallback | None = None
    speech: SpeechRequest | None = None
    window_screen: Callable[[float, float], str | None] | None = None
    screen: Sequence[ScreenLine] = ()


@dataclass(frozen=True)
class TaskEvent:
    """A step of `stream_task`: a piece of the answer text, a finished segment, or (last) the end with
    the usage of every engine call and the finish reason. With `TaskOptions.logprobs`, a text event's
    `logprobs` are (token text, logprob) of the tokens sampled since the previous text event of its window
    (tokens that show no text, such as the end of turn, are left out)."""

    text: str = ""
    segment: Segment | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    logprobs: tuple[tuple[str, float], ...] = ()
    language: str | None = None  # on the end event of a transcript: the first window's language a Whisper model gave


@dataclass(frozen=True)
class TaskResult:
    text: str
    segments: list[Segment]
    usage: Usage
    finish_reason: str
    seconds: float = 0.0  # length of the recording
    logprobs: tuple[tuple[str, float], ...] = ()  # of the text's tokens, with TaskOptions.logprobs
    language: str | None = None  # the spoken language, where the engine reports it (a Whisper model's)


_DEFAULT_OPTIONS = TaskOptions()


def _windows(audio: np.ndarray | WindowStream, task: Task) -> WindowStream:
    """`audio` as windows: a stream as it is, samples cut (speech only for tasks that join windows)."""
    return audio if isinstance(audio, WindowStream) else WindowStream([audio], speech_only=task.joins_windows)


def _add(a: Usage, b: Usage | None) -> Usage:
    return a if b is None else a + b


class _Heard:
    """The spoken language a speech-recognition model reported on a recording's first window with speech
    (`decided` once a window had speech, `language` None if the engine did not say)."""

    def __init__(self) -> None:
        self.language: str | None = None
        self.decided = False

    def saw(self, text: str, language: str | None) -> None:
        """Note a window's whole answer `text` and the `language` its engine reported."""
        if not self.decided and text.strip() and not is_no_speech(text):
            self.decided, self.language = True, language


async def stream_task(engine: Engine, audio: np.ndarray | WindowStream, task: Task, params: SamplingParams,
                      options: TaskOptions = _DEFAULT_OPTIONS, *, live: bool = True) -> AsyncIterator[TaskEvent]:
    """Run `task` on `audio` (samples, or a `WindowStream` decoding an upload) as `options` say and yield its
    answer as `TaskEvent`s; with `live`, text as the engine produces it."""
    instruction = task.instruction(question=options.question, language=options.language, context=options.context)
    windows = _windows(audio, task)
    if options.timestamps or options.logprobs:
        params = dataclasses.replace(params, logprobs=True)
    rule = options.fallback  # only transcript windows asked for at 0, with a schedule to climb
    fallback = rule if rule and len(rule.temperatures) > 1 and task.joins_windows and params.temperature == 0 else None

    # A speech-recognition model told no language detects it on the first window and is told it from then on,
    # as Whisper's own transcribe loop does: each later window saves a detection pass (an encoder run), and a
    # recording is transcribed in one language.
    whisper_hears = engine.capabilities.family in ("whisper", "composed")
    heard = _Heard() if (task.joins_windows and options.speech is not None and options.speech.language is None
                         and whisper_hears) else None

    def build(window: Window, samples: np.ndarray) -> list[Message]:
        text, speech = instruction, options.speech if task.joins_windows else None
        if options.window_context is not None:
            text = task.instruction(question=options.question, language=options.language,
                                    context=options.window_context(window.start_s, window.end_s))
        # a model that reads instructions has the screen text in `text` already (window_context)
        if speech is not None and options.window_screen is not None and whisper_hears:
            speech = dataclasses.replace(speech, screen=options.window_screen(window.start_s, window.end_s))
        if speech is not None and heard is not None and heard.language is not None:
            speech = dataclasses.replace(speech, language=heard.language)
        # an answer a composed model makes from what its Whisper hears: the Whisper gets the window's screen text
        screen = tuple(lines_within(options.screen, window.start_s, window.end_s)) if speech is None else ()
        return [*options.history, Message("user", [AudioPart(samples, screen=screen), text], speech=speech)]

    # a task that reduces its windows' answers asks each window for no more than a reduction prompt can hold
    budget = None if task.joins_windows else await reduce_budget(engine, task, question=options.question)
    runs = _run_windows(engine, windows, build, budget.answer_params(params) if budget else params,
                        concurrency=options.concurrency, live=live and task.joins_windows,
                        keep_samples=options.timestamps, fallback=fallback, heard=heard)
    # Closed explicitly, not left to the garbage collector: when the consumer is cancelled (its client went
    # away), the windows' engine calls stop at once.
    if task.joins_windows:
        async with contextlib.aclosing(runs):
            async for event in _joined(runs, options, live=live):
                yield event
        return
    usage, finish, answers = Usage(), "stop", []
    async with contextlib.aclosing(runs):
        async for run in runs:
            text = ""
            async for d in run.deltas:
                text += d.text
                usage = _add(usage, d.usage)
                finish = "length" if d.finish_reason == "length" else finish
            if text.strip() and not is_no_speech(text):
                answers.append(Segment(run.window.start_s, run.window.end_s, text.strip(), temperature=run.temperature))
                yield TaskEvent(segment=answers[-1])
    if len(answers) <= 1:
        yield TaskEvent(text=answers[0].text if answers else NO_SPEECH)
        yield TaskEvent(usage=usage, finish_reason=finish)
        return
    final = await reduce_to_final(engine, task, [a.text for a in answers], params, budget=budget,
                                  question=options.question, concurrency=options.concurrency)
    usage = usage + final.usage
    if live:
        async for d in engine.stream(final.messages, final.params):
            if d.text:
                yield TaskEvent(text=d.text)
            usage, finish = _add(usage, d.usage), d.finish_reason or finish
    else:
        out = await engine.generate(final.messages, final.params)
        yield TaskEvent(text=out.text.strip())
        usage, finish = _add(usage, out.usage), out.finish_reason
    yield TaskEvent(usage=usage, finish_reason=finish)


async def _joined(runs: AsyncIterator[_WindowRun], options: TaskOptions, *, live: bool) -> AsyncIterator[TaskEvent]:
    """Transcripts of consecutive windows joined with spaces (with `options.timestamps`, segments with word
    times). Live text that may still turn out to be the no-speech answer is held back until it cannot be."""
    usage, finish, said_anything, language = Usage(), "stop", False, None
    async for run in runs:
        window, text, sent, logprobs, unsent, mean = run.window, "", 0, [], [], None
        async for d in run.deltas:
            text += d.text
            logprobs += d.logprobs
            language = language or d.language
            mean = d.avg_logprob if d.avg_logprob is not None else mean
            # special tokens (end of turn, control tokens; vLLM reports them with their literal text) show no text
            unsent += (lp for lp in d.logprobs if not is_control_token(lp[0])) if options.logprobs else ()
            usage = _add(usage, d.usage)
            if d.finish_reason == "length":
                finish = "length"
            shown = text.lstrip()
            if not live or is_no_speech(shown) or (d.finish_reason is None and NO_SPEECH.startswith(shown)):
                continue
            if len(shown.rstrip()) > sent:
                piece = shown.rstrip()[sent:]
                if sent == 0 and said_anything:
                    piece = " " + piece
                sent = len(shown.rstrip())
                said_anything = True
                yield TaskEvent(text=piece, logprobs=tuple(unsent))
                unsent = []
        final = text.strip()
        if final and not is_no_speech(final):
            if not live:
                yield TaskEvent(text=(" " if said_anything else "") + final, logprobs=tuple(unsent))
                said_anything = True
            if not options.timestamps:
                yield TaskEvent(segment=Segment(window.start_s, window.end_s, final, temperature=run.temperature,
                                                avg_logprob=mean or 0.0))
                continue
            for segment in await asyncio.to_thread(window_segments, run.samples, window.start_s, text,
                                                   token_logprobs=logprobs, avg_logprob=mean or 0.0,
                                                   language=options.word_language):
                yield TaskEvent(segment=dataclasses.replace(segment, temperature=run.temperature))
    yield TaskEvent(usage=usage, finish_reason=finish, language=language)


@dataclass
class _WindowRun:
    """A window given to the engine: its samples (None unless kept), its deltas in order, and the temperature
    of the try they come from (with a fallback, set when the try is chosen: before the last delta)."""

    window: Window
    samples: np.ndarray | None
    deltas: AsyncIterator[Delta]
    temperature: float


async def _run_windows(
    engine: Engine,
    windows: WindowStream,
    build: Callable[[Window, np.ndarray], list[Message]],
    params: SamplingParams,
    *,
    concurrency: int,
    live: bool,
    keep_samples: bool = False,
    fallback: Fallback | None = None,
    heard: _Heard | None = None,
) -> AsyncIterator[_WindowRun]:
    """Start each window as it is cut (at most `concurrency` running) and yield, in order, each window's run
    with its samples (None unless `keep_samples`: finished windows wait in order, and holding their audio
    only when it is needed keeps memory flat) and its deltas. With `fallback`, a window's one delta is the try
    lalm.longform.fallback keeps, with the usage of every try. With `heard`, windows run one at a time until
    one has speech, and its language is noted before the next is built. Stopping the iteration cancels
    everything still running."""
    slots = asyncio.Semaphore(concurrency)
    order: asyncio.Queue = asyncio.Queue()
    running: set[asyncio.Task] = set()

    async def one(run: _WindowRun, samples: np.ndarray, out: asyncio.Queue) -> None:
        try:
            if fallback is not None:
                kept, usage = await decode_window(engine, build, run.window, samples, params, fallback)
                run.temperature, c = kept.temperature, kept.completion
            elif live:
                text, language = "", None
                async for d in engine.stream(build(run.window, samples), params):
                    text, language = text + d.text, d.language or language
                    out.put_nowait(d)
                if heard is not None:
                    heard.saw(text, language)
                return
            else:
                c = await engine.generate(build(run.window, samples), params)
                usage = c.usage
            if heard is not None:
                heard.saw(c.text, c.language)
            out.put_nowait(Delta(c.text, c.finish_reason, usage, c.logprobs, language=c.language,
                                 avg_logprob=c.avg_logprob))
        except Exception as exc:  # handed to the consumer, which raises it in order
            out.put_nowait(exc)
        finally:
            slots.release()

    async def produce() -> None:
        try:
            async for window, samples in windows:
                await slots.acquire()
                out: asyncio.Queue = asyncio.Queue()
                run = _WindowRun(window, samples if keep_samples else None, _drain(out), params.temperature)
                task = asyncio.create_task(one(run, samples, out))
                running.add(task)
                task.add_done_callback(running.discard)
                order.put_nowait(run)
                if heard is not None and not heard.decided:
                    await asyncio.wait({task})
            order.put_nowait(None)
        except Exception as exc:  # the decoder failed part-way: the consumer raises it after what came before
            order.put_nowait(exc)

    producer = asyncio.create_task(produce())
    try:
        while (item := await order.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        producer.cancel()
        for task in list(running):
            task.cancel()


async def _drain(out: asyncio.Queue) -> AsyncIterator[Delta]:
    while True:
        item = await out.get()
        if isinstance(item, Exception):
            raise item
        yield item
        if item.finish_reason is not None:
            return


async def run_task(engine: Engine, audio: np.ndarray | WindowStream, task: Task, params: SamplingParams,
                   options: TaskOptions = _DEFAULT_OPTIONS) -> TaskResult:
    """Run `task` on audio of any length and return the whole answer (`stream_task`, not live)."""
    windows = _windows(audio, task)  # made here, so the recording's length can be read once it is all heard
    text, segments, usage, finish, logprobs, language = [], [], Usage(), "stop", [], None
    async for event in stream_task(engine, windows, task, params, options, live=False):
        text.append(event.text)
        logprobs += event.logprobs
        if event.segment is not None:
            segments.append(event.segment)
        if event.finish_reason is not None:
            usage, finish, language = event.usage or usage, event.finish_reason, event.language
    return TaskResult("".join(text), segments, usage, finish, windows.seconds, tuple(logprobs), language)
