"""lalm's vLLM plugin: model classes that fix how vLLM runs some checkpoints lalm makes, without editing vLLM.

vLLM calls `register` in each of its processes (API server, engine core, workers) through the entry point
`lalm = "lalm.vllm_plugin:register"` in group `vllm.general_plugins` (pyproject.toml). Classes are registered
by their import path, so nothing heavy is imported until a checkpoint names one of these architectures (a
Whisper folder written by `lalm convert-whisper` does). This module imports no vLLM at import time: lalm's
modeling code reads the architecture names from here.
"""

from __future__ import annotations

__all__ = ["ENGLISH_ONLY_ARCHITECTURE", "MULTILINGUAL_ARCHITECTURE", "register"]

# Two names because vLLM asks the class, not the checkpoint, which languages it takes (validate_language).
MULTILINGUAL_ARCHITECTURE = "LalmWhisperForConditionalGeneration"
ENGLISH_ONLY_ARCHITECTURE = "LalmWhisperEnForConditionalGeneration"


def register() -> None:
    """Register lalm's model classes with vLLM's model registry (idempotent)."""
    from vllm import ModelRegistry

    for name in (MULTILINGUAL_ARCHITECTURE, ENGLISH_ONLY_ARCHITECTURE):
        if name not in ModelRegistry.get_supported_archs():
            ModelRegistry.register_model(name, f"lalm.vllm_plugin.whisper:{name}")
