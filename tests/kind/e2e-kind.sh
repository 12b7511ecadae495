#!/usr/bin/env bash
# `make e2e-kind`: the end-to-end suite against a kind cluster running the operator as the chart
# installs it. Needs Docker (kind nodes are containers); kind and helm are built from their pinned Go
# modules like every other tool. Without Docker, `make e2e` runs the same tests on a local control plane.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
CLUSTER=${KIND_CLUSTER:-argobridge-e2e}
IMAGE=argobridge/operator:e2e

command -v docker >/dev/null || { echo "e2e-kind needs Docker; use 'make e2e' for the local control plane" >&2; exit 2; }
KIND=$($BIN/python -m argobridge_dev.gobuild kind)
HELM=$($BIN/python -m argobridge_dev.gobuild helm)
WORK=$(mktemp -d)
trap '"$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

"$KIND" create cluster --name "$CLUSTER" --kubeconfig "$WORK/kubeconfig" --wait 120s
docker build -f Containerfile -t "$IMAGE" .
"$KIND" load docker-image "$IMAGE" --name "$CLUSTER"
"$HELM" install argobridge charts/argobridge --kubeconfig "$WORK/kubeconfig" \
  --namespace argobridge --create-namespace \
  --set image.tag=e2e --set image.pullPolicy=Never --set operator.resyncSeconds=10 \
  --set 'rbac.caBundleSecrets={backstage-ca}' --wait --timeout 3m

# Backstage and the notifications controller run on this machine; pods reach Backstage through the
# kind network's gateway, so the bridge's URL must use that address.
GATEWAY=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
ARGOBRIDGE_TEST_KUBECONFIG="$WORK/kubeconfig" ARGOBRIDGE_TEST_OPERATOR=external \
ARGOBRIDGE_TEST_BACKSTAGE_HOST="$GATEWAY" \
  $BIN/pytest -p no:cacheprovider -ra tests/e2e "$@"
