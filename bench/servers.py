"""The servers the benchmarks start: a vLLM server on a checkpoint (or one already running), and `lalm serve`
in front of it (or on the transformers engine), each a child process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from lalm.engines.vllm_process import VLLMProcess
from lalm.serve.process import GatewayProcess

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunningVLLM:
    """A vLLM server started by someone else at `url` (http://127.0.0.1:PORT): the benchmark measures it
    and leaves it running."""

    url: str

    @property
    def pid(self) -> int:
        """The process listening on the server's port (its API server; the engine runs in its children).
        Raises RuntimeError when no process of this user listens there."""
        port = urlsplit(self.url).port
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid is not None:
                return conn.pid
        raise RuntimeError(f"no process of this user listens on port {port} ({self.url})")

    def stop(self) -> None:
        """Nothing: the server is not ours to stop."""


def start_vllm(model: str | None, work: Path, upstream: str | None = None) -> tuple[VLLMProcess | RunningVLLM, str]:
    """A vLLM server on `model` (default: a tiny random checkpoint built in `work`), started and healthy; returns
    it and the model folder. With `upstream`, the vLLM server already running there (serving `model`, which
    is then required, as "tiny") instead. Raises ValueError when `upstream` comes without `model`."""
    if upstream is not None:
        if model is None:
            raise ValueError("a running vLLM server (--upstream) needs the checkpoint it serves (--model)")
        print(f"using the vLLM server at {upstream} (serving {model})", flush=True)
        return RunningVLLM(upstream.rstrip("/")), model
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
