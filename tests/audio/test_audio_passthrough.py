"""lalm.audio's 16-bit WAV pass-through: a 16 kHz mono PCM16 WAV with exact sizes decodes to the same samples
libsndfile reads and is kept as it came (`Audio.wav`), which the vLLM engine then sends instead of encoding
again; every other WAV goes the general way, with no `wav`; the limits hold on both ways."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf

from lalm.audio import AudioError, decode_audio, decode_base64, encode_wav, is_pcm16_wav
from lalm.engines.base import AudioPart, Message
from lalm.engines.messages import openai_request_body


def _wav(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def _with_list_chunk(wav: bytes) -> bytes:
    """`wav` with a LIST chunk (odd size, so padded) between `fmt ` and `data`, RIFF size fixed up."""
    chunk = b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"
    body = wav[12:36] + chunk + wav[36:]
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body


def test_pcm16_wav_passes_through_with_libsndfile_samples(speech: np.ndarray) -> None:
    for wav in (_wav(speech), _with_list_chunk(_wav(speech))):
        assert is_pcm16_wav(wav)
        audio = decode_audio(wav, max_bytes=1 << 30, max_seconds=60)
        expected, _ = sf.read(io.BytesIO(wav), dtype="float32")
        assert audio.wav == wav
        np.testing.assert_array_equal(audio.samples, expected)
        assert audio.samples.dtype == np.float32 and audio.samples.flags.writeable


@pytest.mark.parametrize("kind", ["44k", "stereo", "float", "riff-size", "data-beyond-end", "placeholder"])
def test_other_wavs_decode_the_general_way_without_passthrough(kind: str, speech: np.ndarray) -> None:
    wav = {
        "44k": lambda: _wav(speech, 44100),
        "stereo": lambda: _wav(np.stack([speech, speech], axis=1)),
        "float": lambda: _wav(speech, subtype="FLOAT"),
        "riff-size": lambda: _wav(speech)[:4] + (123).to_bytes(4, "little") + _wav(speech)[8:],
        "data-beyond-end": lambda: _wav(speech)[:-100],
        "placeholder": lambda: _wav(speech)[:40] + b"\xff\xff\xff\xff" + _wav(speech)[44:],
    }[kind]()
    assert not is_pcm16_wav(wav)
    audio = decode_audio(wav, max_bytes=1 << 30, max_seconds=60)
    assert audio.wav is None and len(audio.samples) > 0


def test_limits_hold_on_the_passthrough(speech: np.ndarray) -> None:
    wav = _wav(speech)
    seconds = len(speech) / 16000
    with pytest.raises(AudioError) as err:
        decode_audio(wav, max_bytes=len(wav) - 1)
    assert err.value.code == "file_too_large"
    with pytest.raises(AudioError) as err:
        decode_audio(wav, max_seconds=seconds - 0.5)
    assert err.value.code == "audio_too_long"
    with pytest.raises(AudioError) as err:
        decode_audio(wav, min_seconds=seconds + 0.5)
    assert err.value.code == "audio_too_short"
    with pytest.raises(AudioError) as err:
        decode_audio(_wav(np.zeros(0, np.float32)))
    assert err.value.code == "audio_too_short"


def test_base64_with_line_breaks_decodes_and_other_characters_are_refused(speech: np.ndarray) -> None:
    text = base64.b64encode(_wav(speech)).decode()
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    assert decode_base64(wrapped).wav == _wav(speech)
    with pytest.raises(AudioError) as err:
        decode_base64(text[:100] + "!" + text[100:])
    assert err.value.code == "invalid_base64"


def test_vllm_request_carries_the_upload_itself_else_the_encoded_samples(speech: np.ndarray) -> None:
    upload = _with_list_chunk(_wav(speech))
    audio = decode_audio(upload)
    body = json.loads(openai_request_body({"model": "m"}, [
        Message("user", [AudioPart(audio.samples, audio.wav), "a", AudioPart(audio.samples)])]))
    first, _, last = body["messages"][0]["content"]
    assert base64.b64decode(first["input_audio"]["data"]) == upload
    assert base64.b64decode(last["input_audio"]["data"]) == encode_wav(audio.samples)
