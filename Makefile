# Two commands on a fresh Debian 12 machine: `make run` and `make test`.
# Each first installs whatever is missing (scripts/setup.sh is idempotent).
.PHONY: setup run test lint check bench load screenshots clean

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
	$(VENV)/python bench/overhead_bench.py
	$(VENV)/python bench/wabt_bench.py
	$(VENV)/python bench/resident_bench.py
	$(VENV)/python bench/tasks_bench.py
	$(VENV)/python bench/server_bench.py
	$(VENV)/python bench/static_bench.py
	$(VENV)/python bench/procs_bench.py
	$(VENV)/python bench/queue_bench.py
	$(VENV)/python bench/dramatiq_compare.py
	$(VENV)/python bench/proxy_bench.py
	$(VENV)/python bench/ratelimit_bench.py
	$(VENV)/python bench/load.py --duration $(LOAD_DURATION) --users $(LOAD_USERS) \
		--spawn-rate $(LOAD_SPAWN_RATE)

# The Locust load test (bench/locustfile.py) against a pf serve of its own: warm-up,
# ramp-up, then sustained load; prints req/s, p50/p95/p99 and failures per request and
# where its HTML report is. `make load LOAD_DURATION=5m LOAD_USERS=50 LOAD_SPAWN_RATE=10`.
LOAD_DURATION ?= 60s
LOAD_USERS ?= 20
LOAD_SPAWN_RATE ?= 5

load: setup
	$(VENV)/python bench/load.py --duration $(LOAD_DURATION) --users $(LOAD_USERS) \
		--spawn-rate $(LOAD_SPAWN_RATE)

# The browser tests, then their screenshots of each page copied to docs/img/ (README and
# docs/web.md show them): run after a change to a page's looks.
SCREENSHOTS := demo dashboard playground playground-diagnostics

screenshots: setup
	@scripts/setup.sh test
	$(VENV)/pytest -n auto -q -p no:cacheprovider tests/browser
	for name in $(SCREENSHOTS); do cp build/screenshots/$$name.png docs/img/; done

clean:
	rm -rf .pf
