# Tierdesk: `make run` serves the app, `make test` runs every test, `make bench` measures.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
# WeasyPrint needs Pango; libharfbuzz-subset0 keeps Chinese PDFs fast; Noto CJK is the font.
RUN_DEBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk
# Tests also drive Debian's Chromium, read PDFs back with poppler, and let pdfsig
# trust the organisation's certificate through an NSS database (certutil).
TEST_DEBS := $(RUN_DEBS) chromium poppler-utils libnss3-tools
HOST ?= 127.0.0.1
PORT ?= 5000
MEETING_BENCH_ARGS ?=
NOTICE_BENCH_ARGS ?=
ALLOCATION_BENCH_ARGS ?= --postgres postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test bench setup setup-test system-deps system-deps-test translations db lint \
        extract-messages clean

# The signed report prints PUBLIC_URL/verify and is refused without it: the demo's own.
run: export PUBLIC_URL ?= http://$(HOST):$(PORT)
run: setup db
	@echo "Tierdesk: http://$(HOST):$(PORT)  (demo password: demo2027)"
	@$(FLASK) demo-logins
	@# The huey worker renders long reports and reads uploaded customer files in the
	@# background; it stops with the server.
	@$(BIN)/huey_consumer worker.huey --workers 2 --quiet & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(FLASK) run --host $(HOST) --port $(PORT)

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)
	$(BIN)/python scripts/pdf_bench.py $(PDF_BENCH_ARGS)
	$(BIN)/python scripts/meeting_bench.py $(MEETING_BENCH_ARGS)
	$(BIN)/python scripts/notice_bench.py $(NOTICE_BENCH_ARGS)
	$(BIN)/python scripts/allocation_bench.py $(ALLOCATION_BENCH_ARGS)

setup: system-deps $(VENV)/.stamp-run translations
setup-test: system-deps-test $(VENV)/.stamp-test translations

system-deps:
	@scripts/system-deps.sh $(RUN_DEBS)
system-deps-test:
	@scripts/system-deps.sh $(TEST_DEBS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.stamp-run: requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.stamp-test: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.stamp-run

translations: $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))
translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po | $(VENV)/.stamp-run
	$(BIN)/pybabel compile --statistics -d translations -l $*

# Create or upgrade the database under instance/, with the demo company when it is new.
db: setup
	@$(FLASK) db-upgrade
	@$(FLASK) seed-demo --if-empty > /dev/null  # make run prints the logins next

# For developers: refresh the catalog after changing user-facing strings.
extract-messages: $(VENV)/.stamp-run
	$(BIN)/pybabel extract -F babel.cfg -k _l --sort-output --no-wrap -o translations/messages.pot \
	    app.py extensions.py models forms views services templates
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching \
	    --no-wrap

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench-results
