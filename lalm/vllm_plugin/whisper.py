"""vLLM's Whisper with the prompts openai-whisper builds (vLLM 0.32's differ in three ways):

- English-only models (vocab < 51865: tiny.en, base.en, ...) have no language or task tokens of their own:
  their prompt is `<|startoftranscript|><|notimestamps|>`. vLLM writes `<|en|><|transcribe|>` after the
  start token, which makes them end at once (an empty transcript). Their language is English: a request without
  one means English (vLLM would try to detect it, with tokens they lack), another language is refused
  (ValueError, which vLLM answers with a 400).
- A request's `prompt` (previous text, names, terms) goes after `<|startofprev|>`, cut to its last 223 tokens
  (half the decoder's 448 positions less one, as openai-whisper and faster-whisper do); vLLM writes the literal
  characters `<|prev|>` in front of the whole prompt, which the model reads as text.
- Special-token spellings inside a prompt are dropped, so a prompt cannot end the context or start a transcript.

vLLM asks the model class, not the checkpoint, which languages it takes, hence one class per kind; the
checkpoint's config.json names one (lalm.modeling.whisper_convert writes it).
"""

from __future__ import annotations

import dataclasses
import re

from vllm.config.speech_to_text import SpeechToTextParams
from vllm.inputs import ExplicitEncoderDecoderPrompt, TextPrompt
from vllm.model_executor.models.whisper import WhisperForConditionalGeneration
from vllm.tokenizers import cached_tokenizer_from_config

__all__ = ["LalmWhisperEnForConditionalGeneration", "LalmWhisperForConditionalGeneration", "previous_text"]

_PROMPT_TOKENS = 223  # n_ctx // 2 - 1 for Whisper's 448 decoder positions
_SPECIAL = re.compile(r"<\|[^|<>]*\|>")


def previous_text(params: SpeechToTextParams) -> str:
    """The request's prompt as Whisper's previous-text context: `<|startofprev|>` and its last 223 tokens (with
    the leading space openai-whisper adds), or "" without a prompt."""
    text = _SPECIAL.sub("", params.request_prompt or "").strip()
    if not text:
        return ""
    tokenizer = cached_tokenizer_from_config(params.model_config)
    ids = tokenizer.encode(" " + text, add_special_tokens=False)
    # decoding a cut sequence and encoding it again can merge bytes differently: cut until it fits
    while len(ids) > _PROMPT_TOKENS:
        text = tokenizer.decode(ids[len(ids) - _PROMPT_TOKENS:])
        ids = tokenizer.encode(text, add_special_tokens=False)
    return "<|startofprev|>" + tokenizer.decode(ids)


def _prompt(params: SpeechToTextParams, task_tokens: str) -> ExplicitEncoderDecoderPrompt:
    return ExplicitEncoderDecoderPrompt(
        encoder_prompt=TextPrompt(prompt="", multi_modal_data={"audio": (params.audio,
                                                                         params.stt_config.sample_rate)}),
        decoder_prompt=TextPrompt(prompt=previous_text(params) + "<|startoftranscript|>" + task_tokens
                                  + "<|notimestamps|>"),
    )


class LalmWhisperForConditionalGeneration(WhisperForConditionalGeneration):
    """A multilingual Whisper: vLLM's, with the previous-text prompt fixed; a request without a language has it
    detected (vLLM's detection pass)."""

    @classmethod
    def get_generation_prompt(cls, stt_params: SpeechToTextParams) -> ExplicitEncoderDecoderPrompt:
        if stt_params.language is None:
            raise ValueError("Language must be specified when creating the Whisper prompt")
        return _prompt(stt_params, f"<|{stt_params.language}|><|{stt_params.task_type}|>")


class LalmWhisperEnForConditionalGeneration(WhisperForConditionalGeneration):
    """An English-only Whisper: English always, no language or task tokens, no detection pass. Translation is
    transcription (English speech's English text), as in openai-whisper."""

    supported_languages = {"en": "English"}  # noqa: RUF012 - vLLM's interface declares it a ClassVar mapping
    supports_explicit_language_detection = False

    @classmethod
    def validate_language(cls, language: str | None) -> str:
        if language in (None, "en"):
            return "en"
        raise ValueError(f"This model is English-only: it cannot transcribe language {language!r} (leave "
                         "`language` out or send 'en')")

    @classmethod
    def get_generation_prompt(cls, stt_params: SpeechToTextParams) -> ExplicitEncoderDecoderPrompt:
        return _prompt(dataclasses.replace(stt_params, language="en"), "")
