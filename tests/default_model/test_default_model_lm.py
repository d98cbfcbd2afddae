"""AudioLM.loss, the recipe's next-token loss, on the tiny checkpoint: it projects only the answer positions onto
the vocabulary, and must equal the plain cross-entropy over full-sequence logits, gradients included."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lalm.default_model.lm import AudioLM


def _reference_loss(lm: AudioLM, slots, instructions, answers) -> torch.Tensor:
    embeds, mask, labels = lm.rows(slots, instructions, answers)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    hidden = lm.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
    logits = lm.lm_head(hidden[:, :-1])
    return nn.functional.cross_entropy(logits.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def test_loss_on_answer_positions_equals_full_sequence_cross_entropy(tiny_model: Path) -> None:
    torch.manual_seed(0)
    lm = AudioLM(tiny_model, lora_r=4, lora_alpha=8)
    d = lm.embed.shape[1]
    instructions = [lm.instruction(), lm.instruction("Ada Lovelace, engine")]
    answers = ["hello there world", "(no speech)"]

    def grads(loss_of) -> tuple[float, list[torch.Tensor]]:
        slots = [(torch.randn(n, d, generator=torch.Generator().manual_seed(n))).requires_grad_() for n in (7, 3)]
        for p in lm.lora_parameters():
            p.grad = None
        loss = loss_of(lm, slots, instructions, answers)
        loss.backward()
        return loss.item(), [s.grad.clone() for s in slots] + [p.grad.clone() for p in lm.lora_parameters()]

    fast, fast_grads = grads(AudioLM.loss)
    ref, ref_grads = grads(_reference_loss)
    assert fast > 0 and abs(fast - ref) < 1e-5 * ref
    assert len(fast_grads) == len(ref_grads) > 2
    for a, b in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().sum()) > 0 for g in fast_grads)
