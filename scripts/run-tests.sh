#!/usr/bin/env bash
# The test suite as CI runs it: everything except tests that need a real Kubernetes cluster.
# pytest's exit 5 (no tests collected) is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.local/bin:$PWD/.venv/bin:$PATH"
export PYTHONUNBUFFERED=1
marker="not cluster"
.venv/bin/python -m pytest -m "$marker" -p no:cacheprovider --durations=30 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
