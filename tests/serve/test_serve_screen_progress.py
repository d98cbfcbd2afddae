"""The on-screen text of a request is read beside its audio windows (lalm.serve.screen.ScreenContext): a
window's context waits only until the reading has passed the window's end plus the margin, with the lines known
by then; the answer waits for the whole reading; a request that ends stops the reading; the videos of a chat
message are read in turn on the clock of its joined audio. The reader is scripted step by step from the test
(no timing): each step is what read_screen_text reports after a probe."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest

import lalm.serve.screen as screen
from lalm.config import Settings
from lalm.screen_text import ScreenLine, ScreenText

A = ScreenLine("Zorblax Quintavell", 0.0, 6.0, 0.9)
B = ScreenLine("Quillfeather Dynamics", 10.0, 20.0, 0.9)
SETTINGS = Settings(screen_text_margin_seconds=2.0)


class ScriptedReader:
    """read_screen_text as the test scripts it: each `step(t, lines)` is a probe's progress report, `end()`
    returns the lines of the last step (one video per `end`)."""

    def __init__(self) -> None:
        self.steps: queue.Queue = queue.Queue()
        self.stops: list[threading.Event] = []

    def step(self, t: float, lines: list[ScreenLine]) -> None:
        self.steps.put((t, lines))

    def end(self) -> None:
        self.steps.put(None)

    def __call__(self, source: object, *, progress, stop: threading.Event, **_: object) -> ScreenText:
        self.stops.append(stop)
        t, lines = 0.0, []
        while not stop.is_set():
            try:
                item = self.steps.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                break
            t, lines = item
            progress(t, lines)
        return ScreenText(lines=lines, seconds=t)


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> ScriptedReader:
    scripted = ScriptedReader()
    monkeypatch.setattr(screen, "read_screen_text", scripted)
    return scripted


async def _settle() -> None:
    for _ in range(20):  # let every woken waiter run and check again
        await asyncio.sleep(0)


def test_a_window_waits_until_the_reading_passes_its_end_and_margin(reader: ScriptedReader) -> None:
    async def main() -> None:
        ctx = screen.ScreenContext.start(SETTINGS, [(lambda: b"video", 0.0)], None)
        first = asyncio.create_task(ctx.for_window(None)(1.0, 5.0))
        second = asyncio.create_task(ctx.for_window(None)(12.0, 15.0))
        reader.step(6.5, [A])
        await asyncio.wait_for(ctx.until(6.5), 10)
        await _settle()
        assert not first.done()  # 6.5 s read: lines starting before 7 s (its end + margin) may still come
        reader.step(7.0, [A])
        assert "Zorblax Quintavell" in await asyncio.wait_for(first, 10)
        reader.step(16.0, [A, B])
        await asyncio.wait_for(ctx.until(16.0), 10)
        await _settle()
        assert not second.done()
        reader.end()
        context = await asyncio.wait_for(second, 10)
        assert "Quillfeather Dynamics" in context and "Zorblax" not in context
        await asyncio.wait_for(ctx.finish(), 10)
        assert ctx.lines == [A, B] and ctx.warnings == []

    asyncio.run(main())


def test_closing_stops_the_reading(reader: ScriptedReader) -> None:
    async def main() -> None:
        ctx = screen.ScreenContext.start(SETTINGS, [(lambda: b"video", 0.0)], None)
        window = asyncio.create_task(ctx.for_window(None)(1.0, 5.0))
        reader.step(3.0, [A])
        await asyncio.wait_for(ctx.until(3.0), 10)
        ctx.close()
        with pytest.raises(asyncio.CancelledError):
            await ctx.finish()
        assert reader.stops[0].is_set()  # the reading thread stops at its next probe
        await asyncio.wait_for(window, 10)  # nobody is left waiting for a reading that ended

    asyncio.run(main())


def test_the_videos_of_a_chat_message_are_read_in_turn_on_its_clock(reader: ScriptedReader) -> None:
    async def main() -> None:
        opened: list[str] = []
        sources = [(lambda: opened.append("one") or b"one", 0.0), (lambda: opened.append("two") or b"two", 31.0)]
        ctx = screen.ScreenContext.start(SETTINGS, sources, None)
        reader.step(30.0, [A])
        await asyncio.wait_for(ctx.until(30.0), 10)
        assert opened == ["one"]  # the second video is opened (decoded) only when its turn comes
        reader.end()
        await asyncio.wait_for(ctx.until(31.0), 10)  # the first is read to its end: the second's start
        reader.step(4.0, [A])
        await asyncio.wait_for(ctx.until(35.0), 10)
        reader.end()
        await asyncio.wait_for(ctx.finish(), 10)
        assert opened == ["one", "two"]
        assert ctx.lines == [A, ScreenLine(A.text, 31.0, 37.0, A.score)]

    asyncio.run(main())
