# ArgoBridge developer entry points. `make help` lists them.
# Everything installs itself: Python packages into .venv (pinned in pyproject.toml); Go-built binaries
# (kube-apiserver, etcd, argocd or its notifications controller alone, helm, argocd-operator; pinned in
# operator/argobridge_dev/versions.py) and the Backstage test backend (npm, pinned by
# tests/e2e/backstage/package-lock.json) into ~/.cache/argobridge.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install tools test-tools kind-tools run test delivery unit contract integration faults e2e e2e-kind deploy-tests manifests chart-lint bench image lint render dev-cluster clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv with the operator and the pinned dev tools

tools: install ## Build the pinned Go binaries once (cached under ~/.cache/argobridge)
	$(BIN)/argobridge build-tools

test-tools: tools ## Also install the Backstage test backend (npm ci, once; cached under ~/.cache/argobridge)
	$(BIN)/argobridge install-backstage

kind-tools: tools ## kind, the kind node's binaries and its node image, built here without a registry (once per machine; cached)
	$(BIN)/python -m argobridge_dev.kind.cluster --prepare

run: install ## The mission end to end: a failed sync read in Backstage (no cluster: builds etcd, kube-apiserver, the controller; npm for Backstage)
	$(BIN)/argobridge demo

# Slow tests that start their own processes (control plane, controller, relay, image): a second pytest runs
# them alongside the main suite, since most of their time is waiting, not computing.
ALONGSIDE := tests/delivery tests/e2e/test_token_rotation.py tests/faults/test_leader_faults.py tests/firsthour tests/image

test: test-tools kind-tools lint ## Lint, then the whole suite; the slow self-contained tests and then the kind cluster run alongside
	@mkdir -p build
	@( $(BIN)/pytest -p no:cacheprovider -ra --durations=15 --junitxml=build/junit-alongside.xml $(ALONGSIDE); a=$$?; \
	  $(BIN)/pytest -p no:cacheprovider -ra --durations=10 --junitxml=build/junit-kind.xml tests/kind; k=$$?; \
	  exit $$(( a | k )) ) > build/test-alongside.log 2>&1 & alongside=$$!; \
	$(BIN)/pytest -p no:cacheprovider -ra --durations=40 --junitxml=build/junit.xml --ignore=tests/kind $(ALONGSIDE:%=--ignore=%); main=$$?; \
	wait $$alongside; second=$$?; \
	echo "======== $(ALONGSIDE), then tests/kind (ran alongside) ========"; cat build/test-alongside.log; \
	echo "main suite exit $$main, alongside and kind exit $$second"; \
	[ $$main -eq 0 ] && [ $$second -eq 0 ]

delivery: test-tools ## Issue 14's delivery proofs alone (Backstage outage, restart, hung Backstage; Relay vs Direct)
	$(BIN)/pytest -p no:cacheprovider -ra tests/delivery

unit: install ## Unit tests only (no cluster)
	$(BIN)/pytest -p no:cacheprovider tests/unit

contract: tools ## Every rendered template and trigger through the real Argo CD engine, offline
	$(BIN)/pytest -p no:cacheprovider tests/contract

integration: tools ## Integration tests only (real kube-apiserver and etcd, the operator running)
	$(BIN)/pytest -p no:cacheprovider tests/integration

faults: test-tools ## The fault suite: least privilege, engine safety, ownership, crashes, leader election, state
	$(BIN)/pytest -p no:cacheprovider -ra tests/faults

e2e: test-tools ## Live end-to-end tests: operator + notifications controller + Backstage
	$(BIN)/pytest -p no:cacheprovider -ra tests/e2e

e2e-kind: test-tools kind-tools ## The chart's pods under a real kubelet: a kind cluster built here (podman), no registry needed
	$(BIN)/pytest -p no:cacheprovider -ra tests/kind

deploy-tests: tools ## The chart and manifests: lint, schema, restricted-v2, install, operator under its RBAC
	$(BIN)/pytest -p no:cacheprovider -ra tests/deploy

manifests: tools ## Regenerate manifests/install from the chart's default rendering (a test checks they match)
	$(BIN)/python -m argobridge_dev.chart --write

chart-lint: tools ## helm lint --strict on the chart
	$$($(BIN)/python -m argobridge_dev.gobuild helm) lint --strict charts/argobridge

bench: test-tools ## Benchmarks at 1,000 and 10,000 Applications (3 runs), 100 bridges, 5,000 unrelated Secrets, the relay (not part of test): make bench SIZES=200 IDLE=20 RUNS=1
	$(BIN)/python -m tests.bench.run_bench --sizes $(or $(SIZES),1000,10000) --idle $(or $(IDLE),120) --runs $(or $(RUNS),3) --json build/bench.json
	$(BIN)/python -m tests.bench.many_bridges --idle $(or $(IDLE),120) --json build/bench-many-bridges.json
	$(BIN)/python -m tests.bench.unrelated_secrets --json build/bench-secrets.json
	$(BIN)/python -m tests.bench.app_record_bytes > build/bench-record-bytes.json
	$(BIN)/python -m tests.bench.run_bench --requests --json build/bench-requests.json
	$(BIN)/python -m tests.bench.relay_bench --json build/bench-relay.json

image: install ## Build the operator image with podman on a local Debian base (cached; prints tag and size)
	$(BIN)/python -m argobridge_dev.image

lint: install ## ruff, and mypy --strict on the pure core
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy

render: install ## Print the Argo CD configuration for a bridge file: make render FILE=bridge.yaml
	$(BIN)/argobridge render -f $(or $(FILE),manifests/samples/backstagebridge.yaml)

dev-cluster: tools ## Start a local control plane and write ./kubeconfig.local (Ctrl-C stops it)
	$(BIN)/argobridge dev-cluster --kubeconfig kubeconfig.local

clean: ## Remove .venv (the Go binary cache stays; delete ~/.cache/argobridge to rebuild)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
