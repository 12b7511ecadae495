# ArgoBridge developer entry points. `make help` lists them.
# Everything installs itself: Python packages into .venv (pinned in pyproject.toml), Go-built binaries
# (kube-apiserver, etcd; pinned in operator/argobridge/devcluster/versions.py) into ~/.cache/argobridge.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install tools run test unit integration lint render dev-cluster clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv with the operator and the pinned dev tools

tools: install ## Build the pinned Go binaries once (cached under ~/.cache/argobridge)
	$(BIN)/argobridge build-tools

run: tools ## Run the operator with a sample bridge (current kubeconfig, or a local control plane)
	$(BIN)/argobridge demo

test: tools lint ## Lint, then the whole suite: unit and integration against a real control plane
	$(BIN)/pytest -p no:cacheprovider -ra

unit: install ## Unit tests only (no cluster)
	$(BIN)/pytest -p no:cacheprovider tests/unit

integration: tools ## Integration tests only (real kube-apiserver and etcd)
	$(BIN)/pytest -p no:cacheprovider tests/integration

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
