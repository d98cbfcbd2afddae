"""Base64 audio, bare or as an RFC 2397 data URL, to bytes within a size limit, and on through the decoder."""

from __future__ import annotations

import binascii
import re

import pybase64

from lalm.audio.decode import Audio, AudioError, decode_audio, resolve_limits

__all__ = ["b64decode_limited", "decode_base64"]

# RFC 2397 `data:[<mediatype>][;base64],<data>`, the media type's parameters as RFC 2045 allows them
# (token or quoted-string values) and with the optional whitespace around `;` and `=` that browser recorders
# and chat bridges send (`data:audio/ogg; codecs=opus;base64,...`).
_TOKEN = r"[!#$%&'*+.^_`|~\w-]+"
_DATA_URL = re.compile(
    rf'^data:\s*(?P<mime>{_TOKEN}/{_TOKEN})?'
    rf'(?P<params>(\s*;\s*{_TOKEN}\s*=\s*({_TOKEN}|"([^"\\]|\\.)*"))*)\s*(?P<b64>;\s*base64\s*)?,',
    re.IGNORECASE,
)


def decode_base64(data: str, *, max_bytes: int | None = None, max_seconds: float | None = None,
                  min_seconds: float = 0.0) -> Audio:
    """Decode base64 audio, bare (`UklGR...`) or as a data URL (`data:audio/wav;base64,UklGR...`, media-type
    parameters allowed as RFC 2397 / RFC 2045 write them: `data:audio/ogg; codecs=opus;base64,...`)."""
    max_bytes, max_seconds = resolve_limits(max_bytes, max_seconds)
    return decode_audio(b64decode_limited(data, max_bytes), max_bytes=max_bytes, max_seconds=max_seconds,
                        min_seconds=min_seconds)


def b64decode_limited(data: str, max_bytes: float) -> bytes:
    """The bytes behind bare base64 or a base64 data URL, refusing anything malformed or over `max_bytes`
    before decoding it."""
    text = data.strip()
    if text[:5].lower() == "data:":
        match = _DATA_URL.match(text)
        if match is None or not match.group("b64"):
            raise AudioError("invalid_base64", "A data URL for audio must look like data:audio/wav;base64,<data>.")
        text = text[match.end():]
    if not text:
        raise AudioError("empty_audio", "The audio data is empty.")
    if len(text) * 3 // 4 > max_bytes:
        raise AudioError("file_too_large", f"The audio is larger than the limit of {max_bytes} bytes.")
    try:
        raw = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # line breaks inside (MIME-style base64) are allowed; everything else outside the alphabet is refused
        try:
            raw = pybase64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AudioError("invalid_base64", f"The audio data is not valid base64 ({exc}).") from None
    if not raw:
        raise AudioError("empty_audio", "The audio data is empty.")
    return raw
