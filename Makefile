# Two commands on a fresh Debian 12 machine: `make run` and `make test`.
# Each first installs whatever is missing (scripts/setup.sh is idempotent).
.PHONY: setup run test lint check bench clean

VENV := .venv/bin

setup:
	@scripts/setup.sh

run: setup
	@$(VENV)/pf build demos/polyglot
	@echo "pf serve: point a browser at http://127.0.0.1:8080/ (Ctrl-C stops)"
	@$(VENV)/pf serve

# Lint, types and the layer contract, then every test; set-up installed every tool the
# tests drive, so one that is missing fails instead of skipping (tests/tools.py).
test:
	@scripts/setup.sh test
	@$(MAKE) --no-print-directory lint
	PF_STRICT_TOOLS=1 $(VENV)/pytest -n auto -q -p no:cacheprovider

lint:
	$(VENV)/ruff format --check src tests bench
	$(VENV)/ruff check src tests bench
	$(VENV)/mypy
	$(VENV)/lint-imports

check: setup lint

bench: setup
	@scripts/setup.sh bench
	$(VENV)/python bench/compile_bench.py
	$(VENV)/python bench/tasks_bench.py
	$(VENV)/python bench/server_bench.py
	$(VENV)/python bench/static_bench.py
	$(VENV)/python bench/procs_bench.py
	$(VENV)/python bench/queue_bench.py
	$(VENV)/python bench/dramatiq_compare.py
	$(VENV)/python bench/proxy_bench.py

clean:
	rm -rf .pf
