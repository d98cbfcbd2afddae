"""The vLLM Whisper engine: transcript and translation windows sent to a vLLM server's /v1/audio/transcriptions
or /translations, for a Whisper checkpoint written by `lalm convert-whisper` (whose architecture lalm's vLLM
plugin serves with openai-whisper's prompts).

A Whisper model answers speech requests only: a message must carry one audio window and its `SpeechRequest`
(task, language, previous-text prompt); a chat without one is refused (400, model_capability). Connections,
retries of stale keep-alive connections, upstream errors and the server process are the vLLM engine's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

from lalm.audio import encode_wav
from lalm.engines.base import (
    AudioPart,
    Capabilities,
    Completion,
    Delta,
    EngineError,
    Message,
    SamplingParams,
    SpeechRequest,
    Usage,
)
from lalm.engines.ctranslate2 import whisper_capabilities as capabilities_of
from lalm.engines.messages import WINDOW_SECONDS, check_audio_lengths
from lalm.engines.vllm import VLLMEngine, _raise_for_status
from lalm.engines.vllm_process import VLLMProcess
from lalm.modeling.whisper import WhisperFolderError, WhisperInfo, read_whisper_folder
from lalm.vllm_plugin import ENGLISH_ONLY_ARCHITECTURE, MULTILINGUAL_ARCHITECTURE

__all__ = ["VLLMWhisperEngine", "whisper_capabilities", "whisper_process"]

# Whisper's decoder has 448 positions; its encoder input (1500 frames) is one multimodal item that vLLM will
# not split, so a step must take 1500 tokens (vLLM's CPU default of 896 refuses to start).
_MAX_MODEL_LEN = 448
_WHISPER_ARGS = ("--max-num-batched-tokens", "1500")


def whisper_capabilities(info: WhisperInfo) -> Capabilities:
    """What a Whisper model can be asked (lalm.engines.ctranslate2.whisper_capabilities, from its folder)."""
    return capabilities_of(info.multilingual, info.languages)


def whisper_process(folder: str | Path, *, served_model_name: str | None = None, log_path: str | Path | None = None,
                    extra_args: Sequence[str] = ()) -> VLLMProcess:
    """A vLLM server process for the transformers Whisper folder `folder` (see `lalm convert-whisper`).

    Raises WhisperFolderError when the folder is not a converted Whisper checkpoint (its config.json must name
    lalm's architecture, which the vLLM plugin registers)."""
    info = read_whisper_folder(folder)
    architectures = json.loads((info.path / "config.json").read_text()).get("architectures") if info.layout == "hf" \
        else None
    if architectures not in ([MULTILINGUAL_ARCHITECTURE], [ENGLISH_ONLY_ARCHITECTURE]):
        raise WhisperFolderError(f"{folder} is not a Whisper checkpoint for vLLM; convert it first: "
                                 f"lalm convert-whisper {folder} OUT")
    return VLLMProcess(str(info.path), served_model_name=served_model_name, max_model_len=_MAX_MODEL_LEN,
                       log_path=log_path, extra_args=[*_WHISPER_ARGS, *extra_args])


class VLLMWhisperEngine(VLLMEngine):
    """Speech requests to vLLM servers serving one Whisper model (`upstreams`, or a `process` this engine starts
    and supervises). `info` (lalm.modeling.whisper.read_whisper_folder) gives the capabilities."""

    def __init__(self, model_name: str, *, info: WhisperInfo, upstreams: Sequence[str] = (),
                 process: VLLMProcess | None = None, timeout: float = 600.0, api_key: str | None = None,
                 startup_timeout: float = 600.0) -> None:
        super().__init__(model_name, upstreams=upstreams, process=process, timeout=timeout, api_key=api_key,
                         startup_timeout=startup_timeout)
        self.info = info
        self.capabilities = whisper_capabilities(info)

    def _request(self, messages: Sequence[Message], params: SamplingParams) -> tuple[str, bytes, SpeechRequest]:
        """The endpoint path, WAV bytes and speech request of the one window in `messages`."""
        asked = [m for m in messages if m.speech is not None]
        if not asked:
            raise EngineError(f"{self.model_name} is a speech-recognition model: it transcribes and translates "
                              "audio (/v1/audio/transcriptions, /v1/audio/translations) and does not chat.", 400,
                              "model_capability")
        message = asked[-1]
        speech = message.speech
        if len(message.audios) != 1:
            raise EngineError(f"A transcription window holds exactly one audio part, not {len(message.audios)}.", 400,
                              "invalid_request")
        check_audio_lengths([message], WINDOW_SECONDS)
        if speech.task not in self.capabilities.tasks:
            raise EngineError(f"{self.model_name} is English-only: it transcribes, it does not translate.", 400,
                              "model_capability")
        part: AudioPart = message.audios[0]
        return ("translations" if speech.task == "translate" else "transcriptions",
                part.wav if part.wav is not None else encode_wav(part.samples), speech)

    def _form(self, wav: bytes, speech: SpeechRequest, params: SamplingParams) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("file", wav, filename="window.wav", content_type="audio/wav")
        fields = {"model": self.model_name, "response_format": "json", "temperature": params.temperature,
                  "top_p": params.top_p, "language": speech.language, "prompt": speech.previous_text,
                  "seed": params.seed, "max_completion_tokens": params.max_tokens}
        for name, value in fields.items():
            if value is not None:
                form.add_field(name, str(value))
        return form

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        endpoint, wav, speech = self._request(messages, params)
        status, raw = await self._ask(f"/v1/audio/{endpoint}", lambda: self._form(wav, speech, params), "mid-request")
        _raise_for_status(status, raw)
        # vLLM reports a transcription's usage as seconds of audio, not tokens
        return Completion(json.loads(raw).get("text", "").strip(), "stop", Usage())

    async def stream(self, messages: Sequence[Message], params: SamplingParams) -> AsyncIterator[Delta]:
        """The window's text as one delta: a window is short and its text is wanted whole (the transcription
        job streams window by window)."""
        completion = await self.generate(messages, params)
        if completion.text:
            yield Delta(completion.text)
        yield Delta("", finish_reason=completion.finish_reason, usage=completion.usage)
