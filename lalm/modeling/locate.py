"""Where a model name points, decided before any loader sees it: a local folder, or a Hugging Face hub id.

transformers and vLLM take any name that is not an existing folder for a hub id and ask the hub for it, so a
mistyped or not-yet-built folder (`models/tiny`) would cost DNS lookups and retries before an `OSError`. Here a
name is a hub id only when it looks like one (`org/name`: exactly one slash, no leading `./`, `/` or `~`, and
`org` is not a local folder) and the caller allows the hub; offline mode (`HF_HUB_OFFLINE` /
`TRANSFORMERS_OFFLINE`) then limits it to what the local hub cache holds. Everything else is a local path,
and a missing one is a one-line error that says how to make it. No network is used here.
"""

from __future__ import annotations

import os
from pathlib import Path

from lalm.errors import LalmError

__all__ = ["ModelNotFoundError", "hub_offline", "is_hub_id", "locate_model"]

# huggingface_hub's spelling of "true" for its environment switches
_TRUE = {"1", "ON", "YES", "TRUE"}


class ModelNotFoundError(LalmError):
    """A model name that is neither an existing folder nor a hub id that may be fetched."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=404, code="model_not_found", param="model")


def hub_offline() -> bool:
    """Whether the environment forbids the Hugging Face hub (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`)."""
    return any(os.environ.get(var, "").upper() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_hub_id(name: str) -> bool:
    """Whether `name` has the shape of a hub repository id, `org/name`, and is not a local path: exactly one
    slash, no leading `.`, `/` or `~`, no backslash, and `org` is not an existing local folder."""
    org, slash, repo = name.partition("/")
    if not slash or not org or not repo or "/" in repo or "\\" in name:
        return False
    return org[0] not in "./~" and not Path(org).is_dir()


def locate_model(name: str, *, hub: bool = True) -> str:
    """`name` unchanged when it is an existing file or folder, or a hub id that may be used (`hub` allows it,
    and offline mode only for a repository in the local hub cache). Raises `ModelNotFoundError` (one line: what
    is missing and how to make it) otherwise."""
    if Path(name).expanduser().exists():
        return name
    if hub and is_hub_id(name):
        if not hub_offline():
            return name
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return name
        raise ModelNotFoundError(
            f"no model folder at {name}, and the hub is off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) with no copy "
            "of it in the local hub cache; pass --model with a local checkpoint folder"
        )
    raise ModelNotFoundError(f"no model folder at {name}; build it with `lalm make-tiny {name}` or pass --model")
