"""The only audio decoder in lalm.

Everything that reaches a model — uploads, base64 parts, data: URLs, files on disk, the audio track of a
video — goes through `decode_audio` / `decode_base64` and comes out as 16 kHz mono float32, the input
Whisper-style encoders expect. PyAV (FFmpeg) reads every container (wav, flac, mp3, ogg/opus, m4a/aac,
webm, mp4, mkv, mov); decoding streams packet by packet and stops as soon as a limit is crossed, so a long
or hostile upload costs at most what the limits allow. Every failure raises `AudioError`, whose `code`
is stable for programs and whose message says what to do. (A cut-off WAV decodes to what it holds: WAV
headers written by streaming tools carry placeholder sizes, 0 or 0xFFFFFFFF, so its declared length cannot
be trusted.)

Damage inside a stream is survived as players and FFmpeg's CLI survive it: a packet the codec cannot decode
(two MP3s joined with `cat`, a few bad bytes in the middle) is skipped, and audio the demuxer had to jump
over to find its footing again (Matroska/WebM resyncs at the next cluster, Ogg at the next page) is seen as
a jump in the packets' timestamps; both are counted in a `DecodeReport`. A file is refused as corrupt only
when too little of it decodes: the jumps are not held against it, since recorders leave them too (a WebRTC
recording where a speaker was muted). A file that stops short of the duration it declares, what was skipped
counted as present, is truncated.
"""

from lalm.audio.data_url import b64decode_limited, decode_base64
from lalm.audio.decode import (
    SAMPLE_RATE,
    SUPPORTED_FORMATS,
    Audio,
    AudioError,
    DecodeReport,
    decode_audio,
    decode_chunks,
)
from lalm.audio.pcm import PCM16Stream, encode_wav
from lalm.audio.wav import is_pcm16_wav

__all__ = [
    "SAMPLE_RATE",
    "SUPPORTED_FORMATS",
    "Audio",
    "AudioError",
    "DecodeReport",
    "PCM16Stream",
    "b64decode_limited",
    "decode_audio",
    "decode_base64",
    "decode_chunks",
    "encode_wav",
    "is_pcm16_wav",
]
