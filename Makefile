# Ringpool: `make run` and `make test` set up everything they need on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit integration deps system-deps asterisk venv call bench bench-ivr bench-leases bench-screening check-config clean

run: deps
	@bash scripts/run.sh

test: deps
	$(BIN)/pytest -q -p no:cacheprovider

unit: venv
	$(BIN)/pytest -q -m "not integration" -p no:cacheprovider

integration: deps
	$(BIN)/pytest -q -m integration -p no:cacheprovider

deps: system-deps venv asterisk

system-deps:
	@bash scripts/install-system-deps.sh

asterisk: system-deps
	@bash scripts/install-asterisk.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

call: venv
	@bash scripts/call.sh $(or $(NUMBER),15550100001) $(or $(HOLD),4000)

bench: deps
	$(BIN)/python bench/call_setup.py

bench-ivr: deps
	$(BIN)/python bench/ivr_routing.py

bench-leases: venv
	$(BIN)/python bench/leases.py

bench-screening: venv
	$(BIN)/python bench/screening.py

check-config: venv
	$(BIN)/python -m ari_app --config $(or $(CONFIG),config/ringpool.yaml) check-config

clean:
	rm -rf $(VENV) var *.egg-info
screening-accuracy: deps ; $(BIN)/python -m tests.scenarios.run_screening
