# `make run` and `make test` work on a fresh Debian 12 machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
TEST_PACKAGES := $(RUN_PACKAGES) chromium poppler-utils postgresql redis-server

.PHONY: run test system-packages test-system-packages venv clean benchmark benchmark-load benchmark-all

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q $$missing || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing; }; \
	fi
endef

system-packages:
	$(call apt_install,$(RUN_PACKAGES))

test-system-packages:
	$(call apt_install,$(TEST_PACKAGES))

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

run: system-packages venv
	$(FLASK) init-db
	$(FLASK) seed-demo
	$(FLASK) run --host 127.0.0.1 --port 5000

# The whole suite on SQLite and, at the same time, everything database-sensitive again on a throw-away PostgreSQL
# cluster that the tests start themselves (initdb/pg_ctl in a temp dir, free port; as the `postgres` user when run
# as root). The two passes run side by side because both spend most of their time waiting (browsers, subprocesses,
# fsync), not computing. Not repeated on PostgreSQL: tests/unit (no database), the browser tests (pages, not the
# database), DICOMweb and S3 (DICOM and storage), and the tests that always run on PostgreSQL whatever
# PORTAL_TEST_DB says (PG_ALWAYS: they already ran on it in the first pass). Redis and the S3-compatible store
# (moto_server) are started by the tests that need them.
PG_ALWAYS := tests/deploy/test_two_hosts.py tests/deploy/test_concurrency_postgresql.py \
	tests/security/test_auth_races_postgresql.py tests/security/test_control_characters_postgresql.py \
	tests/services/test_audit_seal_timing.py
PG_SKIP := tests/unit tests/browser tests/dicomweb tests/deploy/test_storage_s3.py $(PG_ALWAYS)
TEST_TMP ?= $(or $(TMPDIR),/tmp)/portal-tests
test: test-system-packages venv
	@mkdir -p $(TEST_TMP)
	@PORTAL_TEST_DB=postgresql $(PY) -m pytest -p no:cacheprovider -q --basetemp=$(TEST_TMP)/postgresql \
	  $(addprefix --ignore=,$(PG_SKIP)) > $(TEST_TMP)/postgresql.log 2>&1 & pg=$$!; \
	$(PY) -m pytest -p no:cacheprovider --basetemp=$(TEST_TMP)/sqlite; sqlite=$$?; \
	wait $$pg; postgresql=$$?; \
	echo "=== PostgreSQL pass ($(TEST_TMP)/postgresql.log) ==="; tail -n 40 $(TEST_TMP)/postgresql.log; \
	echo "make test: SQLite pass exit $$sqlite, PostgreSQL pass exit $$postgresql"; \
	[ $$sqlite -eq 0 ] && [ $$postgresql -eq 0 ]

benchmark-load: system-packages venv
	$(PY) benchmarks/load.py

benchmark: venv
	$(PY) benchmarks/imaging.py
	$(PY) benchmarks/letters.py

# Every figure of benchmarks/README.md, in its order (about 40 minutes on 2 cores). The load runs share one seeded
# data set (BENCH_SEED, keyed by the code). Orthanc's comparison needs `apt-get install orthanc orthanc-gdcm`
# (skipped with a note otherwise); the profile needs root (py-spy attaches with ptrace).
BENCH_SEED ?= /tmp/portal-bench-seed
benchmark-all: system-packages venv
	$(PY) benchmarks/load.py --seconds 60 --seed-cache $(BENCH_SEED)
	$(PY) benchmarks/load.py --seconds 30 --configs 2x4,3x4,4x4,2x8,4x8 --seed-cache $(BENCH_SEED)
	$(PY) benchmarks/load.py --ramp --seed-cache $(BENCH_SEED)
	$(PY) benchmarks/load.py --seconds 60 --hosts 2 --cpu-seconds 0 --seed-cache $(BENCH_SEED)
	PY=$(PY) benchmarks/profile_load.sh profile-raw.txt --seed-cache $(BENCH_SEED)
	$(PY) benchmarks/imaging.py
	$(PY) benchmarks/letters.py

clean:
	rm -rf $(VENV) instance .pytest_cache
