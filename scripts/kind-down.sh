#!/usr/bin/env bash
# Remove the development platform's kind cluster (and everything in it).
#   scripts/kind-down.sh [--name CLUSTER]
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${ROMAN_KIND_CLUSTER:-roman}"
[ "${1:-}" = "--name" ] && CLUSTER="$2"
command -v kind >/dev/null || { echo "kind-down: kind is not installed" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "kind-down: no kind cluster named $CLUSTER"
fi
