#!/usr/bin/env bash
# Builds the platform's container images from the pinned locks:
#   roman-platform/hub:<version>       (images/hub/Dockerfile)
#   roman-platform/notebook:<version>  (images/notebook/Dockerfile)
#   roman-platform/tap:<version>       (images/tap/Dockerfile: DaCHS + PostgreSQL/pgSphere on the
#                                       hub image's layers, which it shares from Docker's cache)
#
# Usage: scripts/build-images.sh [options] [hub] [notebook] [tap]    (default: all three)
#   --base IMAGE     base image for both builds (default: a local Debian bookworm base made with
#                    debootstrap, because no registry image can be pulled here; pass e.g.
#                    python:3.11-slim-bookworm where pulls work, or "default" for the Dockerfile's own)
#   --tag TAG        image tag (default: the version in pyproject.toml)
#   --stop-docker    stop the Docker engine this script started earlier, then exit
#   -h, --help       this text
#
# What it does, each step reused when already done:
#   1. a Docker engine: uses the running one, else starts dockerd with host networking only
#      (--bridge=none --iptables=false --ip6tables=false; builds and runs use --network host);
#   2. the base image local/bookworm:base (debootstrap --variant=minbase from apt's own mirror);
#   3. the wheelhouse: every wheel in the locks, hash-checked, in .cache/wheels (ROMAN_WHEEL_CACHE),
#      plus the project's own wheel built from this tree;
#   4. serves the wheelhouse on 127.0.0.1 for the build only (no wheel, cache or CA bundle ever
#      enters a layer) and runs `docker build --network host` for each image.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export DOCKER_BUILDKIT=0  # the legacy builder: Debian's engine here has no buildx plugin

CACHE="${ROMAN_IMAGE_CACHE:-$REPO/.cache/images}"
WHEELS="${ROMAN_WHEEL_CACHE:-$REPO/.cache/wheels}"
DOCKER_ROOT="${ROMAN_DOCKER_DATA_ROOT:-/var/lib/docker}"
BASE_TAG="local/bookworm:base"
WHEEL_PORT="${ROMAN_WHEEL_PORT:-47911}"  # fixed so the build's cache key is stable across runs
mkdir -p "$CACHE" "$WHEELS"

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

base="" tag="" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base) [ $# -ge 2 ] || die "--base needs an image name"; base="$2"; shift 2 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a tag"; tag="$2"; shift 2 ;;
    --stop-docker)
      if [ -f "$CACHE/dockerd.pid" ]; then
        pid="$(cat "$CACHE/dockerd.pid")"
        if kill -0 "$pid" 2>/dev/null; then
          log "stopping dockerd (pid $pid)"
          kill "$pid"
          for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
        rm -f "$CACHE/dockerd.pid"
      fi
      exit 0 ;;
    -h|--help) usage; exit 0 ;;
    hub|notebook|tap) targets+=("$1"); shift ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(hub notebook tap)
# One build at a time: concurrent runs would share the wheel server's port and the project wheel.
# Every background process started below closes fd 9 (`9>&-`): a dockerd that inherited it would
# hold this lock for as long as it runs, and the next build would wait for it in vain.
LOCK_WAIT_S="${ROMAN_BUILD_LOCK_WAIT_S:-900}"
exec 9>"$CACHE/build.lock"
if ! flock -w "$LOCK_WAIT_S" 9; then
  holders="$(for fd in /proc/[0-9]*/fd/*; do
      [ "$(readlink "$fd" 2>/dev/null)" = "$CACHE/build.lock" ] || continue
      pid="${fd#/proc/}"; pid="${pid%%/*}"
      { [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ]; } && continue
      printf '%s (%s) ' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
    done)"
  die "$CACHE/build.lock is still held after ${LOCK_WAIT_S} s by: ${holders:-an unknown process}"
fi
version="$("$PY" -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
NOTEBOOK_ENV_ARGS=""
if printf '%s\n' "${targets[@]}" | grep -qx notebook; then
  # Before any work: the notebook lock must be one of the tier policy's environments.
  NOTEBOOK_ENV_ARGS="$("$PY" -m hub_config.environments build-args images/notebook/requirements.lock)" \
    || die "images/notebook/requirements.lock is not an environment of the tier policy (see above)"
