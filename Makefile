# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ramparts demo

NODE_CLIENT := tests/e2e/node/node_modules/.package-lock.json

# The npm openai client of the client matrix (tests/e2e): installed from the lock file when npm is here.
$(NODE_CLIENT): tests/e2e/node/package-lock.json
	if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error; fi

test: $(STAMP) $(NODE_CLIENT)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP) $(NODE_CLIENT)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m bench.core

clean:
	rm -rf $(VENV) build *.egg-info
