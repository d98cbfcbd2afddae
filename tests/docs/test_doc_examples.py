"""The examples in README.md and docs/*.md run as written, against a real `lalm serve` on 127.0.0.1.

Every ```python block and every ```bash block is an example. Each runs in its own process, in a folder holding
the audio files it names (spoken English, encoded in the format of the name: speech.mp3, meeting.mp4, ...), with
the README's address `http://127.0.0.1:8000` replaced by the test gateway's: `lalm serve --engine hf` on the tiny
random checkpoint, served as `default` (its words are noise; what is shown is that each example runs to its end
without an error). A block that cannot run here (it needs a GPU, a dataset, hours) is preceded by the marker
`<!-- doc-test: skip: REASON -->`, which this test honours: such a block is reported as skipped with its reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from media import FORMATS, encode

from lalm.serve.process import GatewayProcess

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ADDRESS = "http://127.0.0.1:8000"  # where the examples say `make serve` listens
RUN = {"python", "bash"}  # example languages; other fences (text, yaml, none) are not examples
SKIP = re.compile(r"<!-- doc-test: skip: (?P<reason>[^>]*\S) -->")
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
AUDIO_NAME = re.compile(r"\b[\w-]+\.(?:" + "|".join(FORMATS) + r")\b")
TIMEOUT_S = 300


@dataclass(frozen=True)
class Example:
    source: str  # file:line of the fence
    lang: str
    code: str
    skip: str | None  # the marker's reason


def examples() -> list[Example]:
    """Every python and bash block of the docs, with the skip marker on the line right above it, if any."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            if m["lang"] not in RUN:
                continue
            above = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = SKIP.fullmatch(above.strip())
            line = text.count("\n", 0, m.start()) + 1
            found.append(Example(f"{path.relative_to(REPO)}:{line}", m["lang"], m["code"],
                                 marker["reason"] if marker else None))
    return found


EXAMPLES = examples()


def test_every_skip_marker_stands_right_above_an_example() -> None:
    """A marker elsewhere would skip nothing (or, misspelt, let a block run that cannot): each marker in the docs
    is followed by a python or bash block, and each gives its reason."""
    markers = sum(len(re.findall(r"<!-- doc-test", p.read_text())) for p in DOCS)
    skipped = [e for e in EXAMPLES if e.skip]
    assert markers == len(skipped), "a doc-test marker is not right above a ```python or ```bash block"


@pytest.fixture(scope="module")
def gateway(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("docs-gateway") / "serve.log"
    try:
        gw = GatewayProcess.start(["--engine", "hf", "--model", str(tiny_model), "--served-model-name", "default"],
                                  log, cwd=REPO)
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(str(exc))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    """One sentence with a second of silence after it, so a voice-activity detector sees the turn end."""
    from lalm.synth import espeak

    return np.concatenate([espeak("Please send the slides to Maria before the call."), np.zeros(16000, np.float32)])


@pytest.mark.parametrize("example", [pytest.param(e, id=e.source, marks=[pytest.mark.skip(reason=e.skip)] if e.skip
                                                  else []) for e in EXAMPLES])
def test_example_runs(example: Example, gateway: GatewayProcess, spoken: np.ndarray, tmp_path: Path) -> None:
    for name in set(AUDIO_NAME.findall(example.code)):
        (tmp_path / name).write_bytes(encode(spoken, name.rsplit(".", 1)[1]))
    code = example.code.replace(ADDRESS, gateway.url)
    command = [sys.executable, "-c", code] if example.lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.source} did not end within {TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, f"{example.source} failed:\n{done.stdout}\n{done.stderr}\n{gateway.log_tail()}"
    assert done.stdout.strip(), f"{example.source} printed nothing"
