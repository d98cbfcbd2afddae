"""Batches of audio + prompt + answer(s) for Qwen2-Audio training: the SFT collator and the preference
(DPO) collator for TRL's trainers.

TRL (1.x) switches its multimodal handling on only for `image`/`images` columns (huggingface/trl#2097), so
audio needs its own collator. This one follows TRL's `DataCollatorForVisionPreference`: the processor
renders each prompt through the chat template, expands its `<|AUDIO|>` placeholder to one token per encoder
output frame and computes the log-mel features; prompts are padded on the left, answers on the right, and
`completion_mask` marks the answer tokens. Rows 0..B-1 carry the chosen answers and rows B..2B-1 the
rejected ones, over the same prompts and audio, as DPOTrainer expects.

Nothing is ever truncated: cutting a sequence could drop `<|AUDIO|>` placeholders while the audio features
stay whole, and Qwen2-Audio then fails ("Audio features and audio tokens do not match") or, worse, silently
misaligns. Training therefore runs with `max_length=None` and `remove_unused_columns=False`, so the raw
columns (audio path, prompt, answers) reach this collator and every other key reaches the model:
`input_features` and `feature_attention_mask` go straight into `Qwen2AudioForConditionalGeneration`.

Prompts are built exactly as the engines build them at inference (`lalm.engines.messages.to_hf_messages`
of a user message `[audio, instruction]`), so training and serving see the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Qwen2AudioProcessor

from lalm.engines.base import AudioPart, Message
from lalm.engines.messages import to_hf_messages
from lalm.tasks import get_task

__all__ = ["AudioPreferenceCollator", "AudioSFTCollator", "default_prompt", "prompt_messages", "render"]


def default_prompt() -> str:
    """The instruction used when a manifest row has no `prompt`: the transcribe task's."""
    return get_task("transcribe").instruction()


def prompt_messages(samples: np.ndarray, prompt: str | None = None) -> list[Message]:
    """The engine messages for one clip: a user turn with the audio, then the instruction."""
    return [Message("user", [AudioPart(samples), prompt or default_prompt()])]


def render(processor: Qwen2AudioProcessor, prompt: str | None, answer: str | None = None) -> tuple[str, str]:
    """(prompt text up to the assistant turn, the answer as the template writes it, end-of-turn included).

    The answer part is taken as the difference between the template rendered with and without the
    assistant turn, so it is right for any chat template, not only Qwen's `answer<|im_end|>\\n`."""
    messages = to_hf_messages(prompt_messages(np.zeros(1, np.float32), prompt))
    head = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if answer is None:
        return head, ""
    full = processor.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(head):
        raise ValueError("the chat template renders the prompt differently with and without the answer")
    return head, full[len(head):]


def _audio(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32, copy=False)
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float32)
    from lalm.train_dpo.data import load_audio

    return load_audio(Path(value))


@dataclass
class _Base:
    processor: Qwen2AudioProcessor

    def _prompts(self, examples: Sequence[dict[str, Any]], answer_keys: Sequence[str]) -> dict[str, Any]:
        """Left-padded prompts with expanded audio placeholders and features, plus each answer column's
        rendered text."""
        heads, answers = [], {k: [] for k in answer_keys}
        for ex in examples:
            for k in answer_keys:
                head, tail = render(self.processor, ex.get("prompt"), ex[k])
                answers[k].append(tail)
            heads.append(head)
        audios = [_audio(ex["audio"]) for ex in examples]
        batch = self.processor(text=heads, audio=audios, sampling_rate=16000, padding=True, padding_side="left",
                               return_tensors="pt")
        batch.pop("num_audio_tokens", None)
        return {"prompt": batch, **answers}

    def _answers(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.processor.tokenizer(texts, padding=True, padding_side="right", add_special_tokens=False,
                                        return_tensors="pt")


def _pad_right(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token, as the engines use at inference."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


@dataclass
class AudioPreferenceCollator(_Base):
    """Examples `{"audio": path | array, "prompt": str | None, "chosen": str, "rejected": str}` -> a DPO batch:
    `input_ids`, `attention_mask`, `position_ids`, `completion_mask` (2B rows: chosen then rejected),
    `input_features`, `feature_attention_mask` (the audio repeated for both halves)."""

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        parts = self._prompts(examples, ("chosen", "rejected"))
        prompt = parts["prompt"]
        chosen, rejected = self._answers(parts["chosen"]), self._answers(parts["rejected"])
        pad_id = self.processor.tokenizer.pad_token_id
        width = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
        answer_ids = torch.cat([_pad_right(chosen["input_ids"], width, pad_id),
                                _pad_right(rejected["input_ids"], width, pad_id)])
        answer_mask = torch.cat([_pad_right(chosen["attention_mask"], width, 0),
                                 _pad_right(rejected["attention_mask"], width, 0)])
        prompt_ids, prompt_mask = prompt["input_ids"].repeat(2, 1), prompt["attention_mask"].repeat(2, 1)
        attention_mask = torch.cat([prompt_mask, answer_mask], dim=1)
        return {
            "input_ids": torch.cat([prompt_ids, answer_ids], dim=1),
            "attention_mask": attention_mask,
            "position_ids": _positions(attention_mask),
            "completion_mask": torch.cat([torch.zeros_like(prompt_mask), answer_mask], dim=1),
            "input_features": prompt["input_features"].repeat(2, 1, 1),
            "feature_attention_mask": prompt["feature_attention_mask"].repeat(2, 1),
        }


@dataclass
class AudioSFTCollator(_Base):
    """Examples `{"audio": path | array, "prompt": str | None, "completion": str}` -> an SFT batch whose
    `labels` are -100 everywhere but on the answer tokens (the loss is on the assistant reply only)."""

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        parts = self._prompts(examples, ("completion",))
        prompt = parts["prompt"]
        answer = self._answers(parts["completion"])
        input_ids = torch.cat([prompt["input_ids"], answer["input_ids"]], dim=1)
        attention_mask = torch.cat([prompt["attention_mask"], answer["attention_mask"]], dim=1)
        completion = torch.cat([torch.zeros_like(prompt["attention_mask"]), answer["attention_mask"]], dim=1)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": _positions(attention_mask),
            "labels": input_ids.masked_fill(completion == 0, -100),
            "input_features": prompt["input_features"],
            "feature_attention_mask": prompt["feature_attention_mask"],
        }
