"""Stage a: CTC alignment of the audio head against the LLM's own token embeddings.

Next-token loss through a frozen LLM is too indirect a signal for the head on a CPU budget; CTC gives it a
direct one. Each audio embedding v scores every vocabulary token t
by -||v - E_t||^2 / (2 tau) (E: the LLM's frozen input embeddings; one learned blank vector), so training pulls
the head's outputs towards the embeddings of the tokens being spoken: what the LLM reads as those tokens.
Per step only the batch's target tokens plus `negatives` random others are scored (a sampled softmax);
greedy decoding for the held-out WER scores the whole vocabulary. (CTC: Graves et al. 2006.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lalm.default_model.features import FeatureSet
from lalm.default_model.head import AudioHead
from lalm.default_model.loop import pad_frames, run_stage

__all__ = ["CTCConfig", "CTCScorer", "allowed_tokens", "ctc_greedy_texts", "ctc_loss", "train_ctc"]


@dataclass(frozen=True)
class CTCConfig:
    steps: int = 1500
    batch_size: int = 16
    lr: float = 1e-3
    negatives: int = 4096
    norm_weight: float = 1.0  # keeps the head's outputs at the token embeddings' norm (see ctc_loss)
    eval_every: int = 250
    eval_clips: int = 120
    checkpoint_every: int = 50
    # from this step on the learning rate falls along a cosine to `final_lr_share` of `lr` at `steps` (None:
    # constant after the warm-up)
    decay_from: int | None = None
    final_lr_share: float = 0.1


class CTCScorer(nn.Module):
    """Distance logits against frozen token embeddings `embeddings` (V, d) plus a learned blank (class 0)."""

    def __init__(self, embeddings: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("embeddings", embeddings.detach().float(), persistent=False)
        self.blank = nn.Parameter(embeddings.float().mean(0) + embeddings.float().std(0) * torch.randn(
            embeddings.shape[1], generator=torch.Generator().manual_seed(0)).to(embeddings.device))
        self.log_tau = nn.Parameter(torch.zeros(()))

    def logits(self, audio: torch.Tensor, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d) audio embeddings -> (B, T, 1 + K) logits: blank, then tokens `token_ids` (K,) or all."""
        # float32 even under autocast: the distance logits are differences of large dot products
        with torch.autocast(audio.device.type, enabled=False):
            table = self.embeddings if token_ids is None else self.embeddings[token_ids.to(self.embeddings.device)]
            table = torch.cat([self.blank[None], table])
            scores = audio.float() @ table.T - 0.5 * table.pow(2).sum(-1)
            return scores / self.log_tau.exp()


def _targets(tokenizer, references: list[str]) -> list[list[int]]:
    return [tokenizer(r, add_special_tokens=False)["input_ids"] if r else [] for r in references]


def ctc_greedy_texts(head: AudioHead, scorer: CTCScorer, tokenizer, frames: list[np.ndarray],
                     allowed: torch.Tensor, batch_size: int = 16) -> list[str]:
    """Greedy CTC decoding of clips' cached frames over the tokens `allowed` (ids): best class per frame,
    repeats merged, blanks dropped, tokens detokenised."""
    texts = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            x, lengths = pad_frames(frames[start:start + batch_size], scorer.embeddings.device)
            audio, out_len = head(x, lengths)
            best = scorer.logits(audio, allowed).argmax(-1)
            for row, n in zip(best, out_len, strict=True):
                ids, prev = [], 0
                for c in row[: int(n)].tolist():
                    if c != prev and c != 0:
                        ids.append(int(allowed[c - 1]))
                    prev = c
                texts.append(tokenizer.decode(ids).strip())
    return texts


