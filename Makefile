# motet — `make help` lists the targets. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ANVIL := tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
# The browser tests (tests/gateway) drive Debian's chromium through playwright; never a downloaded browser.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# llama.cpp build flags. The CPU build avoids the AMX/native code path that crashes on these machines
# (docs/operations.md); a machine with a working NVIDIA GPU adds CUDA, for the GPU it has (native).
CPU_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1 && echo yes)
LLAMA_CMAKE_ARGS ?= $(CPU_CMAKE_ARGS) $(if $(HAS_GPU),-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native)

.PHONY: help install chromium demo test lint bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "installing motet and its dependencies (the first llama-cpp-python build takes ~10 minutes)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet -c constraints.txt -e ".[dev,llama]"
	$(PY) -c "from eth_keys.backends import get_backend; b = get_backend(); assert 'CoinCurve' in type(b).__name__, b"
	touch $@

$(ANVIL): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

# A missing apt-get, or one that fails, does not fail the install: the browser tests then skip (fail under CI=true).
$(CHROMIUM):
	@if command -v apt-get >/dev/null 2>&1 && { $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver; }; }; \
	then echo "installed Debian's chromium at $@"; \
	else echo "WARNING: the browser tests (tests/gateway) need Debian's chromium at $@ and it could not be installed;" \
		"install it with: sudo apt-get install -y --no-install-recommends chromium chromium-driver"; fi

chromium: $(CHROMIUM) ## install Debian's chromium for the browser tests

install: $(STAMP) $(ANVIL) $(CHROMIUM) ## create .venv and install motet, llama.cpp, anvil and chromium

demo: install ## run the demo on the embedded chain
	$(VENV)/bin/motet demo

test: install ## run the whole test suite
	$(PY) -m pytest

lint: install ## ruff and mypy --strict
	$(VENV)/bin/ruff check motet tests bench examples
	$(VENV)/bin/ruff format --check motet tests bench examples
	$(VENV)/bin/mypy

bench: install ## run the benchmarks and write docs/performance.md
	$(PY) -m bench

lock: ## re-pin constraints.txt from the current .venv
	$(PY) -m pip freeze --all --exclude-editable | grep -v '^motet\|^pip==' > constraints.txt

clean: ## remove .venv and tools/node_modules
	rm -rf $(VENV) tools/node_modules
