"""lalm installed from its wheel (not editable, not from this checkout) serves a transcription: the wheel
carries everything `lalm serve` reads at run time, the prompt files included.

The wheel is built from a copy of the tracked sources, installed with `--no-deps --no-index` into a fresh
venv that sees this venv's site-packages for the dependencies (nothing is downloaded), and served from a
folder outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
from media import encode
from serve_support import REPO, start_gateway, stop_gateway


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_installed_wheel_serves_a_transcription(tmp_path: Path, tiny_model: Path, speech: np.ndarray):
    src = tmp_path / "src"
    src.mkdir()
    files = _run("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO).splitlines()
    for name in files:
        if name.startswith(("lalm/", "evals/")) or name in ("pyproject.toml", "README.md"):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", src)
    wheel, = (tmp_path / "dist").glob("lalm-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    site, = venv.glob("lib/python*/site-packages")
    # the dependencies from this venv, after the fresh venv's own packages (a path line in a .pth file adds
    # the folder only: this venv's editable install of lalm, itself a .pth hook there, stays inactive)
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", venv / "bin/python", "install", "--no-deps", "--no-index", "-q",
         wheel)

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    where = _run(venv / "bin/python", "-c", "import lalm.tasks as t; print(t.__file__, t.PROMPTS_DIR)", cwd=run_dir)
    assert where.split()[0].startswith(str(site)) and where.split()[1].startswith(str(site))

    gw = start_gateway(["--engine", "hf", "--model", str(tiny_model), "--served-model-name", "tiny"],
                       tmp_path / "serve.log", lalm=[str(venv / "bin/lalm")], cwd=run_dir)
    try:
        client = gw.client()
        # every task request reads its prompt file: without them in the wheel this is a 400
        out = client.audio.transcriptions.create(model="tiny", file=("s.wav", encode(speech, "wav")),
                                                 temperature=0, response_format="verbose_json")
    finally:
        stop_gateway(gw)
    assert out.text and out.segments and out.duration > 2
