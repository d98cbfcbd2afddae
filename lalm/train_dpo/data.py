"""Training and evaluation data: the JSONL manifest, and synthetic speech with known text (`lalm data synth`).

A manifest is one JSON object per line:

    {"audio": "audio/000001.flac", "reference": "the words spoken", "prompt": "optional instruction", ...}

`audio` is relative to the manifest's folder (absolute paths also work); an empty `reference` marks a
non-speech clip (silence, noise, music, sounds), whose right answer is the no-speech answer; `prompt`
defaults to the transcribe task's instruction. Other keys (voice, effects...) are kept as metadata.

Synthesis is deterministic for a seed: clip i draws everything from its own generator seeded with
(seed, i), noise comes from numpy, and sox only applies deterministic effects, so the same seed gives the
same manifest and the same audio bytes (on the same espeak-ng/festival/sox versions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from lalm.audio import SAMPLE_RATE, decode_audio
from lalm.synth import background, colored_noise, english_voices, fortune_sentences, sox_effects

__all__ = [
    "Example",
    "SynthConfig",
    "digit_string",
    "load_audio",
    "read_manifest",
    "synth_manifest",
    "write_manifest",
]


# --- the manifest -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """One manifest row. `audio` is absolute once read; `reference` is "" for non-speech."""

    audio: Path
    reference: str
    prompt: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def non_speech(self) -> bool:
        return not self.reference.strip()


def read_manifest(path: str | Path) -> list[Example]:
    """Read a JSONL manifest; audio paths are resolved against the manifest's folder."""
    path = Path(path)
    root = path.resolve().parent
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = row.pop("audio")
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}:{n}: each line must be a JSON object with an 'audio' path ({exc})") from None
        reference = row.pop("reference", "") or ""
        prompt = row.pop("prompt", None)
        out.append(Example(root / audio, reference, prompt, row))
    return out


def write_manifest(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write a JSONL manifest; audio paths under the manifest's folder are written relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.resolve().parent
    lines = []
    for ex in examples:
        audio = Path(ex.audio).resolve()
        rel = audio.relative_to(root) if audio.is_relative_to(root) else audio
        row: dict[str, Any] = {"audio": rel.as_posix(), "reference": ex.reference}
        if ex.prompt is not None:
            row["prompt"] = ex.prompt
        row.update(ex.meta)
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines))
    return path


def load_audio(example: Example | str | Path) -> np.ndarray:
    """The example's audio as 16 kHz mono float32 (through lalm.audio, the one decoder)."""
    src = example.audio if isinstance(example, Example) else example
    return decode_audio(src).samples


# --- text sources -------------------------------------------------------------------------------------------
def digit_string(rng: np.random.Generator, min_digits: int = 3, max_digits: int = 6) -> str:
    """A spoken digit string such as "7 3 9 0": the narrow vocabulary for small demonstration models."""
    return " ".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(min_digits, max_digits + 1))))


# --- synthesis ----------------------------------------------------------------------------------------------
@dataclass
class SynthConfig:
    """What `synth_manifest` makes. Shares are probabilities per clip."""

    n: int = 100
    seed: int = 0
    texts: Literal["fortunes", "digits"] = "fortunes"
    non_speech_share: float = 0.2
    festival_share: float = 0.1
    effect_share: float = 0.3  # sox speed / pitch / tempo change
    noise_share: float = 0.3  # background noise under the speech
    tail_share: float = 0.2  # speech followed by a longer stretch of non-speech (where models hallucinate)
    min_digits: int = 3
    max_digits: int = 6
    max_seconds: float = 30.0
    voices: tuple[str, ...] = ()  # espeak-ng voices to draw from (`en-us+m3`...); empty: every English voice x variant
    audio_format: Literal["flac", "wav"] = "flac"
    workers: int = 2


