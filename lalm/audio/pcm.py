"""PCM out and in: `encode_wav`, the lossless WAV lalm hands to other processes, and `PCM16Stream`, raw 16-bit
PCM arriving in pieces (the Realtime API's `audio/pcm`)."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from lalm.audio.decode import SAMPLE_RATE, AudioError

__all__ = ["PCM16Stream", "encode_wav"]


def encode_wav(samples: np.ndarray) -> bytes:
    """16 kHz mono WAV bytes: the lossless form lalm hands to other processes (e.g. vLLM), so they see
    exactly the samples lalm decoded. Samples that are exact 16-bit values (whatever came from a 16-bit
    file) are written as 16-bit PCM, half the bytes of float32, and read back as the same floats (n/32768)."""
    samples = np.asarray(samples, dtype=np.float32)
    scaled = samples * np.float32(32768)
    buf = io.BytesIO()
    if len(samples) and scaled.max() <= 32767 and scaled.min() >= -32768 and np.array_equal(scaled, np.rint(scaled)):
        sf.write(buf, scaled.astype(np.int16), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    else:
        sf.write(buf, samples, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buf.getvalue()


class PCM16Stream:
    """Raw little-endian 16-bit mono PCM arriving in pieces (the Realtime API's `audio/pcm`), decoded to
    16 kHz float32. Resampling keeps its state across pieces (soxr's stream resampler), so a recording sent
    in 100 ms chunks decodes to the same samples as sent whole, without clicks at the chunk edges."""

    def __init__(self, sample_rate: int) -> None:
        import soxr

        self.sample_rate = sample_rate
        self._resampler = None if sample_rate == SAMPLE_RATE else soxr.ResampleStream(
            sample_rate, SAMPLE_RATE, 1, dtype="float32")

    def push(self, data: bytes) -> np.ndarray:
        """The 16 kHz float32 samples of the next piece (empty while the resampler fills). Raises
        AudioError(corrupt_audio) for an odd number of bytes, which cannot be 16-bit samples."""
        if len(data) % 2:
            raise AudioError("corrupt_audio", f"16-bit PCM has an even number of bytes; got {len(data)}.")
        samples = np.frombuffer(data, "<i2").astype(np.float32) / np.float32(32768)
        return samples if self._resampler is None else self._resampler.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds (about 20 ms at 24 kHz; none at 16 kHz), for the end of a
        piece of audio; the stream then starts afresh."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self._resampler.clear()
        return tail
