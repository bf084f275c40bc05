# Two commands: `make run` (set up, then run the default test) and `make test` (set up, then the suite).
# Set-up is idempotent and quick once done: host packages, .venv, the default kernel and image.
VENV      := .venv
LABRUNNER := $(VENV)/bin/labrunner
PYTEST_ARGS ?=

.PHONY: setup host venv prepare run test bench clean

setup: prepare

host:
	@bash scripts/setup-host.sh

$(VENV)/.installed: pyproject.toml | host
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

prepare: venv
	@$(LABRUNNER) prepare

run: setup
	$(LABRUNNER) run

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/boot.py

clean:
	rm -rf $(VENV) .labrunner
