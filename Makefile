# `make train` and `make test` install what they need into .venv first (once; again when pyproject.toml changes).
# TORCH_SPEC picks the PyTorch build: the default lets pip choose (a CUDA build on Linux);
# `make test TORCH_SPEC=torch==2.13.0` takes the CPU build that CI uses; PIP_TORCH_ARGS passes extra
# pip options for that one install (e.g. --index-url of PyTorch's CPU wheels).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
PIP_TORCH_ARGS ?=
CONFIG ?= configs/quickstart.yaml
STAMP := $(VENV)/.installed

.PHONY: train test clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install --quiet -e ".[plot,bpe,test]"
	touch $@

train: $(STAMP)
	$(VENV)/bin/ctt fit --config $(CONFIG)

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .ctt_cache checkpoints lightning_logs
