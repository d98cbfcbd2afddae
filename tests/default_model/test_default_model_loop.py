"""run_stage's resume: a stage seeded from exported weights (no epoch position) goes on with the batches that
follow its step, so each run on a fresh machine sees new clips instead of the first batches again; SIGTERM
ends a stage after the current step with a checkpoint there, and the resumed stage sees what a straight run would;
a module that grew layers since its checkpoint resumes with its trained weights and a fresh optimizer."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from lalm.default_model.loop import load_checkpoint, load_grown, lr_factor, run_stage, save_checkpoint


def _run(workdir: Path, steps: int, *, signal_at: int | None = None, decay_from: int | None = None
         ) -> list[list[int]]:
    seen: list[list[int]] = []
    weight = torch.nn.Linear(1, 1)

    def loss_fn(batch: list[int], _rng: np.random.Generator) -> torch.Tensor:
        seen.append(batch)
        if len(seen) == signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return weight(torch.ones(1, 1)).sum()

    run_stage("s", workdir=workdir, modules={"w": weight}, params=list(weight.parameters()),
              lengths=[i % 7 for i in range(30)], batch_size=4, steps=steps, lr=1e-3, seed=0, loss_fn=loss_fn,
              eval_fn=dict, eval_every=1000, checkpoint_every=1000, progress=False, warmup_steps=2,
              decay_from=decay_from, final_lr_share=0.1)
    return seen


def test_a_seeded_stage_continues_with_the_batches_after_its_step(tmp_path: Path) -> None:
    straight = _run(tmp_path / "a", 20)  # 8 batches an epoch: steps 11-20 are in the second epoch
    seeded = tmp_path / "b"
    save_checkpoint(seeded / "s.pt", {"modules": {"w": torch.nn.Linear(1, 1).state_dict()}, "opt": None,
                                      "sched": None, "step": 11, "epoch": None, "pos": None})
    assert _run(seeded, 20) == straight[11:]
    assert straight[11:] != straight[:9]


def test_sigterm_ends_the_stage_after_the_step_with_a_checkpoint(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    straight = _run(tmp_path / "a", 12)
    stopped = _run(tmp_path / "b", 12, signal_at=5)
    assert stopped == straight[:5]
    assert load_checkpoint(tmp_path / "b" / "s.pt")["step"] == 5
    assert signal.getsignal(signal.SIGTERM) is before
    assert _run(tmp_path / "b", 12) == straight[5:]


def test_lr_factor_warms_up_holds_and_decays_along_a_cosine() -> None:
    kw = {"warmup_steps": 10, "steps": 110}
    assert [lr_factor(s, **kw) for s in (0, 4, 9, 50, 109)] == [0.1, 0.5, 1.0, 1.0, 1.0]
    decayed = [lr_factor(s, decay_from=10, final_share=0.1, **kw) for s in range(10, 111)]
    assert decayed[0] == 1.0 and abs(decayed[50] - 0.55) < 1e-9 and abs(decayed[-1] - 0.1) < 1e-9
    assert all(a >= b for a, b in itertools.pairwise(decayed))


def test_a_decay_given_part_way_continues_from_the_checkpoint(tmp_path: Path) -> None:
    _run(tmp_path, 5)
    assert load_checkpoint(tmp_path / "s.pt")["opt"]["param_groups"][0]["lr"] == 1e-3
    _run(tmp_path, 12, decay_from=5)  # the schedule is a function of the step: it starts decaying at step 5
    lr = load_checkpoint(tmp_path / "s.pt")["opt"]["param_groups"][0]["lr"]
    assert abs(lr - 1e-3 * lr_factor(12, warmup_steps=2, steps=12, decay_from=5)) < 1e-12
    assert abs(lr - 1e-4) < 1e-12


class _Stack(torch.nn.Module):
    """A module shaped like the audio head: `layers.N.*` that can grow, plus a fixed part."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(layers))
        self.out = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return self.out(x)


def _run_stack(workdir: Path, module: _Stack, steps: int, keep_grown: tuple[str, ...] = ()) -> dict:
    first: dict = {}

    def loss_fn(batch: list[int], _rng: np.random.Generator) -> torch.Tensor:
        first.setdefault("state", {k: v.clone() for k, v in module.state_dict().items()})
        return module(torch.ones(1, 2)).pow(2).sum()

    run_stage("s", workdir=workdir, modules={"m": module}, params=list(module.parameters()),
              lengths=[1] * 16, batch_size=4, steps=steps, lr=1e-2, seed=0, loss_fn=loss_fn, eval_fn=dict,
              eval_every=1000, checkpoint_every=1000, progress=False, warmup_steps=2, decay_from=0,
              keep_grown=keep_grown)
    return first["state"]