fi
[ -n "$tag" ] || tag="$version"

# ---------------------------------------------------------------- 1. the Docker engine
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null || die "dockerd not found: run scripts/system-deps.sh (Debian docker.io)"
  [ "$(id -u)" -eq 0 ] || die "no Docker engine is running and starting one needs root"
  log "starting dockerd (data root $DOCKER_ROOT, host networking only)"
  mkdir -p "$DOCKER_ROOT"
  # setsid: the engine outlives this script (stop it with --stop-docker) but not by accident
  # the caller's process group signals.
  setsid dockerd --bridge=none --iptables=false --ip6tables=false \
    --data-root "$DOCKER_ROOT" --pidfile "$CACHE/dockerd.pid.engine" \
    >"$CACHE/dockerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$CACHE/dockerd.pid"
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$CACHE/dockerd.pid")" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$CACHE/dockerd.log" >&2 || true
  die "dockerd did not come up (log: $CACHE/dockerd.log)"
}

# ---------------------------------------------------------------- 2. the base image
debian_mirror() {
  # The mirror apt itself uses, from deb822 sources or the classic list.
  local m
  m="$(grep -hE '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')"
  [ -n "$m" ] || m="$(grep -hE '^deb [^ ]*debian[^ ]* bookworm ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 | awk '{print $2}')"
  echo "${m:-http://deb.debian.org/debian}"
}

ensure_base() {
  if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then return 0; fi
  command -v debootstrap >/dev/null || die "debootstrap not found: run scripts/system-deps.sh"
  local mirror rootfs
  mirror="$(debian_mirror)"
  rootfs="$CACHE/bookworm-rootfs"
  rm -rf "$rootfs"
  log "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  # The same mirror for apt inside the builds; no host file (keys, certificates) is copied in.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
  rm -rf "$rootfs"
  log "made $BASE_TAG"
}

# ---------------------------------------------------------------- 3. the wheelhouse
ensure_wheels() {
  local image="$1" lock="images/$1/requirements.lock"
  [ -f "$lock" ] || die "$lock missing: run scripts/lock.sh"
  mkdir -p "$WHEELS/$image"
  if [ "$image" = tap ]; then
    # the tap lock is the hub lock plus the tap group: the hub's wheels are linked, not fetched
    # again (pip download keeps a file that is already there and has the lock's hash)
    find "$WHEELS/hub" -maxdepth 1 -name '*.whl' -exec ln -f {} "$WHEELS/tap/" \; 2>/dev/null || true
  fi
  local stamp="$WHEELS/$image/.lock.sha256"
  if [ -f "$stamp" ] && sha256sum -c --status "$stamp" 2>/dev/null; then
    log "wheelhouse for $image is up to date"
  else
    log "downloading the wheels in $lock (hash-checked) into $WHEELS/$image"
    local t0=$SECONDS
    # The host interpreter is the images' (CPython 3.11, x86_64 glibc), so its tags select the
    # same wheels the image's pip will want.
    "$PY" -m pip download --quiet --no-deps --only-binary :all: --require-hashes \
      -r "$lock" -d "$WHEELS/$image" 2> >(grep -v "is neither a file nor a directory" >&2)
    sha256sum "$lock" | sed "s#  .*#  $REPO/$lock#" >"$stamp"
    log "wheelhouse for $image downloaded in $((SECONDS - t0)) s"
  fi
}

build_project_wheel() {
  # Rebuilt each run: it is small, and it is the only part that changes with every commit.
  rm -rf "$WHEELS/project"
  mkdir -p "$WHEELS/project"
  "$PY" -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "$WHEELS/project" "$REPO" \
    >"$CACHE/project-wheel.log" 2>&1 \
    || die "building the project wheel failed"
  rm -rf "$REPO/build"
}

