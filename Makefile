# Two entry points, each doing all set-up on a fresh machine with Python 3.11:
#   make run   - create .venv, install what running needs (no test tools), start the bot
#   make test  - create .venv with test extras, lint, type-check, run the tests
#                (bot tests also on pyrogram==2.0.106 in .venv-pyrogram2)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
LEGACY_VENV := .venv-pyrogram2
BIN := $(VENV)/bin

.PHONY: run test test-legacy lint bench clean

# $(call install,EXTRAS): EXTRAS '' for running, '[test]' adds pytest, mypy, ruff, psutil.
define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# compat: a plain .pth path entry; the default editable finder costs ~50 ms per start-up
	$(BIN)/python -m pip install -q -e '.$(1)' --config-settings editable_mode=compat
	# Editable installs get no bytecode, and PYTHONDONTWRITEBYTECODE (common in
	# containers) stops Python writing it: compile once so each CLI run starts fast.
	$(BIN)/python -m compileall -q tracker
endef

# What running needs: the package and its install_requires, nothing else.
$(BIN)/.installed-run: setup.cfg pyproject.toml
	$(call install,)
	touch $@

$(BIN)/.installed: setup.cfg pyproject.toml
	$(call install,[test])
	touch $@ $(BIN)/.installed-run

run: $(BIN)/.installed-run
	$(BIN)/python bot.py

lint: $(BIN)/.installed
	$(BIN)/ruff check tracker tests bench bot.py cli.py
	$(BIN)/mypy tracker

test: lint $(BIN)/.installed
	$(BIN)/python -m pytest
	$(MAKE) test-legacy

# The original pyrogram and kurigram both install the module `pyrogram`, so the
# 2.0.106 run gets a venv of its own (tracker installed without its deps).
$(LEGACY_VENV)/bin/.installed: setup.cfg pyproject.toml
	test -x $(LEGACY_VENV)/bin/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip install -q --upgrade pip
	$(LEGACY_VENV)/bin/python -m pip install -q 'pyrogram==2.0.106' 'tgcrypto>=1.2.5,<2' \
	    'tinydb>=4.8,<5' 'click>=8.1,<9' 'orjson>=3.10,<4' 'msgspec>=0.18,<1' 'tzdata>=2024.1' 'wcwidth>=0.2.13,<1' \
	    'pytest==9.2.0' 'psutil>=5.9,<8'
	$(LEGACY_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

test-legacy: $(LEGACY_VENV)/bin/.installed
	$(LEGACY_VENV)/bin/python -m pytest -m bot

bench: $(BIN)/.installed
	$(BIN)/python -m bench store
	$(BIN)/python -m bench bot
	$(BIN)/python -m bench cli

clean:
	rm -rf $(VENV) $(LEGACY_VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
