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
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                return
            raise ValueError(f"{path}:{n + 1}: not a JSON line") from None


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Result records, one per uniq_id: when an item was run again (after a failed request) its newest
    record wins. Records without a uniq_id (other tools' files) are all kept."""
    records: dict[Any, dict[str, Any]] = {}
    for n, record in enumerate(read_jsonl(path)):
        records[record.get("uniq_id", ("line", n))] = record
    return list(records.values())


def _drop_partial_tail(path: Path) -> None:
    """Cut a final line that has no newline (a write interrupted by a crash) so appends start clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with path.open("r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)


class JsonlWriter:
    """Appends one JSON object per line, durable on return."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_tail(self.path)
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
