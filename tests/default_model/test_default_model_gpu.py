"""The GPU path of the default-model recipe, on the CPU: pack (gpu_pack.py) -> the device entry point run once
per chunk in child processes, as the lent machine runs it (gpu_run.py, device=cpu, a temp folder for /tmp and
one for $OUT) -> import of the files it brings back (gpu_import.py) -> the CPU recipe goes on from them and
exports. Plus the chunking the 64 MiB per call needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_default_model_recipe import TINY_RECIPE, _config

from lalm.default_model.gpu_import import import_gpu
from lalm.default_model.gpu_pack import decode_opus, encode_opus, pack_gpu
from lalm.default_model.gpu_run import CHUNK_NAME, MANIFEST, GPUBundleError, join_chunks, receive, split_file
from lalm.default_model.recipe import run_recipe

REPO = Path(__file__).resolve().parents[2]


def test_chunks_reassemble_byte_identically_within_the_cap(tmp_path: Path) -> None:
    data = os.urandom(3 * 1000 + 17)
    src = tmp_path / "bundle.tar"
    src.write_bytes(data)
    manifest = split_file(src, tmp_path / "calls", 1000)
    calls = sorted((tmp_path / "calls").iterdir())
    assert manifest["chunks"] == len(calls) == 4
    assert all((c / CHUNK_NAME).stat().st_size <= 1000 for c in calls)
    assert [json.loads((c / MANIFEST).read_text())["index"] for c in calls] == [0, 1, 2, 3]
    joined = join_chunks([c / CHUNK_NAME for c in calls], tmp_path / "joined", manifest["bundle_sha256"])
    assert joined.read_bytes() == data
    # a chunk out of order (or from another pack) is refused, not unpacked
    with pytest.raises(GPUBundleError):
        join_chunks([c / CHUNK_NAME for c in reversed(calls)], tmp_path / "bad", manifest["bundle_sha256"])


def test_opus_round_trip_keeps_length_and_speech(speech) -> None:
    data = encode_opus(speech)
    back = decode_opus(data)
    assert len(back) == len(speech)
    assert len(data) * 8 / (len(speech) / 16000) < 24000  # about 16 kbps
    corr = float(torch.corrcoef(torch.stack([torch.from_numpy(speech), torch.from_numpy(back)]))[0, 1])
    assert corr > 0.8


def test_receive_unpacks_once_every_chunk_is_there_and_a_rerun_needs_only_the_manifest(tmp_path: Path) -> None:
    import tarfile

    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(5000))
    with tarfile.open(tmp_path / "bundle.tar", "w") as tar:
        tar.add(payload, arcname="payload.bin")
    split_file(tmp_path / "bundle.tar", tmp_path / "calls", 4096)
    calls = sorted((tmp_path / "calls").iterdir())
    machine = tmp_path / "machine-tmp"
    assert [receive(c, machine) for c in calls[:-1]] == [None] * (len(calls) - 1)
    bundle = receive(calls[-1], machine)
    assert (bundle / "payload.bin").read_bytes() == payload.read_bytes()
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    (rerun / MANIFEST).write_text((calls[-1] / MANIFEST).read_text())
    assert receive(rerun, machine) == bundle
    with pytest.raises(GPUBundleError):  # a fresh machine cannot go on from a manifest alone
        receive(rerun, tmp_path / "fresh-machine")


@pytest.mark.slow
def test_pack_device_run_import_and_export(tmp_path: Path, tiny_model: Path) -> None:
    cfg = _config(tmp_path / "home", tiny_model)
    run_recipe(cfg, until="ctc", progress=False)  # stage a done here; b and c are left to the "GPU"
    cap = 1 << 20
    manifest = pack_gpu(cfg, tmp_path / ".gpu", chunk_bytes=cap, progress=False)
    calls = sorted((tmp_path / ".gpu").glob("call-*"))
    assert manifest["steps"] == {"ctc": TINY_RECIPE["ctc"]["steps"]} and len(calls) == manifest["chunks"] >= 2
    assert all((c / CHUNK_NAME).stat().st_size <= cap for c in calls)

    device_tmp, out = tmp_path / "device-tmp", tmp_path / "OUT"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    for k, call in enumerate(calls):
        run = subprocess.run([sys.executable, "-m", "lalm.default_model.gpu_run", str(call), "--tmp", str(device_tmp),
                              "--out", str(out), "--device", "cpu", "--minutes", "10"],
                             env=env, capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stderr[-3000:]
        assert (out / "gpu_result.json").exists() == (k == len(calls) - 1), run.stdout

    result = json.loads((out / "gpu_result.json").read_text())
    stages = result["stages"]
    assert {s: v["trained"] for s, v in stages.items()} == {"ctc": False, "copy": True, "sft": True}
    assert stages["sft"]["step"] == TINY_RECIPE["sft"]["steps"] and stages["ctc"]["from_sft"] == ["head"]
    assert {"heldout_wer", "no_speech_rate"} <= set(result["figures"])
    back = list(out.iterdir())
    assert len(back) <= 8 and all(p.stat().st_size <= 16 << 20 for p in back)

    # a work folder without checkpoints gets every stage (else the recipe would seed them from older exports)
    fresh = _config(tmp_path / "fresh", tiny_model)
    assert import_gpu(out, fresh) == {stage: TINY_RECIPE[stage]["steps"] for stage in ("ctc", "copy", "sft")}
    # here stage a's own checkpoint (with its optimizer state) is kept; the local stage a's latest head is
    # forgotten, so stage c goes on from the GPU's head and not from that older one (loop.run_stage)
    assert {p.name for p in Path(cfg.workdir).glob("latest-*.pt")} == {"latest-head.pt", "latest-scorer.pt"}
    assert import_gpu(out, cfg) == {"copy": TINY_RECIPE["copy"]["steps"], "sft": TINY_RECIPE["sft"]["steps"]}
    assert not list(Path(cfg.workdir).glob("latest-*.pt"))
    sft = torch.load(Path(cfg.workdir) / "sft.pt", weights_only=False)
    part = load_file(out / result["stages"]["sft"]["files"][0])
    key = next(k for k in part if k.startswith("head/"))
    assert torch.equal(sft["modules"]["head"][key.removeprefix("head/")], part[key])
    with pytest.raises(GPUBundleError):  # never back over further training
        sft["step"] += 5
        torch.save(sft, Path(cfg.workdir) / "sft.pt")
        import_gpu(out, cfg)
    import_gpu(out, cfg, force=True)

    # the CPU goes on from the GPU's step and exports
    more = _config(tmp_path / "home", tiny_model, sft={**TINY_RECIPE["sft"], "steps": TINY_RECIPE["sft"]["steps"] + 1})
    figures = run_recipe(more, progress=False)
    record = json.loads((Path(more.out) / "default_model.json").read_text())
    assert record["steps"]["sft"] == TINY_RECIPE["sft"]["steps"] + 1 and "heldout_wer" in figures
    log = (Path(more.workdir) / "log.jsonl").read_text()
    assert '"stage": "sft", "step": 3' in log and '"stage": "copy"' in log


def test_cli_refuses_a_folder_that_is_not_a_gpu_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lalm.cli import app

    result = CliRunner().invoke(app, ["train", "default-model", "--workdir", str(tmp_path / "work"),
                                      "--import-gpu", str(tmp_path)])
    assert result.exit_code == 2 and "gpu_result.json" in result.output
    assert not (tmp_path / "work").exists()
