# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Everything is installed into .venv; llama-cpp-python compiles once and pip's wheel cache keeps it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.switchboard-installed
# llama.cpp is built for this CPU (-march=native) without its AMX kernels: a VM may advertise AMX
# and fault on its first tile instruction (seen on a Firecracker VM: SIGSEGV in
# ggml_backend_amx_mul_mat at the first decode; docs/ci-cd.md, "Test job").
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF '-DCMAKE_C_FLAGS=$(NO_AMX)' '-DCMAKE_CXX_FLAGS=$(NO_AMX)'
# The built wheel is kept per build flags (pip's own cache ignores CMAKE_ARGS, and would hand a
# wheel built with other flags to a new clone): one compile per machine and set of flags.
LLAMA_PIN := $(shell grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | head -1 | tr -d '"')
LLAMA_WHEELS := $(HOME)/.cache/switchboard/wheels/$(shell printf '%s' "$(LLAMA_PIN) $(CMAKE_ARGS)" | sha256sum | cut -c1-16)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck pytest check bench eval precommit policy-diff image clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 12), "Python 3.10-3.12 needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools

$(STAMP): pyproject.toml engine/backends/layer_capture.c | $(BIN)/python
	$(BIN)/pip wheel --quiet --no-deps --no-cache-dir --find-links $(LLAMA_WHEELS) --wheel-dir $(LLAMA_WHEELS) '$(LLAMA_PIN)'
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install --quiet -e '.[embedded,model-server,dev]'
	$(BIN)/switchboard model install
	touch $@

install: $(STAMP)

# Development: authentication off (every request is tenant `dev` with every role), which `serve`
# allows on a loopback bind only. With keys instead: docs/security.md. The workbench opens at
# http://127.0.0.1:8000/ with a development login (pick a role): docs/workbench.md.
run: install
	$(BIN)/switchboard serve --host 127.0.0.1 --port 8000 --no-auth

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

check: install
	$(BIN)/switchboard check policies/
	$(BIN)/switchboard check eval/variants/subintent/policies
	$(BIN)/switchboard check eval/variants/qwen15b/policies

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck check pytest

bench: install
	$(BIN)/python -m eval.bench $(BENCH_ARGS)

# Decision quality on the untouched split (docs/evaluation.md): `make eval EVAL_DATA=eval/data/dev.csv`.
EVAL_DATA ?= eval/data/holdout.csv
EVAL_OUT ?= eval/out/$(basename $(notdir $(EVAL_DATA)))
eval: install
	$(BIN)/switchboard eval --data $(EVAL_DATA) --out $(EVAL_OUT) --deadline-s 30 $(EVAL_ARGS)

# Every pre-commit hook on every tracked file (the hooks run tools from .venv: no downloads).
precommit: install
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

# What a policy change does to decisions: `make policy-diff BASE=origin/main DIFF_ARGS="--data f.csv"`.
BASE ?= origin/main
policy-diff: install
	$(BIN)/switchboard diff --base $(BASE) $(DIFF_ARGS)

# The container image (needs Docker); WITH_EMBEDDED_MODEL=false leaves the model out (Ollama).
WITH_EMBEDDED_MODEL ?= true
DEFAULT_BACKEND ?= $(if $(filter false,$(WITH_EMBEDDED_MODEL)),ollama,embedded)
image:
	docker build --build-arg WITH_EMBEDDED_MODEL=$(WITH_EMBEDDED_MODEL) \
		--build-arg DEFAULT_BACKEND=$(DEFAULT_BACKEND) -t switchboard:dev .

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
