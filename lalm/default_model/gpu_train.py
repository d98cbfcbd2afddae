"""The training half of a GPU run (started by gpu_run.py once the bundle is unpacked, with the carried wheels
on its path): rebuild the base model, encode the Opus corpus with the frozen encoder on the GPU, run the SAME
recipe (recipe.run_recipe: ctc, copy, sft, each resuming from the carried checkpoints) on `--device` until
the deadline, and write the stage checkpoints' weights (float32 safetensors under 15 MiB each) with
`gpu_result.json` and the log rows to `--out`, for `lalm train default-model --import-gpu` (gpu_import.py).

Everything lives under `--tmp`, so a rerun on the still-warm machine resumes (base, frames and checkpoints
are kept); a fresh machine starts from the bundle again.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["PART_BYTES", "RESERVE_S", "main"]

PART_BYTES = 15 << 20  # files back from the machine: at most 16 MiB each
RESERVE_S = 90.0  # kept after training for the export's held-out evaluation and the results


def _stub_av() -> None:
    """lalm.audio imports PyAV at module level for decoding uploads; the machine has no PyAV and this run
    decodes only Opus through soundfile. A stub lets the import succeed; any use of it fails loudly."""
    if importlib.util.find_spec("av") is None:
        stub = types.ModuleType("av")

        def missing(name: str):
            raise ImportError(f"PyAV is not installed on this machine (av.{name} used)")

        stub.__getattr__ = missing  # type: ignore[attr-defined]
        sys.modules["av"] = stub


def _rebuild_base(folder: Path, out: Path, seed: int) -> list[str]:
    """Assemble the base model in `out` from the carried encoder tensors and the LLM's GGUF (lalm's own
    assemble_from and GGUF reader) and compare every tensor with the sha256 the pack recorded; returns the
    names of tensors that differ (empty: the very base the CPU trains on)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import WhisperFeatureExtractor

    from lalm.default_model.gpu_pack import tensor_sha256
    from lalm.modeling.assemble import assemble_from
    from lalm.modeling.audio_encoder import EncoderSource
    from lalm.modeling.checkpoint import CheckpointError, check_checkpoint
    from lalm.modeling.convert import load_llm

    try:
        check_checkpoint(out)
    except CheckpointError:
        info = json.loads((folder / "encoder.json").read_text())
        state = {k: v.to(torch.float32) for k, v in load_file(folder / "encoder.safetensors").items()}
        enc = EncoderSource(info["kind"], folder, info["config"], state,
                            WhisperFeatureExtractor.from_pretrained(folder / "feature_extractor"))
        assemble_from(enc, load_llm(folder / "llm.gguf"), out=out, seed=seed)
    expected = json.loads((folder / "tensors.json").read_text())
    got = {}
    for shard in sorted(out.glob("*.safetensors")):
        with safe_open(shard, "pt") as f:
            got.update({k: tensor_sha256(f.get_tensor(k)) for k in f.keys()})  # noqa: SIM118
    return sorted(k for k in set(expected) | set(got) if expected.get(k) != got.get(k))


def _features(cfg, clips: Path, device: str) -> None:
    """Decode each Opus shard (threads: libsndfile releases the GIL), pass its clips through the frozen encoder
    on `device` and store the frames as the recipe's feature shards, so build_features finds them done."""
    from lalm.default_model.features import FrozenEncoder, shard_name, write_shard
    from lalm.default_model.gpu_pack import SPLITS, decode_opus, read_clip_shard

    encoder = FrozenEncoder.from_checkpoint(cfg.base_dir(), device)
    with ThreadPoolExecutor(os.cpu_count() or 4) as pool:
        for split in SPLITS:
            dest = cfg.corpus_dir() / split
            dest.mkdir(parents=True, exist_ok=True)
            shards = sorted((clips / split).glob("shard-*.tar"))
            start = time.monotonic()
            for k, shard in enumerate(shards):
                if (dest / shard_name(k)).exists():
                    continue
                data, index = read_clip_shard(shard)
                frames = [encoder(s) for s in pool.map(decode_opus, data)]
                write_shard(dest / shard_name(k), frames, index["references"], index["meta"])
            print(f"features {split}: {len(shards)} shards in {time.monotonic() - start:.1f} s", flush=True)


# A finished stage's module that the next stage replaces when it loads its own (the head of ctc, the LoRA of
# copy, once sft has a checkpoint): brought back once, with sft's.
_FROM_SFT = {"ctc": ("head",), "copy": ("lora",)}


