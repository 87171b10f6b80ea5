# `make train` and `make test` install what they need into .venv first (once; the package again when
# pyproject.toml changes). PyTorch comes first, through scripts/install_torch.py: the CPU build on a
# machine without an NVIDIA GPU, the default (CUDA) build on one with a GPU. TORCH_SPEC pins a version,
# e.g. `make test TORCH_SPEC=torch==2.13.0` (what CI runs).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
CONFIG ?= configs/quickstart.yaml

.PHONY: train test clean

$(VENV)/.torch:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python scripts/install_torch.py "$(TORCH_SPEC)"
	touch $@

# Training needs the plot and bpe extras; the tests need the test extra (pytest, tensorboard) as well.
$(VENV)/.train: pyproject.toml $(VENV)/.torch
	$(VENV)/bin/python -m pip install --quiet -e ".[plot,bpe]"
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.torch
	$(VENV)/bin/python -m pip install --quiet -e ".[plot,bpe,test]"
	touch $@

train: $(VENV)/.train
	$(VENV)/bin/ctt fit --config $(CONFIG)

test: $(VENV)/.test
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .ctt_cache checkpoints lightning_logs
