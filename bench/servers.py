"""The servers the benchmarks start: a vLLM server on a checkpoint, and `lalm serve` in front of it (or on the
transformers engine), each a child process."""

from __future__ import annotations

from pathlib import Path

from lalm.engines.vllm_process import VLLMProcess
from lalm.serve.process import GatewayProcess

ROOT = Path(__file__).resolve().parents[1]


def start_vllm(model: str | None, work: Path) -> tuple[VLLMProcess, str]:
    """A vLLM server on `model` (default: a tiny random checkpoint built in `work`), started and healthy; returns
    it and the model folder."""
    if model is None:
        from lalm.modeling.tiny import make_tiny

        model = str(make_tiny(work / "tiny"))
    vllm = VLLMProcess(model, served_model_name="tiny", dtype="float32", max_model_len=4096,
                       log_path=work / "vllm.log")
    print(f"starting vLLM on {model} (log: {work / 'vllm.log'})", flush=True)
    vllm.start(timeout=900)
    return vllm, model


def start_gateway(upstream: str | None, model: str, log: Path, *extra: str,
                  env: dict[str, str] | None = None, managed_vllm: bool = False) -> GatewayProcess:
    """A gateway in front of the vLLM server at `upstream`, or with a vLLM server of its own as its child
    (`managed_vllm`), or on the transformers engine when neither is given (extra `lalm serve` flags, extra
    environment), once /health answers 200 (lalm.serve.process, the launcher the tests use too)."""
    if managed_vllm:
        engine = ["--engine", "vllm", "--dtype", "float32", "--max-model-len", "4096"]
    else:
        engine = ["--engine", "vllm", "--upstream", upstream] if upstream else ["--engine", "hf"]
    return GatewayProcess.start([*engine, "--model", model, "--served-model-name", "tiny", "--log-level", "warning",
                                 *extra], log, env=env, timeout=600 if managed_vllm else 300, cwd=ROOT)


def stop_gateway(gateway: GatewayProcess) -> None:
    """SIGTERM (a clean shutdown) and wait; kill if it does not stop."""
    gateway.stop(60)
