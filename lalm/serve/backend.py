"""The engine behind the gateway, built from the settings:

- `vllm` with `upstreams`: a client of running vLLM OpenAI servers, balanced round-robin;
- `vllm` without: a vLLM server child process on a free loopback port, supervised (restarted when it
  dies) and stopped with the gateway;
- `hf`: transformers in-process.

`auto` picks vllm where it is installed, else hf.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from lalm.config import Settings
from lalm.engines.base import Engine

if TYPE_CHECKING:
    from lalm.engines.vllm_process import VLLMProcess

__all__ = ["build_engine", "engine_kind", "served_model_name", "vllm_process"]


def engine_kind(settings: Settings) -> str:
    """`vllm` or `hf`, resolving `auto`."""
    if settings.engine != "auto":
        return settings.engine
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def served_model_name(settings: Settings) -> str:
    """The model name clients send and /v1/models lists."""
    return settings.served_model_name or settings.model


def build_engine(settings: Settings) -> Engine:
    """The engine the settings describe (not started: the app's lifespan starts and closes it)."""
    name = served_model_name(settings)
    if engine_kind(settings) == "hf":
        import torch

        from lalm.engines.hf import HFEngine

        gpu = torch.cuda.is_available()
        dtype = {"auto": torch.bfloat16 if gpu else torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}[settings.dtype]
        return HFEngine(settings.model, model_name=name, dtype=dtype, device="cuda" if gpu else "cpu",
                        max_batch_size=settings.hf_max_batch_size, batch_wait_ms=settings.hf_batch_wait_ms,
                        default_max_tokens=settings.default_max_tokens, max_model_len=settings.max_model_len)
    from lalm.engines.vllm import VLLMEngine

    if settings.upstreams:
        return VLLMEngine(name, upstreams=settings.upstreams, timeout=settings.request_timeout_s)
    return VLLMEngine(name, process=vllm_process(settings), timeout=settings.request_timeout_s,
                      startup_timeout=settings.vllm_startup_timeout_s)


def vllm_process(settings: Settings) -> VLLMProcess:
    """The vLLM server the settings describe (not started), for a gateway without upstreams."""
    from lalm.engines.vllm_process import VLLMProcess

    return VLLMProcess(settings.model, served_model_name=served_model_name(settings), dtype=settings.dtype,
                       max_model_len=settings.max_model_len, extra_args=settings.vllm_args,
                       log_path=settings.vllm_log)