def train_ctc(head: AudioHead, embeddings: torch.Tensor, tokenizer, clips: FeatureSet, heldout: FeatureSet,
              cfg: CTCConfig, workdir: Path, *, seed: int = 0,
              wer: Callable[[list[str], list[str]], float], progress: bool = True,
              train: bool = True, deadline: float | None = None) -> tuple[CTCScorer, int]:
    """Train `head` (in place) and a CTCScorer with CTC for `cfg.steps` steps, resuming from
    `workdir/ctc.pt`; rows go to `workdir/log.jsonl`. `wer(references, hypotheses)` scores held-out decoding.
    With `train` False the last checkpoint is only loaded. Runs on `embeddings`' device (head there too);
    `deadline` as in run_stage. Returns the scorer (its blank vector is what
    the copy warm-up uses) and the step reached."""
    device = embeddings.device
    scorer = CTCScorer(embeddings).to(device)  # log_tau is made on the CPU
    targets = _targets(tokenizer, clips.references)
    allowed = allowed_tokens(tokenizer, embeddings.shape[0])
    held = list(range(min(cfg.eval_clips, len(heldout))))

    def loss_fn(batch: list[int], rng: np.random.Generator) -> torch.Tensor:
        x, x_len = pad_frames([clips.frames[i] for i in batch], device)
        audio, out_len = head(x, x_len)
        return ctc_loss(scorer, audio, out_len, [targets[i] for i in batch], allowed, cfg.negatives, rng,
                        cfg.norm_weight)

    def eval_fn() -> dict:
        hyps = ctc_greedy_texts(head, scorer, tokenizer, [heldout.frames[i] for i in held], allowed)
        with torch.no_grad():
            x, x_len = pad_frames([heldout.frames[i] for i in held[:16]], device)
            audio, n = head(x, x_len)
            valid = torch.arange(audio.shape[1], device=device)[None, :] < n[:, None]
            norm = audio.norm(dim=-1)[valid].mean() / scorer.embeddings.norm(dim=-1).mean()
        return {"ctc_heldout_wer": round(wer([heldout.references[i] for i in held], hyps), 4), "example": hyps[0],
                "tau": round(scorer.log_tau.exp().item(), 4), "norm_ratio": round(norm.item(), 3)}

    params = [p for p in head.parameters() if p.requires_grad] + list(scorer.parameters())
    step = run_stage("ctc", workdir=workdir, modules={"head": head, "scorer": scorer}, params=params,
              lengths=[len(f) for f in clips.frames], batch_size=cfg.batch_size, steps=cfg.steps, lr=cfg.lr,
              seed=seed, loss_fn=loss_fn, eval_fn=eval_fn, eval_every=cfg.eval_every,
              checkpoint_every=cfg.checkpoint_every, decay_from=cfg.decay_from, final_lr_share=cfg.final_lr_share,
              progress=progress, train=train, device=device, deadline=deadline)
    return scorer, step


def allowed_tokens(tokenizer, vocab_rows: int) -> torch.Tensor:
    """Ids CTC may emit: every row of the embedding table that is an ordinary (not special) token."""
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    return torch.tensor([i for i in range(min(vocab_rows, len(tokenizer))) if i not in special])


def ctc_loss(scorer: CTCScorer, audio: torch.Tensor, out_len: torch.Tensor, targets: list[list[int]],
             allowed: torch.Tensor, negatives: int, rng: np.random.Generator, norm_weight: float = 1.0
             ) -> torch.Tensor:
    """CTC loss of audio embeddings (B, T, d) with valid lengths (B,) against token id lists, scoring the
    targets' tokens plus `negatives` random `allowed` ones (a sampled softmax), plus `norm_weight` times the
    mean squared relative deviation of the embeddings' norms from the token embeddings' mean norm.

    Why the norm term: the softmax over -||v - E_t||^2 ignores ||v||^2 (the same for every class), so without
    it the head's outputs drift to norms several times the token embeddings' (measured: 20.9 vs 3.2 after 400
    steps) — vectors the LLM never reads as tokens, whatever their direction."""
    wanted = torch.tensor(sorted({t for row in targets for t in row}), dtype=torch.long)
    neg = torch.from_numpy(rng.choice(allowed.numpy(), min(negatives, len(allowed)), replace=False))
    ids = torch.unique(torch.cat([wanted, neg]))
    index = {int(t): k + 1 for k, t in enumerate(ids)}
    logp = scorer.logits(audio, ids).log_softmax(-1)
    flat = torch.tensor([index[t] for row in targets for t in row], dtype=torch.long).to(audio.device)
    loss = nn.functional.ctc_loss(logp.transpose(0, 1), flat, out_len, torch.tensor([len(r) for r in targets]),
                                  blank=0, zero_infinity=True)
    if not norm_weight:
        return loss
    valid = torch.arange(audio.shape[1], device=audio.device)[None, :] < out_len[:, None]
    ratio = audio.norm(dim=-1)[valid] / scorer.embeddings.norm(dim=-1).mean()
    return loss + norm_weight * (ratio - 1).pow(2).mean()
