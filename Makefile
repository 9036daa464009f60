# Two commands do all the set-up on a fresh machine:
#   make demo   runs `homeloop demo` on the embedded default world
#   make test   runs the test suite (and ruff)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test lint install clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned: pip takes the local CPU build instead of the CUDA one
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev,ray]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/homeloop demo

test: install
	$(VENV)/bin/ruff check homeloop tests benchmarks
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check homeloop tests benchmarks
	$(VENV)/bin/ruff format --check homeloop tests benchmarks

clean:
	rm -rf $(VENV) homeloop-workspace
