# Two commands on a fresh Debian 12 machine: `make run` and `make test`.
# Each first installs whatever is missing (scripts/setup.sh is idempotent).
.PHONY: setup run test check bench demo clean

VENV := .venv/bin

setup:
	@scripts/setup.sh

run: setup
	@$(VENV)/pf build demos/polyglot
	@echo "pf serve: point a browser at http://127.0.0.1:8080/ (Ctrl-C stops)"
	@$(VENV)/pf serve

test:
	@scripts/setup.sh test
	$(VENV)/lint-imports
	$(VENV)/pytest -n auto -q -p no:cacheprovider

check: setup
	$(VENV)/ruff format --check src tests bench
	$(VENV)/ruff check src tests bench
	$(VENV)/mypy

bench: setup
	@scripts/setup.sh bench
	$(VENV)/python bench/compile_bench.py
	$(VENV)/python bench/tasks_bench.py
	$(VENV)/python bench/server_bench.py

clean:
	rm -rf .pf
