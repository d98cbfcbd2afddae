"""The engine of one served model, built from its spec (lalm.config.ModelSpec, options filled in by
`Settings.model_specs`):

- `vllm` with `upstreams`: a client of running vLLM OpenAI servers, balanced round-robin;
- `vllm` without: a vLLM server child process on a free loopback port, supervised (restarted when it
  dies) and stopped with the gateway;
- `hf`: transformers in-process;
- `ctranslate2`: faster-whisper in-process (lalm.engines.ctranslate2: a built-in Whisper name or a
  faster-whisper folder); `composed`: the built-in `default`, Whisper base hears and SmolLM2 answers
  (lalm.engines.composed; lalm.engines.catalog builds both).

`auto` picks vllm where it is installed, else hf. A checkpoint marked as having random weights
(lalm.modeling.labels) says so in its engine's capabilities.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from lalm.config import ModelSpec, Settings
from lalm.engines.base import Engine
from lalm.engines.catalog import default_lalm_folder, is_whisper_source
from lalm.modeling.labels import has_random_weights

if TYPE_CHECKING:
    from lalm.engines.vllm_process import VLLMProcess

__all__ = ["build_engine", "engine_key", "engine_kind", "local_engine", "vllm_process"]


def engine_kind(spec: ModelSpec) -> str:
    """The spec's engine, resolving `auto` (and None) by its source: `composed` for the built-in `default`,
    `ctranslate2` for a Whisper model (a built-in Whisper name or a Whisper folder; `vllm` when asked for), else
    `vllm` where vLLM is installed and `hf` where not."""
    if spec.source == "default":
        return "composed"  # whatever engine the other models run on: it is in-process CTranslate2 + transformers
    if is_whisper_source(spec.source):
        return "vllm" if spec.engine == "vllm" else "ctranslate2"  # transformers runs no Whisper model
    if spec.engine not in (None, "auto"):
        return spec.engine
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def engine_key(spec: ModelSpec) -> tuple:
    """What decides the engine of a spec: everything but its name (a local source by its resolved path). Specs
    with equal keys share one engine: a model never loads twice."""
    path = Path(spec.source).expanduser()
    source = str(path.resolve()) if path.exists() else spec.source
    return (engine_kind(spec), source, spec.dtype, spec.max_model_len, tuple(spec.vllm_args or ()),
            tuple(spec.upstreams or ()))


def build_engine(spec: ModelSpec, settings: Settings) -> Engine:
    """The engine that serves `spec` (not started: the gateway's model registry starts and closes it)."""
    kind = engine_kind(spec)
    if kind in ("ctranslate2", "composed"):
        return _whisper_engine(kind, spec, settings)
    if is_whisper_source(spec.source):
        return _vllm_whisper_engine(spec, settings)
    if spec.source == "default-lalm":
        # the trained LALM, built from its committed weights into the model cache on first use
        engine = _lalm_engine(kind, spec.model_copy(update={"source": str(default_lalm_folder())}), settings)
        engine.capabilities = dataclasses.replace(engine.capabilities, experimental=True)
        return engine
    engine = _lalm_engine(kind, spec, settings)
    if has_random_weights(spec.source):
        engine.capabilities = dataclasses.replace(engine.capabilities, random_weights=True)
    return engine


def local_engine(source: str, settings: Settings, name: str | None = None) -> Engine:
    """An in-process engine for `source` (a built-in name or a local folder), served as `name` (default: the
    source): what `lalm transcribe` and the benchmarks run, with no server. `build_engine` with the transformers
    engine for LALMs; Whisper and composed models run in-process anyway."""
    return build_engine(ModelSpec(name=name or source, source=source, engine="hf"), settings)


def _whisper_engine(kind: str, spec: ModelSpec, settings: Settings) -> Engine:
    """The one dispatch point of the engines with a Whisper model that hears: `ctranslate2` (faster-whisper
    in-process) and `composed` (Whisper + a text LLM). Imported here, when asked for, so a gateway without them
    needs neither faster-whisper nor their models."""
    from lalm.engines.catalog import composed_default, whisper_engine

    if kind == "ctranslate2":
        return whisper_engine(spec.source, spec.name, beam_size=settings.whisper_beam_size)
    return composed_default(spec.name, settings)


def _vllm_whisper_engine(spec: ModelSpec, settings: Settings) -> Engine:
    """A Whisper model on vLLM servers (`upstreams`, or one started here on its transformers folder)."""
    from lalm.engines.catalog import vllm_whisper_folder
    from lalm.engines.vllm_whisper import VLLMWhisperEngine, whisper_process
    from lalm.modeling.whisper import read_whisper_folder

    folder = vllm_whisper_folder(spec.source)
    info = read_whisper_folder(folder)
    if spec.upstreams:
        return VLLMWhisperEngine(spec.name, info=info, upstreams=spec.upstreams, timeout=settings.request_timeout_s)
    process = whisper_process(folder, served_model_name=spec.name, log_path=settings.vllm_log,
                              extra_args=spec.vllm_args or ())
    return VLLMWhisperEngine(spec.name, info=info, process=process, timeout=settings.request_timeout_s,
                             startup_timeout=settings.vllm_startup_timeout_s)


def _lalm_engine(kind: str, spec: ModelSpec, settings: Settings) -> Engine:
    """An engine of an audio-language model (a Qwen2-Audio checkpoint): vLLM or transformers."""
    if kind == "hf":
        import torch

        from lalm.engines.hf import HFEngine

        gpu = torch.cuda.is_available()
        dtype = {"auto": torch.bfloat16 if gpu else torch.float32, "float32": torch.float32,
                 "bfloat16": torch.bfloat16, "float16": torch.float16}[spec.dtype or settings.dtype]
        return HFEngine(spec.source, model_name=spec.name, dtype=dtype, device="cuda" if gpu else "cpu",
                        max_batch_size=settings.hf_max_batch_size, batch_wait_ms=settings.hf_batch_wait_ms,
                        default_max_tokens=settings.default_max_tokens, max_model_len=spec.max_model_len)
    from lalm.engines.vllm import VLLMEngine

    if spec.upstreams:
        return VLLMEngine(spec.name, upstreams=spec.upstreams, timeout=settings.request_timeout_s)
    return VLLMEngine(spec.name, process=vllm_process(spec, settings), timeout=settings.request_timeout_s,
                      startup_timeout=settings.vllm_startup_timeout_s)


def vllm_process(spec: ModelSpec, settings: Settings) -> VLLMProcess:
    """The vLLM server that serves `spec` (not started), for a model without upstreams."""
    from lalm.engines.vllm_process import VLLMProcess

    return VLLMProcess(spec.source, served_model_name=spec.name, dtype=spec.dtype or settings.dtype,
                       max_model_len=spec.max_model_len, extra_args=spec.vllm_args or (),
                       log_path=settings.vllm_log)
