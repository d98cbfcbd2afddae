"""DPO of the trained LALM against its own hallucinations, in one command (`lalm train dpo-default-lalm`).

From a Qwen2-Audio checkpoint (`default-lalm`, built from models/default, or any folder), with the corpus the
default model was trained on (lalm/default_model/corpus.py):
1. clips: `train_clips` fresh training clips (training voices and texts only; indices from `first_clip`, past
   the clips the model was trained on), plus the evaluation manifests: held-out synthetic speech (voices and
   texts never trained on), held-out non-speech and the real recordings (recordings.py);
2. pairs: the model's own answers sampled `pairs.samples` times per clip at `pairs.temperature` (through a
   vLLM server started for it, or the transformers engine: `sampler`), made into pairs by pairs.py: rejected =
   own answers with insertions (loops included) and the stock synthetic rejects; chosen = the reference (the
   no-speech answer on non-speech), or with `pairs.chosen: edited` the rejected answer less its insertions;
3. dpo: TRL's DPOTrainer with LoRA (dpo.py) on the pairs, every DPOConfig field from the `dpo` section,
   ended at `stop_step` if set (the schedule still spans `dpo.max_steps`); the logged curve (losses, reward
   margins) goes to `workdir/dpo_log.jsonl`;
4. merge: the adapter folded into `workdir/merged`, a checkpoint `lalm serve --model` serves with vLLM.

A stage whose output exists is skipped, so an interrupted run goes on where it stopped; `workdir/recipe.json`
records the config and a run refuses a work folder made with another one.

```bash
lalm train dpo-default-lalm --config configs/dpo_default_lalm.yaml
lalm serve --model runs/dpo-default-lalm/merged
```
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lalm.default_model.config_file import read_config_fields
from lalm.default_model.corpus import CorpusConfig
from lalm.train_dpo.data import Example, write_manifest
from lalm.train_dpo.pairs import PairsConfig

__all__ = ["STAGES", "DPORecipeConfig", "RecipeOutputs", "load_recipe_config", "run_dpo_recipe"]

STAGES = ("clips", "pairs", "dpo", "merge")
RECORD = "recipe.json"


@dataclass(frozen=True)
class DPORecipeConfig:
    """What `configs/dpo_default_lalm.yaml` sets. `dpo` holds DPOConfig / ModelArguments fields as in
    configs/dpo.yaml (model, train_pairs and output_dir are the recipe's)."""

    model: str = "default-lalm"  # the built-in name, or a Qwen2-Audio checkpoint folder
    workdir: str = "runs/dpo-default-lalm"
    train_clips: int = 400
    first_clip: int = 12000  # configs/default_model.yaml trains on clips 0-11,999 of the same corpus
    heldout_speech: int = 300
    heldout_non_speech: int = 60
    real_recordings: bool = True
    workers: int = 2  # clips synthesised at once
    sampler: str = "vllm"  # what samples the model's answers: vllm (a server started for it) or transformers
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    dpo: dict[str, Any] = field(default_factory=dict)
    # end DPO at this step while the learning-rate schedule runs over dpo.max_steps (None: at max_steps)
    stop_step: int | None = None


@dataclass(frozen=True)
class RecipeOutputs:
    """Where a run put its results."""

    model: Path  # the starting checkpoint
    train: Path  # training clips' manifest
    heldout: dict[str, Path]  # evaluation manifests: speech, non_speech, real
    pairs: Path
    pair_counts: dict[str, int]
    adapter: Path
    merged: Path


def load_recipe_config(path: str | Path | None = None, **overrides: Any) -> DPORecipeConfig:
    """The config of a YAML file (keys not given keep their defaults) with `overrides` on top. Raises ValueError
    on unknown keys or values of the wrong kind, OSError when the file cannot be read."""
    values = read_config_fields(DPORecipeConfig, path, {"corpus": CorpusConfig, "pairs": PairsConfig}, overrides)
    if not isinstance(values.get("dpo", {}), dict):
        raise ValueError("dpo: expected a mapping of DPOConfig fields")
    reserved = {"model", "train_pairs", "output_dir"} & set(values.get("dpo", {}))
    if reserved:
        raise ValueError(f"dpo: {sorted(reserved)} are set by the recipe (model: and workdir: at the top level)")
    cfg = DPORecipeConfig(**values)
    if cfg.sampler not in ("vllm", "transformers"):
        raise ValueError(f"sampler must be vllm or transformers, not {cfg.sampler!r}")
    if cfg.train_clips < 1 or cfg.first_clip < 0 or cfg.heldout_speech < 0 or cfg.heldout_non_speech < 0:
        raise ValueError("train_clips must be at least 1; first_clip and held-out counts not negative")
    last = cfg.dpo.get("max_steps", -1)
    if cfg.stop_step is not None and (type(cfg.stop_step) is not int or cfg.stop_step < 1
                                      or (isinstance(last, int) and 0 < last < cfg.stop_step)):
        raise ValueError(f"stop_step must be a whole number from 1 to dpo.max_steps, not {cfg.stop_step!r}")
    return cfg


def resolve_model(model: str) -> Path:
    """The checkpoint folder of `model`: `default-lalm` (built into the model cache on first use) or a folder.
    Raises ValueError when it is neither."""
    if model == "default-lalm":
        from lalm.engines.catalog import default_lalm_folder

        return default_lalm_folder()
    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise ValueError(f"model {model!r} is neither default-lalm nor a checkpoint folder (no config.json)")
    return folder


def _write_clips(out: Path, make: Callable[[int], tuple[Any, str, dict]], indices: range, *, workers: int,
                 desc: str, progress: bool) -> Path:
    """Audio files of clips `make(i) -> (samples, reference, meta)` under `out.parent/audio-<out stem>/` and
    their manifest `out`."""
    import soundfile as sf
    from tqdm import tqdm

    from lalm.audio import SAMPLE_RATE

    audio = out.parent / f"audio-{out.stem}"
    audio.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Example:
        samples, reference, meta = make(i)
        path = audio / f"{i:06d}.flac"
        sf.write(path, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return Example(path, reference, None, meta)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        rows = list(tqdm(pool.map(one, indices), total=len(indices), desc=desc, unit="clip", disable=not progress))
    return write_manifest(out, rows)


def _clips(cfg: DPORecipeConfig, root: Path, progress: bool) -> tuple[Path, dict[str, Path]]:
    from lalm.default_model.corpus import make_clip

    def corpus(split: str, offset: int = 0) -> Callable[[int], tuple[Any, str, dict]]:
        def make(i: int) -> tuple[Any, str, dict]:
            clip = make_clip(cfg.corpus, split, i + offset)
            return clip.samples, clip.reference, {"split": split, "index": i + offset, **clip.meta}
        return make

    train = root / "clips" / "train.jsonl"
    heldout = {"speech": root / "clips" / "heldout_speech.jsonl",
               "non_speech": root / "clips" / "heldout_non_speech.jsonl"}
    if cfg.real_recordings:
        heldout["real"] = root / "clips" / "real.jsonl"
    if not train.is_file():
        _write_clips(train, corpus("train", cfg.first_clip), range(cfg.train_clips), workers=cfg.workers,
                     desc="clips: train", progress=progress)
    counts = {"speech": cfg.heldout_speech, "non_speech": cfg.heldout_non_speech}
    for name, n in counts.items():
        if not heldout[name].is_file():
            _write_clips(heldout[name], corpus(f"heldout_{name}"), range(n), workers=cfg.workers,
                         desc=f"clips: held-out {name.replace('_', '-')}", progress=progress)
    if cfg.real_recordings and not heldout["real"].is_file():
        from lalm.default_model.recordings import real_recordings

        found = real_recordings()
        _write_clips(heldout["real"], lambda i: (found[i].samples, found[i].reference, {"name": found[i].name}),
                     range(len(found)), workers=1, desc="clips: real", progress=progress)
    return train, heldout


def _check_record(cfg: DPORecipeConfig, root: Path) -> None:
    record = root / RECORD
    mine = json.loads(json.dumps(dataclasses.asdict(cfg)))
    if record.is_file():
        theirs = json.loads(record.read_text())
        if theirs != mine:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{root} holds a run of another config (differs in {', '.join(changed)}): pass "
                             "another workdir, or delete that one to start over")
        return
    root.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(mine, indent=2) + "\n")


