"""run_stage's resume: a stage seeded from exported weights (no epoch position) goes on with the batches that
follow its step, so each sitting on a fresh machine sees new clips instead of the first batches again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lalm.default_model.loop import run_stage, save_checkpoint


def _run(workdir: Path, steps: int) -> list[list[int]]:
    seen: list[list[int]] = []
    weight = torch.nn.Linear(1, 1)

    def loss_fn(batch: list[int], _rng: np.random.Generator) -> torch.Tensor:
        seen.append(batch)
        return weight(torch.ones(1, 1)).sum()

    run_stage("s", workdir=workdir, modules={"w": weight}, params=list(weight.parameters()),
              lengths=[i % 7 for i in range(30)], batch_size=4, steps=steps, lr=1e-3, seed=0, loss_fn=loss_fn,
              eval_fn=dict, eval_every=1000, checkpoint_every=1000, progress=False)
    return seen


def test_a_seeded_stage_continues_with_the_batches_after_its_step(tmp_path: Path) -> None:
    straight = _run(tmp_path / "a", 20)  # 8 batches an epoch: steps 11-20 are in the second epoch
    seeded = tmp_path / "b"
    save_checkpoint(seeded / "s.pt", {"modules": {"w": torch.nn.Linear(1, 1).state_dict()}, "opt": None,
                                      "sched": None, "step": 11, "epoch": None, "pos": None})
    assert _run(seeded, 20) == straight[11:]
    assert straight[11:] != straight[:9]
