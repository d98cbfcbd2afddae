"""Append-only JSONL files that survive a crash: result files and the judge / align caches.

Every line is written whole, flushed and fsynced before the next item counts as done, so a kill or a power
cut loses at most the line being written; a line cut off that way is dropped when the file is opened again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["JsonlCache", "JsonlWriter", "cache_key", "read_jsonl", "read_results"]


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file. A final line cut off by a crash is skipped; a bad line elsewhere is an
    error (the file was edited or is not ours)."""
    path = Path(path)
    if not path.exists():
        return
    # split on "\n" only: str.splitlines() also breaks at U+2028, U+0085..., which json.dumps leaves unescaped
    # in model output (ensure_ascii=False)
    lines = path.read_text(encoding="utf-8").split("\n")
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1:  # the file does not end with "\n": a write cut short
                return
            raise ValueError(f"{path}:{n + 1}: not a JSON line") from None


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Result records, one per uniq_id: when an item was run again (after a failed request) its newest
    record wins. Records without a uniq_id (other tools' files) are all kept."""
    records: dict[Any, dict[str, Any]] = {}
    for n, record in enumerate(read_jsonl(path)):
        records[record.get("uniq_id", ("line", n))] = record
    return list(records.values())


def _repair_tail(path: Path) -> None:
    """Make a file whose last write was interrupted end in a whole line, so appends start clean: a final line
    cut short is removed; one that lost only its newline (read_jsonl counts it) gets it back."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:
        with path.open("r+b") as fh:
            fh.truncate(start)
    else:
        with path.open("ab") as fh:
            fh.write(b"\n")


class JsonlWriter:
    """Appends one JSON object per line, durable on return."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _repair_tail(self.path)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cache_key(*parts: Any) -> str:
    """A stable key for a request: the sha256 of its parts as JSON."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


class JsonlCache:
    """A key -> value store on a JSONL file (`{"key": ..., "value": ...}` lines; the last line for a key
    wins), so answers already paid for are never asked again."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data = {row["key"]: row["value"] for row in read_jsonl(self.path)}
        self._writer: JsonlWriter | None = None

    def get(self, key: str) -> Any | None:
        return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        if self._writer is None:
            self._writer = JsonlWriter(self.path)
        self._writer.write({"key": key, "value": value})
        self._data[key] = value

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
