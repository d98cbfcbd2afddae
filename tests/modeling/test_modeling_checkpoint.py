"""Checkpoint folders: make-tiny output is a valid Qwen2-Audio checkpoint in the hub key layout that
transformers loads; validation names each defect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lalm.modeling.checkpoint import (
    CheckpointError,
    check_checkpoint,
    from_hub_key,
    load_checkpoint,
    save_checkpoint,
    to_hub_key,
)


def _keys(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


def test_tiny_is_valid_and_in_hub_layout(tiny_model: Path) -> None:
    assert check_checkpoint(tiny_model) == tiny_model
    keys = _keys(tiny_model)
    assert {k.split(".")[0] for k in keys} == {"audio_tower", "multi_modal_projector", "language_model"}
    assert any(k.startswith("language_model.model.layers.") for k in keys)
    assert "language_model.lm_head.weight" in keys
    assert not any(k.startswith("language_model.model.model.") for k in keys)
    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_audio" and cfg["text_config"]["model_type"] == "qwen2"
    heads = cfg["text_config"]["hidden_size"] // cfg["text_config"]["num_attention_heads"]
    assert heads >= 32, "vLLM's CPU attention needs head size >= 32"


def test_tiny_loads_in_transformers_with_every_weight(tiny_model: Path) -> None:
    model, processor = load_checkpoint(tiny_model)
    on_disk = load_file(str(tiny_model / "model.safetensors"))
    state = model.state_dict()
    assert len(state) == len(on_disk)
    for name, tensor in state.items():
        torch.testing.assert_close(tensor, on_disk[to_hub_key(name)], rtol=0, atol=0)
    tok = processor.tokenizer
    for t in ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>", "<|im_start|>", "<|im_end|>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    assert model.config.audio_token_index == tok.convert_tokens_to_ids("<|AUDIO|>")
    assert processor.feature_extractor.feature_size == model.config.audio_config.num_mel_bins


def test_key_mapping_round_trips() -> None:
    for ours in ("model.audio_tower.conv1.weight", "model.multi_modal_projector.linear.bias",
                 "model.language_model.layers.0.self_attn.q_proj.weight", "lm_head.weight"):
        assert from_hub_key(to_hub_key(ours)) == ours
    with pytest.raises(KeyError):
        to_hub_key("vision_tower.x")


def test_save_load_round_trip(tiny_model: Path, tmp_path: Path) -> None:
    model, processor = load_checkpoint(tiny_model)
    out = save_checkpoint(model, processor, tmp_path / "copy")
    check_checkpoint(out)
    a, b = load_file(str(tiny_model / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data))


def _problems(folder: Path) -> str:
    with pytest.raises(CheckpointError) as err:
        check_checkpoint(folder)
    return "\n".join(err.value.problems)


def test_validation_names_wrong_model_type(tiny_model: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_model, tmp_path / "m")
    _edit_json(bad / "config.json", model_type="llava")
    assert "model_type 'llava'" in _problems(bad)


def test_validation_names_non_qwen2_llm(tiny_model: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_model, tmp_path / "m")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["model_type"] = "llama"
    (bad / "config.json").write_text(json.dumps(cfg))
    assert "lalm assemble" in _problems(bad)


def test_validation_names_missing_processor_files(tiny_model: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_model, tmp_path / "m")
    (bad / "preprocessor_config.json").unlink()
    (bad / "chat_template.jinja").unlink()
    problems = _problems(bad)
    assert "preprocessor_config.json is missing" in problems and "chat template" in problems


def test_validation_names_missing_audio_token(tiny_model: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_model, tmp_path / "m")
    tok = bad / "tokenizer.json"
    tok.write_text(tok.read_text().replace("<|AUDIO|>", "<|SOUND|>"))
    assert "no <|AUDIO|> token" in _problems(bad)


def test_validation_names_transformers5_key_layout(tiny_model: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_model, tmp_path / "m")
    weights = load_file(str(bad / "model.safetensors"))
    renamed = {k.replace("language_model.model.", "language_model.model.model.", 1): v for k, v in weights.items()}
    save_file(renamed, str(bad / "model.safetensors"))
    assert "language_model.model.model" in _problems(bad)


def test_validation_names_mel_bin_mismatch(tiny_model: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_model, tmp_path / "m")
    _edit_json(bad / "preprocessor_config.json", feature_size=128)
    assert "128 mel bins" in _problems(bad)


def test_validation_of_missing_folder(tmp_path: Path) -> None:
    assert "does not exist" in _problems(tmp_path / "nowhere")
