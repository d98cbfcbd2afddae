"""Held-out figures of the default model during training, in process: the head reads cached encoder frames,
the LLM decodes greedily with the transcribe prompt the server sends, and the one metrics module scores the
answers (WER with S/D/I after Whisper's English normaliser; non-speech clips answered with the no-speech
answer). The figures through `lalm serve` come from bench/embedded_model.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lalm.default_model.features import FeatureSet
from lalm.default_model.head import AudioHead
from lalm.default_model.lm import AudioLM
from lalm.default_model.loop import pad_frames
from lalm.default_model.warmup import copy_slot, shuffle_words
from lalm.metrics import score_corpus

__all__ = ["copy_figures", "corpus_wer", "heldout_figures", "transcribe_frames"]


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Speech WER of transcripts against their references (lalm.metrics.score_corpus)."""
    return score_corpus(references, hypotheses).speech_wer


def transcribe_frames(lm: AudioLM, head: AudioHead, frames: list[np.ndarray], *, batch_size: int = 16,
                      max_new_tokens: int = 64) -> list[str]:
    """Greedy transcripts of clips given as cached (T_i, d_audio) encoder frames."""
    out: list[str] = []
    instruction = lm.instruction()
    for start in range(0, len(frames), batch_size):
        x, lengths = pad_frames(frames[start:start + batch_size], lm.embed.device)
        audio, n = head(x, lengths)
        slots = [a[: int(k)] for a, k in zip(audio, n, strict=True)]
        out += lm.greedy(slots, [instruction] * len(slots), max_new_tokens=max_new_tokens)
    return out


def heldout_figures(lm: AudioLM, head: AudioHead, speech: FeatureSet, non_speech: FeatureSet, *,
                    speech_clips: int, non_speech_clips: int, real: FeatureSet | None = None,
                    ctc_read: Callable[[list[np.ndarray]], list[str]] | None = None) -> dict[str, Any]:
    """Speech WER on the first `speech_clips` held-out speech clips, the share of the first
    `non_speech_clips` non-speech clips answered with the no-speech answer, one example transcript, and with
    `real` (recordings.py's clips) the WER on real recordings and its first transcript.

    With `ctc_read` (the head's own greedy CTC reading of a list of clips' frames) the same speech clips and
    recordings are also scored as the head alone reads them (`ctc_heldout_wer`, `ctc_real_wer`): the LLM
    doing worse than the head it reads says the LLM, not the audio head, is the limit."""
    frames, references = speech.frames[:speech_clips], speech.references[:speech_clips]
    quiet = non_speech.frames[:non_speech_clips]
    hyps = transcribe_frames(lm, head, [*frames, *quiet])
    report = score_corpus([*references, *[""] * len(quiet)], hyps)
    figures: dict[str, Any] = {
        "heldout_wer": round(report.speech_wer, 4),
        "no_speech_rate": round(1 - report.non_speech_output_rate, 4) if quiet else None,
        "S/D/I": f"{report.substitutions}/{report.deletions}/{report.insertions}",
        "example": hyps[0] if hyps else "",
    }
    if ctc_read is not None:
        figures["ctc_heldout_wer"] = round(corpus_wer(references, ctc_read(frames)), 4)
    if real is not None and len(real):
        real_hyps = transcribe_frames(lm, head, real.frames)
        figures["real_wer"] = round(corpus_wer(real.references, real_hyps), 4)
        figures["real_example"] = real_hyps[0]
        if ctc_read is not None:
            figures["ctc_real_wer"] = round(corpus_wer(real.references, ctc_read(real.frames)), 4)
    return figures


def copy_figures(lm: AudioLM, blank: torch.Tensor, texts: list[str], *, seed: int, noise: float = 0.5
                 ) -> dict[str, Any]:
    """How the LLM reads exact token slots (stage b's copy slots, warmup.py) of `texts` as they are and with
    each text's words in random order: `copy_wer`, `copy_shuffled_wer` and the shuffled reading's
    insertions. A model that reads its slot scores both alike; one that completes sentences from its
    language prior scores the shuffled words far worse (0.043 vs 0.452 at SFT step 850)."""
    rng = np.random.default_rng([seed, 5])
    shuffled = [shuffle_words(t, rng) for t in texts]
    instruction = lm.instruction()
    slots = [copy_slot(lm, blank, t, rng, noise) for t in [*texts, *shuffled]]
    hyps = lm.greedy(slots, [instruction] * len(slots))
    report = score_corpus(shuffled, hyps[len(texts):])
    return {"copy_wer": round(corpus_wer(texts, hyps[: len(texts)]), 4),
            "copy_shuffled_wer": round(report.speech_wer, 4), "copy_shuffled_insertions": report.insertions}
