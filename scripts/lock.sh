#!/usr/bin/env bash
# Regenerates the images' pinned dependency locks (with hashes) from pyproject.toml's groups:
#   images/hub/requirements.lock       core dependencies + the 'hub' extra
#   images/notebook/requirements.lock  core dependencies + the 'science' extra
#   images/tap/requirements.lock       core dependencies + the 'hub' and 'tap' extras (the TAP
#                                      image is built on the hub image: it starts from the hub
#                                      lock's pins, so only the tap extra's packages are new)
# Runs `uv pip compile --generate-hashes --only-binary :all:` (uv from the test extra).
# The project itself is not in the locks: the images install it from a wheel built from this tree.
# Resolution targets the images' interpreter (CPython 3.11, x86_64 manylinux), not the host's.
# Needs network access to the package index; tests/images/test_locks.py checks, offline, that the
# locks still match pyproject.toml. Usage: scripts/lock.sh [--upgrade] [hub|notebook ...]
set -euo pipefail
cd "$(dirname "$0")/.."
upgrade=()
targets=()
for arg in "$@"; do
  case "$arg" in
    --upgrade) upgrade=(--upgrade) ;;
    hub|notebook|tap) targets+=("$arg") ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "lock.sh: unknown argument '$arg' (expected --upgrade, hub, notebook, tap)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(hub notebook tap)
UV="${UV:-}"
if [ -z "$UV" ]; then
  if [ -x .venv/bin/uv ]; then UV=.venv/bin/uv; else UV="$(command -v uv || true)"; fi
fi
if [ -z "$UV" ]; then
  echo "lock.sh: uv not found; install the test extra (pip install -e '.[test]') or put uv on PATH" >&2
  exit 2
fi
for image in "${targets[@]}"; do
  case "$image" in
    hub) extras=(--extra hub) ;;
    notebook) extras=(--extra science) ;;
    tap) extras=(--extra hub --extra tap) ;;
  esac
  out="images/$image/requirements.lock"
  if [ "$image" = tap ] && [ ${#upgrade[@]} -eq 0 ]; then
    # the hub image's pins first: uv keeps the versions already in the output file
    cp images/hub/requirements.lock "$out"
  fi
  echo "lock.sh: $out <- pyproject.toml ${extras[*]}" >&2
  # Keep the previous pins unless --upgrade: uv reuses the versions already in the output file.
  "$UV" pip compile pyproject.toml "${extras[@]}" \
    --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --only-binary :all: \
    --custom-compile-command "scripts/lock.sh $image" \
    "${upgrade[@]}" --quiet -o "$out"
done