def _write_results(cfg, out: Path, carried: dict[str, int], record: dict[str, Any]) -> dict[str, Any]:
    """Every stage checkpoint -> `{stage}-{j}.safetensors` parts (float32, `module/key` names), all of them:
    a work folder that has none must not seed its stages from older exported weights over the imported ones.
    `gpu_result.json` says which files hold which stage, its step and epoch position, and which modules are
    sft's (`from_sft`)."""
    import torch
    from safetensors.torch import save_file

    from lalm.default_model.loop import load_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    states = {s: load_checkpoint(Path(cfg.workdir) / f"{s}.pt") for s in ("ctc", "copy", "sft")}
    stages = {}
    for stage, state in states.items():
        if state is None:
            continue
        shared = _FROM_SFT.get(stage, ()) if states["sft"] is not None else ()
        flat = {f"{m}/{k}": v.detach().float().cpu().contiguous() for m, sd in state["modules"].items()
                if m not in shared for k, v in sd.items()}
        parts: list[dict[str, torch.Tensor]] = [{}] if flat else []
        size = 0
        for key, tensor in flat.items():
            nbytes = tensor.numel() * 4
            if parts[-1] and size + nbytes > PART_BYTES:
                parts.append({})
                size = 0
            parts[-1][key] = tensor
            size += nbytes
        files = []
        for j, part in enumerate(parts):
            save_file(part, out / f"{stage}-{j}.safetensors")
            files.append(f"{stage}-{j}.safetensors")
        stages[stage] = {"step": state["step"], "epoch": state["epoch"], "pos": state["pos"], "files": files,
                         "from_sft": list(shared), "trained": state["step"] > carried.get(stage, 0)}
    log = Path(cfg.workdir) / "log.jsonl"
    if log.is_file():
        shutil.copyfile(log, out / "log.jsonl")
    result = {**record, "carried": carried, "stages": stages}
    (out / "gpu_result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lalm.default_model.gpu_train")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--tmp", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--end", type=float, required=True, help="time.time() by which the call must be done")
    parser.add_argument("--sft-steps", type=int, default=None)
    args = parser.parse_args(argv)
    _stub_av()
    import torch

    from lalm.default_model.loop import load_checkpoint, save_checkpoint
    from lalm.default_model.recipe import load_config, run_recipe

    t0 = time.monotonic()
    bundle, tmp = args.bundle, args.tmp
    manifest = json.loads((bundle / "manifest.json").read_text())
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    raw = json.loads((bundle / "recipe.json").read_text())
    base = bundle / "base" if manifest["base"]["mode"] == "folder" else tmp / "base"
    if args.sft_steps is not None:
        raw["sft"]["steps"] = args.sft_steps
    raw.update(threads=os.cpu_count() or 1, workers=1, base=str(base), cache_dir=str(tmp / "cache"),
               workdir=str(tmp / "work"), out=str(tmp / "export"))
    cfg = load_config(None, **raw)
    mismatch = [] if manifest["base"]["mode"] == "folder" else _rebuild_base(bundle / "base", base, cfg.seed)
    if mismatch:
        print(f"WARNING: the rebuilt base differs from the packed one in {len(mismatch)} tensors "
              f"({mismatch[:3]}...)", flush=True)
    t_base = time.monotonic()
    _features(cfg, bundle / "clips", args.device)
    t_features = time.monotonic()
    workdir = Path(cfg.workdir)
    if not workdir.exists():  # a rerun on the warm machine goes on from its own checkpoints
        workdir.mkdir(parents=True)
        if (bundle / "work" / "stages.pt").is_file():
            for stage, state in load_checkpoint(bundle / "work" / "stages.pt").items():
                save_checkpoint(workdir / f"{stage}.pt", state)
        if (bundle / "export").is_dir():
            shutil.copytree(bundle / "export", cfg.out)
    deadline = time.monotonic() + (args.end - time.time()) - RESERVE_S
    print(f"training on {args.device} for {max(0.0, deadline - time.monotonic()) / 60:.1f} min", flush=True)
    figures = run_recipe(cfg, until="export", progress=False, device=args.device, deadline=deadline)
    record = {"figures": figures, "base_mismatch": mismatch, "device": args.device,
              "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
              "seconds": {"base": round(t_base - t0, 1), "features": round(t_features - t_base, 1),
                          "train_and_export": round(time.monotonic() - t_features, 1)},
              "bundle_sha256": manifest["bundle_sha256"], "recipe": raw}
    result = _write_results(cfg, args.out, manifest.get("steps", {}), record)
    print(json.dumps({k: result[k] for k in ("stages", "figures", "seconds")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
