"""The one settings object. Every knob of lalm lives here, read from flags, `LALM_*` environment variables
or a `.env` file, so the CLI, the server and the tests agree on defaults and limits."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DEFAULT_MODEL", "EngineKind", "ModelSpec", "Settings", "get_settings"]

DEFAULT_MODEL = "default"  # served when no model is given: the built-in composed model (lalm.engines.catalog)

EngineKind = Literal["auto", "vllm", "hf", "ctranslate2", "composed"]
Dtype = Literal["float32", "bfloat16", "float16", "auto"]


class ModelSpec(BaseModel):
    """One model the gateway serves: the `name` requests put in `model`, where its weights are (`source`, also
    spelt `model` as in a models file) and its engine. An option left None takes the gateway's setting of the same
    name (`Settings.model_specs` fills them in)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, description="The name clients send in `model` and /v1/models lists.")
    source: str = Field(min_length=1, validation_alias=AliasChoices("source", "model"),
                        description="Checkpoint folder, hub id, or what the engine reads (a Whisper folder).")
    engine: EngineKind | None = Field(None, description="Engine that runs it (see Settings.engine).")
    dtype: Dtype | None = Field(None, description="Weights dtype (see Settings.dtype).")
    max_model_len: int | None = Field(None, description="Context length (see Settings.max_model_len).")
    vllm_args: list[str] | None = Field(None, description="Extra vLLM arguments (see Settings.vllm_args).")
    upstreams: list[str] | None = Field(
        None, description="Running vLLM servers that serve it, instead of starting one (see Settings.upstreams)."
    )



