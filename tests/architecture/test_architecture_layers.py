"""The import rules of docs/architecture.md: a layer of lalm imports no layer above it (parsed from the
sources, nothing imported). Modules not in the table are not ranked and not checked."""

from __future__ import annotations

import ast
from pathlib import Path

LALM = Path(__file__).resolve().parents[2] / "lalm"
# bottom-up, as in docs/architecture.md; equal ranks may not import each other
RANK = {"errors": 0, "config": 0, "audio": 1, "tasks": 1, "metrics": 2, "synth": 2, "modeling": 2, "vad": 2,
        "screen_text": 2, "synth_video": 3,
        "align": 2, "engines": 3, "subtitles": 3, "timestamps": 4, "longform": 5, "serve": 6, "train_dpo": 6,
        "default_model": 7, "cli": 8}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "lalm" and len(parts) > 1 else None


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_no_layer_imports_one_above_it_or_beside_it():
    bad = []
    for path in LALM.rglob("*.py"):
        source = path.relative_to(LALM).with_suffix("").parts[0]
        if source not in RANK:
            continue
        for module in _imports(path):
            target = _layer(module)
            if target in RANK and target != source and RANK[target] >= RANK[source]:
                bad.append(f"{path.relative_to(LALM.parent)} imports {module}")
    assert not bad, "\n".join(sorted(bad))
