"""CTranslate2 -> transformers Whisper conversion on the real tiny.en weights: transformers loads the result with
no missing or unexpected key, its greedy text equals faster-whisper float32's on the real recordings (same
features), the tokenizer knows the timestamp tokens, and CTranslate2's own converter turns the result back into
the very same model.bin. Also the `lalm convert-whisper` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lalm.default_model.recordings import real_recordings
from lalm.modeling.ctranslate2 import read_ct2
from lalm.modeling.whisper import WhisperFolderError, read_whisper_folder, whisper_folder
from lalm.modeling.whisper_convert import convert_ct2_to_hf, convert_hf_to_ct2
from lalm.vllm_plugin import ENGLISH_ONLY_ARCHITECTURE


@pytest.fixture(scope="module")
def tiny_en_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_ct2_to_hf(whisper_folder("tiny.en"), tmp_path_factory.mktemp("hf") / "tiny.en", log=print)


def test_transformers_loads_every_weight(tiny_en_hf: Path) -> None:
    from transformers import WhisperForConditionalGeneration

    model, loading = WhisperForConditionalGeneration.from_pretrained(tiny_en_hf, output_loading_info=True)
    assert not any(loading[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()  # tied
    config = json.loads((tiny_en_hf / "config.json").read_text())
    assert config["architectures"] == [ENGLISH_ONLY_ARCHITECTURE] and config["vocab_size"] == 51864
    info = read_whisper_folder(tiny_en_hf)
    assert (info.layout, info.multilingual, info.encoder_layers, info.d_model) == ("hf", False, 4, 384)


def test_tokenizer_has_the_special_and_timestamp_tokens(tiny_en_hf: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_en_hf)
    assert len(tok) == 51864
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|startofprev|>",
                                     "<|notimestamps|>", "<|0.00|>", "<|30.00|>"])
    assert ids == [50256, 50257, 50360, 50362, 50363, 51863]
    assert tok("<|startofprev|> Hello<|startoftranscript|>", add_special_tokens=False).input_ids == \
        [50360, 18435, 50257]
    assert (tiny_en_hf / "vocab.json").is_file() and (tiny_en_hf / "merges.txt").is_file()


def test_greedy_text_equals_faster_whisper_float32(tiny_en_hf: Path) -> None:
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    recordings = [r for r in real_recordings() if not r.name.startswith("alsa")]
    assert len(recordings) == 10
    runtime = WhisperModel(str(whisper_folder("tiny.en")), device="cpu", compute_type="float32", cpu_threads=2)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_en_hf, dtype=torch.float32).eval()
    tok = WhisperProcessor.from_pretrained(tiny_en_hf).tokenizer
    for rec in recordings:
        segments, _ = runtime.transcribe(rec.samples, beam_size=1, temperature=0.0, without_timestamps=True,
                                         condition_on_previous_text=False)
        expected = "".join(s.text for s in segments).strip()
        # faster-whisper's own log-mel features: transformers' feature extractor rounds differently, which
        # flips a close call on 2 of these 10 clips ("for" / "4.")
        features = torch.from_numpy(pad_or_trim(runtime.feature_extractor(rec.samples)))[None]
        with torch.no_grad():
            out = model.generate(features, max_new_tokens=200)
        assert tok.decode(out[0], skip_special_tokens=True).strip() == expected, rec.name
        assert expected  # every clip has speech


def test_round_trip_through_ctranslate2s_converter(tiny_en_hf: Path, tmp_path: Path) -> None:
    back = convert_hf_to_ct2(tiny_en_hf, tmp_path / "ct2", quantization="float16")
    original, again = read_ct2(whisper_folder("tiny.en")), read_ct2(back)
    # ctranslate2 4.8 writes two more decoder flags (alibi settings, unused by Whisper) than the packaged model.bin
    assert original.variables.keys() <= again.variables.keys()
    assert all(again.variables[k].dim() == 0 for k in again.variables.keys() - original.variables.keys())
    for name, tensor in original.variables.items():
        assert torch.equal(again.variables[name], tensor), name
    before, after = (json.loads((f / "config.json").read_text()) for f in (whisper_folder("tiny.en"), back))
    for key in ("alignment_heads", "suppress_ids", "suppress_ids_begin"):
        assert after[key] == before[key], key
    vocabulary = (whisper_folder("tiny.en") / "vocabulary.txt").read_text().splitlines()
    assert json.loads((back / "vocabulary.json").read_text()) == vocabulary  # the same tokens, as JSON now
    assert (back / "preprocessor_config.json").is_file() and (back / "tokenizer.json").is_file()


def test_wrong_sources_and_targets_are_refused(tiny_en_hf: Path, tmp_path: Path) -> None:
    with pytest.raises(WhisperFolderError, match="already a transformers"):
        convert_ct2_to_hf(tiny_en_hf, tmp_path / "x")
    with pytest.raises(WhisperFolderError, match="exists"):
        convert_ct2_to_hf(whisper_folder("tiny.en"), tiny_en_hf)
    with pytest.raises(WhisperFolderError, match="already a CTranslate2"):
        convert_hf_to_ct2(whisper_folder("tiny.en"), tmp_path / "y")


def test_cli_converts_a_shipped_model_and_reports_errors(tmp_path: Path) -> None:
    from lalm.cli import app

    result = CliRunner().invoke(app, ["convert-whisper", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "is not a folder" in result.output
    result = CliRunner().invoke(app, ["convert-whisper", "tiny.en", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert read_whisper_folder(tmp_path / "out").layout == "hf"
