"""Engine messages in the two shapes the engines consume: transformers' chat-template parts (hf engine,
training) and OpenAI content parts with base64 WAV (vLLM's server). Both render to the same prompt through
the checkpoint's chat template: `Audio N: <|audio_bos|><|AUDIO|><|audio_eos|>` for every audio part.

Every text in a message — what users wrote, in any role, and the task prompts built around it — is plain
text: `plain_text` breaks the control strings of chat templates in it (`<|im_start|>`, `<|AUDIO|>`, ...),
so only the template itself ever emits a special token. Otherwise text could open a turn of its own (a
prompt injection) or add an audio placeholder with no audio behind it (which the processor refuses)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence

import pybase64

from lalm.audio import SAMPLE_RATE, encode_wav
from lalm.engines.base import AudioPart, EngineError, Message

__all__ = ["WINDOW_SECONDS", "check_audio_lengths", "openai_request_body", "plain_text", "to_hf_messages",
           "to_openai_messages"]

# The model's window, defined here only: Whisper-style encoders see at most 30 s (3000 mel frames). Longer
# audio must be split by the caller (lalm.longform cuts windows of this length); the engines refuse it
# rather than let it be cut silently.
WINDOW_SECONDS = 30.0


def check_audio_lengths(messages: Sequence[Message], limit: float = WINDOW_SECONDS) -> None:
    """Refuse any audio part longer than `limit` seconds (the encoder's window)."""
    for m in messages:
        for a in m.audios:
            seconds = len(a.samples) / SAMPLE_RATE
            if seconds > limit + 1e-6:
                raise EngineError(
                    f"An audio part is {seconds:.1f} s; the model hears at most {limit:g} s at once. "
                    "Split it into windows first (lalm.longform.run does).",
                    400, "audio_too_long",
                )


# Chat templates' control strings are `<|name|>` (ChatML's <|im_start|>, Qwen2-Audio's <|AUDIO|>, ...).
# A zero-width space after `<` stops a tokenizer matching any of them, the way chat apps break "@everyone":
# the text then tokenizes as ordinary bytes, and it is the same for both engines (vLLM tokenizes the text it
# is sent, so escaping the text is the one fix that holds there too).
_CONTROL_OPEN = "<|"
_BREAK = "\u200b"
_CONTROL = re.compile(r"<\|[^|<>\s]+\|>")


def is_control_token(text: str) -> bool:
    """Whether a generated token's text is a whole control string (`<|im_end|>`, `<|endoftext|>`): a special
    token, which shows no text in the answer (tokenizers decode with skip_special_tokens)."""
    return _CONTROL.fullmatch(text) is not None


def plain_text(text: str) -> str:
    """`text` with every `<|` broken by a zero-width space (U+200B), so no tokenizer parses a control string
    such as `<|im_start|>` or `<|AUDIO|>` out of it. A final `<` is broken too, so two text parts rendered
    side by side cannot join into one. Other text is unchanged."""
    text = text.replace(_CONTROL_OPEN, "<" + _BREAK + "|")
    return text + _BREAK if text.endswith("<") else text


def to_hf_messages(messages: Sequence[Message]) -> list[dict]:
    """Messages for `processor.apply_chat_template`: audio parts become `{"type": "audio"}`, text is
    `plain_text`."""
    out = []
    for m in messages:
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": plain_text(m.content)})
        else:
            out.append({"role": m.role, "content": [
                {"type": "audio"} if isinstance(p, AudioPart) else {"type": "text", "text": plain_text(p)}
                for p in m.content
            ]})
    return out


def to_openai_messages(messages: Sequence[Message]) -> list[dict]:
    """Messages for an OpenAI-compatible server: audio as lossless WAV (lalm.audio.encode_wav) in
    `input_audio` parts, so the server sees exactly the samples lalm decoded; text is `plain_text`."""
    return _openai_messages(messages, lambda part: pybase64.b64encode(_wav(part)).decode("ascii"))


def openai_request_body(fields: dict, messages: Sequence[Message]) -> bytes:
    """The JSON bytes of a chat request with `fields` and `messages` (as `to_openai_messages`). Each
    audio's base64 is spliced into the JSON as bytes instead of passing through a str and a second
    encoding: a 30 s window is megabytes, and a gateway has several in flight."""
    nonce = secrets.token_hex(8)
    audio: list[bytes] = []

    def placeholder(part: AudioPart) -> str:
        audio.append(pybase64.b64encode(_wav(part)))
        return f"lalm-audio-{nonce}-{len(audio) - 1}"

    skeleton = json.dumps({**fields, "messages": _openai_messages(messages, placeholder)}).encode()
    for i, data in enumerate(audio):
        skeleton = skeleton.replace(f"lalm-audio-{nonce}-{i}".encode(), data, 1)
    return skeleton


def _wav(part: AudioPart) -> bytes:
    """The part's WAV: the upload as it came when it already is lossless 16-bit PCM (no re-encoding), else
    its samples encoded."""
    return part.wav if part.wav is not None else encode_wav(part.samples)


def _openai_messages(messages: Sequence[Message], audio_data: Callable[[AudioPart], str]) -> list[dict]:
    out = []
    for m in messages:
        if isinstance(m.content, str):
            out.append({"role": m.role, "content": plain_text(m.content)})
            continue
        parts = []
        for p in m.content:
            if isinstance(p, AudioPart):
                parts.append({"type": "input_audio", "input_audio": {"data": audio_data(p), "format": "wav"}})
            else:
                parts.append({"type": "text", "text": plain_text(p)})
        out.append({"role": m.role, "content": parts})
    return out
