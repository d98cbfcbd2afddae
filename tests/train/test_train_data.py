"""Manifests and `lalm data synth`: round trip, determinism for a seed, non-speech clips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lalm.train_dpo.data import Example, fortune_sentences, load_audio, read_manifest, write_manifest


def _synth(out: Path, *args: str) -> Path:
    cmd = [sys.executable, "-m", "lalm.cli", "data", "synth", "--out", str(out), *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    return out / "manifest.jsonl"


def test_synth_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    args = ("--n", "12", "--seed", "7", "--non-speech", "0.3", "--festival", "0.2", "--effects", "0.5",
            "--noise", "0.5", "--tail", "0.5")
    a, b = _synth(tmp_path / "a", *args), _synth(tmp_path / "b", *args)
    assert a.read_text() == b.read_text()
    files_a = sorted((tmp_path / "a" / "audio").iterdir())
    assert len(files_a) == 12
    for fa in files_a:
        assert fa.read_bytes() == (tmp_path / "b" / "audio" / fa.name).read_bytes()
    c = _synth(tmp_path / "c", *args[:3], "8", *args[4:])
    assert c.read_text() != a.read_text()  # another seed, other clips

    rows = read_manifest(a)
    assert len(rows) == 12
    speech = [r for r in rows if not r.non_speech]
    silent = [r for r in rows if r.non_speech]
    assert speech and silent
    assert all(r.reference in fortune_sentences() for r in speech)
    assert {r.meta["kind"] for r in silent} <= {"silence", "noise", "music", "sound"}
    for r in rows:
        samples = load_audio(r)
        assert samples.dtype == np.float32
        assert abs(len(samples) / 16000 - r.meta["seconds"]) < 0.01
        assert 0 < np.abs(samples).max() <= 1.0


def test_synth_digits_wav_and_chosen_voices(tmp_path: Path) -> None:
    m = _synth(tmp_path, "--n", "6", "--texts", "digits", "--non-speech", "0", "--festival", "0",
               "--format", "wav", "--max-seconds", "5", "--voices", "en-us+m4,en-gb+f3")
    rows = read_manifest(m)
    assert all(r.audio.suffix == ".wav" for r in rows)
    assert {r.meta["voice"] for r in rows} <= {"en-us+m4", "en-gb+f3"}
    for r in rows:
        digits = r.reference.split()
        assert 3 <= len(digits) <= 6 and all(d in "0123456789" for d in digits)
        assert r.meta["seconds"] <= 5.0


def test_manifest_round_trip_keeps_relative_paths_and_metadata(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    wav = tmp_path / "audio" / "x.wav"
    wav.write_bytes(b"")
    outside = Path("/elsewhere/y.flac")
    rows = [Example(wav, "hello there", "Say it.", {"voice": "en-us"}), Example(outside, "")]
    path = write_manifest(tmp_path / "m.jsonl", rows)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"audio": "audio/x.wav", "reference": "hello there", "prompt": "Say it.", "voice": "en-us"}
    assert lines[1] == {"audio": "/elsewhere/y.flac", "reference": ""}
    back = read_manifest(path)
    assert back[0] == Example(wav.resolve(), "hello there", "Say it.", {"voice": "en-us"})
    assert back[1].audio == outside and back[1].non_speech and back[1].prompt is None
