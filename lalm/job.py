"""The one transcription job: a task on audio of any length, set up the same way for every caller — the
transcription and translation endpoints, realtime turns, chat completions that name a task, and `lalm transcribe`.
In the spirit of faster-whisper's `WhisperModel.transcribe(audio, **options)`: `run_job` returns the whole result,
`stream_job` yields it as events.

What is decided here, once: the instruction's language hint and context (lalm.tasks), the Whisper request that
a speech-recognition model reads instead (engines.base.SpeechRequest), each window's on-screen text
(lalm.screen_text), the temperature fallback (lalm.longform.fallback, from the settings), the sampling
parameters, and the language words are aligned in. The windows themselves run in lalm.longform.run.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lalm.config import Settings
from lalm.engines.base import Engine, Message, SamplingParams, SpeechRequest
from lalm.errors import LalmError
from lalm.longform.fallback import Fallback
from lalm.longform.run import TaskEvent, TaskOptions, TaskResult, run_task, stream_task
from lalm.longform.windows import WindowStream
from lalm.screen_text import (
    ScreenLine,
    ScreenText,
    estimate_tokens,
    read_screen_text,
    screen_changes,
    screen_spellings,
    window_context,
)
from lalm.tasks import Task, get_task, with_language_hint

__all__ = ["JobOptions", "check_capability", "plan_job", "read_screen", "run_job", "screen_context",
           "screen_prompt", "screen_windows", "speech_request", "stream_job"]


@dataclass(frozen=True)
class JobOptions:
    """What a caller asks of one job; every field has a default.

    `task`: a preset of lalm.tasks (transcribe, translate, summarize, emotion, qa, describe). `language`: the
    spoken language, an ISO 639-1 code (a hint; None: the model decides). `target_language`: what `translate`
    translates into (English, as Whisper and OpenAI's endpoint do). `prompt`: the caller's context text (names,
    terms, earlier text). `question`: for qa. `temperature` 0 is greedy, with Whisper's temperature fallback for
    transcripts when `fallback`. `max_tokens`: per window (None: the `window_max_tokens` setting).
    `word_timestamps`: sentence-sized segments with aligned word times. `logprobs`: the text's token logprobs.
    `screen`: on-screen lines read from the video (each window gets those shown around it). `history`: earlier
    chat turns, sent before each window."""

    task: str = "transcribe"
    language: str | None = None
    target_language: str = "English"
    prompt: str | None = None
    question: str | None = None
    temperature: float = 0.0
    max_tokens: int | None = None
    word_timestamps: bool = False
    logprobs: bool = False
    screen: Sequence[ScreenLine] | None = None
    fallback: bool = True
    history: Sequence[Message] = ()


def read_screen(source: bytes | BinaryIO | Path, settings: Settings, *, max_seconds: float | None = None,
                stop: threading.Event | None = None) -> ScreenText:
    """The on-screen text of a video (lalm.screen_text.read_screen_text) with the screen_text settings: frames
    probed and sampled as they say, lines kept above their score, at most `max_seconds` read (None: all). Blocking
    (OCR): run it in a worker thread; setting `stop` ends it at the next frame."""
    return read_screen_text(source, probe_seconds=settings.screen_text_probe_seconds,
                            max_frames_per_minute=settings.screen_text_max_frames_per_minute,
                            min_score=settings.screen_text_min_score, max_seconds=max_seconds, stop=stop)


def screen_context(lines: Sequence[ScreenLine], prompt: str | None, language: str | None,
                  settings: Settings) -> Callable[[float, float], str | None]:
    """Each window's context for a model that reads instructions: the `prompt` with the on-screen lines shown
    around the window [start, end) seconds (lalm.screen_text.window_context, within the screen_text settings'
    margin and token budget), after the spoken-language hint of `language`."""

    def context(start: float, end: float) -> str | None:
        return with_language_hint(window_context(lines, start, end, prompt=prompt,
                                                 margin=settings.screen_text_margin_seconds,
                                                 max_tokens=settings.screen_text_max_tokens), language)
    return context


def screen_prompt(lines: Sequence[ScreenLine], prompt: str | None,
                  settings: Settings) -> Callable[[float, float], str | None]:
    """Each window's on-screen text for a Whisper model (SpeechRequest.screen, after the caller's `prompt` in its
    previous-text prompt): the spellings of the lines shown around the window (lalm.screen_text.screen_spellings),
    within the screen_text settings' margin and what the caller's `prompt` leaves of their token budget."""
    budget = settings.screen_text_max_tokens - (estimate_tokens(prompt.strip()) if prompt and prompt.strip() else 0)

    def screen(start: float, end: float) -> str | None:
        return screen_spellings(lines, start, end, margin=settings.screen_text_margin_seconds, max_tokens=budget)
    return screen


def screen_windows(audio: np.ndarray | WindowStream, task: Task,
                   lines: Sequence[ScreenLine] | None) -> np.ndarray | WindowStream:
    """`audio` (16 kHz samples) as the windows of a transcript or translation with on-screen `lines`: cut where
    the slide changes too (lalm.screen_text.screen_changes) where a pause allows, so each window's prompt holds
    the slide said over it, not the one before or after. Anything else is returned as it is (a WindowStream
    is cut by whoever made it)."""
    if not lines or not task.joins_windows or isinstance(audio, WindowStream):
        return audio
    return WindowStream([audio], speech_only=True, cuts=screen_changes(lines))


def speech_request(task: Task, language: str | None, prompt: str | None) -> SpeechRequest | None:
    """What a transcript or translation window asks of a Whisper model (engines.base.SpeechRequest): the task,
    the spoken `language` (None: detected) and the `prompt` as its previous text; None for other tasks."""
    if not task.joins_windows:
        return None
    return SpeechRequest("translate" if task.name == "translate" else "transcribe", language, prompt)


def check_capability(engine: Engine, task: Task) -> None:
    """Raise a 400 (code model_capability, param task) when `engine`'s model cannot run `task`: a Whisper model
    asked to summarize, a composed model asked for emotion (it hears words, not tone), an English-only model
    asked to translate."""
    can = engine.capabilities
    if task.name not in can.tasks:
        why = {"whisper": "it is a speech-recognition model: it transcribes" + (" and translates" if can.translation
                                                                                else ""),
               "composed": "it answers from a transcript, so it cannot hear tone, emotion or non-speech sounds"}
        raise LalmError(f"The model {engine.model_name!r} cannot run the {task.name} task: "
                        f"{why.get(can.family, 'it was not trained for it')}. It can: {', '.join(can.tasks)}.",
                        status=400, code="model_capability", param="task")


def plan_job(options: JobOptions, settings: Settings) -> tuple[Task, SamplingParams, TaskOptions]:
    """The task preset, sampling parameters and window options that run `options` (lalm.longform.run).
    Raises lalm.tasks.TaskError for an unknown task or a qa without a question."""
    task = get_task(options.task)
    translate = task.name == "translate"
    if translate:
        # the instruction names the target; the spoken language stays a hint for the model that hears
        target, context = options.target_language, options.prompt
    else:
        target, context = None, with_language_hint(options.prompt, options.language)
    speech = speech_request(task, options.language, options.prompt)
    window_context_fn = window_screen = None
    if options.screen is not None:
        window_context_fn = screen_context(options.screen, options.prompt, None if translate else options.language,
                                           settings)
        window_screen = screen_prompt(options.screen, options.prompt, settings)
    params = SamplingParams(temperature=options.temperature,
                            max_tokens=options.max_tokens or settings.window_max_tokens)
    task_options = TaskOptions(
        question=options.question, language=target, context=context, history=options.history,
        concurrency=settings.window_concurrency, timestamps=options.word_timestamps,
        # words of a translation are English; of a transcript, the spoken language (None: tried as English)
        word_language="en" if translate else options.language,
        window_context=window_context_fn, logprobs=options.logprobs,
        fallback=Fallback.from_settings(settings) if options.fallback else None,
        speech=speech, window_screen=window_screen, screen=options.screen or ())
    return task, params, task_options


async def run_job(engine: Engine, audio: np.ndarray | WindowStream, options: JobOptions,
                  settings: Settings) -> TaskResult:
    """Run the job on `audio` (16 kHz mono float32 samples, or a WindowStream decoding a file or an upload) and
    return the whole result: text, segments (sentence-sized with word times when `word_timestamps`), usage and
    the recording's length. Raises TaskError (bad task), LalmError 400 model_capability (a task the model cannot
    run), lalm.audio.AudioError (the audio), EngineError."""
    task, params, task_options = plan_job(options, settings)
    check_capability(engine, task)
    return await run_task(engine, screen_windows(audio, task, options.screen), task, params, task_options)


async def stream_job(engine: Engine, audio: np.ndarray | WindowStream, options: JobOptions, settings: Settings,
                     *, live: bool = True) -> AsyncIterator[TaskEvent]:
    """Run the job and yield its answer as it is made (lalm.longform.run.TaskEvent: text pieces, finished
    segments, then the end with usage); with `live`, text as the engine writes it. Errors as `run_job`."""
    task, params, task_options = plan_job(options, settings)
    check_capability(engine, task)
    async for event in stream_task(engine, screen_windows(audio, task, options.screen), task, params, task_options,
                                   live=live):
        yield event
