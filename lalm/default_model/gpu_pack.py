"""Pack the default-model recipe for a lent GPU machine: `lalm train default-model --config ... --pack-gpu .gpu`.

The machine has torch, transformers and peft but no espeak-ng, sox, PyAV or soundfile and no network, and takes
64 MiB a call (the git tree, ~15 MB, included). The bundle holds, compactly:
- `recipe.json`: the recipe config;
- `base/`: the base model. For the pinned assets: the Whisper encoder's tensors (float16, its source's own
  precision, so they widen back exactly), its config and feature extractor, the SmolLM2 Q4_1 GGUF verbatim and
  the sha256 of every tensor of the assembled base, which gpu_train.py rebuilds with `assemble_from` and
  checks. For another base (`base:` in the config, e.g. the tests' tiny checkpoint): the folder verbatim;
- `clips/{split}/shard-KKKKK.tar`: every clip of the corpus (corpus.make_clip) as Ogg/Opus (~16 kbps) with
  its reference and metadata, 250 clips a shard as features.py stores them; made once and kept in
  `folder/clips-<corpus key>/` (resumable: a shard that exists is done);
- `work/{stage}.pt`: the stage checkpoints of `workdir` without optimizer state (step and epoch position kept),
  or `export/`: the exported weights when there are none (the recipe seeds its stages from them);
- `wheels/`: the wheels in `wheels` (see docs: `pip download` for Python 3.12 manylinux).
It is tarred and cut into chunks (gpu_run.split_file), one folder per `run` call: `folder/call-KK/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lalm.default_model.features import map_shards
from lalm.default_model.gpu_run import GPUBundleError, split_file
from lalm.default_model.recipe import RecipeConfig

__all__ = ["CHUNK_MIB", "OPUS_LEVEL", "decode_opus", "encode_opus", "pack_gpu", "read_clip_shard", "tensor_sha256"]

CHUNK_MIB = 44  # + the ~15 MB git tree stays under the 64 MiB a call carries
OPUS_LEVEL = 0.96  # soundfile's compression_level: ~16 kbps for the corpus' speech at 16 kHz
SHARD = 250  # clips per shard, as features.build_features stores them
SPLITS = ("heldout_speech", "heldout_non_speech", "train", "train_words")


def encode_opus(samples: np.ndarray, level: float = OPUS_LEVEL) -> bytes:
    """(n,) float32 16 kHz samples -> Ogg/Opus bytes."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="OGG", subtype="OPUS", compression_level=level)
    return buf.getvalue()


