"""Real recorded speech with known transcripts that Debian packages carry: the default model's test of
whether what it learned from synthetic voices carries over to people.

- pocketsphinx-testdata: 5 LibriVox utterances of "Sense and Sensibility" and 5 "cards" utterances (16 kHz);
- alsa-utils: the 8 voice prompts ("Front Center", ...; 48 kHz), their text being their file names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lalm.audio import decode_audio

__all__ = ["Recording", "real_recordings"]

POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")


@dataclass(frozen=True)
class Recording:
    """One recording: 16 kHz mono float32 samples and the words spoken (lower case, no punctuation)."""

    name: str
    samples: np.ndarray
    reference: str


def _transcriptions(folder: Path, listing: str) -> dict[str, str]:
    """pocketsphinx's `<s> words </s> (id)` lines -> {id: words}."""
    out = {}
    for line in (folder / listing).read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m:
            out[m.group(2)] = " ".join(m.group(1).split())
    return out


def real_recordings() -> list[Recording]:
    """Every recording found (a missing package gives none of its clips; scripts/setup.sh installs both)."""
    found = []
    for folder, listing in ((POCKETSPHINX / "librivox", "transcription"), (POCKETSPHINX / "cards",
                                                                           "cards.transcription")):
        if (folder / listing).is_file():
            for name, text in sorted(_transcriptions(folder, listing).items()):
                samples = decode_audio(folder / f"{name}.wav").samples
                found.append(Recording(f"{folder.name}/{name}", samples, text))
    for wav in sorted(ALSA_SOUNDS.glob("*.wav")):
        if wav.stem != "Noise":
            samples = decode_audio(wav).samples
            found.append(Recording(f"alsa/{wav.stem}", samples, wav.stem.replace("_", " ").lower()))
    return found
