"""On-screen text as Whisper's previous-text prompt (lalm.screen_text.screen_spellings, through lalm.job): the format,
and on real Whisper tiny.en weights, the two things it is for — spoken names from the screen come out spelled
right, and nothing only on screen is read aloud. The speech is by espeak-ng variants lalm's training corpus holds
out (lalm.default_model.corpus.HELD_OUT_VARIANTS); the lines are given as the OCR would read them (the reading
itself is tested in test_screen_text_read.py)."""

from __future__ import annotations

import asyncio
import collections

import numpy as np
import pytest

from lalm.config import Settings
from lalm.engines.base import SpeechRequest
from lalm.job import JobOptions, run_job, screen_prompt
from lalm.metrics import normalize
from lalm.screen_text import ScreenLine, says_screen_words, screen_spellings, spellings
from lalm.serve.backend import local_engine
from lalm.synth import espeak

LINES = [
    ScreenLine("Part 1: Fjordheim glacier ablation", 0.0, 10.0, 0.99),
    ScreenLine("Sponsor: Quillfeather Dynamics", 0.0, 10.0, 0.99),
    ScreenLine("Room 2A, 9:15", 0.0, 10.0, 0.99),
    ScreenLine("Przemysl Kelvinator", 9.0, 20.0, 0.98),  # on screen for most of the window [8, 18)
]


def test_spellings_drop_labels_and_numbers() -> None:
    assert spellings("Sponsor: Quillfeather Dynamics") == "Quillfeather Dynamics"
    assert spellings("Part 1: Nakamura-Holt reagent") == "Nakamura-Holt reagent"
    assert spellings("Room 2A, 9:15") == "Room"
    assert spellings("Zorblax Quintavell, Castelvetrano") == "Zorblax Quintavell, Castelvetrano"
    assert spellings("Room 2A, 9:15, Main Hall") == "Room, Main Hall"


def test_spellings_mend_two_ocr_misreadings_only() -> None:
    assert spellings("Part 1: lsotherm surveys") == "Isotherm surveys"  # no word starts with l + consonant
    assert spellings("RadoslawWieczorek, Skibbereen") == "Radoslaw Wieczorek, Skibbereen"
    assert spellings("McDonald YouTube iPhone, llama") == "McDonald YouTube iPhone, llama"


def test_the_prompt_lists_the_lines_most_relevant_last_after_the_callers_prompt() -> None:
    speech = SpeechRequest("transcribe", prompt="Speakers: Maria Okafor.",
                           screen=screen_spellings(LINES, 8.0, 18.0, margin=1.0))
    assert speech.previous_text == ("Speakers: Maria Okafor. Fjordheim glacier ablation, Quillfeather Dynamics, Room, "
                                    "Przemysl Kelvinator.")
    # the budget keeps the caller's prompt and the line most on screen during the window
    small = Settings(screen_text_max_tokens=10, screen_text_margin_seconds=1.0)
    assert screen_prompt(LINES, "Hi.", small)(8.0, 18.0) == "Przemysl Kelvinator."
    assert screen_spellings(LINES, 40.0, 50.0, margin=1.0) is None
    assert SpeechRequest("transcribe", prompt="Hi.").previous_text == "Hi."
    assert SpeechRequest("transcribe", prompt=" ").previous_text is None


def test_a_transcript_says_screen_words_of_four_letters_or_more() -> None:
    screen = "Fjordheim glacier ablation, Quillfeather Dynamics, Room."
    assert says_screen_words("The Fjordheim glacier is melting.", screen)
    assert says_screen_words("meet me in the room", screen)  # case aside
    assert not says_screen_words("The meeting starts at nine thirty on Monday.", screen)
    assert not says_screen_words("Of the two, and one.", "Part of the Two and One.")  # short words tell nothing
    assert says_screen_words("Quintavell's talk is well known.", "Zorblax Quintavell, Well-Known Labs.")
    assert says_screen_words("Anything at all.", "AI, ML, GPU")  # nothing on it tells: the slide stays


SETTINGS = Settings()
VOICES = ("en-us+f4", "en-gb+m7")
# (what is said, the names in it, the lines on screen while it is said)
SPOKEN = [
    ("Our speaker is Zorblax Quintavell, from Castelvetrano.", "Zorblax Quintavell Castelvetrano",
     ["Part 1: Keynote", "Zorblax Quintavell, Castelvetrano", "Room 4B, 9:30"]),
    ("Next, Oksanavich Brumley talks about vexillology.", "Oksanavich Brumley vexillology",
     ["Part 2: Vexillology", "Oksanavich Brumley, Ulvenshade"]),
]
UNSPOKEN = [("The meeting starts at nine thirty on Monday.", ["Part 3: Dendrochronology", "Tessaract Vandermolen"]),
            ("Please send the report before the end of the week.",
             ["Sponsor: Halcyon Biotics", "Ingrid Haldorsdottir, Skibbereen"])]


@pytest.fixture(scope="module")
def tiny_en():
    engine = local_engine("whisper-tiny.en", SETTINGS)
    asyncio.run(engine.start())
    return engine


def _clip(text: str, voice: str) -> tuple[np.ndarray, float]:
    """`text` said by `voice` after half a second of silence, with one after: the samples and their seconds."""
    pad = np.zeros(8000, np.float32)
    samples = np.concatenate([pad, espeak(text, voice=voice), pad])
    return samples, len(samples) / 16000


def _transcribe(engine, text: str, voice: str, shown: list[str] | None) -> list[str]:
    samples, seconds = _clip(text, voice)
    screen = None if shown is None else [ScreenLine(line, 0.0, seconds, 0.99) for line in shown]
    return normalize(asyncio.run(run_job(engine, samples, JobOptions(screen=screen), SETTINGS)).text).split()


def test_spoken_names_come_out_right_with_the_screen_text(tiny_en) -> None:
    """Name words transcribed right, over two clips in two voices: most wrong without the screen, at most a third
    of those wrong with it."""
    total, wrong = 0, {"without": 0, "with": 0}
    for text, names, shown in SPOKEN:
        for voice in VOICES:
            expected = collections.Counter(normalize(names).split())
            for label, lines in (("without", None), ("with", shown)):
                got = collections.Counter(_transcribe(tiny_en, text, voice, lines))
                wrong[label] += sum(n - min(n, got[w]) for w, n in expected.items())
            total += expected.total()
    assert wrong["without"] >= total // 2, (wrong, total)
    assert wrong["with"] <= wrong["without"] // 3, (wrong, total)


def test_no_word_only_on_screen_is_read_aloud(tiny_en) -> None:
    for text, shown in UNSPOKEN:
        on_screen = {w for line in shown for w in normalize(line).split() if w.isalpha()} - set(normalize(text).split())
        for voice in VOICES[:1]:
            heard = _transcribe(tiny_en, text, voice, shown)
            assert not on_screen & set(heard), (text, voice, heard)
