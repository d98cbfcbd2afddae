"""Errors from the `lalm` command are one line with the fix, never a traceback: `lalm.cli.main` (the console
script) prints any LalmError of any command as `error: <message>` and exits 2. A folder of trained
default-model weights given as a model names the `lalm assemble --weights` command that builds the checkpoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lalm.modeling.checkpoint import CheckpointError, check_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _lalm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lalm.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _weights_folder(tmp_path: Path) -> Path:
    """A copy of the committed trained weights (models/default): what `lalm train default-model` exports."""
    return Path(shutil.copytree(REPO / "models" / "default", tmp_path / "weights"))


def test_a_weights_folder_is_not_a_checkpoint_and_says_how_to_build_one(tmp_path: Path) -> None:
    weights = _weights_folder(tmp_path)
    with pytest.raises(CheckpointError) as err:
        check_checkpoint(weights)
    message = str(err.value)
    assert "\n" not in message
    assert (f"`lalm assemble --encoder whisper-tiny.en --llm smollm2-135m-instruct --weights {weights} "
            f"--out {weights}-built`") in message


def test_transcribe_with_a_weights_folder_is_one_line_with_the_fix(tmp_path: Path) -> None:
    weights = _weights_folder(tmp_path)
    audio = tmp_path / "tone.wav"
    t = np.arange(32000) / 16000
    sf.write(audio, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    out = _lalm("transcribe", str(audio), "--model", str(weights), cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "lalm assemble" in out.stderr and f"--weights {weights}" in out.stderr


def test_the_console_script_is_main() -> None:
    """`lalm` runs main(), which turns errors into one line; typer's app alone would print a traceback."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lalm"] == "lalm.cli:main"
