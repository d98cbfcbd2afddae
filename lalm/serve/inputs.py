"""Chat request messages -> engine messages, with every audio part decoded by lalm.audio.

`input_audio` carries base64 of any container the decoder reads; `audio_url` carries a data: URL, or an
http(s) URL fetched through the fetch guard (lalm.serve.fetch), which also refuses every other scheme and
every URL while the server does not allow remote audio.
Decoding runs in worker threads, off the event loop. Errors name the part they concern
(`messages[0].content[1]`).
"""

from __future__ import annotations

import asyncio

import numpy as np

from lalm.audio import decode_audio, decode_base64
from lalm.config import Settings
from lalm.engines.base import AudioPart, Message
from lalm.errors import LalmError
from lalm.serve.errors import to_api_error
from lalm.serve.fetch import fetch_audio_url
from lalm.serve.protocol import AudioURLPart, ChatRequestMessage, InputAudioPart

__all__ = ["decode_messages"]


async def decode_messages(messages: list[ChatRequestMessage], settings: Settings) -> list[Message]:
    """The conversation as engine messages (`developer` becomes `system`, audio becomes samples)."""
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
                    parts.append(AudioPart(await _decode_part(part, settings)))
                except LalmError as exc:  # the decoder's AudioError, the fetcher's FetchError
                    raise to_api_error(exc, param) from None
            else:
                parts.append(part.text)
        out.append(Message(role, parts))
    return out


async def _decode_part(part: InputAudioPart | AudioURLPart, settings: Settings) -> np.ndarray:
    limits = {"max_bytes": settings.max_upload_bytes, "max_seconds": settings.max_audio_seconds}
    if isinstance(part, InputAudioPart):
        audio = await asyncio.to_thread(decode_base64, part.input_audio.data, **limits)
        return audio.samples
    url = part.audio_url.url.strip()
    if url[:5].lower() == "data:":
        return (await asyncio.to_thread(decode_base64, url, **limits)).samples
    data = await fetch_audio_url(url, settings)
    return (await asyncio.to_thread(decode_audio, data, **limits)).samples
