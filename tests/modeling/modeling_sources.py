"""Shared pieces of the tiny source models built by tests/modeling/conftest.py: the text they are probed with,
the Llama settings, and a Llama-2-style tokenizer (no <|endoftext|>, no chat or audio tokens)."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Please transcribe the audio exactly as it is spoken.",
    "Numbers like 1, 2, 3 and 42 appear in speech, as do dates and times.",
    "What emotion does the speaker express?",
]
# A Llama 3 style rope (scaled frequencies) and an unusual epsilon: both must carry over exactly.
LLAMA = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 512, "rms_norm_eps": 3e-6,
         "rope_parameters": {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
         "tie_word_embeddings": True}
PADDED_ROWS = 3


def llama_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with Llama 2's special tokens only (no <|endoftext|>, no chat tokens)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXT * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
