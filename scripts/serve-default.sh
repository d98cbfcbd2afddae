#!/usr/bin/env bash
# `make serve`: the lalm gateway with the vLLM engine on the default model, e.g.
#   bash scripts/serve-default.sh --host 127.0.0.1 --port 8000
# Until lalm embeds a trained model, the default is the TINY checkpoint with RANDOM weights, built into
# models/tiny on first use (seconds, no download): it runs the whole stack end to end, but its answers are
# meaningless noise. Point `lalm serve --model` at a real Qwen2-Audio checkpoint for real answers.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${LALM_VENV:-.venv}/bin/python
MODEL=models/tiny

if [ ! -f "$MODEL/config.json" ]; then
  echo "serve: building the tiny random checkpoint in $MODEL"
  "$PY" -m lalm.cli make-tiny "$MODEL"
fi
echo "serve: WARNING: $MODEL is a tiny model with RANDOM weights; its answers are noise, not speech understanding." >&2
exec "$PY" -m lalm.cli serve --model "$MODEL" --served-model-name tiny --engine vllm --dtype float32 "$@"