class Settings(BaseSettings):
    """Settings for serving, decoding and limits. Environment: `LALM_<FIELD>` (e.g. `LALM_MAX_AUDIO_SECONDS`);
    lists as JSON (`LALM_API_KEYS='["k1","k2"]'`)."""

    # inf thresholds survive the JSON that hands the settings to worker processes (lalm.serve.workers)
    model_config = SettingsConfigDict(env_prefix="LALM_", env_file=".env", extra="ignore",
                                      ser_json_inf_nan="constants")

    # --- models and engines ---
    model: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="A model to serve: a checkpoint folder or hub id, served under that "
        "name, or NAME=SOURCE to serve it as NAME (e.g. default-lalm=models/default), with the engine options "
        f"below. Default, when no model is given here or in a models file: {DEFAULT_MODEL}.",
    )
    models_file: Path | None = Field(
        None, description="A YAML file listing models to serve: a list of mappings with `name`, `model` (the "
        "source) and optionally `engine`, `dtype`, `max_model_len`, `vllm_args`, `upstreams` (each defaults to "
        "the option of the same name here). Served beside the models of --model.",
    )
    models: list[ModelSpec] = Field(
        default_factory=list, description="Models to serve with options of their own, as the models file lists "
        "them (environment only, a JSON list of mappings); served beside the others.",
    )
    served_model_name: str | None = Field(
        None, description="Name reported by /v1/models and expected in requests, for a gateway serving one model "
        "given by path; defaults to the path. Name several models with NAME=SOURCE instead."
    )
    engine: EngineKind = Field(
        "auto", description="Engine of the models that do not name one. `vllm`: a vLLM OpenAI server process "
        "(production); `hf`: transformers in-process; `ctranslate2`: faster-whisper in-process (Whisper models); "
        "`composed`: a Whisper model with a text LLM; `auto`: vllm where it is installed, else hf."
    )
    dtype: Dtype = Field(
        "auto", description="Weights dtype for both engines; `auto` is float32 on CPU, bfloat16 on GPU."
    )
    upstreams: list[str] = Field(
        default_factory=list,
        description="URLs of running vLLM OpenAI servers to use instead of starting one (balanced round-robin).",
    )
    vllm_args: list[str] = Field(
        default_factory=list, description="Extra arguments appended to the vLLM server command line."
    )
    vllm_startup_timeout_s: float = Field(600.0, description="How long to wait for a started vLLM to be healthy.")
    vllm_log: str | None = Field(
        None, description="File that receives the output of the vLLM server `lalm serve` starts (default: ours)."
    )
    max_model_len: int | None = Field(
        None, description="Context length passed to vLLM (and used by the hf engine); default: the model's."
    )

    @field_validator("model", mode="before")
    @classmethod
    def _model_list(cls, value: object) -> object:
        # one model is a plain string (a flag, LALM_MODEL=path, Settings(model=path)); several a JSON list
        if isinstance(value, str):
            return json.loads(value) if value.lstrip().startswith("[") else [value]
        return value

    @model_validator(mode="after")
    def _models_resolve(self) -> Settings:
        self.model_specs()  # a bad list (a name twice, a missing models file) is refused when the settings are made
        return self

    def model_specs(self) -> list[ModelSpec]:
        """Every model to serve, in order (--model entries, the models file, `models`; DEFAULT_MODEL when none),
        each option filled in from these settings. Raises ValueError for a name given twice, a models file that
        cannot be read, `served_model_name` or `upstreams` with several models."""
        specs = [_spec_of_flag(value) for value in self.model]
        if self.models_file is not None:
            specs += _read_models_file(self.models_file)
        specs += self.models
        if not specs:
            specs = [ModelSpec(name=DEFAULT_MODEL, source=DEFAULT_MODEL)]
        if self.served_model_name is not None:
            if len(specs) != 1 or specs[0].name != specs[0].source:
                raise ValueError("served_model_name names the one model given by path; name each of several "
                                 "models with NAME=SOURCE (or `name` in the models file)")
            specs = [specs[0].model_copy(update={"name": self.served_model_name})]
        if self.upstreams and len(specs) != 1:
            raise ValueError("upstreams serve one model; with several, give each model its `upstreams` in the "
                             "models file")
        names = [s.name for s in specs]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"model names must differ; given more than once: {', '.join(twice)}")
        defaults = {"engine": self.engine, "dtype": self.dtype, "max_model_len": self.max_model_len,
                    "vllm_args": self.vllm_args, "upstreams": self.upstreams}
        return [s.model_copy(update={k: v for k, v in defaults.items() if getattr(s, k) is None}) for s in specs]

    # --- in-process Whisper engine (ctranslate2; the ear of the composed default) ---
    whisper_beam_size: int = Field(
        1, ge=1, le=16, description="Beams a Whisper model decodes a window with at temperature 0 (1: greedy; a "
        "try at a fallback temperature samples). openai-whisper's and faster-whisper's CLI default is 5; on lalm's "
        "VAD-cut windows it read no better than greedy decoding and took 1.5x the time (docs/benchmarks.md).",
    )

    # --- hf engine ---
    hf_max_batch_size: int = Field(8, description="Most requests the transformers engine decodes together.")
    hf_batch_wait_ms: float = Field(
        10.0, description="How long the transformers engine waits for more requests before starting a batch."
    )

    # --- HTTP ---
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, description="Port the gateway listens on.")
    workers: int = Field(
        1, ge=1, description="Gateway processes sharing the port (uvicorn workers), for more than one core of "
        "request handling. A vLLM server the gateway starts is started once, by the parent process, and shared; "
        "/metrics adds up every worker (Prometheus multiprocess mode); max_concurrency and "
        "realtime_max_sessions hold per worker. Not with the hf engine (each worker would load the model).",
    )
    api_keys: list[str] = Field(
        default_factory=list, description="Accepted bearer keys; empty means no authentication."
    )

    # --- limits ---
    max_upload_bytes: int = Field(
        25 * 1024 * 1024, description="Largest accepted audio file, decoded base64 or fetched audio_url body."
    )
    max_request_bytes: int | None = Field(
        None, description="Largest request body; default: one base64 audio of max_upload_bytes plus 1 MiB of text."
    )
    max_audio_seconds: float = Field(4 * 3600.0, description="Longest accepted audio, in seconds.")
    min_audio_seconds: float = Field(
        0.1, description="Shortest accepted audio, in seconds (OpenAI refuses audio under 0.1 s too)."
    )
    request_timeout_s: float = Field(600.0, description="Wall-clock limit for one request, in seconds.")
    sse_heartbeat_s: float = Field(
        15.0, gt=0, description="Seconds without an event after which a stream sends an SSE comment line "
        "(`: keep-alive`), so proxies that drop idle connections keep it open; also the longest a stream's "
        "response waits for its first event before it starts (a later failure is the stream's error event)."
    )
    max_concurrency: int = Field(64, description="Requests served at once; beyond this the gateway answers 429.")
    default_max_tokens: int = Field(
        1024, description="max_tokens when a request gives none (also bounded by the context length)."
    )
    window_max_tokens: int = Field(
        448, description="Most tokens transcribed or translated per 30 s window (Whisper's limit is 448 too)."
    )
    window_concurrency: int = Field(
        8, description="Windows of one long recording sent to the engine at once (memory stays flat beyond)."
    )

    # --- temperature fallback of transcriptions and translations at temperature 0 (lalm.longform.fallback) ---
    fallback_temperatures: list[float] = Field(
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], min_length=1,
        description="Temperatures a window of a transcription or translation asked for at temperature 0 is "
        "decoded at, in turn, until a try passes both thresholds below (Whisper's schedule; openai-whisper and "
        "faster-whisper default to it). One temperature turns the fallback off.",
    )
    @field_validator("fallback_temperatures")
    @classmethod
    def _greedy_first(cls, temperatures: list[float]) -> list[float]:
        # the fallback starts from the greedy answer that temperature 0 asks for; sampling temperatures beyond 2
        # are not the API's
        if temperatures[0] != 0.0 or any(not 0.0 <= t <= 2.0 for t in temperatures):
            raise ValueError("fallback_temperatures must start at 0.0, each between 0.0 and 2.0")
        return temperatures

    compression_ratio_threshold: float = Field(
        2.4, description="A window's try whose text's zlib compression ratio is above this is decoded again at "
        "the next temperature: the text loops (Whisper's default; inf turns the rule off).",
    )
    logprob_threshold: float = Field(
        -1.0, description="A window's try whose tokens' mean logprob is below this is decoded again at the next "
        "temperature (Whisper's default; -inf turns the rule off).",
    )

    # --- on-screen text of videos (lalm.screen_text) ---
    screen_text: bool = Field(
        False, description="Read the on-screen text of video uploads (slides, subtitles, captions) as context for "
        "each audio window when a request does not say (`lalm_screen_text`). Off by default: OCR costs CPU.",
    )
    screen_text_probe_seconds: float = Field(
        0.5, gt=0, description="Seconds between the video frames looked at; only frames whose picture changed "
        "are read.",
    )
    screen_text_max_frames_per_minute: int = Field(
        20, ge=1, description="Most frames read (OCR'd) per minute of video: the ceiling on OCR time per minute "
        "(~0.5 s of CPU a 720p frame).",
    )
    screen_text_min_score: float = Field(
        0.8, ge=0, le=1, description="Lines the OCR reads with a lower confidence are dropped."
    )
    screen_text_margin_seconds: float = Field(
        0.5, ge=0, description="A window's context holds the lines on screen during it and this many seconds "
        "around it (a line's times are exact to a probe; the lines of a slide shown only next to a window make "
        "Whisper write worse).",
    )
    screen_text_max_tokens: int = Field(
        160, ge=0, description="Most tokens (estimated) of a window's context: the request's prompt, then "
        "on-screen lines.",
    )

    # --- realtime transcription (WebSocket /v1/realtime) ---
    realtime_max_sessions: int = Field(
        32, description="Realtime sessions open at once; a session beyond it gets an error event and is closed."
    )
    realtime_max_chunk_bytes: int = Field(
        1 << 20, description="Largest decoded audio in one input_audio_buffer.append (1 MiB: ~22 s at 24 kHz)."
    )

    # --- remote audio URLs ---
    allow_remote_audio_urls: bool = Field(
        False,
        description="Let audio_url fetch http(s) URLs through the fetch guard (lalm/serve/fetch.py), which refuses "
        "loopback, private, link-local, metadata and other non-public addresses after DNS and on every redirect. "
        "data: URLs always work.",
    )
    url_fetch_allowlist: list[str] = Field(
        default_factory=list,
        description="`host` or `host:port` entries (IPv6 as `[addr]:port` or bare) fetched even when the guard "
        "would refuse their addresses, e.g. a test's own loopback server. A name matches only that name, an IP "
        "any spelling of it. Use sparingly.",
    )
    url_fetch_timeout_s: float = Field(
        20.0, description="Total time for fetching one audio URL: resolution, every redirect and the whole body."
    )
    url_fetch_max_redirects: int = Field(
        3, description="Redirects followed when fetching an audio URL, each hop checked again; 0 follows none."
    )


def _spec_of_flag(value: str) -> ModelSpec:
    """A --model value: `NAME=SOURCE`, or a source served under its own name."""
    name, eq, source = value.partition("=")
    return ModelSpec(name=name, source=source) if eq and name and source else ModelSpec(name=value, source=value)


def _read_models_file(path: Path) -> list[ModelSpec]:
    """The models a YAML models file lists (see Settings.models_file). Raises ValueError naming the file."""
    try:
        entries = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"models file {path}: {exc}") from None
    if not isinstance(entries, list):
        raise ValueError(f"models file {path}: expected a list of models (mappings with name and model)")
    try:
        return [ModelSpec.model_validate(entry) for entry in entries]
    except ValidationError as exc:
        raise ValueError(f"models file {path}: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
