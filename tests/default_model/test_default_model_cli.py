"""`lalm train default-model` options: the device is any torch device, checked before anything is built."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from lalm.cli import app


def _train(*args: str):
    return CliRunner().invoke(app, ["train", "default-model", *args])


def test_an_unknown_device_is_refused_before_anything_runs() -> None:
    result = _train("--device", "gpu0")
    assert result.exit_code == 2 and "--device" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="torch sees a CUDA device here")
def test_cuda_without_a_cuda_device_is_refused() -> None:
    result = _train("--device", "cuda")
    assert result.exit_code == 2 and "no CUDA device" in result.output


def test_an_unknown_stage_is_refused() -> None:
    result = _train("--until", "dpo", "--device", "cpu")
    assert result.exit_code == 2 and "--until" in result.output
