"""Preference pairs against hallucinated insertions (`lalm train pairs`).

For each manifest clip, rejected =
  - the model's own answers, sampled several times at temperature ~1 through the transformers engine,
    kept when they hold at least one inserted word against the reference (metrics.py decides), and
  - synthetic rejects: a stock hallucinated phrase ("Thank you for watching.") appended or inserted at a
    word boundary, a repetition loop, or text on a non-speech clip.
On-policy rejects teach the model about its own failure modes; synthetic ones cover the classic ones even
when sampling does not hit them. Chosen (`--chosen`) =
  - `reference`: the reference (the no-speech answer on non-speech clips), or
  - `edited`: the rejected answer less its inserted words (`metrics.without_insertions`), so that a pair
    differs by the insertions alone and DPO is not also taught to drop the words the model got right; the
    reference where that edit leaves an insertion or loses a hit, the no-speech answer on non-speech clips.
The output is a manifest with `chosen`, `rejected` and `source` on each row, which `lalm train dpo` reads.

```bash
lalm train pairs --manifest data/train/manifest.jsonl --model runs/sft-merged --out runs/pairs.jsonl \\
    --samples 4 --temperature 1.0 --synthetic 2
lalm train pairs --manifest data/train/manifest.jsonl --out runs/pairs.jsonl   # synthetic rejects only
```
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lalm.metrics import score_clip, without_insertions
from lalm.tasks import NO_SPEECH
from lalm.train_dpo.data import Example, load_audio, read_manifest, write_manifest

__all__ = ["CHOSEN", "HALLUCINATED_PHRASES", "PairsConfig", "chosen_answer", "has_insertion", "make_pairs",
           "synthetic_rejects"]

# What speech models are known to write over silence, music and noise (Careless Whisper, Calm-Whisper):
# video outros, subtitle credits, fillers.
HALLUCINATED_PHRASES = (
    "Thank you for watching.",
    "Thanks for watching!",
    "Thank you.",
    "Please subscribe to my channel.",
    "Don't forget to like and subscribe.",
    "Subtitles by the Amara.org community.",
    "See you in the next video.",
    "Bye bye.",
    "I'm sorry.",
    "So, let's get started.",
)


CHOSEN = ("reference", "edited")


def _check_chosen(chosen: str) -> None:
    if chosen not in CHOSEN:
        raise ValueError(f"chosen must be one of {', '.join(CHOSEN)}, not {chosen!r}")


def has_insertion(reference: str, answer: str) -> bool:
    """Whether `answer` holds at least one word that is not in `reference` (jiwer's alignment)."""
    return score_clip(reference, answer).insertions >= 1


def synthetic_rejects(reference: str, rng: np.random.Generator, n: int = 2) -> list[tuple[str, str]]:
    """Up to `n` distinct (rejected answer, kind) pairs for a clip, each with at least one insertion."""
    words = reference.split()

    def phrase() -> str:
        return HALLUCINATED_PHRASES[int(rng.integers(len(HALLUCINATED_PHRASES)))]

    if not words:
        makers = {
            "text-on-non-speech": phrase,
            "repetition-on-non-speech": lambda: " ".join([phrase()] * int(rng.integers(2, 4))),
        }
    else:
        def inserted() -> str:
            cut = int(rng.integers(1, len(words))) if len(words) > 1 else 1
            return " ".join([*words[:cut], phrase(), *words[cut:]])

        def loop() -> str:
            k = int(rng.integers(1, min(3, len(words)) + 1))
            return " ".join(words + words[-k:] * int(rng.integers(2, 5)))

        makers = {"appended": lambda: f"{reference.rstrip()} {phrase()}", "inserted": inserted, "repetition": loop}
    kinds = list(makers)
    out: dict[str, str] = {}
    for _ in range(4 * n):
        if len(out) >= n:
            break
        kind = kinds[int(rng.integers(len(kinds)))]
        text = makers[kind]()
        if text not in out and has_insertion(reference, text):
            out[text] = kind
    return [(text, kind) for text, kind in out.items()]


def chosen_answer(reference: str, rejected: str, chosen: str = "reference") -> str:
    """The chosen side of a pair against `rejected`: `chosen` is one of CHOSEN (module docstring); raises
    ValueError on another."""
    _check_chosen(chosen)
    if not reference.strip():
        return NO_SPEECH
    if chosen == "edited":
        edit = without_insertions(reference, rejected)
        before, after = score_clip(reference, rejected), score_clip(reference, edit)
        if after.insertions == 0 and after.hits == before.hits:
            return edit
    return reference


@dataclass
class PairsConfig:
    """How many rejects of each source per clip, and how to sample the model's own answers."""

    samples: int = 4  # sampled answers per clip (0: synthetic rejects only)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 96
    synthetic: int = 2  # synthetic rejects per clip
    max_per_clip: int = 4  # pairs kept per clip, on-policy rejects first
    chosen: str = "reference"  # or "edited": the rejected answer less its insertions (module docstring)
    seed: int = 0
    concurrency: int = 8

    def __post_init__(self) -> None:
        _check_chosen(self.chosen)


async def _sample(model: str, examples: Sequence[Example], cfg: PairsConfig, progress: bool) -> list[list[str]]:
    from lalm.engines.base import SamplingParams
    from lalm.train_dpo.collator import prompt_messages
    from lalm.train_dpo.eval_asr import answer_all, open_answerer

    jobs = []
    for i, ex in enumerate(examples):
        messages = prompt_messages(load_audio(ex), ex.prompt)
        for k in range(cfg.samples):
            seed = int(np.random.default_rng([cfg.seed, i, k]).integers(2**31))
            jobs.append((messages, SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                                                  max_tokens=cfg.max_tokens, seed=seed)))
    async with open_answerer(model, max_batch_size=cfg.concurrency) as answer:
        texts = await answer_all(answer, jobs, concurrency=cfg.concurrency, desc="sample", progress=progress)
    return [texts[i * cfg.samples:(i + 1) * cfg.samples] for i in range(len(examples))]


def make_pairs(manifest: str | Path, out: str | Path, *, model: str | Path | None = None,
               cfg: PairsConfig | None = None, progress: bool = True) -> tuple[Path, dict[str, int]]:
    """Write the pairs file for `manifest` (sampling `model` if given, with a progress bar); returns its path
    and the count of pairs per source."""
    cfg = cfg or PairsConfig()
    examples = read_manifest(manifest)
    sampled = (asyncio.run(_sample(str(model), examples, cfg, progress)) if model and cfg.samples
               else [[] for _ in examples])
    rows, counts = [], {}
    for i, (ex, answers) in enumerate(zip(examples, sampled, strict=True)):
        rejects: dict[str, str] = {}
        for text in answers:
            if text not in rejects and has_insertion(ex.reference, text):
                rejects[text] = "sampled"
        rng = np.random.default_rng([cfg.seed, i, 1 << 20])
        for text, kind in synthetic_rejects(ex.reference, rng, cfg.synthetic):
            rejects.setdefault(text, f"synthetic:{kind}")
        meta = {k: v for k, v in ex.meta.items() if k not in ("chosen", "rejected", "source")}
        for text, source in list(rejects.items())[:cfg.max_per_clip]:
            chosen = chosen_answer(ex.reference, text, cfg.chosen)
            rows.append(Example(ex.audio, ex.reference, ex.prompt,
                                {**meta, "chosen": chosen, "rejected": text, "source": source}))
            key = source.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
    return write_manifest(out, rows), counts
