"""The API's documentation pages: the description shown at the top of /docs (what lalm adds to the OpenAI API
and how it behaves), and /docs (Swagger UI) and /redoc (ReDoc) served with their scripts and styles from the
installed fastapi-offline package instead of FastAPI's default CDN, so both pages work with no network."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["API_DESCRIPTION", "DOCS_ASSETS", "install_docs"]

DOCS_ASSETS = "/docs/assets"
# The pages may load from the gateway only: ReDoc's bundle shows its vendor's logo from that vendor's CDN, which
# this keeps the browser from asking for (the logo is left out). Inline: Swagger UI's start script, both styles.
_SAME_ORIGIN_ONLY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                     "img-src 'self' data:; worker-src 'self' blob:")

API_DESCRIPTION = """
An OpenAI-compatible gateway for Qwen2-Audio-style audio-language models, in front of vLLM (or
transformers in-process). Use any OpenAI client: `base_url=http://HOST:PORT/v1`.

## Audio input
Chat messages take audio as `input_audio` parts (`{"data": <base64>, "format": "wav"}`; any container
below, whatever `format` says) or `audio_url` parts (`data:audio/...;base64,...`; http(s) URLs only
when the server sets `LALM_ALLOW_REMOTE_AUDIO_URLS`). Several audio parts per message and multi-turn
conversations work. Uploads to `/v1/audio/*` may be wav, flac, mp3, ogg, opus, m4a, aac, webm, or a
video (mp4, mkv, mov, webm), whose audio track is used.

## Task presets (lalm extra field `task` in chat completions)
| task | per window of at most 30 s | audio longer than 30 s |
|---|---|---|
| (none) | plain chat, the conversation as sent | as `qa` with the message's text as question (`describe` if none) |
| `transcribe` | transcript | windows cut at pauses, transcripts joined |
| `translate` | translation into `language` (default English) | same as transcribe |
| `summarize` | summary | one text-only call reduces the window summaries |
| `emotion` | emotion and reason | text-only reduction: dominant emotion and changes |
| `qa` | answer to the user's text (the question) | text-only reduction of the per-window answers |
| `describe` | description of the sounds | text-only reduction of the descriptions |

A task runs on the audio of the last user message (several parts are joined with one second of silence);
earlier turns are sent as history. Extra fields: `language` (translate's target), `context` (names,
terms or slide text that help recognition), `lalm_screen_text` (read the on-screen text of video parts and give
each window the text shown around it as context). The model is never sent more than 30 s at once and audio is
never cut silently: long recordings are split into windows at pauses (silence is not sent at all;
for transcription, nor are noise and music).
Usage counts every engine call of the request; with `n` > 1, prompt tokens are those of one choice.
`logprobs` / `top_logprobs` (0-20) work on plain chat with audio up to 30 s, whole or streamed (a token that
leaves a character unfinished shows "" and the one completing it the whole character, as vLLM reports them);
an answer made from several generations (a task, longer audio) has no token logprobs: 400.
A window whose answer is the no-speech answer `(no speech)` adds nothing to a transcript.

## Transcriptions and translations
OpenAI's multipart fields: `file`, `model`, `language` (a hint), `prompt` (context that biases recognition),
`response_format` (json, text, srt, vtt, verbose_json), `temperature` (0-1), `timestamp_granularities[]`
(`segment`, `word`: with `word`, verbose_json lists `words` with `start`, `end` and the extra `aligned`),
`stream` (`transcript.text.delta` / `transcript.text.done` events; json or text only), `include[]=logprobs`
(json only: `logprobs` lists the transcript's tokens with their log probabilities, in the response and in each
stream event). Only speech is sent to the model (a voice-activity detector cuts the windows; noise and music
are skipped). Word times come from forced alignment of the model's own words to the audio (English; other
languages, and words that cannot be placed, get interpolated times with `aligned: false`). verbose_json
segments are sentence- or pause-sized (at most ~7 s, ~84 characters); srt / vtt cues have at most 2 lines of
42 characters, last 1-7 s and never overlap. `avg_logprob` is the mean token logprob of the segment,
`no_speech_prob` 1 - the VAD's speech probability of its audio; `tokens` is empty (neutral value);
`compression_ratio` is computed from the text; `language` echoes the request (`unknown` if none). Translations
produce English. At `temperature` 0 (the default) each window is decoded with Whisper's temperature fallback (its
schedule and thresholds, Whisper's by default, are server settings):
a window whose text loops (compression ratio above 2.4) or whose tokens' mean logprob is below -1.0 is decoded
again at 0.2, 0.4, ... 1.0 until a try passes, else the best try that does not loop is kept; the no-speech
answer is never retried, and a segment's `temperature` is that of its window's try kept. Streamed, a window's
text is sent whole once its try is chosen. A `temperature` above 0 is decoded once, as asked. Usage counts
every try. The extra field `lalm_screen_text=true` reads a video's on-screen text (slides, subtitles,
captions): each window gets the text shown around it as context, verbose_json lists it (`lalm_screen_text`),
and a picture that cannot be read is reported in `lalm_warnings` and the `X-Lalm-Warning` header (the audio is
still transcribed).

## Realtime transcription (WebSocket, not listed below)
`/v1/realtime?intent=transcription` speaks OpenAI's Realtime API in transcription mode: `session.update`
(`audio/pcm` at 24000 or 16000 Hz, `transcription.language` / `.prompt`, `turn_detection` `server_vad` or
null), `input_audio_buffer.append` / `.commit` / `.clear`; turns cut by Silero VAD (at most 30 s each) are
transcribed as `conversation.item.input_audio_transcription.delta` / `.completed` events, each turn a user item
(`conversation.item.added` / `.done`); `include: ["item.input_audio_transcription.logprobs"]` adds token
logprobs to the delta and completed events. Turns are decoded greedily and streamed token by token (no
temperature fallback: latency first). The API key goes in
the `Authorization` header or, from browsers, as the subprotocol `openai-insecure-api-key.<key>`. The
playground page at `/` uses it for live transcription from the microphone.

## Limits and errors
Configured with `LALM_*` environment variables or `lalm serve` flags: bearer API keys (`401`), the
largest upload (`413`), the longest audio (`400 audio_too_long`), a request time limit (`504`, or an error
event in a stream) and a cap on requests in flight (`429`, retry after a second). Every error has
OpenAI's body `{"error": {"message", "type", "param", "code"}}`; bad input is always a 4xx. `502` / `503`
mean the vLLM upstream failed or is restarting; `/health` answers 503 until it is back.
`/metrics` serves Prometheus metrics; `/health` and `/metrics` need no API key.
"""


def install_docs(app: FastAPI) -> None:
    """Add /docs and /redoc, and their assets under `DOCS_ASSETS`, to an app made with `docs_url=None,
    redoc_url=None` (FastAPI's documented pattern for self-hosted docs assets)."""
    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # behind a proxy that strips a prefix, every URL the page loads needs it back (what FastAPI's own does)
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + app.openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        )
        page.headers["Content-Security-Policy"] = _SAME_ORIGIN_ONLY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(openapi_url=root + app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = _SAME_ORIGIN_ONLY
        return page
