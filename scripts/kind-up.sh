#!/usr/bin/env bash
# A development Roman Science Platform on a local kind cluster:
#   create the cluster (node ports 30080 hub, 30081 development OIDC provider), build the hub and
#   notebook and tap images (scripts/build-images.sh) and load them into the node, install the chart with
#   helm/examples/kind.yaml, wait for it, print (and open) the hub URL.
# Needs docker, kind, kubectl and helm (scripts/install-k8s-tools.sh installs the last two).
#   scripts/kind-up.sh [--no-build] [--name CLUSTER]
# Environment: ROMAN_KIND_CLUSTER (default roman), ROMAN_NAMESPACE (roman), ROMAN_RELEASE (rp).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.local/bin:$PATH"
CLUSTER="${ROMAN_KIND_CLUSTER:-roman}"
NS="${ROMAN_NAMESPACE:-roman}"
RELEASE="${ROMAN_RELEASE:-rp}"
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0; shift ;;
    --name) CLUSTER="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "kind-up: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-up: $tool is not installed" >&2; exit 1; }
done
TAG="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "kind-up: creating cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s --config - <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - {containerPort: 30080, hostPort: 30080, protocol: TCP}
      - {containerPort: 30081, hostPort: 30081, protocol: TCP}
KIND
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "$BUILD" = 1 ]; then
  bash scripts/build-images.sh --tag "$TAG"
fi
for image in hub notebook tap; do
  echo "kind-up: loading roman-platform/$image:$TAG into $CLUSTER"
  kind load docker-image --name "$CLUSTER" "roman-platform/$image:$TAG"
done

# The issuer must be the same URL for the browser and for the hub pod: the node's address.
NODE_IP="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CLUSTER-control-plane")"
[ -n "$NODE_IP" ] || { echo "kind-up: cannot find the address of $CLUSTER-control-plane" >&2; exit 1; }
HUB_URL="http://$NODE_IP:30080"

kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS"
echo "kind-up: installing release $RELEASE into $NS (hub $HUB_URL)"
helm upgrade --install "$RELEASE" helm/roman-platform -n "$NS" \
  -f helm/examples/kind.yaml \
  --set "hub.image.tag=$TAG,singleuser.image.tag=$TAG,data.tap.image.tag=$TAG" \
  --set "hub.publicUrl=$HUB_URL,auth.oidc.issuer=http://$NODE_IP:30081" \
  --wait --timeout 15m
echo "kind-up: the hub is at $HUB_URL (demo logins: hub_config/oidc_dev/demo_users.yaml)"
echo "kind-up: cluster tests: .venv/bin/python -m pytest -m cluster tests/cluster"
if command -v xdg-open >/dev/null && [ -n "${DISPLAY:-}" ]; then xdg-open "$HUB_URL" || true; fi
