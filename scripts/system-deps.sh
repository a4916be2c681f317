#!/usr/bin/env bash
# Installs the Debian packages the platform and its tests need, only those missing.
# chromium (browser tests), postgresql (database tests), docker.io + debootstrap (image builds),
# unzip (helm/kubectl layer), nodejs/npm (configurable-http-proxy),
# python3-gavo + postgresql-15-pgsphere (GAVO DaCHS, the TAP/ObsCore service; not the
# gavodachs2-server package, whose post-install needs a running system PostgreSQL: the platform
# runs DaCHS on a PostgreSQL server of its own, hub_config/tap/service.py); postgresql-15-q3c
# (the mission-scale index benchmark).
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in chromium chromium-driver postgresql python3-gavo postgresql-15-pgsphere postgresql-15-q3c docker.io debootstrap unzip nodejs npm; do
  if [ "$pkg" = nodejs ] || [ "$pkg" = npm ]; then command -v "${pkg/nodejs/node}" >/dev/null && continue; fi
  have "$pkg" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
