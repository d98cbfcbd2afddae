"""`lalm serve`: the OpenAI-compatible gateway. Its flags are generated from the settings object
(lalm.config.Settings): one flag per field, with the field's description as help, so every knob shows in
`lalm serve --help` and none can be missing; `--help` groups them in panels (`_PANELS`). Each flag also reads
from its `LALM_*` environment variable; a flag given on the command line wins over the environment."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo
from rich.markup import escape

from lalm.config import Settings
from lalm.serve.cli_help import PanelHelpCommand

__all__ = ["register", "serve_command"]

# List fields take one value per flag, repeated; these have singular flag names.
_SINGULAR = {"upstreams": "upstream", "api_keys": "api-key", "vllm_args": "vllm-arg",
             "fallback_temperatures": "fallback-temperature"}

# The panels of `lalm serve --help`, in order; a field in none of them is listed under "Options".
_PANELS = {
    "Model and engine": ("model", "models_file", "served_model_name", "engine", "dtype", "upstreams",
                         "vllm_args", "vllm_startup_timeout_s", "vllm_log", "max_model_len", "hf_max_batch_size",
                         "hf_batch_wait_ms", "whisper_beam_size", "default_max_tokens"),
    "Server": ("host", "port", "workers", "max_concurrency", "request_timeout_s", "sse_heartbeat_s"),
    "Audio limits": ("max_upload_bytes", "max_request_bytes", "max_audio_seconds", "min_audio_seconds"),
    "Long audio": ("window_max_tokens", "window_concurrency", "fallback_temperatures", "compression_ratio_threshold",
                   "logprob_threshold"),
    "Realtime": ("realtime_max_sessions", "realtime_max_chunk_bytes"),
    "Screen text": ("screen_text", "screen_text_probe_seconds", "screen_text_max_frames_per_minute",
                    "screen_text_min_score", "screen_text_margin_seconds", "screen_text_max_tokens"),
    "Security": ("api_keys", "allow_remote_audio_urls", "url_fetch_allowlist", "url_fetch_timeout_s",
                 "url_fetch_max_redirects"),
}
_PANEL_OF = {field: panel for panel, fields in _PANELS.items() for field in fields}
# Settings without a flag: models with options of their own are given on the command line by --models-file
_ENV_ONLY = {"models"}


def _flag_type(annotation: Any) -> Any:
    """The option type of a settings field: its type without None (every flag defaults to None, meaning
    "not given", so the environment and the field default apply)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    return annotation


def _option(name: str, field: FieldInfo) -> inspect.Parameter:
    kind = _flag_type(field.annotation)
    flag = "--" + _SINGULAR.get(name, name.replace("_", "-"))
    metavar = None
    if typing.get_origin(kind) is list:
        # one value per flag; the environment variable (named after the field, not the flag) takes them all
        metavar = f"<{getattr(typing.get_args(kind)[0], '__name__', 'value')}>"
        note = f"Repeat for several (env LALM_{name.upper()}: a JSON list)."
    else:
        default = field.get_default(call_default_factory=True)
        note = "" if default is None else f"[default: {default}]"
    if kind is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    # escaped: the help is rendered as rich markup, where `[addr]` would be read as a tag and vanish
    option = typer.Option(flag, help=escape(f"{field.description} {note}".strip()), show_default=False,
                          metavar=metavar, rich_help_panel=_PANEL_OF.get(name))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind | None, option])


def _serve(log_level: str = "info", **given: Any) -> None:
    """Serve the OpenAI API (chat completions with audio, transcriptions, translations) for a model.

    Every flag can also be set by an environment variable, LALM_ and the flag's name in capitals with
    underscores (--max-audio-seconds: LALM_MAX_AUDIO_SECONDS; a repeatable flag names its own), or in a .env
    file; a flag given wins."""
    from lalm.engines.catalog import BUILTIN
    from lalm.errors import LalmError
    from lalm.modeling.locate import locate_model
    from lalm.serve.backend import engine_kind

    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None and v != []})
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        # a missing folder is named now, before anything is imported or started; the default (no model given by
        # flag, file or environment) is a local folder, never a hub id
        given = bool({"model", "models_file", "models"} & settings.model_fields_set)
        for spec in settings.model_specs():
            if not spec.upstreams and engine_kind(spec) in ("vllm", "hf") and spec.source not in BUILTIN:
                locate_model(spec.source, hub=given)
        _run(settings, log_level)
    except LalmError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(settings: Settings, log_level: str) -> None:
    """Serve until stopped: one uvicorn process, or `workers` of them sharing the port."""
    import logging

    import uvicorn

    from lalm.serve.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.workers > 1:
        from lalm.serve.workers import serve_workers

        serve_workers(settings, log_level)
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                timeout_graceful_shutdown=30)


def serve_command() -> typing.Callable[..., None]:
    """`_serve` with a signature of one option per settings field (plus --log-level), which typer reads."""

    def serve(**kwargs: Any) -> None:
        _serve(**kwargs)

    # sorted by panel (stable: settings order within one), as --help lists them
    order = {panel: i for i, panel in enumerate(_PANELS)}
    fields = sorted(Settings.model_fields.items(), key=lambda item: order.get(_PANEL_OF.get(item[0]), len(order)))
    params = [_option(name, field) for name, field in fields if name not in _ENV_ONLY]
    params.append(inspect.Parameter("log_level", inspect.Parameter.KEYWORD_ONLY, default="info", annotation=Annotated[
        str, typer.Option(help="uvicorn log level.", rich_help_panel="Server")]))
    serve.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    serve.__doc__ = _serve.__doc__
    return serve


def register(app: typer.Typer) -> None:
    app.command("serve", cls=PanelHelpCommand)(serve_command())
