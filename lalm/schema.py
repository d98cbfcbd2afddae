"""The bodies of a transcription or translation result, as pydantic models in OpenAI's field order: what
lalm.formats renders for the gateway, the CLI and the library alike. Kept apart from lalm.serve.protocol (the
request bodies, which need FastAPI's UploadFile) so that writing a transcript never imports the web stack."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DurationUsage",
    "ScreenTextLine",
    "TokenLogprob",
    "TranscriptionJson",
    "TranscriptionSegment",
    "TranscriptionUsage",
    "TranscriptionVerbose",
    "TranscriptionWord",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- token logprobs (chat completions, transcriptions, realtime) ---
class TokenLogprob(_Model):
    """A token and its log probability (OpenAI's transcription `Logprob`, chat's `TopLogprob`). `bytes` are the
    UTF-8 bytes of `token`. A character split over several tokens is shown by the token that completes it; the
    tokens before show "" (lalm.engines.token_text)."""

    token: str
    logprob: float
    bytes: list[int]


# --- audio transcriptions and translations: response ---
class TranscriptionUsage(_Model):
    type: Literal["tokens"] = "tokens"
    input_tokens: int
    output_tokens: int
    total_tokens: int



class TranscriptionJson(_Model):
    text: str
    usage: TranscriptionUsage | None = None
    logprobs: list[TokenLogprob] | None = Field(None, description="With include[]=logprobs.")


class TranscriptionWord(_Model):
    word: str = Field(description="A word of `text` as written (punctuation kept).")
    start: float
    end: float
    aligned: bool = Field(True, description="lalm extra: false when the time is interpolated between "
                                            "neighbours rather than found in the audio by forced alignment.")


class TranscriptionSegment(_Model):
    """A sentence- or pause-sized piece of the transcript (at most ~7 s and ~84 characters). `tokens` is
    empty (the neutral value)."""

    id: int
    seek: int = Field(description="Start of the window in 10 ms frames, as Whisper counts.")
    start: float
    end: float
    text: str
    tokens: list[int] = Field(default_factory=list, description="Always empty (neutral value).")
    temperature: float = Field(description="Temperature of the decoding that wrote the segment: the request's, or "
                                           "for a request at 0 the one its window's temperature fallback kept.")
    avg_logprob: float = Field(0.0, description="Mean logprob of the tokens that wrote the segment.")
    compression_ratio: float = Field(description="len(text) / len(zlib(text)), as Whisper computes it.")
    no_speech_prob: float = Field(0.0, description="1 - the voice-activity detector's speech probability for "
                                                  "the segment's audio (Silero VAD).")


class ScreenTextLine(_Model):
    """A line of on-screen text and when it was shown (seconds)."""

    text: str
    start: float
    end: float


class DurationUsage(_Model):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionVerbose(_Model):
    task: Literal["transcribe", "translate"]
    language: str = Field(description="The request's `language`, else the one a Whisper model detected (English for "
                          "translations); `unknown` if neither.")
    duration: float
    text: str
    words: list[TranscriptionWord] | None = Field(None, description="With timestamp_granularities[]=word.")
    segments: list[TranscriptionSegment]
    usage: DurationUsage | None = None
    lalm_skipped_seconds: float = Field(
        0.0, description="lalm extra: seconds of undecodable audio skipped (bad packets, junk the demuxer "
        "resynced past), as the X-Lalm-Skipped-Audio-Seconds header says too.",
    )
    lalm_screen_text: list[ScreenTextLine] | None = Field(
        None, description="lalm extra, with lalm_screen_text: the on-screen lines read from the video, each with the "
        "time range it was shown.",
    )
    lalm_warnings: list[str] = Field(
        default_factory=list, description="lalm extra: what the server could not do as asked (e.g. a video stream "
        "it could not read), as the X-Lalm-Warning header says too.",
    )
