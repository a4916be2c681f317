#!/usr/bin/env bash
# configurable-http-proxy (npm) into the project-local folder .local/node; linked into .local/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
CHP_VERSION=5.3.0
mkdir -p .local/node .local/bin
if [ ! -x .local/node/node_modules/.bin/configurable-http-proxy ] || \
   ! grep -q "\"version\": \"$CHP_VERSION\"" .local/node/node_modules/configurable-http-proxy/package.json 2>/dev/null; then
  echo "installing configurable-http-proxy $CHP_VERSION into .local/node"
  npm install --silent --no-audit --no-fund --prefix .local/node "configurable-http-proxy@$CHP_VERSION" >/dev/null 2>&1
fi
ln -sf ../node/node_modules/.bin/configurable-http-proxy .local/bin/configurable-http-proxy
