"""The LLM side of the default-model recipe: the assembled checkpoint's language model with LoRA, the prompt
the server sends for a task (rendered by the checkpoint's own chat template, so training sees exactly what
`lalm serve` sends), batches whose `<|AUDIO|>` slots hold given vectors, and greedy decoding.

A batch row is the chat prompt up to `<|audio_bos|>`, the slot (n vectors, n = the clip's audio token count),
the rest of the prompt from `<|audio_eos|>` on, then the answer and `<|im_end|>`; the loss covers only the
answer and its `<|im_end|>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lalm.tasks import NO_SPEECH, get_task

__all__ = ["AudioLM", "LoraWeights", "answer_for"]


def answer_for(reference: str) -> str:
    """What the model must answer for a clip: its transcript, or the no-speech answer."""
    return reference.strip() or NO_SPEECH


class LoraWeights:
    """state_dict / load_state_dict / train / eval over a peft model's adapter weights only."""

    def __init__(self, peft_model) -> None:
        self.peft_model = peft_model

    def state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.peft_model).items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.peft_model, state)
        if result.unexpected_keys:
            raise KeyError(f"unexpected LoRA weights: {result.unexpected_keys[:3]}")

    def train(self) -> None:
        self.peft_model.train()

    def eval(self) -> None:
        self.peft_model.eval()


@dataclass
class _Prompt:
    before: torch.Tensor  # token ids up to and including <|audio_bos|>
    after: torch.Tensor  # token ids from <|audio_eos|> to "assistant\n"


class AudioLM(nn.Module):
    """The assembled checkpoint's language model (`language_model`, `lm_head`) with LoRA on its attention and
    MLP projections, frozen otherwise. `embed` is its input embedding table (V, d). With `device` (e.g.
    "cuda") the model lives there and every batch is built there."""

    def __init__(self, checkpoint: str | Path, *, lora_r: int = 16, lora_alpha: int = 32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        from lalm.modeling.checkpoint import load_checkpoint
        from lalm.train_dpo.model_args import LORA_TARGETS

        model, processor = load_checkpoint(checkpoint, dtype=torch.float32)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.config = model.config
        model.requires_grad_(False)
        if device is not None:
            model.to(device)
        self.peft = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                                                     target_modules=LORA_TARGETS))
        inner = self.peft.base_model.model
        self.language_model = inner.model.language_model
        self.lm_head = inner.lm_head
        self.embed = self.language_model.embed_tokens.weight
        self.end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self._prompts: dict[str, _Prompt] = {}

    def lora_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.peft.named_parameters() if "lora_" in n]

    @property
    def lora(self) -> LoraWeights:
        """The LoRA weights alone, as a module-like object the stages checkpoint (not the 135M frozen ones)."""
        return LoraWeights(self.peft)

    def prompt(self, instruction: str) -> _Prompt:
        """The token ids around the audio slot for a user turn of one audio and `instruction`, as the chat
        template renders it (system message included), ending with the assistant header."""
        if instruction not in self._prompts:
            messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": instruction}]}]
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            slot = int((ids == self.config.audio_token_id).nonzero()[0, 0])
            self._prompts[instruction] = _Prompt(ids[:slot], ids[slot + 1:])
        return self._prompts[instruction]

    def rows(self, slots: list[torch.Tensor], instructions: list[str], answers: list[str] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Input embeddings (B, L, d), attention mask (B, L) and labels (B, L, -100 outside answers; None
        without `answers`) for slots (n_i, d). Rows are padded on the LEFT, so generation continues every row
        from its last position."""
        seqs, labels = [], []
        for k, (slot, instruction) in enumerate(zip(slots, instructions, strict=True)):
            p = self.prompt(instruction)
            parts = [self.embed[p.before], slot.to(self.embed.dtype), self.embed[p.after]]
            lab = [torch.full((len(p.before) + len(slot) + len(p.after),), -100)]
            if answers is not None:
                ids = self.tokenizer(answers[k], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
                ids = torch.cat([ids, torch.tensor([self.end_id])])
                parts.append(self.embed[ids])
                lab.append(ids)
            seqs.append(torch.cat(parts))
            labels.append(torch.cat(lab))
        width = max(len(s) for s in seqs)
        device = self.embed.device
        embeds = torch.zeros(len(seqs), width, self.embed.shape[1], device=device)
        mask = torch.zeros(len(seqs), width, dtype=torch.long, device=device)
        out_labels = torch.full((len(seqs), width), -100, device=device)
        for i, (s, lab) in enumerate(zip(seqs, labels, strict=True)):
            embeds[i, width - len(s):] = s
            mask[i, width - len(s):] = 1
            out_labels[i, width - len(s):] = lab
        return embeds, mask, (out_labels if answers is not None else None)

    def loss(self, slots: list[torch.Tensor], instructions: list[str], answers: list[str]) -> torch.Tensor:
        """Mean next-token cross-entropy over the answers' tokens (and their `<|im_end|>`)."""
        embeds, mask, labels = self.rows(slots, instructions, answers)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.language_model(inputs_embeds=embeds, attention_mask=mask,
                                     position_ids=positions).last_hidden_state
        # logits only where an answer token is predicted: the (L, vocab) projection of the prompt and audio
        # positions was ~a fifth of a step's compute for a mean over the same tokens
        targets = labels[:, 1:]
        keep = targets != -100
        logits = self.lm_head(hidden[:, :-1][keep])
        return nn.functional.cross_entropy(logits, targets[keep])

    @torch.no_grad()
    def greedy(self, slots: list[torch.Tensor], instructions: list[str], max_new_tokens: int = 64) -> list[str]:
        """Greedy answers for the slots, decoded until `<|im_end|>` or `max_new_tokens`."""
        from transformers import DynamicCache

        embeds, mask, _ = self.rows(slots, instructions)
        cache = DynamicCache()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = [[] for _ in slots]
        done = torch.zeros(len(slots), dtype=torch.bool)
        for _ in range(max_new_tokens):
            hidden = self.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                         past_key_values=cache, use_cache=True).last_hidden_state
            nxt = self.lm_head(hidden[:, -1]).argmax(-1)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    if t == self.end_id or t == self.tokenizer.eos_token_id:
                        done[i] = True
                    else:
                        out[i].append(t)
            if bool(done.all()):
                break
            embeds = self.embed[nxt][:, None]
            mask = torch.cat([mask, torch.ones(len(slots), 1, dtype=mask.dtype, device=mask.device)], 1)
            positions = positions[:, -1:] + 1
        return [self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in out]

    def instruction(self, context: str | None = None) -> str:
        """The transcribe task's instruction as the server sends it (with `context` when given)."""
        return get_task("transcribe").instruction(context=context)
