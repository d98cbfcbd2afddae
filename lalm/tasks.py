"""Task presets: what lalm asks the model for each job, and how a job on audio longer than one window
(30 s) is put together. The prompt text lives in `lalm/prompts/` (one file per task); this module only loads
and fills it.

| task       | per window                          | longer audio                                   |
|------------|-------------------------------------|------------------------------------------------|
| transcribe | transcript of the window            | windows cut at silences, transcripts joined    |
| translate  | translation of the window           | same as transcribe                             |
| summarize  | summary of the window               | text-only reduction of the window summaries    |
| emotion    | emotion of the window               | text-only reduction: dominant emotion, changes |
| qa         | the user's question on the window   | text-only reduction of per-window answers      |
| describe   | description of the window           | text-only reduction of the descriptions        |
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lalm.errors import LalmError

__all__ = [
    "NO_SPEECH",
    "PROMPTS_DIR",
    "TASKS",
    "Task",
    "TaskError",
    "composed_request",
    "context_note",
    "get_task",
    "is_no_speech",
    "screen_text_context",
    "transcript_note",
    "with_language_hint",
]

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"  # package data: installed with lalm
# The agreed answer for audio without speech: trained into lalm's own models, recognised by the
# transcription endpoint (which then returns empty text) and by the hallucination metrics.
NO_SPEECH = "(no speech)"


def is_no_speech(text: str) -> bool:
    """Whether a model's answer is the no-speech answer (tolerating case, spacing and a final period)."""
    return text.strip().rstrip(".").strip().lower() == NO_SPEECH


class TaskError(LalmError, ValueError):
    """An unknown task or a missing field the task needs (e.g. `qa` without a question); 400, code
    invalid_task, param task."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, code="invalid_task", param="task")


@dataclass(frozen=True)
class Task:
    name: str
    joins_windows: bool  # True: per-window outputs are concatenated (transcripts); False: reduced by the model

    def instruction(self, *, question: str | None = None, language: str | None = None,
                    context: str | None = None) -> str:
        """The text sent with each audio window."""
        if self.name == "qa" and not (question and question.strip()):
            raise TaskError("The qa task needs a question about the audio (the user message text).")
        text = _prompt(self.name).format(question=(question or "").strip(), language=language or "English")
        if context and context.strip():
            text += "\n" + context_note(context)
        return text

    def reduction(self, parts: list[str], *, question: str | None = None) -> str | None:
        """The text-only prompt that combines per-window outputs, or None when outputs are just joined."""
        if self.joins_windows:
            return None
        numbered = "\n".join(f"Part {i}: {p.strip()}" for i, p in enumerate(parts, 1))
        return _prompt(f"{self.name}.reduce").format(parts=numbered, question=(question or "").strip())


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("transcribe", joins_windows=True),
        Task("translate", joins_windows=True),
        Task("summarize", joins_windows=False),
        Task("emotion", joins_windows=False),
        Task("qa", joins_windows=False),
        Task("describe", joins_windows=False),
    )
}


def get_task(name: str) -> Task:
    """The task called `name`; TaskError names the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"Unknown task {name!r}; choose one of: {', '.join(TASKS)}.") from None


def with_language_hint(context: str | None, language: str | None) -> str | None:
    """The context of a transcription whose spoken `language` (an ISO-639-1 code) the client named: the hint
    of `lalm/prompts/language.txt` before the client's own `context`; None when there is neither."""
    hint = _prompt("language").format(language=language) if language else None
    return " ".join(filter(None, [hint, context])) or None


def transcript_note(transcript: str) -> str:
    """The text that stands for an audio part for a text LLM (a composed model): what the speech recognizer
    heard, marked as a transcript (`lalm/prompts/transcript.txt`)."""
    return _prompt("transcript").format(transcript=transcript.strip())


def composed_request(request: str) -> str:
    """The user's request to a composed model's text LLM, after the transcript: to answer from what was said
    (`lalm/prompts/composed_answer.txt`; chosen by trying SmolLM2-135M-Instruct, which strays from the
    transcript when told so in a system message instead)."""
    return _prompt("composed_answer").format(request=request.strip())


def context_note(context: str) -> str:
    """The line that hands the model context text (`lalm/prompts/context.txt`: it may not be spoken)."""
    return _prompt("context").format(context=context.strip())


def screen_text_context(lines: list[str]) -> str | None:
    """The context piece that carries on-screen text (`lalm/prompts/screen_text.txt`): each line quoted, so
    the model sees labels to spell from, not a script to read out; None without lines."""
    if not lines:
        return None
    return _prompt("screen_text").format(lines=" / ".join(f'"{line}"' for line in lines))


@cache
def _prompt(name: str) -> str:
    path = PROMPTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise TaskError(f"The prompt file {path} is missing.")
    return path.read_text().strip()
