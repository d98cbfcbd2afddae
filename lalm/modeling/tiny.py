"""A tiny random Qwen2-Audio checkpoint, built in seconds with no download: the model behind tests and, until
a trained model is embedded, `make serve`. It has the real structure — a Whisper-style encoder with 80 mel
bins, the projector, a Qwen2 LLM — and a byte-level BPE tokenizer trained here with Qwen2-Audio's special
tokens and chat template. Its heads are 32 wide, the smallest size vLLM's CPU attention backend runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from lalm.modeling.checkpoint import AUDIO_TOKEN, CHAT_TEMPLATE, SPECIAL_TOKENS, new_config, save_checkpoint
from lalm.modeling.labels import RANDOM_WEIGHTS
from lalm.tasks import PROMPTS_DIR

__all__ = ["make_tiny"]

_SENTENCES = """\
The quick brown fox jumps over the lazy dog.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
Please transcribe the audio exactly as it is spoken, without adding words.
Summarize what the speaker says in two sentences.
What emotion does the speaker express: happy, sad, angry, neutral or surprised?
Describe the sounds you hear, including music, speech and background noise.
The meeting starts at nine thirty on Monday, and the report is due on Friday.
I would like to book a table for four people tomorrow evening at seven.
The weather today is cloudy with a chance of rain in the afternoon.
Numbers like 1, 2, 3, 42 and 2026 appear in speech, as do dates and times.
Can you hear me now? Yes, I can hear you clearly.
There is no speech in this audio.
"""
_WORDS = (
    "the a an and or but of to in on at for with from by is are was were be been it this that these those "
    "audio speech sound music noise voice speaker language transcribe translate summarize emotion question "
    "answer describe what who where when why how yes no hello world one two three four five six seven eight "
    "nine ten zero happy sad angry neutral calm fearful surprised english french german spanish chinese"
)


def _corpus() -> list[str]:
    """Local text to train the tokenizer on: a few sentences, a small English word list and the prompts."""
    lines = _SENTENCES.splitlines()
    prompts = [p.read_text() for p in sorted(PROMPTS_DIR.glob("*.txt"))]
    return [*lines, _WORDS, *prompts] * 4


def build_tokenizer(vocab_size: int = 1024, corpus: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text round-trips) with Qwen2-Audio's special tokens, its merges learnt
    from `corpus` (default: a few sentences, a small English word list and the prompts)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus() if corpus is None else corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"audio_token": AUDIO_TOKEN, "audio_bos_token": "<|audio_bos|>",
                              "audio_eos_token": "<|audio_eos|>"},
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


# Shapes: "tiny" for tests (~2 MB); "small" has the real default model's shapes (Whisper tiny.en encoder,
# SmolLM2-135M LLM) with random weights and the small tokenizer, for benchmarks that need realistic cost.
SHAPES = {
    "tiny": (
        {"encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 256, "d_model": 64},
        {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2},
    ),
    "small": (
        {"encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536, "d_model": 384},
        {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
         "num_key_value_heads": 3},
    ),
}


def make_tiny(out_dir: str | Path, *, seed: int = 0, shape: str = "tiny") -> Path:
    """Write a random Qwen2-Audio checkpoint of `shape` (see SHAPES) to `out_dir` and return the folder; its
    config.json is marked `lalm_random_weights: true` (lalm.modeling.labels)."""
    audio_shape, text_shape = SHAPES[shape]
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    feature_extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    processor = Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer,
                                    chat_template=CHAT_TEMPLATE)
    config = new_config(
        audio={"num_mel_bins": 80, "max_source_positions": 1500, **audio_shape},
        text={"vocab_size": len(tokenizer), **text_shape,
              "max_position_embeddings": 4096, "rope_theta": 10000.0, "tie_word_embeddings": False,
              # Larger than the usual 0.02 so greedy choices are clear-cut, not near-ties that float
              # rounding can flip between engines.
              "initializer_range": 0.2},
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
    )
    # in config.json, so whoever serves it can say its answers are noise (lalm.modeling.labels)
    setattr(config, RANDOM_WEIGHTS, True)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    return save_checkpoint(model, processor, out_dir, dtype=torch.float32)