def _sample_pairs(cfg: DPORecipeConfig, model: Path, train: Path, out: Path, progress: bool) -> dict[str, int]:
    """The pairs file of the training clips, the model's own answers sampled through `cfg.sampler`."""
    from lalm.train_dpo.pairs import make_pairs

    if cfg.sampler == "transformers" or not cfg.pairs.samples:
        return make_pairs(train, out, model=model, cfg=cfg.pairs, progress=progress)[1]
    from lalm.engines.vllm_process import VLLMProcess

    # vLLM batches the sampled answers far faster than the in-process engine (seeded per request alike)
    log = out.parent / "vllm-sampler.log"
    server = VLLMProcess(str(model), served_model_name="policy", dtype="float32", max_model_len=4096, log_path=log)
    try:
        server.start(timeout=900)
    except (RuntimeError, TimeoutError) as exc:
        raise ValueError(f"vLLM did not start on {model} to sample its answers ({exc}); see {log}, or set "
                         "sampler: transformers") from None
    try:
        return make_pairs(train, out, model=server.url, cfg=cfg.pairs, progress=progress)[1]
    finally:
        server.stop()


def _stop_at(step: int) -> Any:
    """A transformers TrainerCallback that ends training after `step` optimizer steps."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        """Sets should_training_stop once `step` optimizer steps are done, and logs that step."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= step:
                control.should_training_stop = True
                control.should_log = True  # the last step's losses reach dpo_log.jsonl whatever logging_steps
            return control

    return StopAt()