def test_a_grown_module_resumes_with_its_trained_weights_new_layers_and_a_fresh_optimizer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    _run_stack(tmp_path, _Stack(1), 5)
    saved = load_checkpoint(tmp_path / "s.pt")["modules"]["m"]
    grown = _Stack(2)
    new_layer = {k: v.clone() for k, v in grown.layers[1].state_dict().items()}
    start = _run_stack(tmp_path, grown, 8)
    for key, value in saved.items():  # the trained weights came back
        assert torch.equal(start[key], value)
    for key, value in new_layer.items():  # the added layer kept its own initial values
        assert torch.equal(start[f"layers.1.{key}"], value)
    after = load_checkpoint(tmp_path / "s.pt")
    assert after["step"] == 8 and len(after["opt"]["state"]) == len(list(grown.parameters()))
    lr = after["opt"]["param_groups"][0]["lr"]  # the schedule went on at step 5, not from step 0
    assert abs(lr - 1e-2 * lr_factor(8, warmup_steps=2, steps=8, decay_from=0)) < 1e-12
    notes = [r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if "note" in r]
    assert len(notes) == 1 and notes[0]["step"] == 5 and "optimizer starts afresh" in notes[0]["note"]


def test_keep_grown_leaves_a_grown_module_as_the_stage_before_trained_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    _run_stack(tmp_path, _Stack(1), 5)
    grown = _Stack(2)
    before = {k: v.clone() for k, v in grown.state_dict().items()}
    start = _run_stack(tmp_path, grown, 8, keep_grown=("m",))
    assert all(torch.equal(start[k], v) for k, v in before.items())


def test_load_grown_refuses_a_checkpoint_that_differs_in_more_than_added_layers() -> None:
    module = _Stack(1)
    assert load_grown(module, _Stack(1).state_dict()) is False
    with pytest.raises(ValueError, match="does not fit"):
        load_grown(module, _Stack(2).state_dict())  # layers the module lacks
    state = _Stack(1).state_dict()
    del state["out.bias"]
    with pytest.raises(ValueError, match="does not fit"):
        load_grown(module, state)


def _run_named(workdir: Path, name: str, module: _Stack, steps: int) -> dict:
    first: dict = {}

    def loss_fn(batch: list[int], _rng: np.random.Generator) -> torch.Tensor:
        first.setdefault("state", {k: v.clone() for k, v in module.state_dict().items()})
        return module(torch.ones(1, 2)).pow(2).sum()

    run_stage(name, workdir=workdir, modules={"m": module}, params=list(module.parameters()), lengths=[1] * 16,
              batch_size=4, steps=steps, lr=1e-2, seed=0, loss_fn=loss_fn, eval_fn=dict, eval_every=1000,
              checkpoint_every=1, progress=False, warmup_steps=2)
    return first.get("state", {})


def test_stages_sharing_a_module_go_on_from_each_others_latest_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = _Stack(1)
    _run_named(tmp_path, "a", module, 3)
    after_a = {k: v.clone() for k, v in module.state_dict().items()}
    start_b = _run_named(tmp_path, "b", _Stack(1), 3)  # a fresh stage starts from what stage a trained
    assert all(torch.equal(start_b[k], v) for k, v in after_a.items())
    after_b = load_checkpoint(tmp_path / "b.pt")["modules"]["m"]
    start_a = _run_named(tmp_path, "a", _Stack(1), 6)  # stage a raised: on from b's state, not its own older one
    assert all(torch.equal(start_a[k], v) for k, v in after_b.items())
    assert not torch.equal(start_a["out.weight"], after_a["out.weight"])
    notes = [r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if "note" in r]
    assert [(n["stage"], n["step"]) for n in notes] == [("a", 3)] and "another stage" in notes[0]["note"]
    saved_a = load_checkpoint(tmp_path / "a.pt")
    start_a = _run_named(tmp_path, "a", _Stack(1), 8)  # its own state is the latest: resumed as saved, no note
    assert all(torch.equal(start_a[k], v) for k, v in saved_a["modules"]["m"].items())
    assert saved_a["opt"]["state"] and load_checkpoint(tmp_path / "a.pt")["step"] == 8
    assert len([r for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines()) if "note" in r]) == 1
