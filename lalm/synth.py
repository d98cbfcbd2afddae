"""Speech with known text, synthesised offline (espeak-ng, festival), and the sounds around it (noise, music,
sox effects): the source of test fixtures, training corpora and the AIR-Bench fixture. Output goes through
lalm.audio, so it is 16 kHz mono float32 like everything else."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from lalm.audio import SAMPLE_RATE, decode_audio, encode_wav

__all__ = ["FESTIVAL_VOICES", "background", "colored_noise", "english_voices", "espeak", "espeak_voices", "festival",
           "fortune_sentences", "sox_effects", "speech_and_noise_recording", "timed_words", "word_timing_set"]

FESTIVAL_VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
SONIC_PI_SAMPLES = Path("/usr/share/sonic-pi/samples")


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


# --- text and sound sources for training corpora ------------------------------------------------------------
_CLEAN_SENTENCE = re.compile(r"^[A-Za-z][A-Za-z ,.'?!-]*[.?!]$")


@cache
def fortune_sentences(min_words: int = 5, max_words: int = 15) -> tuple[str, ...]:
    """Clean short sentences from Debian's `fortunes` package: letters and plain punctuation only, no
    shouting, no dialogue markers; sorted, so a seed picks the same ones everywhere."""
    if not FORTUNES_DIR.is_dir():
        raise RuntimeError(f"{FORTUNES_DIR} is missing: apt-get install fortunes (scripts/setup.sh does this).")
    found: set[str] = set()
    for f in sorted(FORTUNES_DIR.iterdir()):
        if not f.is_file() or f.suffix or f.is_symlink():
            continue
        for chunk in f.read_text(errors="replace").split("\n%\n"):
            for s in re.split(r"(?<=[.?!])\s+", " ".join(chunk.split())):
                if (min_words <= len(s.split()) <= max_words and _CLEAN_SENTENCE.match(s)
                        and not re.search(r"[A-Z]{2,}", s) and "--" not in s):
                    found.add(s)
    return tuple(sorted(found))


@cache
def english_voices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """English espeak-ng voices and the voice variants (speakers) installed with it."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], check=True, capture_output=True, text=True).stdout
    variants = sorted({row.split()[4].removeprefix("!v/") for row in out.splitlines()[1:] if len(row.split()) > 4})
    # Whispered and heavily distorted variants carry too little of the words to be fair training targets.
    variants = [v for v in variants if not re.search(r"whisper|demonic|robo|half-life", v, re.IGNORECASE)]
    return tuple(espeak_voices("en")), tuple(variants)


@cache
def _sonic_pi_samples() -> dict[str, tuple[Path, ...]]:
    """Debian's sonic-pi samples split into music (loops, drones, instruments) and other sounds."""
    files = sorted(SONIC_PI_SAMPLES.glob("*.flac"))
    if not files:
        raise RuntimeError(f"no samples in {SONIC_PI_SAMPLES}: apt-get install sonic-pi-samples")
    music = tuple(f for f in files if f.name.startswith(("ambi_", "guit_", "loop_", "bass_")))
    return {"music": music, "sound": tuple(f for f in files if f not in music)}


@cache
def _sample_audio(path: Path) -> np.ndarray:
    return decode_audio(path).samples


def colored_noise(rng: np.random.Generator, n: int, color: str) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise with unit RMS."""
    white = rng.standard_normal(n)
    if color == "white":
        x = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spectrum /= f ** (0.5 if color == "pink" else 1.0)
        x = np.fft.irfft(spectrum, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def background(rng: np.random.Generator, seconds: float, kind: str) -> tuple[np.ndarray, str]:
    """`seconds` of non-speech audio of `kind` (silence, noise, music, sound) and a description."""
    n = int(seconds * SAMPLE_RATE)
    if kind == "silence":
        # Real "silence" is never digital zero: a faint noise floor.
        return 10 ** (rng.uniform(-75, -55) / 20) * colored_noise(rng, n, "white"), "silence"
    if kind == "noise":
        color = str(rng.choice(["white", "pink", "brown"]))
        return 10 ** (rng.uniform(-35, -15) / 20) * colored_noise(rng, n, color), f"noise:{color}"
    pool = _sonic_pi_samples()[kind]
    path = pool[int(rng.integers(len(pool)))]
    src = _sample_audio(path)
    if len(src) < n:
        src = np.tile(src, n // max(len(src), 1) + 1)
    start = int(rng.integers(0, len(src) - n + 1))
    clip = src[start:start + n].astype(np.float32)
    peak = float(np.max(np.abs(clip))) or 1.0
    return clip * (rng.uniform(0.1, 0.7) / peak), f"{kind}:{path.stem}"


def sox_effects(samples: np.ndarray, *effects: str) -> np.ndarray:
    """Apply sox effects (deterministic ones only: speed, pitch, tempo) and resample back to 16 kHz."""
    exe = _require("sox", "sox")
    # A file, not a pipe: sox writes a placeholder length into a WAV header it cannot seek back to.
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp, "out.wav")
        subprocess.run(
            [exe, "-D", "-t", "wav", "-", "-e", "floating-point", "-b", "32", str(dst), *effects,
             "rate", str(SAMPLE_RATE)],
            input=encode_wav(samples), check=True, capture_output=True,
        )
        return decode_audio(dst).samples
