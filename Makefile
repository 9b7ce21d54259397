# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Local wheels on this project's machines; override e.g. TORCH_SPEC="torch torchvision" elsewhere.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist
DEMO_OUT ?= demo-output
# root installs directly; anyone else needs sudo (none: the target says what to run)
AS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
SUDO := $(if $(AS_ROOT),,$(shell command -v sudo >/dev/null 2>&1 && echo sudo))

.PHONY: demo test lint format fashion-mnist install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch, torchvision" 2>/dev/null || \
		(echo "installing PyTorch ($(TORCH_SPEC))..." && $(BIN)/pip install -q $(TORCH_SPEC))
	@echo "installing dimcollapse and its test tools..."
	@$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

# Fashion-MNIST from Debian's package (offline here); the demo and some tests read it.
# Under CI=true a missing dataset is an error (tests that need it then fail, not skip).
fashion-mnist:
	@if [ -d $(FMNIST_DIR) ]; then exit 0; fi; \
	if [ -z "$(AS_ROOT)" ] && [ -z "$(SUDO)" ]; then \
		echo "error: Fashion-MNIST is missing and installing it needs root; run as root:" \
			"apt-get update && apt-get install -y dataset-fashion-mnist" >&2; \
		if [ "$$CI" = true ]; then exit 2; else exit 0; fi; \
	fi; \
	echo "installing Debian package dataset-fashion-mnist..."; \
	if $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	then exit 0; fi; \
	echo "error: could not install dataset-fashion-mnist; run:" \
		"$(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist" >&2; \
	if [ "$$CI" = true ]; then exit 2; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks experiments
	$(BIN)/ruff check --fix src tests benchmarks experiments

test: $(STAMP) fashion-mnist lint
	$(BIN)/python -m pytest -q

# The built-in default: Table 1 with 3 seeds, the figures and the theory lab at a CPU scale
# (5 minutes measured on 2 cores from a fresh clone, 2026-12-03, the install aside).
# Rerunning reuses finished stages; `make clean` starts over.
demo: $(STAMP) fashion-mnist
	$(BIN)/dimcollapse reproduce --scale quick --out $(DEMO_OUT)
	@echo
	@echo "demo done: open $(DEMO_OUT)/report.html (or read $(DEMO_OUT)/report.md);"
	@echo "runs, figures and the theory lab's output are under $(DEMO_OUT)/"

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
