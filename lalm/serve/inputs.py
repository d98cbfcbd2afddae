"""Chat request messages -> engine messages, with every audio part decoded by lalm.audio.

`input_audio` carries base64 of any container the decoder reads; `audio_url` carries a data: URL, or an
http(s) URL fetched through the fetch guard (lalm.serve.fetch), which also refuses every other scheme and
every URL while the server does not allow remote audio.
Decoding runs in worker threads, off the event loop, except for the commonest upload: base64 of a short
16 kHz mono 16-bit WAV decodes in a fraction of a millisecond, less than the thread hop itself costs.
Errors name the part they concern (`messages[0].content[1]`). `input_audio.format` must name a container
lalm reads (the bytes are sniffed anyway, so `wav` on mp3 bytes still works); audio shorter than
`min_audio_seconds` is refused.
"""

from __future__ import annotations

import asyncio

from lalm.audio import (
    SUPPORTED_FORMATS,
    Audio,
    DecodeReport,
    b64decode_limited,
    decode_audio,
    decode_base64,
)
from lalm.audio.wav import pcm16_wav
from lalm.config import Settings
from lalm.engines.base import AudioPart, Message
from lalm.engines.messages import WINDOW_SECONDS
from lalm.errors import LalmError
from lalm.serve.errors import as_lalm_error
from lalm.serve.fetch import fetch_audio_url
from lalm.serve.protocol import AudioURLPart, ChatRequestMessage, InputAudioPart

__all__ = ["AUDIO_FORMATS", "SKIPPED_HEADER", "decode_messages", "skipped_headers"]

# How many seconds of undecodable audio were skipped (lalm.audio.DecodeReport), on every response to audio.
SKIPPED_HEADER = "X-Lalm-Skipped-Audio-Seconds"

# `input_audio.format` values: the containers lalm reads, and the MIME subtypes clients send for them.
AUDIO_FORMATS = (*SUPPORTED_FORMATS, "mpeg", "x-wav", "wave", "x-flac", "mp4a", "x-m4a", "matroska")

# Base64 up to this long (a 30 s window of 16 kHz 16-bit WAV, 1.28 MB as base64) is decoded on the event loop
# when it is a 16 kHz mono PCM WAV: about 0.2 ms per 4 s, where a worker thread costs a hop each way.
_INLINE_BASE64_CHARS = 1_300_000


async def decode_messages(messages: list[ChatRequestMessage], settings: Settings,
                          report: DecodeReport | None = None,
                          fetched: dict[int, bytes] | None = None) -> list[Message]:
    """The conversation as engine messages (`developer` becomes `system`, audio becomes samples).
    Undecodable packets skipped in any audio part are added up in `report`. When `fetched` is given, the
    bytes fetched for each http(s) `audio_url` part of the last message are kept in it by content index,
    for reading their picture (lalm.serve.screen) without fetching them twice."""
    out = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        if m.content is None or isinstance(m.content, str):
            out.append(Message(role, m.content or ""))
            continue
        parts: list[str | AudioPart] = []
        for j, part in enumerate(m.content):
            if isinstance(part, InputAudioPart | AudioURLPart):
                param = f"messages[{i}].content[{j}]"
                try:
                    audio, body = await _decode_part(part, settings, param)
                except LalmError as exc:  # the decoder's AudioError, the fetcher's FetchError
                    raise as_lalm_error(exc, param) from None
                if body is not None and fetched is not None and i == len(messages) - 1:
                    fetched[j] = body
                if report is not None:
                    report.skipped_packets += audio.skipped.skipped_packets
                    report.skipped_seconds += audio.skipped.skipped_seconds
                    report.gap_seconds += audio.skipped.gap_seconds
                # audio longer than a window is cut into windows (chat_planner), never sent on whole: not
                # keeping its upload frees up to max_upload_bytes per part
                parts.append(AudioPart(audio.samples, audio.wav if audio.duration <= WINDOW_SECONDS else None))
            else:
                parts.append(part.text)
        out.append(Message(role, parts))
    return out


def skipped_headers(report: DecodeReport) -> dict[str, str]:
    """The response header saying how much undecodable audio `report` counted (0 when none)."""
    return {SKIPPED_HEADER: f"{report.skipped_seconds:.3f}"}


def _check_format(fmt: str, param: str) -> None:
    name = fmt.strip().lower().removeprefix("audio/").removeprefix("video/")
    if name not in AUDIO_FORMATS:
        raise LalmError(f"{param} {fmt!r} is not an audio format lalm reads; use one of: "
                        f"{', '.join(SUPPORTED_FORMATS)}.", param=param, code="invalid_value")


async def _decode_part(part: InputAudioPart | AudioURLPart, settings: Settings,
                       param: str) -> tuple[Audio, bytes | None]:
    """The part's audio, and the bytes fetched for it when it is an http(s) URL (else None)."""
    limits = {"max_bytes": settings.max_upload_bytes, "max_seconds": settings.max_audio_seconds,
              "min_seconds": settings.min_audio_seconds}
    if isinstance(part, InputAudioPart):
        _check_format(part.input_audio.format, f"{param}.input_audio.format")
        return await _decode_base64(part.input_audio.data, limits), None
    url = part.audio_url.url.strip()
    if url[:5].lower() == "data:":
        return await _decode_base64(url, limits), None
    data = await fetch_audio_url(url, settings)
    return await asyncio.to_thread(decode_audio, data, **limits), data


async def _decode_base64(data: str, limits: dict) -> Audio:
    """`decode_base64` on the event loop for a short 16 kHz mono PCM WAV, in a worker thread for anything else."""
    if len(data) > _INLINE_BASE64_CHARS:
        return await asyncio.to_thread(decode_base64, data, **limits)
    raw = b64decode_limited(data, limits["max_bytes"])
    wav = pcm16_wav(raw)
    if wav is not None:
        return decode_audio(wav, **limits)  # the header parsed here is not parsed again
    return await asyncio.to_thread(decode_audio, raw, **limits)
