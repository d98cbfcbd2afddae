"""A model that is not there is a one-line local error, with no network: `lalm serve` with no --model and no
`models/tiny` folder, path-like names, and hub ids while the hub is off. The commands run with HF_ENDPOINT
pointing at a loopback socket that counts connections (and offline mode unset), so any attempt to ask the hub
would show."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lalm.modeling.locate import ModelNotFoundError, is_hub_id, locate_model


@pytest.fixture
def hub() -> Iterator[socket.socket]:
    """A listening socket standing in for the hub: a connection attempt is left pending in its backlog."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def _connected(server: socket.socket) -> bool:
    return bool(select.select([server], [], [], 0)[0])


def _lalm(cwd: Path, hub: socket.socket, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    environ.pop("LALM_MODEL", None)
    environ["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.getsockname()[1]}"
    return subprocess.run([sys.executable, "-m", "lalm.cli", *args], cwd=cwd, env={**environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_serve_names_the_missing_tiny_folder(tmp_path: Path, hub: socket.socket) -> None:
    (tmp_path / "models").mkdir()  # a models folder without the tiny checkpoint built in it
    out = _lalm(tmp_path, hub, "serve", "--model", "models/tiny")
    assert out.returncode == 2
    assert out.stderr == ("error: no model folder at models/tiny; build it with `lalm make-tiny models/tiny` "
                          "or pass --model\n")
    assert not _connected(hub)


@pytest.mark.parametrize("name", ["./missing", "/nonexistent/model", "models/missing", "a/b/c"])
def test_serve_with_a_missing_folder_asks_no_hub(tmp_path: Path, hub: socket.socket, name: str) -> None:
    (tmp_path / "models").mkdir()  # `models/missing` is then a path under an existing folder, not `org/name`
    out = _lalm(tmp_path, hub, "serve", "--model", name)
    assert out.returncode == 2
    assert out.stderr == f"error: no model folder at {name}; build it with `lalm make-tiny {name}` or pass --model\n"
    assert not _connected(hub)


def test_a_hub_id_with_the_hub_off_is_a_local_error(tmp_path: Path, hub: socket.socket) -> None:
    out = _lalm(tmp_path, hub, "serve", "--model", "some-org/some-model", HF_HUB_OFFLINE="1")
    assert out.returncode == 2
    assert out.stderr.startswith("error: no model folder at some-org/some-model, and the hub is off")
    assert out.stderr.count("\n") == 1
    assert not _connected(hub)


def test_hub_ids_are_only_org_slash_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert is_hub_id("Qwen/Qwen2-Audio-7B-Instruct")
    for name in ("models/tiny", "tiny", "./org/name", "/org/name", "~/name", "org/name/more", "org/", "/name",
                 "org\\name"):
        assert not is_hub_id(name), name


def test_locate_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    (tmp_path / "here").mkdir()
    assert locate_model("here") == "here"
    assert locate_model("org/name") == "org/name"  # online: transformers or vLLM fetches it
    with pytest.raises(ModelNotFoundError, match="no model folder at org/name;"):
        locate_model("org/name", hub=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="the hub is off") as err:
        locate_model("org/name")
    assert (err.value.status, err.value.code, err.value.param) == (404, "model_not_found", "model")


def test_load_checkpoint_of_a_missing_folder_asks_no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lalm.modeling import checkpoint

    def no_hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the loader was reached")

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(checkpoint.Qwen2AudioForConditionalGeneration, "from_pretrained", no_hub)
    with pytest.raises(ModelNotFoundError, match=r"no model folder at \./models/tiny"):
        checkpoint.load_checkpoint("./models/tiny")