def decode_opus(data: bytes) -> np.ndarray:
    """Ogg/Opus bytes -> (n,) float32 16 kHz samples (as many as were encoded)."""
    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    if rate != 16000:
        raise ValueError(f"an Opus clip at {rate} Hz; the corpus is 16 kHz")
    return samples


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (to check a rebuilt checkpoint tensor by tensor)."""
    t = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _clip_shard(args: tuple) -> str:
    """Synthesise one shard's clips and store them as one tar of two members: `opus.bin`, the clips' Ogg/Opus
    streams back to back (a tar member per clip would add ~0.8 KB of headers to each ~9 KB clip), and
    `index.json` with their byte offsets, references and metadata."""
    from lalm.default_model.corpus import make_clip

    cfg, split, indices, path, level = args
    torch.set_num_threads(1)
    refs, meta, blobs = [], [], []
    for i in indices:
        clip = make_clip(cfg, split, i)
        blobs.append(encode_opus(clip.samples, level))
        refs.append(clip.reference)
        meta.append({**clip.meta, "seconds": round(len(clip.samples) / 16000, 3)})
    offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()
    members = {"opus.bin": b"".join(blobs), "index.json": json.dumps(
        {"indices": list(indices), "offsets": offsets, "references": refs, "meta": meta}).encode()}
    tmp = Path(str(path) + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)
    return str(path)


def read_clip_shard(path: str | Path) -> tuple[list[bytes], dict[str, Any]]:
    """A shard written by the pack -> (each clip's Ogg/Opus bytes, its index: indices, references, meta)."""
    with tarfile.open(path) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        blob = tar.extractfile("opus.bin").read()
    offsets = index["offsets"]
    return [blob[a:b] for a, b in itertools.pairwise(offsets)], index


def _clips(cfg: RecipeConfig, folder: Path, counts: dict[str, int], workers: int, level: float,
           progress: bool) -> dict[str, Path]:
    """The corpus as Opus shards under `folder/clips-<key>/{split}/`, made where missing (a shard's name says
    which clips it holds, so a pack of fewer clips never takes a longer shard); returns {name in the bundle:
    file}."""
    from tqdm import tqdm

    root = folder / f"clips-{cfg.corpus_dir().name.removeprefix('corpus-')}-{level}"
    todo, files = [], {}
    for split in SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
        n = counts[split]
        for k, start in enumerate(range(0, n, SHARD)):
            indices = range(start, min(n, start + SHARD))
            path = root / split / f"shard-{k:05d}-{len(indices)}.tar"
            files[f"clips/{split}/shard-{k:05d}.tar"] = path
            if not path.exists():
                todo.append((cfg.corpus, split, indices, path, level))
    bar = tqdm(total=sum(len(t[2]) for t in todo), desc="clips (Opus)", unit="clip", disable=not progress)
    map_shards(_clip_shard, todo, workers=workers, bar=bar)
    return files


def _base(cfg: RecipeConfig, staging: Path) -> dict[str, Any]:
    """Write the base model into `staging/base` (see the module docstring); returns its description."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from lalm.modeling.assemble import assemble, resolve_source
    from lalm.modeling.audio_encoder import load_encoder
    from lalm.modeling.checkpoint import CheckpointError, check_checkpoint

    out = staging / "base"
    out.mkdir(parents=True)
    if cfg.base:
        shutil.copytree(cfg.base, out, dirs_exist_ok=True)
        return {"mode": "folder"}
    base = cfg.base_dir()
    try:
        check_checkpoint(base)
    except CheckpointError:
        assemble(encoder="whisper-tiny.en", llm="smollm2-135m-instruct", out=base, seed=cfg.seed)
    enc = load_encoder(resolve_source("whisper-tiny.en"))
    half = {k: v.to(torch.float16) for k, v in enc.state_dict.items()}
    lossy = [k for k, v in half.items() if not torch.equal(v.float(), enc.state_dict[k])]
    if lossy:  # never for the pinned float16 CTranslate2 model; refuse rather than carry changed weights
        raise GPUBundleError(f"the encoder's tensors {lossy[:3]} are not exact in float16")
    save_file(half, out / "encoder.safetensors")
    (out / "encoder.json").write_text(json.dumps({"kind": enc.kind, "config": enc.config}))
    enc.feature_extractor.save_pretrained(out / "feature_extractor")
    shutil.copyfile(resolve_source("smollm2-135m-instruct"), out / "llm.gguf")
    hashes = {}
    for shard in sorted(base.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            hashes.update({k: tensor_sha256(f.get_tensor(k)) for k in f.keys()})  # noqa: SIM118
    (out / "tensors.json").write_text(json.dumps(hashes))
    return {"mode": "gguf", "tensors": len(hashes)}


def _stages(cfg: RecipeConfig, staging: Path) -> dict[str, int]:
    """The stage checkpoints of `cfg.workdir` without optimizer state (Adam's moments are twice the weights;
    the device run starts them afresh, as a sitting seeded from exported weights does) in one file,
    `work/stages.pt`, or the exported weights when there are none; returns the steps carried."""
    from lalm.default_model.loop import load_checkpoint, save_checkpoint

    states = {}
    for stage in ("ctc", "copy", "sft"):
        state = load_checkpoint(Path(cfg.workdir) / f"{stage}.pt")
        if state is not None:
            states[stage] = {**state, "opt": None, "sched": None}
    if "sft" in states:
        # a finished stage's head and LoRA are loaded, then replaced by the next stage's: carry those once
        # (one torch.save stores a tensor shared by two states once)
        sft = states["sft"]["modules"]
        if "ctc" in states:
            states["ctc"]["modules"]["head"] = sft["head"]
        if "copy" in states:
            states["copy"]["modules"]["lora"] = sft["lora"]
    if states:
        save_checkpoint(staging / "work" / "stages.pt", states)
    steps = {stage: state["step"] for stage, state in states.items()}
    if not steps and (Path(cfg.out) / "default_model.json").is_file():
        shutil.copytree(cfg.out, staging / "export")
        steps = json.loads((Path(cfg.out) / "default_model.json").read_text())["steps"]
    return steps


def pack_gpu(cfg: RecipeConfig, folder: str | Path, *, wheels: str | Path | None = None,
             chunk_bytes: int = CHUNK_MIB << 20, train_clips: int | None = None, opus_level: float = OPUS_LEVEL,
             progress: bool = True) -> dict[str, Any]:
    """Write the bundle for gpu_run.py into `folder` as call folders `call-KK/` of at most `chunk_bytes`
    each (older call folders there are removed); `train_clips` packs only the first n training clips (to
    measure). Returns the manifest, with the bundle's parts' sizes in bytes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("call-*"):
        shutil.rmtree(old)
    staging = folder / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    start = time.monotonic()
    c = cfg.corpus
    counts = {"train": c.train_clips if train_clips is None else min(train_clips, c.train_clips),
              "heldout_speech": c.heldout_speech, "heldout_non_speech": c.heldout_non_speech,
              "train_words": c.word_clips}
    recipe = dataclasses.asdict(dataclasses.replace(cfg, corpus=dataclasses.replace(c, train_clips=counts["train"])))
    (staging / "recipe.json").write_text(json.dumps(recipe, indent=1))
    base = _base(cfg, staging)
    steps = _stages(cfg, staging)
    clips = _clips(cfg, folder, counts, cfg.workers, opus_level, progress)
    for wheel in sorted(Path(wheels).glob("*.whl")) if wheels else []:
        (staging / "wheels").mkdir(exist_ok=True)
        shutil.copyfile(wheel, staging / "wheels" / wheel.name)
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir()
             else p.stat().st_size for p in staging.iterdir()}
    sizes["clips"] = sum(p.stat().st_size for p in clips.values())
    tar_path = folder / "bundle.tar"
    with tarfile.open(tar_path, "w") as tar:
        for p in sorted(staging.iterdir()):
            tar.add(p, arcname=p.name)
        for name, path in clips.items():  # made once, kept beside the call folders: not copied to staging
            tar.add(path, arcname=name)
    manifest = split_file(tar_path, folder, chunk_bytes, extra={"base": base, "steps": steps, "sizes": sizes,
                                                                 "clips": counts})
    tar_path.unlink()
    shutil.rmtree(staging)
    manifest["seconds"] = round(time.monotonic() - start, 1)
    return manifest
