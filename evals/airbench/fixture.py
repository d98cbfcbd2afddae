"""A small AIR-Bench-shaped dataset built from local audio, so the whole pipeline runs offline.

The layout is AIR-Bench's exactly (layout.py): Foundation/Foundation_meta.json and Chat/Chat_meta.json,
audio at {split}/{task_name}_{dataset_name}/{path}, and Audio_Grounding's audio stored as .flac while its
meta names .wav. The task names are the real ones; the audio is not the benchmark's:
- speech is espeak-ng (lalm.synth), so the answers are known by construction: the gender is the espeak
  voice variant (m* / f*), the language the espeak voice, the speaker count the number of distinct voices;
  "emotion" is only a prosody setting (pitch, rate, loudness) named after an emotion — synthetic, not acted;
- sound and music are Sonic Pi's sample library (/usr/share/sonic-pi/samples, mostly CC0), labelled from
  the sample's name; musical pitch items are synthesised harmonic tones of a known MIDI note.
Scores on it say whether the pipeline works, not how good a model is. Deterministic for a seed: the same
items, answers and files, and the same audio up to one 16-bit step (the audio is resampled in floating
point by FFmpeg, whose last bit is not promised across processes and machines).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from lalm.audio import SAMPLE_RATE, decode_audio
from lalm.synth import espeak

__all__ = ["SONIC_PI_SAMPLES", "make_fixture"]

SONIC_PI_SAMPLES = Path("/usr/share/sonic-pi/samples")
_MAX_CLIP_S = 8.0

# espeak-ng voice variants: m* sound male, f* female (espeak-ng's own variant names)
_MALE, _FEMALE = ("m1", "m3", "m5", "m7"), ("f1", "f2", "f4", "f5")
_LANGUAGES = {  # label -> (espeak voice, a sentence in that language)
    "English": ("en-us", "The weather is lovely today and we are going to the park."),
    "German": ("de", "Das Wetter ist heute schön und wir gehen in den Park."),
    "French": ("fr-fr", "Il fait beau aujourd'hui et nous allons au parc."),
    "Spanish": ("es", "Hoy hace buen tiempo y vamos al parque."),
    "Italian": ("it", "Oggi fa bel tempo e andiamo al parco."),
}
_PROSODY = {  # synthetic "emotion": espeak pitch, rate (wpm), amplitude
    "happy": (85, 210, 120),
    "sad": (15, 110, 60),
    "angry": (55, 240, 190),
    "neutral": (50, 170, 100),
}
_CITIES = ("Paris", "London", "Tokyo", "Berlin", "Madrid", "Toronto")
_INSTRUMENTS = {"guitar": "guit_", "tabla": "tabla_", "drums": "drum_", "bass": "bass_"}
_SOUNDS = {"a crow cawing": "misc_crow", "a burp": "misc_burp", "a record scratch": "vinyl_scratch",
           "a cowbell": "drum_cowbell", "a ringing bell": "perc_bell"}
_SENTENCES = (
    "The meeting starts at nine thirty on Monday, and the report is due on Friday.",
    "I would like to book a table for four people tomorrow evening at seven.",
    "Please remember to water the plants while I am away next week.",
)


def _sample(name: str) -> np.ndarray:
    audio = decode_audio(SONIC_PI_SAMPLES / f"{name}.flac").samples
    return audio[: int(_MAX_CLIP_S * SAMPLE_RATE)]


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def _mix(a: np.ndarray, b: np.ndarray, gain_b: float = 0.35) -> np.ndarray:
    """`a` with `b` under it (looped or cut to `a`'s length), peak-normalised."""
    reps = int(np.ceil(len(a) / max(1, len(b))))
    mixed = a + gain_b * np.tile(b, reps)[: len(a)]
    return (mixed / max(1e-6, float(np.abs(mixed).max())) * 0.9).astype(np.float32)


def _tone(midi: int, seconds: float = 1.5) -> np.ndarray:
    """A plucked-string-like harmonic tone of MIDI note `midi`."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.3 * wave * np.exp(-2.5 * t)).astype(np.float32)


def _choices(rng: random.Random, answer: str, pool: list[str], n: int = 4) -> dict[str, str]:
    options = [answer, *rng.sample([p for p in pool if p != answer], n - 1)]
    rng.shuffle(options)
    return dict(zip(("choice_a", "choice_b", "choice_c", "choice_d"), options, strict=False))


class _Builder:
    """Collects items of one split and writes their audio where AIR-Bench keeps it."""

    def __init__(self, split_dir: Path) -> None:
        self.dir = split_dir
        self.items: list[dict[str, Any]] = []

    def add(self, task: str, dataset: str, audio: np.ndarray, fields: dict[str, Any], *, flac: bool = False) -> None:
        n = sum(1 for it in self.items if it["task_name"] == task)
        name = f"{task.lower()}_{n:03d}.wav"
        folder = self.dir / f"{task}_{dataset}"
        folder.mkdir(parents=True, exist_ok=True)
        # Audio_Grounding: the meta says .wav, the file is .flac
        target = folder / (name[:-3] + "flac" if flac else name)
        sf.write(target, audio, SAMPLE_RATE, format="FLAC" if flac else "WAV", subtype="PCM_16")
        item = {"meta_info": fields.get("meta_info"), "path": name, "question": fields["question"]}
        item |= {k: v for k, v in fields.items() if k.startswith("choice_")}
        item |= {"answer_gt": fields["answer_gt"], "task_name": task, "dataset_name": dataset,
                 "uniq_id": len(self.items)}
        self.items.append({k: v for k, v in item.items() if v is not None})

    def write(self, meta_name: str) -> None:
        (self.dir / meta_name).write_text(json.dumps(self.items, ensure_ascii=False, indent=1))


def _foundation(b: _Builder, rng: random.Random, k: int) -> None:
    sentence = _SENTENCES[k % len(_SENTENCES)]
    gender = rng.choice(["male", "female"])
    variant = rng.choice(_MALE if gender == "male" else _FEMALE)
    b.add("Speaker_Gender_Recognition", "espeak", espeak(sentence, voice=f"en-us+{variant}"),
          {"question": "What is the gender of the speaker?", "answer_gt": gender,
           **_choices(rng, gender, ["male", "female"], n=2)})

    language = rng.choice(list(_LANGUAGES))
    voice, text = _LANGUAGES[language]
    b.add("Spoken_Language_Identification", "espeak", espeak(text, voice=voice),
          {"question": "What language is the speaker speaking?", "answer_gt": language,
           **_choices(rng, language, list(_LANGUAGES))})

    count = rng.randint(1, 4)
    voices = rng.sample([*_MALE, *_FEMALE], count)
    turns = [espeak(_SENTENCES[(k + i) % len(_SENTENCES)], voice=f"en-us+{v}") for i, v in enumerate(voices)]
    audio = np.concatenate([x for t in turns for x in (t, _silence(0.4))])
    b.add("Speaker_Number_Verification", "espeak", audio,
          {"question": "How many speakers are there in the audio?", "answer_gt": str(count),
           **_choices(rng, str(count), ["1", "2", "3", "4"])})

    emotion = rng.choice(list(_PROSODY))
    pitch, rate, amplitude = _PROSODY[emotion]
    b.add("Speaker_Emotion_Recontion", "espeak_prosody",
          espeak("I cannot believe what happened this morning.", pitch=pitch, rate=rate, amplitude=amplitude),
          {"question": "What emotion does the speaker convey?", "answer_gt": emotion,
           **_choices(rng, emotion, list(_PROSODY))})

    city = rng.choice(_CITIES)
    b.add("Speech_Entity_Reconition", "espeak", espeak(f"I am flying to {city} next week for a conference."),
          {"question": "Which city does the speaker mention?", "answer_gt": city,
           **_choices(rng, city, list(_CITIES))})

    label = rng.choice(list(_SOUNDS))
    clip = _sample(_SOUNDS[label])[: 2 * SAMPLE_RATE]
    start = round(rng.uniform(0.5, 3.0), 2)
    audio = np.concatenate([_silence(start), clip, _silence(6.0 - start - len(clip) / SAMPLE_RATE)])
    span = f"[{start:.2f}, {start + len(clip) / SAMPLE_RATE:.2f}]"
    decoys = [f"[{s:.2f}, {s + len(clip) / SAMPLE_RATE:.2f}]" for s in (0.0, 1.5, 3.25, 4.0) if abs(s - start) > 0.3]
    b.add("Audio_Grounding", "sonic_pi", audio,
          {"question": f"When does {label} occur in the audio?", "answer_gt": span, **_choices(rng, span, decoys)},
          flac=True)

    instrument = rng.choice(list(_INSTRUMENTS))
    names = sorted(p.stem for p in SONIC_PI_SAMPLES.glob(f"{_INSTRUMENTS[instrument]}*.flac"))
    b.add("Music_Instruments_Classfication", "sonic_pi", _sample(rng.choice(names)),
          {"question": "Which instrument is playing?", "answer_gt": instrument,
           **_choices(rng, instrument, list(_INSTRUMENTS))})

    label = rng.choice(list(_SOUNDS))
    b.add("Sound_AQA", "sonic_pi", _sample(_SOUNDS[label]),
          {"question": "What is the sound in the audio?", "answer_gt": label, **_choices(rng, label, list(_SOUNDS))})

    midi = rng.randint(55, 79)
    b.add("Music_Midi_Pitch_Analysis", "synthetic_tones", _tone(midi),
          {"question": "What is the MIDI pitch of the note?", "answer_gt": str(midi),
           **_choices(rng, str(midi), [str(m) for m in range(midi - 6, midi + 7)])})


def _chat(b: _Builder, rng: random.Random, k: int) -> None:
    speech_text = _SENTENCES[k % len(_SENTENCES)]
    gender, variant = rng.choice([("male", "m3"), ("female", "f2")])
    b.add("speech_QA", "espeak", espeak(speech_text, voice=f"en-us+{variant}"),
          {"meta_info": repr({"emotion": "neutral", "gender": gender, "transcription": speech_text}),
           "question": "What does the speaker say?", "answer_gt": speech_text})

    item = rng.choice(["pizza", "a salad", "the soup"])
    lines = [("m3", "Hello, what would you like to order today?"), ("f2", f"I would like {item}, please."),
             ("m3", "Anything to drink with that?"), ("f2", "Just water, thank you.")]
    audio, transcript, t = [], [], 0.0
    for n, (voice, text) in enumerate(lines):
        speech = espeak(text, voice=f"en-us+{voice}")
        transcript.append({"speaker": f"speaker {1 + n % 2}", "speaking time":
                           f"({t:.2f},{t + len(speech) / SAMPLE_RATE:.2f})", "transcription": text})
        audio += [speech, _silence(0.3)]
        t += len(speech) / SAMPLE_RATE + 0.3
    b.add("speech_dialogue_QA", "espeak", np.concatenate(audio),
          {"meta_info": json.dumps(transcript), "question": "What does the second speaker order?",
           "answer_gt": f"The second speaker orders {item} and water."})

    label = rng.choice(list(_SOUNDS))
    b.add("sound_QA", "sonic_pi", _sample(_SOUNDS[label]),
          {"meta_info": repr([f"The sound of {label}."]), "question": "What do you hear in the audio?",
           "answer_gt": f"The sound of {label}."})
    b.add("sound_generation_QA", "sonic_pi", _sample("vinyl_hiss"),
          {"meta_info": repr(["The steady crackle and hiss of an old vinyl record."]),
           "question": "Imagine a scene in which this sound is heard and describe it in one sentence.",
           "answer_gt": "An old record player crackles softly in a quiet living room late at night."})

    instrument = rng.choice(list(_INSTRUMENTS))
    names = sorted(p.stem for p in SONIC_PI_SAMPLES.glob(f"{_INSTRUMENTS[instrument]}*.flac"))
    music = _sample(rng.choice(names))
    b.add("music_QA", "sonic_pi", music,
          {"meta_info": repr({"description": f"A short {instrument} sample.", "instrument": repr([instrument])}),
           "question": "Which instrument is playing?", "answer_gt": f"The {instrument}."})
    b.add("music_generation_analysis_QA", "sonic_pi", _sample("loop_amen"),
          {"meta_info": repr({"description": "The amen break, a sampled funk drum loop.",
                              "instrument": repr(["drums"])}),
           "question": "What kind of music could this drum loop be used in?",
           "answer_gt": "Drum and bass, jungle or hip hop: it is the amen break drum loop."})

    mix_text = _SENTENCES[(k + 1) % len(_SENTENCES)]
    sound = rng.choice(list(_SOUNDS))
    b.add("speech_and_sound_QA", "espeak_sonic_pi", _mix(espeak(mix_text), _sample(_SOUNDS[sound])),
          {"meta_info": repr({"sound_caption": f"The sound of {sound}", "age": "unknown", "gender": "male",
                              "speech_transcription": mix_text, "ahead": "speech", "louder": "speech"}),
           "question": "What does the speaker say?", "answer_gt": mix_text})
    b.add("speech_and_music_QA", "espeak_sonic_pi", _mix(espeak(mix_text, voice="en-us+f2"), music),
          {"meta_info": repr({"music_caption": f"A short {instrument} sample.", "age": "unknown",
                              "gender": "female", "speech_transcription": mix_text, "ahead": "speech",
                              "louder": "speech"}),
           "question": "Which instrument plays behind the speaker?", "answer_gt": f"The {instrument}."})


def make_fixture(root: str | Path, *, seed: int = 0, per_task: int = 2) -> Path:
    """Write the dataset under `root` (per_task items for each of 9 Foundation and 8 Chat tasks); returns root."""
    if not SONIC_PI_SAMPLES.is_dir():
        raise RuntimeError(f"{SONIC_PI_SAMPLES} is missing: apt-get install sonic-pi-samples (scripts/setup.sh)")
    root = Path(root)
    rng = random.Random(seed)
    for folder, meta, build in (("Foundation", "Foundation_meta.json", _foundation), ("Chat", "Chat_meta.json", _chat)):
        builder = _Builder(root / folder)
        for k in range(per_task):
            build(builder, rng, k)
        builder.write(meta)
    (root / "README.txt").write_text(__doc__ or "")
    return root
