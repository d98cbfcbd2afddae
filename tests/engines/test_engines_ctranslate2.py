"""The in-process Whisper engine (CTranslate2 via faster-whisper) on real weights: Whisper tiny.en from its pinned
package, the real recordings of pocketsphinx-testdata, through the one transcription job (lalm.job)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lalm.config import Settings
from lalm.default_model.recordings import real_recordings
from lalm.engines.base import AudioPart, EngineError, Message, SamplingParams, SpeechRequest
from lalm.errors import LalmError
from lalm.job import JobOptions, run_job
from lalm.metrics import score_corpus
from lalm.serve.backend import local_engine

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SETTINGS = Settings(fallback_temperatures=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.fixture(scope="module")
def tiny_en():
    engine = local_engine("whisper-tiny.en", SETTINGS)
    asyncio.run(engine.start())
    return engine


def _window(samples: np.ndarray, **speech: object) -> list[Message]:
    return [Message("user", [AudioPart(samples), "Transcribe."], speech=SpeechRequest("transcribe", **speech))]


def test_real_recordings_come_back_as_their_words(tiny_en) -> None:
    """The ten real recordings through the job: tiny.en's pooled WER stays near its known ~0.1 (greedy)."""
    clips = [c for c in real_recordings() if not c.name.startswith("alsa/")]
    assert len(clips) == 10

    async def go() -> list[str]:
        return [(await run_job(tiny_en, c.samples, JobOptions(), SETTINGS)).text for c in clips]

    report = score_corpus([c.reference for c in clips], asyncio.run(go()))
    assert report.wer < 0.15, report


def test_silence_and_noise_answer_no_text(tiny_en) -> None:
    rng = np.random.default_rng(0)
    for samples in (np.zeros(16000 * 4, np.float32), (0.02 * rng.standard_normal(16000 * 4)).astype(np.float32)):
        assert asyncio.run(run_job(tiny_en, samples, JobOptions(), SETTINGS)).text == ""


def test_context_prompt_and_word_times(tiny_en) -> None:
    """A prompt reaches Whisper as its previous text, and word times fall inside the recording."""
    samples = real_recordings()[0].samples
    result = asyncio.run(run_job(tiny_en, samples, JobOptions(prompt="Mr. John Dashwood.", word_timestamps=True),
                                 SETTINGS))
    assert "Dashwood" in result.text
    words = [w for s in result.segments for w in s.words]
    assert [w.word for w in words] == result.text.split()
    assert all(0 <= w.start <= w.end <= len(samples) / 16000 for w in words)
    # each segment reports Whisper's mean token logprob of its window: a confident reading of clear speech
    assert result.segments and all(-1.0 < s.avg_logprob < 0 for s in result.segments)


def test_the_beams_setting_reaches_the_engine() -> None:
    assert local_engine("whisper-tiny.en", Settings()).beam_size == 1
    assert local_engine("whisper-tiny.en", Settings(whisper_beam_size=5)).beam_size == 5


def test_what_an_english_only_model_refuses(tiny_en) -> None:
    samples = np.zeros(16000, np.float32)
    with pytest.raises(EngineError) as other_language:
        asyncio.run(tiny_en.generate(_window(samples, language="fr"), SamplingParams(temperature=0)))
    assert other_language.value.status == 400
    with pytest.raises(EngineError) as chat:
        asyncio.run(tiny_en.generate([Message("user", [AudioPart(samples), "What is said?"])], SamplingParams()))
    assert (chat.value.status, chat.value.code) == (400, "model_capability")
    with pytest.raises(LalmError) as summary:
        asyncio.run(run_job(tiny_en, samples, JobOptions(task="summarize"), SETTINGS))
    assert (summary.value.status, summary.value.code, summary.value.param) == (400, "model_capability", "task")


def test_transcribe_to_srt_without_the_web_stack(tmp_path) -> None:
    """`lalm transcribe FILE --format srt` writes cues and never imports FastAPI (or Starlette, uvicorn)."""
    clip = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav"
    code = (
        "import sys\n"
        "from lalm.cli import app\n"
        f"app(['transcribe', {str(clip)!r}, '--model', 'whisper-tiny.en', '--format', 'srt'],"
        " standalone_mode=False)\n"
        "web = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn')]\n"
        "assert not web, web\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "00:00:00," in out.stdout and "-->" in out.stdout and "Dashwood" in out.stdout
