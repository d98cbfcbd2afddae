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
# Random weights fail the temperature fallback's log-probability rule on every window, so transcriptions at
# temperature 0 would decode each window 6 times for nothing (measured: 32.3 s for a 3 s clip, 2.8 s for one decode):
# greedy only, unless LALM_FALLBACK_TEMPERATURES or --fallback-temperature says otherwise.
export LALM_FALLBACK_TEMPERATURES="${LALM_FALLBACK_TEMPERATURES:-[0.0]}"
exec "$PY" -m lalm.cli serve --model "$MODEL" --served-model-name default --engine vllm --dtype float32 "$@"
