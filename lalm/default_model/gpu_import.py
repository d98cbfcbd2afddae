"""Take a GPU run's results home: `lalm train default-model --config ... --import-gpu <files back from $OUT>`.

gpu_train.py brings back the weights of every stage checkpoint (float32 safetensors parts; a finished stage's
head or LoRA once, with stage c's) with the step and epoch position in `gpu_result.json`, and the run's log
rows. They become the work folder's
stage checkpoints (without optimizer state, as a sitting seeded from exported weights starts: Adam begins
afresh), so `lalm train default-model` goes on from the GPU's step on the CPU, with the batches that follow
it, and `--export-only` exports them with their held-out figures.
"""

from __future__ import annotations

import json
from pathlib import Path

from lalm.default_model.gpu_run import GPUBundleError
from lalm.default_model.recipe import RecipeConfig

__all__ = ["import_gpu"]


def import_gpu(results: str | Path, cfg: RecipeConfig, *, force: bool = False) -> dict[str, int]:
    """Write the stage checkpoints in the GPU run's `results` folder to `cfg.workdir` (a stage whose checkpoint
    there is at the same step is kept: it has its optimizer state) and append its log rows there; returns
    {stage: step} written. Raises GPUBundleError when `results` holds no gpu_result.json or a part is
    missing, or (unless `force`) when the work folder's checkpoint of a stage is further on."""
    from safetensors.torch import load_file

    from lalm.default_model.loop import forget_latest, load_checkpoint, save_checkpoint

    results = Path(results)
    path = results / "gpu_result.json"
    if not path.is_file():
        raise GPUBundleError(f"{results} holds no gpu_result.json: not the files of a GPU run (gpu_train.py)")
    record = json.loads(path.read_text())
    workdir = Path(cfg.workdir)
    states = {}
    sft_modules: dict[str, dict] = {}
    for stage, info in record["stages"].items():
        modules: dict[str, dict] = sft_modules if stage == "sft" else {}
        for name in info["files"]:
            if not (results / name).is_file():
                raise GPUBundleError(f"{results / name} is missing: bring back every file the run wrote")
            for key, tensor in load_file(results / name).items():
                module, rest = key.split("/", 1)
                modules.setdefault(module, {})[rest] = tensor
        current = load_checkpoint(workdir / f"{stage}.pt")
        if current is not None and current["step"] > info["step"] and not force:
            raise GPUBundleError(f"{workdir / f'{stage}.pt'} is at step {current['step']}, past the GPU run's "
                                 f"{info['step']}: importing would take training back")
        if current is not None and current["step"] == info["step"] and not force:
            continue
        states[stage] = {"modules": modules, "opt": None, "sched": None, "step": info["step"],
                         "epoch": info["epoch"], "pos": info["pos"]}
    for stage, info in record["stages"].items():
        for module in info.get("from_sft", []):
            if stage in states:
                states[stage]["modules"][module] = sft_modules[module]
    for stage, state in states.items():
        save_checkpoint(workdir / f"{stage}.pt", state)
    if states:
        forget_latest(workdir)
    log = results / "log.jsonl"
    if log.is_file():
        known = set((workdir / "log.jsonl").read_text().splitlines()) if (workdir / "log.jsonl").is_file() else set()
        rows = [r for r in log.read_text().splitlines() if r.strip() and r not in known]
        with (workdir / "log.jsonl").open("a") as f:
            f.writelines(r + "\n" for r in rows)
    if record.get("base_mismatch"):
        print(f"note: the GPU's rebuilt base differed in {len(record['base_mismatch'])} tensors")
    return {stage: state["step"] for stage, state in states.items()}
