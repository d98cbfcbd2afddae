"""Labels a checkpoint folder's config.json carries for whoever serves it, beside the model's own config:
`lalm_random_weights: true` marks weights that were never trained (the tiny test checkpoint), whose answers are
noise. Read with the json module only, so a gateway learns them without importing torch or transformers."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["RANDOM_WEIGHTS", "has_random_weights"]

RANDOM_WEIGHTS = "lalm_random_weights"


def has_random_weights(source: str | Path) -> bool:
    """Whether the checkpoint folder `source` is marked as having random weights; False for anything without a
    readable config.json (a hub id, another layout)."""
    try:
        config = json.loads((Path(source) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get(RANDOM_WEIGHTS) is True
