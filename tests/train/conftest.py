"""Fixtures of the training tests: a few synthetic clips (speech and non-speech) and their preference pairs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of 6 short clips: 4 espeak sentences and 2 non-speech clips (empty reference)."""
    from lalm.train_dpo.data import SynthConfig, read_manifest, synth_manifest

    path = synth_manifest(tmp_path_factory.mktemp("clips"), SynthConfig(
        n=6, seed=11, non_speech_share=0.34, festival_share=0.0, tail_share=0.0, max_seconds=5.0,
    ), progress=False)
    rows = read_manifest(path)
    assert any(r.non_speech for r in rows) and any(not r.non_speech for r in rows)
    return path


@pytest.fixture(scope="session")
def pairs(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic preference pairs for `clips` (two rejects per clip)."""
    from lalm.train_dpo.pairs import PairsConfig, make_pairs

    path, _ = make_pairs(clips, tmp_path_factory.mktemp("pairs") / "pairs.jsonl", cfg=PairsConfig(synthetic=2))
    return path
