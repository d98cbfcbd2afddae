"""`lalm serve`'s flags are generated from the settings object: every field has a flag with its description
as help, listed whole in titled panels at 80 columns, and a flag given reaches the settings (the environment
and field defaults apply otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing

import pytest
import typer
from typer.testing import CliRunner

import lalm.serve.cli as serve_cli
from lalm.cli import app
from lalm.config import Settings


def _serve_params() -> dict:
    command = typer.main.get_command(app).commands["serve"]
    return {param.name: param for param in command.params}


def test_every_setting_has_a_flag_with_its_description():
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "1000", "TERMINAL_WIDTH": "1000"})
    assert out.exit_code == 0
    text = " ".join(out.output.split())
    params = _serve_params()
    for name, field in Settings.model_fields.items():
        if name in serve_cli._ENV_ONLY:
            continue
        assert " ".join(field.description.split()) in text, name
        if typing.get_origin(params[name].type_descriptor.annotation) is list:  # the flag's name is singular
            assert f"(env LALM_{name.upper()}: a JSON list)" in text, name


def test_serve_help_fits_80_columns_in_panels():
    """Every setting's flag is listed whole (none cut to `--served-model-n…`) at 80 columns, in titled panels."""
    env = {k: v for k, v in os.environ.items() if k != "TERMINAL_WIDTH"}
    out = subprocess.run([sys.executable, "-m", "lalm.cli", "serve", "--help"], env={**env, "COLUMNS": "80"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    titles = re.findall(r"^╭─ (.+?) ─", out.stdout, flags=re.M)
    assert titles == ["Model and engine", "Server", "Audio limits", "Long audio", "Realtime", "Screen text",
                      "Security", "Options"]
    words = set(out.stdout.split())
    params = _serve_params()
    for name in Settings.model_fields.keys() - serve_cli._ENV_ONLY:
        for flag in params[name].opts + params[name].secondary_opts:
            assert flag in words, flag
    # each flag sits in its panel: --screen-text-max-frames-per-minute under "Screen text", not elsewhere
    screen = out.stdout.split("╭─ Screen text")[1].split("╰")[0]
    assert "--screen-text-max-frames-per-minute <int>" in screen


def test_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch):
    seen: dict = {}
    monkeypatch.setattr(serve_cli, "_serve", lambda **kw: seen.update(kw))
    args = ["serve", "--model", "m", "--engine", "hf", "--upstream", "http://127.0.0.1:1", "--upstream",
            "http://127.0.0.1:2", "--api-key", "k", "--window-max-tokens", "12", "--hf-batch-wait-ms", "2.5",
            "--allow-remote-audio-urls", "--url-fetch-allowlist", "127.0.0.1:9", "--max-model-len", "64"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    settings = Settings(**{k: v for k, v in seen.items() if k != "log_level" and v is not None and v != []})
    assert (settings.model, settings.engine, settings.api_keys) == (["m"], "hf", ["k"])
    assert settings.upstreams == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert (settings.window_max_tokens, settings.hf_batch_wait_ms, settings.max_model_len) == (12, 2.5, 64)
    assert settings.allow_remote_audio_urls and settings.url_fetch_allowlist == ["127.0.0.1:9"]
    assert seen["max_concurrency"] is None  # not given: the environment or the field default applies


def test_a_bad_value_is_refused_before_serving():
    out = CliRunner().invoke(app, ["serve", "--engine", "tensorrt"])
    assert out.exit_code == 2
