"""The `lalm` command line: help, make-tiny, and transcribe on a video file (its audio track), on a local
file larger than the gateway's upload limit, and with the temperature fallback of the transcription endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from media import encode

from lalm.audio import SAMPLE_RATE, decode_audio
from lalm.config import Settings
from lalm.engines.base import SamplingParams
from lalm.engines.hf import HFEngine
from lalm.longform.fallback import compression_ratio
from lalm.longform.run import run_task
from lalm.tasks import get_task


def _lalm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lalm.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_commands() -> None:
    out = _lalm("--help")
    assert out.returncode == 0
    for command in ("make-tiny", "transcribe"):
        assert command in out.stdout


def test_make_tiny_builds_a_checkpoint(tmp_path: Path) -> None:
    from lalm.modeling.checkpoint import check_checkpoint

    out = _lalm("make-tiny", str(tmp_path / "m"), "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert check_checkpoint(tmp_path / "m")


def test_transcribe_prints_text_from_a_videos_audio_track(tmp_path: Path, tiny_model: Path, speech: np.ndarray) -> None:
    video = tmp_path / "speech.mp4"
    video.write_bytes(encode(speech, "mp4"))
    out = _lalm("transcribe", str(video), "--model", str(tiny_model), "--max-tokens", "12")
    assert out.returncode == 0, out.stderr
    printed = out.stdout.strip()
    assert printed
    # what the CLI printed is the model's greedy transcript of the decoded audio track
    audio = decode_audio(video)

    async def expected() -> str:
        engine = HFEngine(tiny_model)
        try:
            result = await run_task(engine, audio.samples, get_task("transcribe"),
                                    SamplingParams(temperature=0, max_tokens=12))
            return result.text
        finally:
            await engine.close()

    assert printed == asyncio.run(expected()).strip()


def test_transcribe_reports_bad_audio_clearly(tmp_path: Path, tiny_model: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    out = _lalm("transcribe", str(bad), "--model", str(tiny_model))
    assert out.returncode == 2
    assert "not audio or video" in out.stderr


def test_transcribe_reads_a_local_file_of_any_size(tmp_path: Path, tiny_model: Path, speech: np.ndarray) -> None:
    """A 29 MiB WAV (44.1 kHz stereo, ~3 min): over the gateway's 25 MiB upload limit, which a local file does
    not have; decoded and cut as it is read, speech at 10 s and at 150 s, silence between."""
    rate, seconds = 44_100, 172.5
    at_rate = np.interp(np.arange(int(len(speech) * rate / SAMPLE_RATE)) * SAMPLE_RATE / rate,
                        np.arange(len(speech)), speech).astype(np.float32)
    track = np.zeros(int(seconds * rate), np.float32)
    for start in (10, 150):
        track[start * rate:start * rate + len(at_rate)] = at_rate
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([track, track], axis=1), rate, subtype="PCM_16")
    assert path.stat().st_size > 29 * 2**20 > Settings().max_upload_bytes
    out = _lalm("transcribe", str(path), "--model", str(tiny_model), "--max-tokens", "8", "--timestamps")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    starts = [float(line[1:9]) for line in lines]
    assert len(lines) == 2 and 9.5 < starts[0] <= 10.0 and 149.5 < starts[1] <= 150.0, out.stdout


def test_transcribe_writes_subtitles_and_verbose_json(tmp_path: Path, tiny_model: Path, speech: np.ndarray) -> None:
    import json

    wav = tmp_path / "speech.wav"
    wav.write_bytes(encode(np.concatenate([speech, np.zeros(8000, np.float32), speech]), "wav"))
    text = _lalm("transcribe", str(wav), "--model", str(tiny_model), "--max-tokens", "24").stdout.split()
    srt = _lalm("transcribe", str(wav), "--model", str(tiny_model), "--max-tokens", "24", "--format", "srt")
    assert srt.returncode == 0, srt.stderr
    blocks = [b.split("\n") for b in srt.stdout.strip().split("\n\n")]
    assert [b[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]
    assert all(" --> " in b[1] for b in blocks)
    # the cues hold exactly the transcript's words, in order, at most 2 lines each
    assert [w for b in blocks for line in b[2:] for w in line.split()] == [w.replace("-->", "->") for w in text]
    assert all(len(b) <= 4 for b in blocks)
    verbose = _lalm("transcribe", str(wav), "--model", str(tiny_model), "--max-tokens", "24", "--format",
                    "verbose_json")
    body = json.loads(verbose.stdout)
    assert [w["word"] for w in body["words"]] == text
    assert [w["start"] for w in body["words"]] == sorted(w["start"] for w in body["words"])
    bad = _lalm("transcribe", str(wav), "--model", str(tiny_model), "--format", "srt", "--task", "summarize")
    assert bad.returncode == 2 and "--format srt" in bad.stderr


def test_transcribe_takes_the_endpoints_temperature_fallback(tmp_path: Path, looping_model: Path,
                                                              speech: np.ndarray) -> None:
    """`lalm transcribe` decodes a window whose greedy answer loops again at the next temperature of Whisper's
    schedule, as the transcription endpoint does (the checkpoint: tests/conftest.py looping_model; the logprob
    rule off, so the loop is what is retried). Run in this process: the settings come from the environment."""
    import json

    from typer.testing import CliRunner

    from lalm.cli import app

    wav = tmp_path / "speech.wav"
    wav.write_bytes(encode(speech, "wav"))
    schedule = Settings.model_fields["fallback_temperatures"].default  # the tests' environment turns it off
    env = {"LALM_FALLBACK_TEMPERATURES": json.dumps(schedule), "LALM_LOGPROB_THRESHOLD": "-inf"}
    out = CliRunner().invoke(app, ["transcribe", str(wav), "--model", str(looping_model), "--max-tokens", "48",
                                   "--format", "verbose_json"], env=env)
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["segments"] and {s["temperature"] for s in body["segments"]} == {0.2}
    assert compression_ratio(body["text"]) <= 2.4
