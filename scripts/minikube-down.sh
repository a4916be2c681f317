#!/usr/bin/env bash
# Delete the development platform's minikube profile (and everything in it).
#   scripts/minikube-down.sh [--profile NAME]
set -euo pipefail
PROFILE="${ROMAN_MINIKUBE_PROFILE:-roman}"
[ "${1:-}" = "--profile" ] && PROFILE="$2"
command -v minikube >/dev/null || { echo "minikube-down: minikube is not installed" >&2; exit 1; }
minikube delete -p "$PROFILE"
