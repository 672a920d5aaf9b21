# Every target bootstraps .venv itself, so each works on a fresh clone:
# `make demo` needs only the core install; tests and benchmarks add the dev extras.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.installed-core
DEV    := $(VENV)/.installed-dev

.PHONY: demo test lint bench bench-cli clean

# Installs go through uv (itself from PyPI, into the venv): it resolves and fetches the
# dev extras in parallel, 51 s from an empty cache with its own install included, where
# pip with no cache had not finished after 11 minutes on the same (loaded) machine.
UV     := $(VENV)/bin/uv

$(PY):
	$(PYTHON) -m venv $(VENV)

# Its own target, so a venv made before uv was used gets it too.
$(UV): | $(PY)
	$(PY) -m pip install --quiet uv

$(CORE): pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(PY) -e .
	touch $(CORE)

$(DEV): pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(PY) -e '.[dev]'
	touch $(CORE) $(DEV)

demo: $(CORE)
	$(PY) examples/quickstart.py

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m mypy --strict perceptra_storage

# Parallel workers: most of the suite waits on servers, sockets and timeouts, so workers
# overlap well even on two cores; the servers are started once and shared (tests/conftest.py
# says how to keep a test parallel-safe). Two, not three: with three, one shared Azurite
# answered the azure soak and eight-thread tests past their 10 s read timeout in 2 of 3 CI
# runs. PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2

# The tests' scratch files and temporary stores go to tmpfs where there is one: they are
# thrown away, and on disk the local backend's flush of every write (fsync, its default)
# made the local tests 24.6 s instead of 19.9 s. pyproject.toml keeps only failed
# tests' folders, so repeated runs do not fill memory.
TEST_TMPDIR ?= $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))

test: lint
	TMPDIR=$(TEST_TMPDIR) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=15 \
		--cov=perceptra_storage --cov-report=term $(PYTEST_ARGS)

bench: $(DEV)
	$(PY) benchmarks/run.py

# `perceptra-storage cp -r` against aws-cli and rclone: installs both from Debian first
# (as root; otherwise says what to install), see benchmarks/CLI_COPY.md.
bench-cli: $(DEV)
	benchmarks/install_peers.sh
	$(PY) benchmarks/cli_copy.py --files 500 --size 16384

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/servers/node_modules
