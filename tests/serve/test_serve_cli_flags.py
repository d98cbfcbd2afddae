"""`lalm serve`'s flags are generated from the settings object: every field has a flag with its description
as help, and a flag given reaches the settings (the environment and field defaults apply otherwise)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import lalm.serve.cli as serve_cli
from lalm.cli import app
from lalm.config import Settings


def test_every_setting_has_a_flag_with_its_description():
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "1000", "TERMINAL_WIDTH": "1000"})
    assert out.exit_code == 0
    text = " ".join(out.output.split())
    for name, field in Settings.model_fields.items():
        if name in serve_cli._ENV_ONLY:
            continue
        assert f"(env LALM_{name.upper()}" in text, name
        assert " ".join(field.description.split()) in text, name


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
