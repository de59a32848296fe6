# prefect-dunning: `make demo` runs the daily loop on embedded defaults, `make test` the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PREFECT_HOME ?= $(CURDIR)/var/prefect

.PHONY: install demo server serve test lint bench bench-replies bench-replies-short bench-replies-latency bench-reports bench-risk bench-desk bench-sweep bench-prefect-server postgres dovecot chromium clean

install: $(VENV)/.installed ## virtualenv with the pinned dependencies and the project

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

demo: install ## Prefect server + UI, mail sink, demo blocks and portfolio, deployments, one sweep
	mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m deployments.demo

server: install ## a Prefect server (UI on 127.0.0.1:4200) with the settings for big sweeps
	mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m deployments.server --host 127.0.0.1 --port 4200

serve: install ## serve the deployments against a running Prefect server
	$(BIN)/python -m deployments.serve

test: install postgres dovecot chromium ## the whole suite: real SMTP, IMAP, PostgreSQL, Prefect server
	mkdir -p $(PREFECT_HOME)
	$(BIN)/lint-imports
# Tests mostly wait on servers (Prefect, SMTP, IMAP, PostgreSQL, Chromium), so more
# workers than cores pay (6 on 2 cores); each worker starts its own Prefect server and
# dovecot, and has its own tmp_path and PostgreSQL databases. worksteal:
# a few tests take minutes, an idle worker takes queued tests from a busy one.
	$(BIN)/python -m pytest -q -n 6 --dist worksteal

lint: install
	$(BIN)/ruff check .

bench: install ## planning throughput, 10k / 100k / 1M invoices
	$(BIN)/python -m bench.plan_bench

bench-replies: install ## reply classifier on the held-out set: accuracy, per intent, dates
	$(BIN)/python -m bench.replies_eval

bench-replies-short: install ## reply classifier on the short regional held-out set (issue 14)
	$(BIN)/python -m bench.replies_short_eval

bench-replies-latency: install dovecot ## email in (IMAP APPEND) to answer out (SMTP), listener vs poll
	$(BIN)/python -m bench.replies_latency

bench-reports: install ## portfolio report: compute, charts, email at 10k / 100k / 1M invoices
	$(BIN)/python -m bench.reports_bench

bench-risk: install ## payment-risk model vs the per-customer baseline on SAP and IBM
	$(BIN)/python -m bench.risk_eval

bench-desk: install ## collections desk pages at 100k invoices / 1M events
	$(BIN)/python -m bench.desk_bench

bench-sweep: install postgres ## end to end: 10k reminders of 100k invoices, real Prefect + SMTP
	$(BIN)/python -m bench.sweep_bench

bench-prefect-server: install ## CPU per task run of the Prefect server: its defaults vs ours
	$(BIN)/python -m bench.prefect_server_bench

postgres: ## start the machine's PostgreSQL if it is down (tests create their own databases)
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  command -v pg_ctlcluster >/dev/null || { apt-get update -q && apt-get install -y -q postgresql; }; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }
	@pg_isready -h 127.0.0.1 -p 5432

dovecot: ## Debian's IMAP server, for the replies tests (each test run starts its own)
	@command -v dovecot >/dev/null || { apt-get update -q && apt-get install -y -q dovecot-imapd; }
	@command -v openssl >/dev/null || apt-get install -y -q openssl

chromium: ## Debian's headless browser, for the collections-desk browser tests
	@test -x /usr/bin/chromium || { apt-get update -q && apt-get install -y -q chromium; }

clean:
	rm -rf var/outbox var/demo var/ledger.db*
