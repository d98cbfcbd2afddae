"""`default-lalm` is one flag away: the first `lalm serve --model default-lalm` builds its checkpoint into the model
cache from the committed trained weights over the pinned base packages (lalm.engines.catalog.default_lalm_folder),
and later uses find it there."""

from __future__ import annotations

from pathlib import Path

import pytest

from lalm.engines.catalog import default_lalm_folder
from lalm.modeling.checkpoint import check_checkpoint
from lalm.modeling.trained_weights import read_weights

REPO = Path(__file__).resolve().parents[2]


def test_default_lalm_is_built_once_into_the_model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LALM_CACHE", str(tmp_path))
    built = default_lalm_folder()
    assert built == tmp_path / "models" / "default-lalm"
    check_checkpoint(built)  # a Qwen2-Audio checkpoint the engines load
    assert read_weights(REPO / "models" / "default")  # built from the committed, checked weights
    stamp = (built / "config.json").stat().st_mtime_ns
    assert default_lalm_folder() == built and (built / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in built.parent.iterdir() if p.name.startswith("lalm-built-")]  # no half-built folder left