serve_wheels() {
  # Serves $WHEELS (read-only, loopback) for the builds; stopped when this script exits.
  local port="$WHEEL_PORT"
  # SO_REUSEADDR as http.server itself sets it: the last build's connections in TIME_WAIT must
  # not count as "busy".
  if ! "$PY" -c "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',$port))" 2>/dev/null; then
    port="$("$PY" -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")"
    log "port $WHEEL_PORT busy; serving wheels on $port (the dependency layer will be rebuilt)"
  fi
  "$PY" -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$port" >"$CACHE/wheel-server.log" 2>&1 9>&- &
  SERVER_PID=$!
  trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    "$PY" -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
    sleep 0.2
  done
  WHEELS_URL="http://127.0.0.1:$port"
}

# ---------------------------------------------------------------- 4. the builds
stamp_lines() {
  local t0=$SECONDS line
  while IFS= read -r line; do
    printf '%5ds %s\n' $((SECONDS - t0)) "$line"
    case "$line" in Step\ *) log "$1: $(printf '%5ds' $((SECONDS - t0))) ${line:0:100}" ;; esac
  done
}

build_image() {
  local image="$1" ctx="$CACHE/context-$1"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -r "images/$image/." "$ctx/"
  cp "$WHEELS"/project/*.whl "$ctx/"
  local wheels_for="$image"
  if [ "$image" = tap ]; then
    # its first layers are the hub image's (same lock under the same name, same wheel source:
    # Docker's cache); its own lock goes beside it
    mv "$ctx/requirements.lock" "$ctx/tap-requirements.lock"
    cp images/hub/requirements.lock "$ctx/requirements.lock"
    wheels_for=hub
  fi
  local args=(--network host -t "roman-platform/$image:$tag"
    --build-arg "WHEELS_URL=$WHEELS_URL/$wheels_for/"
    --build-arg "VERSION=$version"
    --build-arg "REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
    --build-arg "SOURCE=$(git -C "$REPO" remote get-url origin 2>/dev/null || echo "git+file://$REPO")")
  [ "$base" = default ] || args+=(--build-arg "BASE_IMAGE=$base")
  local release=""
  if [ "$image" = notebook ]; then
    # The environment (release) this lock builds and the versions it pins: image labels, and a
    # second tag roman-platform/notebook:<release>, the name the tier policy gives its image.
    local kv
    while IFS= read -r kv; do
      args+=(--build-arg "$kv")
      if [ "${kv%%=*}" = ROMAN_ENVIRONMENT ]; then release="${kv#*=}"; fi
    done < <(printf '%s\n' "$NOTEBOOK_ENV_ARGS")
    args+=(-t "roman-platform/$image:$release")
  fi
  [ "$image" = tap ] && args+=(--build-arg "TAP_WHEELS_URL=$WHEELS_URL/tap/")
  log "docker build roman-platform/$image:$tag${release:+ (environment $release)} (base ${base})"
  local t0=$SECONDS
  # Each log line carries the seconds since the build began, and each Dockerfile step is echoed
  # to stderr as it starts, so a slow or stuck build shows where its time goes.
  docker build "${args[@]}" "$ctx" 2>&1 | stamp_lines "$image" >"$CACHE/build-$image.log" \
    || { tail -40 "$CACHE/build-$image.log" >&2; die "building $image failed (log: $CACHE/build-$image.log)"; }
  local size
  size="$(docker image inspect -f '{{.Size}}' "roman-platform/$image:$tag")"
  log "built roman-platform/$image:$tag in $((SECONDS - t0)) s, $((size / 1000000)) MB"
  rm -rf "$ctx"
}

ensure_docker
if [ -z "$base" ]; then
  ensure_base
  base="$BASE_TAG"
fi
wheelhouses=("${targets[@]}")
# the tap image's first layers install the hub lock: it needs the hub's wheelhouse too, first
if printf '%s\n' "${targets[@]}" | grep -qx tap; then wheelhouses=(hub "${targets[@]}"); fi
for image in $(printf '%s\n' "${wheelhouses[@]}" | awk '!seen[$0]++'); do ensure_wheels "$image"; done
build_project_wheel
serve_wheels
for image in "${targets[@]}"; do build_image "$image"; done
