"""The default-model recipe on a lent GPU machine: the device-side entry point each `run` call starts.

```bash
python3 -m lalm.default_model.gpu_run .gpu/call-00   # one call per chunk, carry=[".gpu/call-00"]
...
python3 -m lalm.default_model.gpu_run .gpu/call-04   # the last chunk: unpack, train, results to $OUT
```

What travels is capped at 64 MiB a call (the git tree included), so `lalm train default-model --pack-gpu .gpu`
(gpu_pack.py) splits the bundle into chunks, one folder per call (`call-KK/chunk` and `call-KK/manifest.json`).
Each call appends its chunk to `--tmp` (/tmp survives between calls while the machine stays warm); the call
that completes the set joins and checks the bundle (sha256), unpacks it, installs the carried wheels into
`--tmp`/site and runs gpu_train.py in a child process with them on its path. A chunk from another bundle never
mixes in: chunk files are named by the bundle's sha256.

This module uses the standard library alone, so receiving a chunk costs no torch import.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from lalm.errors import LalmError

__all__ = ["CHUNK_NAME", "MANIFEST", "GPUBundleError", "join_chunks", "main", "receive", "split_file"]

MANIFEST = "manifest.json"
CHUNK_NAME = "chunk"


class GPUBundleError(LalmError):
    """A GPU bundle or result that is incomplete, from another pack, or would take training backwards."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def split_file(path: str | Path, folder: str | Path, chunk_bytes: int, extra: dict | None = None) -> dict:
    """Cut the file `path` into pieces of at most `chunk_bytes` bytes, written as `folder/call-KK/chunk`, each
    folder with a copy of the manifest (the bundle's size and sha256, every chunk's sha256, the folder's own
    index, and `extra`). Returns the manifest (without an index). Raises GPUBundleError for chunk_bytes < 1."""
    if chunk_bytes < 1:
        raise GPUBundleError("chunk_bytes must be positive")
    path, folder = Path(path), Path(folder)
    size = path.stat().st_size
    count = max(1, -(-size // chunk_bytes))
    hashes = []
    with path.open("rb") as src:
        for k in range(count):
            call = folder / f"call-{k:02d}"
            call.mkdir(parents=True, exist_ok=True)
            with (call / CHUNK_NAME).open("wb") as dst:
                remaining = chunk_bytes
                while remaining and (block := src.read(min(remaining, 1 << 20))):
                    dst.write(block)
                    remaining -= len(block)
            hashes.append(_sha256(call / CHUNK_NAME))
    manifest = {"bundle_bytes": size, "bundle_sha256": _sha256(path), "chunks": count, "chunk_bytes": chunk_bytes,
                "chunk_sha256": hashes, **(extra or {})}
    for k in range(count):
        (folder / f"call-{k:02d}" / MANIFEST).write_text(json.dumps({**manifest, "index": k}, indent=1) + "\n")
    return manifest


def join_chunks(parts: list[Path], out: Path, sha256: str) -> Path:
    """Concatenate `parts` in order into `out` and check the result's sha256. Raises GPUBundleError on a
    mismatch."""
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    if _sha256(out) != sha256:
        out.unlink()
        raise GPUBundleError(f"the joined bundle's sha256 is not {sha256}: a chunk is from another pack")
    return out


def receive(call: str | Path, tmp: str | Path) -> Path | None:
    """Keep the chunk in the call folder `call` under `tmp`; once every chunk of its bundle is there, join,
    check and unpack the bundle into `tmp/bundle-<sha>` and return that folder (None while chunks are missing;
    the message names them). Raises GPUBundleError for a chunk whose bytes are not the manifest's."""
    call, tmp = Path(call), Path(tmp)
    manifest = json.loads((call / MANIFEST).read_text())
    key, k, count = manifest["bundle_sha256"][:16], manifest["index"], manifest["chunks"]
    chunks = tmp / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    bundle = tmp / f"bundle-{key}"
    if (bundle / MANIFEST).is_file():  # a rerun on the warm machine (its manifest alone will do)
        print(f"bundle {key}: already unpacked in {bundle}")
        return bundle
    if not (call / CHUNK_NAME).is_file() or _sha256(call / CHUNK_NAME) != manifest["chunk_sha256"][k]:
        raise GPUBundleError(f"{call / CHUNK_NAME} is not chunk {k} of bundle {key}: pack again")
    shutil.copyfile(call / CHUNK_NAME, chunks / f"{key}-{k:02d}")
    parts = [chunks / f"{key}-{i:02d}" for i in range(count)]
    missing = [i for i, p in enumerate(parts) if not p.is_file()]
    if missing:
        print(f"bundle {key}: have {count - len(missing)}/{count} chunks; still to send: "
              + ", ".join(f"call-{i:02d}" for i in missing) + " (this machine must stay warm between calls)")
        return None
    joined = join_chunks(parts, tmp / f"{key}.tar", manifest["bundle_sha256"])
    with tarfile.open(joined) as tar:
        tar.extractall(bundle, filter="data")
    joined.unlink()
    for p in parts:
        p.unlink()
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    print(f"bundle {key}: all {count} chunks joined and unpacked in {bundle}")
    return bundle


def _install_wheels(bundle: Path, tmp: Path) -> Path | None:
    """pip-install the bundle's wheels (the packages the machine lacks) into `tmp/site`, without network."""
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    if not wheels:
        return None
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
    return site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lalm.default_model.gpu_run", description=__doc__.split("\n")[0])
    parser.add_argument("call", help="the call folder this run carried (.gpu/call-KK)")
    parser.add_argument("--tmp", default="/tmp/lalm-gpu", help="where chunks and the unpacked bundle live")
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-out"), help="results folder ($OUT)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=8.5, help="this call's wall time from its start "
                        "(unpacking, features, training, export): training stops in time for the rest")
    parser.add_argument("--sft-steps", type=int, default=None, help="stage c's step target instead of the "
                        "recipe's (the deadline stops it; raise the config's sft.steps to match on the CPU)")
    args = parser.parse_args(argv)
    end = time.time() + 60 * args.minutes
    tmp = Path(args.tmp)
    bundle = receive(args.call, tmp)
    if bundle is None:
        return 0
    site = _install_wheels(bundle, tmp)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site) if site else "", repo, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "lalm.default_model.gpu_train", str(bundle), "--tmp", str(tmp), "--out", args.out,
           "--device", args.device, "--end", str(end)]
    if args.sft_steps is not None:
        cmd += ["--sft-steps", str(args.sft_steps)]
    return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
