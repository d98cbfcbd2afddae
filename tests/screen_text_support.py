"""What the screen-text tests of the gateway and the CLI share: an engine that records each request's prompt
(the seam under test), and the check that every audio window of the slide video (tests/media.py) was asked
with the text on screen during it, and only that."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from lalm.engines.base import Completion, Delta, Engine, Message, SamplingParams
from lalm.tasks import PROMPTS_DIR

# the words of each audio window's slide (the first slide's window also sees the subtitle shown in it)
GROUPS = [
    {"Zorblax", "Fjordheim", "Nakamura"},
    {"Przemysl", "Kelvinator", "Brumley"},
    {"Quillfeather", "Vexillology"},
]
RULE = (PROMPTS_DIR / "screen_text.txt").read_text().split("{lines}")[0].strip()


class RecordingEngine(Engine):
    """`inner`, with the text of every request's last message recorded in `prompts`, and the previous-text prompt
    a Whisper model would read (its SpeechRequest's) in `speech_prompts` when the message has one."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.model_name, self.prompts = inner, inner.model_name, []
        self.speech_prompts: list[str | None] = []

    def _record(self, messages: Sequence[Message]) -> None:
        content = messages[-1].content
        self.prompts.append(content if isinstance(content, str) else " ".join(p for p in content if isinstance(p, str)))
        if messages[-1].speech is not None:
            self.speech_prompts.append(messages[-1].speech.previous_text)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        self._record(messages)
        return await self.inner.generate(messages, params)

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        self._record(messages)
        async for delta in self.inner.stream(messages, params):
            yield delta


def windows_see_their_slides(prompts: list[str], *, rule: bool = True) -> None:
    """Three windows, each prompt carrying the on-screen rule (unless not `rule`: a Whisper prompt lists the
    spellings alone) and the words of its own slide only (windows run concurrently: prompts are put in slide
    order first)."""
    assert len(prompts) == 3, prompts
    prompts = sorted(prompts, key=lambda p: next((i for i, g in enumerate(GROUPS) if any(w in p for w in g)), 3))
    for prompt, group in zip(prompts, GROUPS, strict=True):
        assert not rule or RULE in prompt, prompt
        assert all(w in prompt for w in group), (group, prompt)
        others = set().union(*GROUPS) - group
        assert not any(w in prompt for w in others), (others, prompt)
