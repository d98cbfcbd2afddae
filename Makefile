# The two commands in the README: `make serve` and `make test`. Each sets itself up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lalm-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve test lint bench-hf

$(STAMP): pyproject.toml requirements/constraints.txt scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

serve: $(STAMP)
	bash scripts/serve-default.sh --host $(HOST) --port $(PORT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench-hf: $(STAMP)
	$(PY) bench/hf_batching.py
