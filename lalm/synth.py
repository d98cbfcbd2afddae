"""Speech with known text, synthesised offline (espeak-ng, festival): the source of test fixtures,
training manifests and the AIR-Bench fixture. Output goes through lalm.audio, so it is 16 kHz mono
float32 like everything else."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lalm.audio import decode_audio

__all__ = ["FESTIVAL_VOICES", "espeak", "espeak_voices", "festival"]

FESTIVAL_VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone")
_NO_LIMIT = {"max_bytes": 1 << 40, "max_seconds": 1e9}


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: apt-get install {package} (scripts/setup.sh does this).")
    return path


def espeak(text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, amplitude: int = 100) -> np.ndarray:
    """Speak `text` with espeak-ng. `voice` takes variants (`en-us+f3`); `rate` is words per minute,
    `pitch` 0-99."""
    exe = _require("espeak-ng", "espeak-ng")
    wav = subprocess.run(
        [exe, "-v", voice, "-s", str(rate), "-p", str(pitch), "-a", str(amplitude), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    return decode_audio(wav, **_NO_LIMIT).samples


def espeak_voices(language: str = "en") -> list[str]:
    """espeak-ng's own voices for `language` (e.g. `en-us`, `en-gb-scotland`), without the mbrola ones,
    which need extra packages. Combine with a variant for more speakers: `en-us+f3`."""
    exe = _require("espeak-ng", "espeak-ng")
    out = subprocess.run([exe, f"--voices={language}"], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    return sorted({row[1] for row in rows if len(row) > 4 and not row[4].startswith(("mb/", "!v/"))})


def festival(text: str, *, voice: str = FESTIVAL_VOICES[0]) -> np.ndarray:
    """Speak `text` with a festival voice (`cmu_us_slt_arctic_hts`: an HTS female voice;
    `kal_diphone`: a diphone male voice)."""
    exe = _require("text2wave", "festival")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.txt"), Path(tmp, "out.wav")
        src.write_text(text)
        subprocess.run([exe, "-eval", f"(voice_{voice})", "-o", str(dst), str(src)], check=True, capture_output=True)
        return decode_audio(dst, **_NO_LIMIT).samples
