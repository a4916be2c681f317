#!/usr/bin/env bash
# The minikube equivalent of scripts/kind-up.sh: start minikube (with a CNI that enforces
# NetworkPolicies), build the images and load them, install the chart with
# helm/examples/minikube.yaml, print (and open) the hub URL.
#   scripts/minikube-up.sh [--no-build] [--profile NAME]
# Environment: ROMAN_MINIKUBE_PROFILE (default roman), ROMAN_NAMESPACE (roman), ROMAN_RELEASE (rp).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.local/bin:$PATH"
PROFILE="${ROMAN_MINIKUBE_PROFILE:-roman}"
NS="${ROMAN_NAMESPACE:-roman}"
RELEASE="${ROMAN_RELEASE:-rp}"
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0; shift ;;
    --profile) PROFILE="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "minikube-up: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in docker minikube kubectl helm; do
  command -v "$tool" >/dev/null || { echo "minikube-up: $tool is not installed" >&2; exit 1; }
done
TAG="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"

if ! minikube status -p "$PROFILE" >/dev/null 2>&1; then
  minikube start -p "$PROFILE" --cni=calico --cpus=4 --memory=8g
fi
kubectl config use-context "$PROFILE" >/dev/null

if [ "$BUILD" = 1 ]; then
  bash scripts/build-images.sh --tag "$TAG"
fi
for image in hub notebook; do
  echo "minikube-up: loading roman-platform/$image:$TAG"
  minikube -p "$PROFILE" image load "roman-platform/$image:$TAG"
done

NODE_IP="$(minikube -p "$PROFILE" ip)"
HUB_URL="http://$NODE_IP:30080"
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS"
echo "minikube-up: installing release $RELEASE into $NS (hub $HUB_URL)"
helm upgrade --install "$RELEASE" helm/roman-platform -n "$NS" \
  -f helm/examples/minikube.yaml \
  --set "hub.image.tag=$TAG,singleuser.image.tag=$TAG" \
  --set "hub.publicUrl=$HUB_URL,auth.oidc.issuer=http://$NODE_IP:30081" \
  --wait --timeout 15m
echo "minikube-up: the hub is at $HUB_URL (demo logins: hub_config/oidc_dev/demo_users.yaml)"
echo "minikube-up: cluster tests: .venv/bin/python -m pytest -m cluster tests/cluster"
if command -v xdg-open >/dev/null && [ -n "${DISPLAY:-}" ]; then xdg-open "$HUB_URL" || true; fi
