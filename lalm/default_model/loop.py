"""What every stage of the default-model recipe shares: length-bucketed batches, padding, atomic resumable
checkpoints and the training log (one JSON object per line: stage, step, loss, held-out WER, samples/s)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["StopRequest", "TrainLog", "autocast", "bucket_batches", "forget_latest", "load_checkpoint", "load_grown",
           "lr_factor", "pad_frames", "run_stage", "save_checkpoint"]


def bucket_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> Iterator[list[int]]:
    """One epoch of batches of `batch_size` indices with similar `lengths` (less padding), in random order.
    Indices are shuffled, sorted by length within chunks of 50 batches, cut into batches, batches shuffled."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    for b in rng.permutation(len(batches)):
        yield [int(i) for i in batches[b]]


def pad_frames(frames: Sequence[np.ndarray], device: torch.device | str | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """float16 (T_i, d) arrays -> a right-padded float32 (B, max T, d) tensor and the (B,) lengths, on
    `device` (None: the CPU, where they are built)."""
    lengths = torch.tensor([len(f) for f in frames])
    out = torch.zeros(len(frames), int(lengths.max()), frames[0].shape[1])
    for i, f in enumerate(frames):
        out[i, : len(f)] = torch.from_numpy(f.astype(np.float32))
    if device is not None and torch.device(device).type != "cpu":
        out, lengths = out.to(device, non_blocking=True), lengths.to(device)
    return out, lengths


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on a CUDA `device` (a GPU's fast path); on the CPU nothing changes, so the
    CPU recipe computes exactly what it always did."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class StopRequest:
    """Set by SIGTERM or SIGINT while a stage trains (main thread only), so the stage ends after the current
    step with a checkpoint instead of losing the steps since the last one; a second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` with torch.save to a temporary file, then rename it over `path`: a stop mid-write never
    leaves a broken checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The state saved at `path`, or None when there is none yet."""
    path = Path(path)
    # map_location: a checkpoint written on a GPU machine loads on a CPU-only one
    return torch.load(path, weights_only=False, map_location="cpu") if path.exists() else None


class TrainLog:
    """Appends one JSON object per event to `path` (stage, step, wall time and the given figures) and keeps
    samples/s since the last row."""

    def __init__(self, path: str | Path, stage: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stage = stage
        self._t = time.monotonic()
        self._samples = 0

    def count(self, samples: int) -> None:
        self._samples += samples

    def write(self, step: int, **figures: Any) -> dict[str, Any]:
        now = time.monotonic()
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "stage": self.stage, "step": step, **figures}
        if self._samples:
            row["samples_per_s"] = round(self._samples / max(now - self._t, 1e-9), 2)
        self._t, self._samples = now, 0
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row


def _latest_path(workdir: Path, module: str) -> Path:
    return workdir / f"latest-{module}.pt"


def forget_latest(workdir: str | Path) -> None:
    """Remove the modules' latest-state files (run_stage) from `workdir`: for stage checkpoints written from
    elsewhere (a GPU run's import), which are then the newest states, so no older local one is taken over them."""
    for path in Path(workdir).glob("latest-*.pt"):
        path.unlink()


def _save_latest(workdir: Path, key: str, module: torch.nn.Module) -> str:
    """Write `module`'s state as the latest of any stage that trains it under a new revision id (unique, so no
    earlier or forgotten revision can match it, and nothing has to be read to make it); returns the id."""
    revision = uuid.uuid4().hex
    save_checkpoint(_latest_path(workdir, key), {"revision": revision, "state": module.state_dict()})
    return revision


def load_grown(module: torch.nn.Module, saved: dict[str, torch.Tensor], *, keep: bool = False) -> bool:
    """Load a checkpoint's state `saved` into `module`; returns True when the module has grown since: it has
    `layers.N.*` parameters the checkpoint lacks (the audio head's added layers, which start as the identity,
    head.py). Those keep their current values, and with `keep` so does everything else (the module is left as
    it is). Raises ValueError for any other difference in keys."""
    own = set(module.state_dict())
    missing, unexpected = own - set(saved), set(saved) - own
    if unexpected or any(not k.startswith("layers.") for k in missing):
        raise ValueError(f"the checkpoint does not fit the module: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    if not missing:
        module.load_state_dict(saved)
    elif not keep:
        module.load_state_dict(saved, strict=False)
    return bool(missing)


def lr_factor(step: int, *, warmup_steps: int, steps: int, decay_from: int | None = None,
              final_share: float = 0.1) -> float:
    """The learning rate at optimizer step `step` (0-based) as a share of the base rate: a linear warm-up over
    `warmup_steps`, constant after it, and with `decay_from` a half-cosine from 1 down to `final_share` between
    step `decay_from` and the stage's last step `steps` (SGDR's cosine, Loshchilov & Hutter 2017, without
    restarts). A pure function of the step, so a resumed stage, or one given a decay part-way, continues the
    same schedule."""
    share = min(1.0, (step + 1) / warmup_steps)
    if decay_from is None or step < decay_from:
        return share
    progress = min(1.0, (step - decay_from) / max(1, steps - decay_from))
    return share * (final_share + (1.0 - final_share) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def run_stage(name: str, *, workdir: Path, modules: dict[str, Any], params: list[torch.nn.Parameter],
              lengths: Sequence[int], batch_size: int, steps: int, lr: float, seed: int,
              loss_fn: Callable[[list[int], np.random.Generator], torch.Tensor],
              eval_fn: Callable[[], dict[str, Any]], eval_every: int, checkpoint_every: int = 50,
              warmup_steps: int = 100, decay_from: int | None = None, final_lr_share: float = 0.1,
              progress: bool = True, train: bool = True,
              device: torch.device | str = "cpu", deadline: float | None = None,
              keep_grown: Sequence[str] = ()) -> int:
    """Train `params` with AdamW (learning rate `lr` times `lr_factor`: warm-up over `warmup_steps`, constant,
    with `decay_from` a cosine decay to `final_lr_share` of `lr` at the last step) for `steps` steps of
    length-bucketed batches of the clips whose lengths are `lengths`, resuming from `workdir/{name}.pt`.

    `loss_fn(indices, rng)` returns a batch's loss (`rng` is seeded by the step, so a resumed run draws the
    same numbers); `eval_fn()` returns held-out figures, logged every `eval_every` steps and at the end. The
    checkpoint holds `modules`' state dicts, the optimizer, the scheduler and the position in the epoch, so
    a stopped stage resumes to the same state it would have reached; a checkpoint whose epoch is None (seeded
    from exported weights) continues with the batches that follow its step. With `train` False the checkpoint is
    only loaded. On a CUDA `device` losses and evaluations run under bf16 autocast. With a `deadline` (a
    time.monotonic() value) the stage stops at the first step past it, checkpointed, to go on in a later
    run; so does SIGTERM or Ctrl-C (StopRequest). A module that grew new layers since its checkpoint
    (load_grown) takes the checkpoint's other weights, or none of them when named in `keep_grown` (it keeps what
    the stage before trained), and the optimizer starts afresh at the checkpoint's step.

    Stages that train the same module (the head: CTC and SFT; the LoRA weights: copy and SFT) go on from each
    other's latest state: every checkpoint also writes each module's state to `workdir/latest-{module}.pt` with
    a revision id, and a stage that finds a revision other than the one it saved takes that state (and a fresh
    optimizer). So rounds work in any order: CTC raised after SFT goes on from SFT's head, and SFT after
    that from CTC's, instead of each going back to its own older copy. Returns the step reached."""
    from tqdm import tqdm

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ckpt = workdir / f"{name}.pt"
    step, epoch, pos = 0, 0, 0
    grown: list[str] = []
    state = load_checkpoint(ckpt)
    revisions: dict[str, int | str] = dict(state.get("revisions", {})) if state is not None else {}
    taken = []  # modules another stage trained since this stage's checkpoint: they go on from that state
    for key, module in modules.items():
        latest = load_checkpoint(_latest_path(workdir, key))
        if latest is not None and latest["revision"] != revisions.get(key):
            load_grown(module, latest["state"])
            revisions[key] = latest["revision"]
            taken.append(key)
    if state is not None:
        grown = [key for key, module in modules.items() if key not in taken
                 and load_grown(module, state["modules"][key], keep=key in keep_grown)]
        # None: seeded from exported weights; grown: new parameters; taken: another stage's state. Each time the
        # optimizer starts afresh.
        if state["opt"] is not None and not grown and not taken:
            opt.load_state_dict(state["opt"])
        step, epoch, pos = state["step"], state["epoch"], state["pos"]
        if epoch is None:  # seeded from exported weights: the step alone says where in which epoch
            per_epoch = sum(1 for _ in bucket_batches(lengths, batch_size, np.random.default_rng(0)))
            epoch, pos = divmod(step, per_epoch)
    for group in opt.param_groups:
        group.setdefault("initial_lr", lr)
    # the schedule is a pure function of the step, so a restarted optimizer takes the rate of the step reached
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup_steps=warmup_steps, steps=steps,
                                                                        decay_from=decay_from,
                                                                        final_share=final_lr_share),
                                              last_epoch=step - 1)
    if step >= steps or not train:
        return step
    log = TrainLog(workdir / "log.jsonl", name)
    if grown:
        log.write(step, note=f"{', '.join(grown)} grew since the checkpoint (new layers start as the identity"
                             f"{'; kept as the stage before left them' if set(grown) & set(keep_grown) else ''});"
                             " the optimizer starts afresh")
    if taken and state is not None:
        log.write(step, note=f"{', '.join(taken)} trained by another stage since this stage's checkpoint: it goes "
                             "on from that state; the optimizer starts afresh")
    bar = tqdm(total=steps, initial=step, desc=f"stage {name}", unit="step", disable=not progress)
    stop = False
    with StopRequest() as request:
        while step < steps and not stop:
            batches = list(bucket_batches(lengths, batch_size, np.random.default_rng([seed, 1, epoch])))
            while pos < len(batches) and step < steps and not stop:
                for module in modules.values():
                    module.train()
                with autocast(device):
                    loss = loss_fn(batches[pos], np.random.default_rng([seed, 2, step]))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step, pos = step + 1, pos + 1
                log.count(len(batches[pos - 1]))
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                figures: dict[str, Any] = {"loss": round(loss.item(), 4)}
                if step % eval_every == 0 or step == steps:
                    for module in modules.values():
                        module.eval()
                    with autocast(device):
                        figures.update(eval_fn())
                    bar.write(f"{name} step {step}: " + ", ".join(f"{k} {v!r}" for k, v in figures.items()))
                stop = request.requested or (deadline is not None and time.monotonic() >= deadline)
                if step % checkpoint_every == 0 or step == steps or len(figures) > 1 or stop:
                    log.write(step, **figures)
                    for key, module in modules.items():
                        revisions[key] = _save_latest(workdir, key, module)
                    save_checkpoint(ckpt, {"modules": {k: m.state_dict() for k, m in modules.items()},
                                           "opt": opt.state_dict(), "sched": sched.state_dict(),
                                           "step": step, "epoch": epoch if pos < len(batches) else epoch + 1,
                                           "pos": pos if pos < len(batches) else 0, "revisions": revisions})
            if pos >= len(batches):
                epoch, pos = epoch + 1, 0
    bar.close()
    for module in modules.values():
        module.eval()
    return step
