"""`lalm serve`: the OpenAI-compatible gateway. Every flag has an `LALM_*` environment variable (the
settings object, lalm.config); a flag given on the command line wins over the environment."""

from __future__ import annotations

from typing import Annotated

import typer

_ENV = "(env LALM_{})"


def serve(
    model: Annotated[str | None, typer.Option(help=f"Checkpoint folder or hub id. {_ENV.format('MODEL')}")] = None,
    engine: Annotated[str | None, typer.Option(
        help=f"vllm (a vLLM server process; the default where vLLM is installed) or hf (transformers "
             f"in-process). {_ENV.format('ENGINE')}")] = None,
    upstream: Annotated[list[str] | None, typer.Option(
        help="URL of a running vLLM OpenAI server to use instead of starting one; repeat to balance several. "
             "(env LALM_UPSTREAMS, a JSON list)")] = None,
    host: Annotated[str | None, typer.Option(help=f"Address to listen on. {_ENV.format('HOST')}")] = None,
    port: Annotated[int | None, typer.Option(help=f"Port to listen on. {_ENV.format('PORT')}")] = None,
    api_key: Annotated[list[str] | None, typer.Option(
        help="Accepted bearer key; repeat for several. None: no authentication. "
             "(env LALM_API_KEYS, a JSON list)")] = None,
    served_model_name: Annotated[str | None, typer.Option(
        help=f"Model name clients send (default: --model). {_ENV.format('SERVED_MODEL_NAME')}")] = None,
    dtype: Annotated[str | None, typer.Option(
        help=f"float32, bfloat16, float16 or auto. {_ENV.format('DTYPE')}")] = None,
    max_model_len: Annotated[int | None, typer.Option(
        help=f"Context length (default: the model's). {_ENV.format('MAX_MODEL_LEN')}")] = None,
    vllm_arg: Annotated[list[str] | None, typer.Option(
        help="Extra argument for the vLLM server command line, e.g. --vllm-arg=--tensor-parallel-size=2. "
             "(env LALM_VLLM_ARGS, a JSON list)")] = None,
    max_upload_bytes: Annotated[int | None, typer.Option(
        help=f"Largest audio upload. {_ENV.format('MAX_UPLOAD_BYTES')}")] = None,
    max_audio_seconds: Annotated[float | None, typer.Option(
        help=f"Longest audio. {_ENV.format('MAX_AUDIO_SECONDS')}")] = None,
    request_timeout_s: Annotated[float | None, typer.Option(
        help=f"Time limit of one request. {_ENV.format('REQUEST_TIMEOUT_S')}")] = None,
    max_concurrency: Annotated[int | None, typer.Option(
        help=f"Requests in flight before answering 429. {_ENV.format('MAX_CONCURRENCY')}")] = None,
    allow_remote_audio_urls: Annotated[bool | None, typer.Option(
        help=f"Fetch http(s) audio_url parts (through the fetch guard). "
             f"{_ENV.format('ALLOW_REMOTE_AUDIO_URLS')}")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the OpenAI API (chat completions with audio, transcriptions, translations) for a model."""
    import logging

    import uvicorn

    from lalm.config import Settings
    from lalm.serve.app import create_app

    given = {
        "model": model, "engine": engine, "upstreams": upstream, "host": host, "port": port, "api_keys": api_key,
        "served_model_name": served_model_name, "dtype": dtype, "max_model_len": max_model_len,
        "vllm_args": vllm_arg, "max_upload_bytes": max_upload_bytes, "max_audio_seconds": max_audio_seconds,
        "request_timeout_s": request_timeout_s, "max_concurrency": max_concurrency,
        "allow_remote_audio_urls": allow_remote_audio_urls,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None and v != []})
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                timeout_graceful_shutdown=30)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
