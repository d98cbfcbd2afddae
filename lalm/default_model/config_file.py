"""The YAML configs of the default model's recipes (`lalm train default-model`, `lalm train dpo-default-lalm`):
a mapping of a dataclass's fields, sections given as mappings of their own dataclasses, overrides on top."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_config_fields(cls: type[T], path: str | Path | None, sections: dict[str, type],
                       overrides: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` the YAML file `path` gives (None: none), with `overrides` on top; each key of
    `sections` made into its dataclass from its mapping. Keys not given keep their defaults. Raises ValueError
    for a file that is not a mapping, an unknown key (of `cls` or of a section), OSError when the file cannot
    be read."""
    import yaml

    raw = (yaml.safe_load(Path(path).read_text()) if path else None) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of recipe keys")
    raw = {**raw, **overrides}
    known = {f.name for f in dataclasses.fields(cls)}
    if unknown := set(raw) - known:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        return {k: sections[k](**(v or {})) if k in sections else v for k, v in raw.items()}
    except TypeError as exc:  # an unknown key of a section
        raise ValueError(str(exc)) from None