def _train(cfg: DPORecipeConfig, model: Path, pairs: Path, adapter: Path, log: Path, progress: bool) -> None:
    import yaml

    from lalm.train_dpo.dpo import build_dpo_trainer, parse_args
    from lalm.train_dpo.model_args import save_trained

    args = adapter.parent / "dpo.yaml"  # the DPO run as `lalm train dpo --config` would read it
    args.write_text(yaml.safe_dump({**cfg.dpo, "model": str(model), "train_pairs": str(pairs),
                                    "output_dir": str(adapter.with_name(adapter.name + ".partial"))},
                                   sort_keys=False))
    sargs, margs, targs = parse_args(["--config", str(args), *([] if progress else ["--disable_tqdm", "true"])])
    trainer, processor = build_dpo_trainer(sargs, margs, targs)
    if cfg.stop_step is not None:
        trainer.add_callback(_stop_at(cfg.stop_step))
    trainer.train()
    log.write_text("".join(json.dumps(row) + "\n" for row in trainer.state.log_history))
    partial = adapter.with_name(adapter.name + ".partial")
    save_trained(trainer, processor, margs, partial)
    partial.rename(adapter)


def run_dpo_recipe(cfg: DPORecipeConfig, *, until: str = "merge", progress: bool = True,
                   log: Callable[[str], None] = print) -> RecipeOutputs:
    """Run the stages up to `until` (one of STAGES), skipping those whose output exists. Raises ValueError for a
    bad config or work folder, LalmError when default-lalm cannot be built."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {', '.join(STAGES)}, not {until!r}")
    model = resolve_model(cfg.model)
    root = Path(cfg.workdir)
    _check_record(cfg, root)
    stop = STAGES.index(until)
    train, heldout = _clips(cfg, root, progress)
    pairs, counts_file = root / "pairs.jsonl", root / "pairs_counts.json"
    adapter, merged = root / "adapter", root / "merged"
    if stop >= STAGES.index("pairs") and not pairs.is_file():
        counts = _sample_pairs(cfg, model, train, root / "pairs.partial.jsonl", progress)
        counts_file.write_text(json.dumps(counts) + "\n")
        (root / "pairs.partial.jsonl").rename(pairs)
        log(f"pairs: {pairs} ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))})")
    pair_counts = json.loads(counts_file.read_text()) if counts_file.is_file() else {}
    if stop >= STAGES.index("dpo") and not (adapter / "adapter_config.json").is_file():
        _train(cfg, model, pairs, adapter, root / "dpo_log.jsonl", progress)
        log(f"dpo: adapter in {adapter}, curve in {root / 'dpo_log.jsonl'}")
    if stop >= STAGES.index("merge") and not (merged / "config.json").is_file():
        from lalm.train_dpo.merge import merge_adapter

        partial = merged.with_name(merged.name + ".partial")
        merge_adapter(adapter, partial, base=model)
        partial.rename(merged)
        log(f"merge: {merged} (serve it: lalm serve --model {merged})")
    return RecipeOutputs(model, train, heldout, pairs, pair_counts, adapter, merged)
