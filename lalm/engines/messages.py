"""Engine messages in the two shapes the engines consume: transformers' chat-template parts (hf engine,
training) and OpenAI content parts with base64 WAV (vLLM's server). Both render to the same prompt through
the checkpoint's chat template: `Audio N: <|audio_bos|><|AUDIO|><|audio_eos|>` for every audio part."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from lalm.audio import SAMPLE_RATE, encode_wav
from lalm.engines.base import AudioPart, EngineError, Message

__all__ = ["MAX_AUDIO_SECONDS", "check_audio_lengths", "to_hf_messages", "to_openai_messages"]

# Whisper-style encoders see at most 30 s (3000 mel frames). Longer audio must be split by the caller
# (lalm.serve.longform); the engines refuse it rather than let it be cut silently.
MAX_AUDIO_SECONDS = 30.0


def check_audio_lengths(messages: Sequence[Message], limit: float = MAX_AUDIO_SECONDS) -> None:
    """Refuse any audio part longer than `limit` seconds (the encoder's window)."""
    for m in messages:
        for a in m.audios:
            seconds = len(a.samples) / SAMPLE_RATE
            if seconds > limit + 1e-6:
                raise EngineError(
                    f"An audio part is {seconds:.1f} s; the model hears at most {limit:g} s at once. "
                    "Split it into windows first (lalm.serve.longform does).",
                    400, "audio_too_long",
                )


def to_hf_messages(messages: Sequence[Message]) -> list[dict]:
    """Messages for `processor.apply_chat_template`: audio parts become `{"type": "audio"}`."""
    out = []
    for m in messages:
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": m.content})
        else:
            out.append({"role": m.role, "content": [
                {"type": "audio"} if isinstance(p, AudioPart) else {"type": "text", "text": p} for p in m.content
            ]})
    return out


def to_openai_messages(messages: Sequence[Message]) -> list[dict]:
    """Messages for an OpenAI-compatible server: audio as lossless float32 WAV in `input_audio` parts, so
    the server sees exactly the samples lalm decoded."""
    out = []
    for m in messages:
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": m.content})
            continue
        parts = []
        for p in m.content:
            if isinstance(p, AudioPart):
                data = base64.b64encode(encode_wav(p.samples)).decode("ascii")
                parts.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
            else:
                parts.append({"type": "text", "text": p})
        out.append({"role": m.role, "content": parts})
    return out
