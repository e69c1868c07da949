#!/usr/bin/env bash
# Start dockerd if no engine answers, and wait until it does (at most 60 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

if docker info >/dev/null 2>&1; then
  say "Docker engine answers"
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  die "DOCKER_HOST=$DOCKER_HOST is set but no engine answers there; start it, or unset DOCKER_HOST to use a local dockerd"
fi
command -v dockerd >/dev/null || die "dockerd not found; run scripts/setup-system.sh as root"
need_root
log=/var/log/kuh-dockerd.log
say "starting dockerd (log: $log)"
setsid nohup dockerd >"$log" 2>&1 </dev/null &
echo $! >/var/run/kuh-dockerd.pid
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then say "Docker engine up"; exit 0; fi
  sleep 0.5
done
tail -n 20 "$log" >&2 || true
die "dockerd did not answer within 60 s; see $log"
