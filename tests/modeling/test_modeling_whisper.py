"""The real Whisper folders lalm ships: base joined from its two package halves into the model cache (once,
checked by sha256 on every use, rebuilt when its bytes are not the pinned ones), read by faster-whisper; and
`read_whisper_folder` on both layouts and on paths that are neither."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lalm.errors import LalmError
from lalm.modeling.assets import AssetError
from lalm.modeling.whisper import WhisperFolderError, read_whisper_folder, whisper_folder

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LALM_CACHE", str(cache))
        folder = whisper_folder("base")
    assert folder == cache / "models" / "whisper-base-ct2"
    return folder


def test_base_is_built_once_and_faster_whisper_transcribes_with_it(base: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    from faster_whisper import WhisperModel

    assert (base / "model.bin").stat().st_size == 145_217_532
    assert json.loads((base / "preprocessor_config.json").read_text())["feature_size"] == 80
    monkeypatch.setenv("LALM_CACHE", str(base.parent.parent))
    built = (base / "model.bin").stat().st_mtime_ns
    assert whisper_folder("base") == base and (base / "model.bin").stat().st_mtime_ns == built
    model = WhisperModel(str(base), device="cpu", compute_type="int8", cpu_threads=2)
    segments, info = model.transcribe(str(LIBRIVOX), beam_size=1)
    assert info.language == "en"  # detected: base is multilingual
    assert " ".join(s.text for s in segments).strip() == "He was not an ill-disposed young man."


def test_other_bytes_in_the_cache_are_rebuilt(base: Path, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(base, cache / "models" / base.name)
    (cache / "models" / base.name / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("LALM_CACHE", str(cache))
    rebuilt = whisper_folder("base")
    assert (rebuilt / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    assert sorted(p.name for p in (cache / "models").iterdir()) == [base.name]  # no temporary folder left


def test_a_missing_half_is_an_asset_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dataclasses

    from lalm.modeling import assets

    monkeypatch.setenv("LALM_CACHE", str(tmp_path))
    monkeypatch.setitem(assets.ASSETS, "whisper-base-part2",
                        dataclasses.replace(assets.ASSETS["whisper-base-part2"], distribution="no-such-package"))
    with pytest.raises(AssetError, match="not installed") as err:
        whisper_folder("base")
    assert isinstance(err.value, LalmError)
    assert list((tmp_path / "models").iterdir()) == []


def test_info_of_the_real_folders(base: Path) -> None:
    info = read_whisper_folder(base)
    assert (info.layout, info.multilingual, info.vocab_size, info.n_mels) == ("ct2", True, 51865, 80)
    assert (info.encoder_layers, info.decoder_layers, info.d_model, info.attention_heads) == (6, 6, 512, 8)
    assert len(info.languages) == 99 and info.languages[:3] == ("en", "zh", "de") and "haw" in info.languages
    tiny = read_whisper_folder(whisper_folder("tiny.en"))
    assert (tiny.layout, tiny.multilingual, tiny.vocab_size, tiny.languages) == ("ct2", False, 51864, ("en",))
    assert (tiny.encoder_layers, tiny.d_model, tiny.attention_heads) == (4, 384, 6)


def test_info_of_a_transformers_folder(tiny_whisper: Path) -> None:
    info = read_whisper_folder(tiny_whisper)
    assert (info.layout, info.encoder_layers, info.decoder_layers, info.d_model, info.n_mels) == ("hf", 2, 1, 64, 80)
    assert not info.multilingual and info.languages == ("en",)


def test_what_is_not_a_whisper_folder_is_refused(tmp_path: Path, tiny_llama: Path) -> None:
    with pytest.raises(WhisperFolderError, match="is not a folder"):
        read_whisper_folder(tmp_path / "openai/whisper-base")  # a hub name is a local path here
    with pytest.raises(WhisperFolderError, match="neither"):
        read_whisper_folder(tiny_llama)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WhisperFolderError, match="not readable JSON"):
        read_whisper_folder(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00")
    with pytest.raises(WhisperFolderError, match="truncated") as err:
        read_whisper_folder(tmp_path)
    assert err.value.status == 400
    with pytest.raises(WhisperFolderError, match="unknown Whisper model"):
        whisper_folder("large-v3")  # type: ignore[arg-type]
