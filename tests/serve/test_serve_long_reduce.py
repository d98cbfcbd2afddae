"""Tasks that reduce their windows' answers (summarize, ...) on recordings whose answers overflow the model's
context (4,096 tokens here): the answers are reduced in levels (lalm.longform.reduce), every call within the
context. The model is the tiny random checkpoint made unable to end its answer, so every answer is noise of
max_tokens: the worst case for a reduction's budget."""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from serve_support import InProcessGateway, input_audio, start_gateway, stop_gateway, user
from transformers import AutoTokenizer

from lalm.audio import decode_audio
from lalm.config import Settings
from lalm.engines.hf import HFEngine
from lalm.longform.reduce import ReduceBudget, reduce_budget
from lalm.longform.windows import plan_windows
from lalm.tasks import get_task

CONTEXT = 4096  # the tiny checkpoint's, and the session vLLM server's --max-model-len


@pytest.fixture(scope="module")
def endless_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint whose greedy answer never ends before max_tokens: the LM head's rows of the added
    tokens (the end of turn and of text among them) are zero, so their logit is 0 while the largest of the
    ~1,000 random others is always above it. (The tiny model itself often ends its greedy answers early.)"""
    path = tmp_path_factory.mktemp("endless") / "model"
    shutil.copytree(tiny_model, path)
    special = list(AutoTokenizer.from_pretrained(path).added_tokens_decoder)  # <|im_end|>, <|endoftext|>, ...
    weights = load_file(path / "model.safetensors")
    weights["language_model.lm_head.weight"][special] = 0.0
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    return path


def _summarize(client, part: dict):
    return client.chat.completions.create(model="tiny", messages=[user(part)], temperature=0,
                                          extra_body={"task": "summarize"})


def test_summary_of_90_s_without_max_tokens(endless_model: Path, long_speech):
    """The reported failure: four windows answering up to the default max_tokens (1,024) each, pasted into one
    reduction prompt, overflowed the context (400 "maximum context length is 4096 tokens")."""
    gw = InProcessGateway(Settings(engine="hf", model=str(endless_model), served_model_name="tiny")).start()
    try:
        out = _summarize(gw.client(), input_audio(long_speech))
    finally:
        gw.stop()
    assert isinstance(out.choices[0].message.content, str)
    assert len(plan_windows(long_speech)) == 4
    # the windows' answers and the reductions' answers together are more than one context could hold
    assert out.usage.completion_tokens > CONTEXT


@pytest.fixture(scope="module")
def hour(long_speech) -> bytes:
    """60 minutes of sound (the 95 s of speech over and over) as Ogg Opus at 16 kHz and 24 kbit/s: about 9 MB,
    within the default upload limit. Encoded here at 16 kHz: tests/media.py resamples to 48 kHz first, which
    takes minutes for an hour."""
    samples = np.tile(long_speech, 38)[: 3600 * 16000]
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :]
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=16000, layout="mono")
        stream.bit_rate = 24000
        size = 320  # 20 ms: libopus's frame
        for start in range(0, pcm.shape[1] - size + 1, size):
            frame = av.AudioFrame.from_ndarray(pcm[:, start:start + size], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.vllm
def test_summary_of_an_hour_through_lalm_serve_on_vllm(endless_model: Path, hour: bytes, tmp_path: Path):
    """`lalm serve` starting vLLM with --max-model-len 4096; 120 windows whose answers alone take ~40 contexts."""
    gw = start_gateway(["--engine", "vllm", "--model", str(endless_model), "--served-model-name", "tiny",
                        "--dtype", "float32", "--max-model-len", str(CONTEXT), "--window-concurrency", "16",
                        "--request-timeout-s", "3000"],
                       tmp_path / "serve.log", timeout=900)
    try:
        part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(hour).decode(), "format": "ogg"}}
        out = _summarize(gw.client(timeout=3000), part)
    finally:
        stop_gateway(gw)
    assert isinstance(out.choices[0].message.content, str)
    windows = plan_windows(decode_audio(hour).samples)
    assert len(windows) >= 120
    budget = asyncio.run(_budget(endless_model))
    # every window was heard (25 audio tokens a second, less the pauses left out) and answered the most a part
    # may take, and those answers were reduced level by level, two to a call: as many calls again, less two,
    # each prompt holding two parts and each answering as much
    assert out.usage.prompt_tokens > 20 * 3600 + (len(windows) - 2) * 2 * budget.part_tokens
    assert out.usage.completion_tokens >= (2 * len(windows) - 2) * budget.part_tokens


async def _budget(model: Path) -> ReduceBudget:
    """The summary's reduction budget on `model` with a context of CONTEXT (counted by transformers, whose
    counts equal vLLM's: tests/engines/test_engines_context.py)."""
    engine = HFEngine(model, max_model_len=CONTEXT)
    try:
        return await reduce_budget(engine, get_task("summarize"))
    finally:
        await engine.close()
