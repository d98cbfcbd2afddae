#!/usr/bin/env bash
# `make serve`: the lalm gateway on the built-in models, offline on CPU, e.g.
#   bash scripts/serve-default.sh --host 127.0.0.1 --port 8000
# MODELS (space-separated) picks what to serve; the default is `default`: Whisper base hears (in-process
# CTranslate2), SmolLM2-135M-Instruct answers. Add `default-lalm` for the experimental trained LALM (built into
# the model cache on first use, served by a vLLM CPU server), or `whisper-tiny.en` / `whisper-base` for plain
# speech recognition. Real weights from pinned, sha256-checked packages; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${LALM_VENV:-.venv}/bin/python
MODELS=${MODELS:-default}

args=()
for m in $MODELS; do args+=(--model "$m"); done
echo "serve: building the models on first use (a minute or two), then serving: $MODELS" >&2
exec "$PY" -m lalm.cli serve "${args[@]}" "$@"
