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

__all__ = ["FESTIVAL_VOICES", "espeak", "espeak_voices", "festival", "speech_and_noise_recording", "timed_words",
           "word_timing_set"]

FESTIVAL_VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone")


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
    return decode_audio(wav).samples


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
        return decode_audio(dst).samples


def timed_words(words: list[str], gaps: list[float], *, voice: str = "en-us", rate: int = 175,
                lead: float = 0.3) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Speech with known word times: each word spoken alone by espeak-ng, its leading and trailing silence
    trimmed (samples below 1% of full scale), and the clips joined with `gaps[i]` seconds of silence after
    word i (`lead` seconds before the first). Returns the 16 kHz samples and (word, start, end) in seconds."""
    if len(gaps) != len(words):
        raise ValueError(f"{len(words)} words need {len(words)} gaps, got {len(gaps)}")
    sr = 16000
    parts, truth, t = [np.zeros(int(lead * sr), np.float32)], [], lead
    for word, gap in zip(words, gaps, strict=True):
        clip = espeak(word, voice=voice, rate=rate)
        loud = np.flatnonzero(np.abs(clip) > 0.01)
        clip = clip[loud[0]:loud[-1] + 1] if len(loud) else clip[:0]
        truth.append((word, t, t + len(clip) / sr))
        parts += [clip, np.zeros(round(gap * sr), np.float32)]
        t += len(clip) / sr + round(gap * sr) / sr
    return np.concatenate(parts), truth


TIMING_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "The committee finalised its report on Tuesday after a long debate.",
    "She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.",
    "Zorblax met twenty delegates in the well-known hall near the river.",
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
)


def word_timing_set(n: int = len(TIMING_SENTENCES), *, seed: int = 0, gaps: tuple[float, float] = (0.05, 0.35),
                    voices: tuple[str, ...] = ("en-us", "en-us+f3", "en-gb", "en-us+m3"),
                    ) -> list[tuple[np.ndarray, str, list[tuple[str, float, float]]]]:
    """A test set for word timing: `n` clips of `TIMING_SENTENCES` (cycled; two have words outside common
    dictionaries) spoken word by word (`timed_words`) with gaps drawn from `gaps` (seconds; (0, 0) joins the words
    with no pause, like continuous speech) and light noise (std 0.003),
    voices cycled. Returns (16 kHz samples, text, [(word, start, end)]) per clip."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        words = TIMING_SENTENCES[k % len(TIMING_SENTENCES)].split()
        audio, truth = timed_words(words, list(rng.uniform(*gaps, len(words))), voice=voices[k % len(voices)])
        out.append((audio + rng.normal(0, 0.003, len(audio)).astype(np.float32), " ".join(words), truth))
    return out


SONIC_PI_SAMPLES = Path("/usr/share/sonic-pi/samples")
MUSIC_CLIPS = ("loop_amen.flac", "ambi_piano.flac", "loop_garzul.flac", "guit_em9.flac", "loop_safari.flac",
               "ambi_choir.flac")


def _music(name: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A sonic-pi-samples clip (Debian package, CC0) looped to `seconds`, or a random chord without it."""
    n = int(seconds * 16000)
    path = SONIC_PI_SAMPLES / name
    if path.exists():
        clip = decode_audio(path).samples
        clip = clip / max(1e-6, float(np.abs(clip).max())) * 0.5
    else:
        t = np.arange(n) / 16000
        clip = sum(0.15 * np.sin(2 * np.pi * f * t) for f in rng.uniform(110, 880, 3)).astype(np.float32)
    return np.resize(clip, n).astype(np.float32)


def speech_and_noise_recording(seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A ~75 s recording for voice-activity detection: 8 espeak-ng sentences (voices varied; half of them
    over background noise or music at ~12 dB below the voice) and 8 clips without speech (white noise, music
    loops from sonic-pi-samples, a hum), in alternation, 0.4-1.0 s of near-silence between clips.
    Returns the samples and the speech clips' spans in seconds."""
    rng = np.random.default_rng(seed)
    voices = ("en-us", "en-us+f3", "en-gb", "en-us+m3")
    parts, speech, t = [], [], 0.0
    for k in range(8):
        voice = espeak(TIMING_SENTENCES[k], voice=voices[k % len(voices)])
        rms = float(np.sqrt(np.mean(np.square(voice))))
        if k % 2 == 1:
            back = rng.normal(0, 1, len(voice)).astype(np.float32) if k % 4 == 1 else _music(
                MUSIC_CLIPS[k % len(MUSIC_CLIPS)], len(voice) / 16000, rng)
            voice = voice + back / max(1e-6, float(np.sqrt(np.mean(np.square(back))))) * rms / 4
        seconds = float(rng.uniform(2.0, 5.0))
        if k % 3 == 0:
            other = rng.normal(0, 0.1, int(seconds * 16000)).astype(np.float32)
        elif k % 3 == 1:
            other = _music(MUSIC_CLIPS[k % len(MUSIC_CLIPS)], seconds, rng)
        else:
            tt = np.arange(int(seconds * 16000)) / 16000
            other = (0.2 * np.sin(2 * np.pi * 120 * tt) + 0.1 * np.sin(2 * np.pi * 240 * tt)).astype(np.float32)
        for clip, is_speech in ((voice, True), (other, False)):
            gap = rng.normal(0, 0.001, int(rng.uniform(0.4, 1.0) * 16000)).astype(np.float32)
            parts.append(gap)
            t += len(gap) / 16000
            if is_speech:
                speech.append((t, t + len(clip) / 16000))
            parts.append(clip)
            t += len(clip) / 16000
    return np.concatenate(parts).astype(np.float32), speech
