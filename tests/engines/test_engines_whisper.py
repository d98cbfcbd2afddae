"""Whisper base (what `default` hears with) in-process, through the one transcription job (lalm.job), on speech in
another language: pytest-audioeval's text-to-speech clips with their references (9 languages, 16 kHz; the package
is installed for its clips, its pytest plugin is switched off). A French clip comes back as French words, with
the language detected, and its translation as English words."""

from __future__ import annotations

import asyncio
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from lalm.audio import decode_audio
from lalm.config import Settings
from lalm.job import JobOptions, run_job
from lalm.serve.backend import local_engine

pytestmark = pytest.mark.slow

SETTINGS = Settings(fallback_temperatures=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def _clip(language: str, name: str) -> tuple[np.ndarray, str]:
    """The samples and reference text of one pytest-audioeval clip."""
    spec = importlib.util.find_spec("pytest_audioeval")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps pytest-audioeval==0.1.3"
    wav = Path(spec.submodule_search_locations[0]) / "samples" / "audio" / language / f"{name}.wav"
    return decode_audio(wav).samples, wav.with_suffix(".txt").read_text(encoding="utf-8").strip()


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def whisper_base():
    engine = local_engine("whisper-base", SETTINGS)
    asyncio.run(engine.start())
    return engine


# clip, English words its translation must hold, French words it must not
FRENCH = [("bonjour_monde", {"hello", "world"}, {"bonjour", "le", "monde"}),
          ("pangrama", {"old", "judge"}, {"portez", "ce", "vieux", "au", "juge", "qui"})]


@pytest.mark.parametrize(("name", "english", "french"), FRENCH, ids=[c[0] for c in FRENCH])
def test_french_is_transcribed_in_french_and_translated_to_english(whisper_base, name: str, english: set[str],
                                                                   french: set[str]) -> None:
    samples, reference = _clip("fr", name)
    said = asyncio.run(run_job(whisper_base, samples, JobOptions(), SETTINGS))
    assert said.language == "fr"
    # most of the reference's words, as French (Whisper base writes "Portez ce vieux whisky au juge Blanqui Fume.")
    assert len(_words(reference) & _words(said.text)) >= 0.6 * len(_words(reference)), said.text
    translated = asyncio.run(run_job(whisper_base, samples, JobOptions(task="translate"), SETTINGS))
    assert english <= _words(translated.text), translated.text
    assert not _words(translated.text) & french, translated.text
