"""The audio collators on real processor output: placeholders, padding sides and completion masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lalm.modeling.checkpoint import AUDIO_TOKEN, load_checkpoint
from lalm.train_dpo.collator import AudioPreferenceCollator, AudioSFTCollator, render


@pytest.fixture(scope="module")
def model_and_processor(tiny_model: Path):
    return load_checkpoint(tiny_model)


def _examples() -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {"audio": 0.1 * rng.standard_normal(16000).astype(np.float32), "prompt": None,
         "chosen": "seven three nine", "rejected": "seven three nine. Thank you for watching."},
        {"audio": 0.1 * rng.standard_normal(3 * 16000 + 123).astype(np.float32), "prompt": "Say what you hear.",
         "chosen": "(no speech)", "rejected": ""},
    ]


def _encoder_tokens(samples: int) -> int:
    """Encoder output frames for a clip: mel frames (hop 160, a partial hop counts), conv stride 2, pooling
    by 2."""
    frames = -(-samples // 160)
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def test_preference_batch_layout(model_and_processor) -> None:
    model, processor = model_and_processor
    tok = processor.tokenizer
    examples = _examples()
    batch = AudioPreferenceCollator(processor)(examples)
    n, width = batch["input_ids"].shape
    assert n == 4  # chosen rows then rejected rows
    assert batch["input_features"].shape == (4, 80, 3000)
    for key in ("attention_mask", "completion_mask", "position_ids"):
        assert batch[key].shape == (4, width)

    audio_id = tok.convert_tokens_to_ids(AUDIO_TOKEN)
    mel_frames = batch["feature_attention_mask"].sum(-1)
    assert mel_frames.tolist() == [100, 301, 100, 301]
    want = [_encoder_tokens(len(examples[i % 2]["audio"])) for i in range(4)]
    assert (batch["input_ids"] == audio_id).sum(-1).tolist() == want  # every placeholder kept, none cut
    _, lengths = model.model.audio_tower._get_feat_extract_output_lengths(mel_frames)
    assert lengths.tolist() == want

    for row in range(4):
        ex = examples[row % 2]
        answer = ex["chosen"] if row < 2 else ex["rejected"]
        head, tail = render(processor, ex["prompt"], answer)
        prompt_ids = processor(text=[head], audio=[ex["audio"]], sampling_rate=16000)["input_ids"][0]
        answer_ids = tok(tail, add_special_tokens=False)["input_ids"]
        mask = batch["attention_mask"][row]
        real = batch["input_ids"][row][mask.bool()].tolist()
        assert real == list(prompt_ids) + answer_ids  # the whole sequence, in order, nothing dropped
        # left padding, then prompt and answer without a gap, then right padding
        first = int(mask.argmax())
        assert mask[:first].sum() == 0 and mask[first:first + len(real)].all()
        assert mask[first + len(real):].sum() == 0
        assert batch["input_ids"][row, first:first + len(prompt_ids)].tolist() == list(prompt_ids)
        # the completion mask covers exactly the answer tokens, right after the prompt
        cm = batch["completion_mask"][row]
        assert batch["input_ids"][row][cm.bool()].tolist() == answer_ids
        start = first + len(prompt_ids)
        assert cm[start:start + len(answer_ids)].all() and cm.sum() == len(answer_ids)
        assert tail.endswith("<|im_end|>\n")
        # positions count real tokens from 0
        assert batch["position_ids"][row, first].item() == 0
        assert batch["position_ids"][row, start].item() == len(prompt_ids)

    # prompts are left-padded: all rows' prompts end in the same column
    prompt_end = {int(batch["completion_mask"][r].argmax()) for r in range(4)}
    assert len(prompt_end) == 1
    # chosen and rejected rows share the prompt and the audio
    half = batch["input_ids"][:, :prompt_end.pop()]
    assert torch.equal(half[:2], half[2:])
    assert torch.equal(batch["input_features"][:2], batch["input_features"][2:])

    out = model(**{k: v for k, v in batch.items() if k != "completion_mask"})
    assert torch.isfinite(out.logits).all()


def test_sft_batch_labels_only_on_the_answer(model_and_processor) -> None:
    _, processor = model_and_processor
    examples = [{"audio": e["audio"], "prompt": e["prompt"], "completion": e["chosen"]} for e in _examples()]
    batch = AudioSFTCollator(processor)(examples)
    assert batch["input_ids"].shape[0] == 2 and batch["input_features"].shape[0] == 2
    for row, ex in enumerate(examples):
        _, tail = render(processor, ex["prompt"], ex["completion"])
        answer_ids = processor.tokenizer(tail, add_special_tokens=False)["input_ids"]
        labels = batch["labels"][row]
        assert labels[labels != -100].tolist() == answer_ids
        assert torch.equal(batch["input_ids"][row][labels != -100], labels[labels != -100])