def _speech(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, str, dict[str, Any]]:
    from lalm.synth import FESTIVAL_VOICES, espeak, festival

    if cfg.texts == "digits":
        text = digit_string(rng, cfg.min_digits, cfg.max_digits)
    else:
        sentences = fortune_sentences()
        text = sentences[int(rng.integers(len(sentences)))]
    meta: dict[str, Any] = {}
    if rng.random() < cfg.festival_share:
        voice = str(rng.choice(FESTIVAL_VOICES))
        samples = festival(text, voice=voice)
        meta.update(engine="festival", voice=voice)
    else:
        if cfg.voices:
            voice = str(rng.choice(cfg.voices))
        else:
            voices, variants = english_voices()
            voice = f"{rng.choice(voices)}+{rng.choice(variants)}"
        rate, pitch = int(rng.integers(130, 221)), int(rng.integers(20, 81))
        samples = espeak(text, voice=voice, rate=rate, pitch=pitch)
        meta.update(engine="espeak", voice=voice, rate=rate, pitch=pitch)
    if rng.random() < cfg.effect_share:
        effect = str(rng.choice(["speed", "pitch", "tempo"]))
        amount = {"speed": rng.uniform(0.9, 1.1), "pitch": rng.uniform(-250, 250), "tempo": rng.uniform(0.85, 1.15)}
        value = f"{amount[effect]:.3f}"
        samples = sox_effects(samples, effect, value)
        meta["effect"] = f"{effect} {value}"
    peak = float(np.max(np.abs(samples))) or 1.0
    return samples * (rng.uniform(0.3, 0.9) / peak), text, meta


def _make_clip(i: int, cfg: SynthConfig, audio_dir: Path) -> Example:
    rng = np.random.default_rng([cfg.seed, i])
    meta: dict[str, Any]
    if rng.random() < cfg.non_speech_share:
        kind = str(rng.choice(["silence", "noise", "music", "sound"]))
        seconds = rng.uniform(1.0, min(cfg.max_seconds, 8.0))
        samples, source = background(rng, seconds, kind)
        text, meta = "", {"kind": kind, "source": source}
    else:
        for _ in range(20):  # redraw texts that come out longer than the window
            speech, text, meta = _speech(rng, cfg)
            if len(speech) / SAMPLE_RATE <= cfg.max_seconds - 0.2:
                break
        else:
            raise ValueError(f"clip {i}: no text fits in max_seconds={cfg.max_seconds}")
        room = cfg.max_seconds - len(speech) / SAMPLE_RATE
        lead = min(rng.uniform(0.05, 0.4), room / 2)
        tail_seconds = min(rng.uniform(0.05, 0.4), room / 2)
        tail_kind = "silence"
        if rng.random() < cfg.tail_share and room - lead > 1.0:
            tail_seconds = rng.uniform(1.0, min(room - lead, 3.0))
            tail_kind = str(rng.choice(["silence", "noise", "music", "sound"]))
        head, _ = background(rng, lead, "silence")
        tail, tail_source = background(rng, tail_seconds, tail_kind)
        samples = np.concatenate([head, speech, tail]).astype(np.float32)
        if rng.random() < cfg.noise_share:
            snr_db = rng.uniform(5, 30)
            color = str(rng.choice(["white", "pink", "brown"]))
            level = np.sqrt(np.mean(speech**2)) / 10 ** (snr_db / 20)
            samples = samples + level * colored_noise(rng, len(samples), color)
            meta.update(noise=color, snr_db=round(snr_db, 1))
        meta.update(kind="speech", tail=tail_source, tail_seconds=round(tail_seconds, 3))
    peak = float(np.max(np.abs(samples)))
    if peak > 0.99:
        samples = samples * (0.99 / peak)
    path = audio_dir / f"{i:06d}.{cfg.audio_format}"
    sf.write(path, samples.astype(np.float32), SAMPLE_RATE, format=cfg.audio_format.upper(), subtype="PCM_16")
    return Example(path, text, None, {"seconds": round(len(samples) / SAMPLE_RATE, 3), **meta})


def synth_manifest(out_dir: str | Path, cfg: SynthConfig, *, progress: bool = True) -> Path:
    """Synthesise `cfg.n` clips into `out_dir/audio/` and write `out_dir/manifest.jsonl`; returns its path."""
    from tqdm import tqdm

    out = Path(out_dir)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        jobs = pool.map(lambda i: _make_clip(i, cfg, audio_dir), range(cfg.n))
        examples = list(tqdm(jobs, total=cfg.n, desc="synth", unit="clip", disable=not progress))
    return write_manifest(out / "manifest.jsonl", examples)

