"""The default model's synthetic corpus: speech with known text and non-speech clips, split so that the
held-out set has voices AND texts never seen in training.

Texts: sentences from Debian's `fortunes`, plus templated everyday utterances (numbers, times, dates, names,
short commands) that fortunes lacks. Voices: every English espeak-ng voice with its variants (speakers), the
festival voices, at several rates and pitches; sox effects (speed, tempo, pitch, reverb, telephone band);
background noise and music (sonic-pi-samples) at several SNRs. Non-speech clips (silence, noise, music, sounds)
are answered with the no-speech answer.

Every clip draws from its own generator seeded with (seed, split, index): the corpus is a pure function of the
recipe's config, on the same espeak-ng/festival/sox versions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from lalm.audio import SAMPLE_RATE
from lalm.synth import background, colored_noise, english_voices, fortune_sentences, sox_effects

__all__ = ["ADDED_FIELDS", "SPLITS", "Clip", "CorpusConfig", "corpus_texts", "make_clip", "split_voices", "word_list"]

# Speakers (espeak-ng variants) never heard in training: the held-out set speaks only with these.
HELD_OUT_VARIANTS = ("f4", "m7", "belinda", "steph2", "Andy", "john", "klatt4", "quincy", "Lee", "grandma")

_NAMES = ("Anna", "Ben", "Carlos", "Diana", "Emma", "Frank", "Grace", "Hiro", "Ivan", "Julia", "Kofi", "Laura",
          "Mohammed", "Nina", "Oscar", "Priya", "Quentin", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wei", "Yusuf")
_PLACES = ("London", "Paris", "Berlin", "Tokyo", "Chicago", "Madrid", "Toronto", "Sydney", "Cairo", "Lisbon",
           "the office", "the station", "the airport", "the library", "the hospital", "the kitchen")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_THINGS = ("the report", "the tickets", "the meeting", "the invoice", "the slides", "the package", "dinner",
           "the car", "the results", "the budget", "the contract", "the photos")
_TEMPLATES = (
    "Set a timer for {n} minutes.",
    "Call {name} at {hour} o'clock.",
    "The meeting with {name} is on {day}.",
    "Remind me to send {thing} to {name} on {month} {date}.",
    "Book a table for {small} people at {hour} tonight.",
    "{name} will arrive in {place} on {day} morning.",
    "Please turn the volume down to {n} percent.",
    "The train to {place} leaves at {hour} {minute}.",
    "I paid {n} dollars for {thing}.",
    "{name} and {name2} are moving to {place} in {month}.",
    "Open the window and turn off the lights.",
    "Play some music in the living room.",
    "What is the weather like in {place} today?",
    "Send a message to {name} saying I will be late.",
    "We need {small} more chairs for {thing}.",
    "Her phone number ends in {d1} {d2} {d3} {d4}.",
    "The flight from {place} was delayed by {n} minutes.",
    "{name} was born on {month} {date}, {year}.",
)


@dataclass(frozen=True)
class CorpusConfig:
    """How many clips of which kinds. Shares are probabilities per clip."""

    seed: int = 0
    train_clips: int = 16000
    heldout_speech: int = 300
    heldout_non_speech: int = 60
    non_speech_share: float = 0.12
    festival_share: float = 0.12
    template_share: float = 0.25  # templated utterances instead of a fortunes sentence
    two_sentence_share: float = 0.2  # two texts spoken in one clip (longer audio)
    effect_share: float = 0.35
    noise_share: float = 0.35
    music_share: float = 0.12  # music under the speech
    tail_share: float = 0.15  # speech followed by 1-3 s of non-speech
    heldout_text_modulo: int = 20  # a text whose hash is 0 modulo this is held out
    # Training clips (split `train_words`) that speak 3-14 words drawn uniformly from the `word_list_size` most
    # frequent English words (wordfreq): the sentences above cover 9,100 distinct words, and 21% of the held-out
    # texts' tokens occur fewer than 10 times in them (measured 2026-12-02)
    word_clips: int = 0
    word_list_size: int = 40000


# Fields added after the first corpus was made: they enter the corpus key only when they differ from these
# defaults (which reproduce that corpus), so adding them did not invalidate the cache.
ADDED_FIELDS = {"word_list_size": 40000}
SPLITS = ("train", "heldout_speech", "heldout_non_speech", "train_words")


@dataclass(frozen=True)
class Clip:
    """One synthesised clip: 16 kHz mono float32 samples, its reference ("" for non-speech) and how it was
    made."""

    samples: np.ndarray
    reference: str
    meta: dict[str, Any]


def _held_out_text(text: str, modulo: int) -> bool:
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % modulo == 0


@cache
def corpus_texts(heldout: bool, modulo: int = 20) -> tuple[str, ...]:
    """The fortunes sentences of one side of the text split (held out or training)."""
    return tuple(s for s in fortune_sentences(3, 16) if _held_out_text(s, modulo) == heldout)


def split_voices(heldout: bool) -> tuple[str, ...]:
    """espeak-ng `voice+variant` names of one side of the speaker split."""
    voices, variants = english_voices()
    keep = [v for v in variants if (v in HELD_OUT_VARIANTS) == heldout]
    return tuple(f"{v}+{var}" for v in voices for var in keep)


@cache
def word_list(size: int) -> tuple[str, ...]:
    """Of the `size` most frequent English words of wordfreq (Speer et al., its `large` English list), most
    frequent first, those that TTS reads as words: letters and apostrophes only, a vowel, and three letters or
    more outside the 1,000 most frequent (which drops abbreviations such as "eg", "tbf", "stv")."""
    from wordfreq import top_n_list

    return tuple(w for rank, w in enumerate(top_n_list("en", size))
                 if w.replace("'", "").isalpha() and any(v in w for v in "aeiouy") and (rank < 1000 or len(w) >= 3))


def _words(rng: np.random.Generator, cfg: CorpusConfig) -> str:
    words = word_list(cfg.word_list_size)
    text = " ".join(words[int(i)] for i in rng.integers(len(words), size=int(rng.integers(3, 15))))
    return text[0].upper() + text[1:] + "."


def _template(rng: np.random.Generator) -> str:
    names = rng.choice(len(_NAMES), 2, replace=False)
    fields = {
        "n": int(rng.integers(2, 100)), "small": int(rng.integers(2, 10)), "hour": int(rng.integers(1, 13)),
        "minute": int(rng.integers(10, 60)), "date": int(rng.integers(1, 29)), "year": int(rng.integers(1950, 2030)),
        "name": _NAMES[names[0]], "name2": _NAMES[names[1]], "place": str(rng.choice(_PLACES)),
        "day": str(rng.choice(_DAYS)), "month": str(rng.choice(_MONTHS)), "thing": str(rng.choice(_THINGS)),
        **{f"d{i}": int(rng.integers(0, 10)) for i in range(1, 5)},
    }
    return str(rng.choice(_TEMPLATES)).format(**fields)


def _text(rng: np.random.Generator, cfg: CorpusConfig, heldout: bool) -> str:
    if rng.random() < cfg.template_share:
        # Templates share their wording between the splits; held-out ones still differ in names and numbers.
        return _template(rng)
    texts = corpus_texts(heldout, cfg.heldout_text_modulo)
    return texts[int(rng.integers(len(texts)))]


def _speak(rng: np.random.Generator, cfg: CorpusConfig, text: str, heldout: bool) -> tuple[np.ndarray, dict]:
    from lalm.synth import FESTIVAL_VOICES, espeak, festival

    if not heldout and rng.random() < cfg.festival_share:
        voice = str(rng.choice(FESTIVAL_VOICES))
        return festival(text, voice=voice), {"engine": "festival", "voice": voice}
    voices = split_voices(heldout)
    voice = voices[int(rng.integers(len(voices)))]
    rate, pitch = int(rng.integers(120, 231)), int(rng.integers(15, 86))
    amplitude = int(rng.integers(60, 161))
    samples = espeak(text, voice=voice, rate=rate, pitch=pitch, amplitude=amplitude)
    return samples, {"engine": "espeak", "voice": voice, "rate": rate, "pitch": pitch}


def _effect(rng: np.random.Generator, samples: np.ndarray) -> tuple[np.ndarray, str]:
    kind = str(rng.choice(["speed", "tempo", "pitch", "reverb", "telephone"]))
    if kind == "reverb":
        args = ["reverb", str(int(rng.integers(20, 80))), "50", str(int(rng.integers(30, 100)))]
    elif kind == "telephone":
        args = ["sinc", "300-3400", "rate", "8000"]
    else:
        amount = {"speed": rng.uniform(0.88, 1.12), "tempo": rng.uniform(0.8, 1.2), "pitch": rng.uniform(-300, 300)}
        args = [kind, f"{amount[kind]:.3f}"]
    return sox_effects(samples, *args), " ".join(args)


def make_clip(cfg: CorpusConfig, split: str, index: int, max_seconds: float = 29.0) -> Clip:
    """Clip `index` of `split` (one of SPLITS: "train", "heldout_speech", "heldout_non_speech", or "train_words",
    training voices speaking word lists): deterministic for the config. Speech clips are at most `max_seconds`
    long (one model window). Raises ValueError for another split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    heldout = split in ("heldout_speech", "heldout_non_speech")
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    if split == "heldout_non_speech" or (split == "train" and rng.random() < cfg.non_speech_share):
        kind = str(rng.choice(["silence", "noise", "music", "sound"]))
        samples, source = background(rng, float(rng.uniform(1.0, 10.0)), kind)
        return Clip(samples.astype(np.float32), "", {"kind": kind, "source": source})

    def draw_text() -> str:
        return _words(rng, cfg) if split == "train_words" else _text(rng, cfg, heldout)

    texts = [draw_text()]
    if rng.random() < cfg.two_sentence_share:
        texts.append(draw_text())
    parts, meta = [], {}
    for text in texts:
        samples, meta = _speak(rng, cfg, text, heldout)
        parts.append(samples)
    gap = np.zeros(int(rng.uniform(0.1, 0.6) * SAMPLE_RATE), np.float32)
    speech = np.concatenate([p if i == 0 else np.concatenate([gap, p]) for i, p in enumerate(parts)])
    if len(speech) / SAMPLE_RATE > max_seconds - 1.0:
        speech, texts = parts[0][: int((max_seconds - 1.0) * SAMPLE_RATE)], texts[:1]
    if rng.random() < cfg.effect_share:
        speech, meta["effect"] = _effect(rng, speech)
    speech = speech * (rng.uniform(0.2, 0.95) / (float(np.max(np.abs(speech))) or 1.0))
    lead, _ = background(rng, float(rng.uniform(0.05, 0.5)), "silence")
    tail_seconds, tail_kind = float(rng.uniform(0.05, 0.5)), "silence"
    room = max_seconds - (len(speech) + len(lead)) / SAMPLE_RATE
    if rng.random() < cfg.tail_share and room > 1.5:
        tail_seconds, tail_kind = float(rng.uniform(1.0, min(room - 0.2, 3.0))), str(
            rng.choice(["silence", "noise", "music", "sound"]))
    tail, tail_source = background(rng, min(tail_seconds, max(room, 0.05)), tail_kind)
    samples = np.concatenate([lead, speech, tail]).astype(np.float32)
    speech_rms = float(np.sqrt(np.mean(speech**2))) + 1e-9
    if rng.random() < cfg.noise_share:
        snr_db, color = float(rng.uniform(0, 30)), str(rng.choice(["white", "pink", "brown"]))
        samples = samples + speech_rms / 10 ** (snr_db / 20) * colored_noise(rng, len(samples), color)
        meta.update(noise=color, snr_db=round(snr_db, 1))
    if rng.random() < cfg.music_share:
        music, source = background(rng, len(samples) / SAMPLE_RATE, "music")
        snr_db = float(rng.uniform(5, 25))
        level = speech_rms / 10 ** (snr_db / 20) / (float(np.sqrt(np.mean(music**2))) + 1e-9)
        # background() rounds its length down: pad the last sample or two
        samples = samples + level * np.pad(music, (0, max(0, len(samples) - len(music))))[: len(samples)]
        meta.update(music=source, music_snr_db=round(snr_db, 1))
    peak = float(np.max(np.abs(samples)))
    if peak > 0.99:
        samples = samples * (0.99 / peak)
    meta.update(kind="speech", tail=tail_source)
    return Clip(samples.astype(np.float32), " ".join(texts), meta)
