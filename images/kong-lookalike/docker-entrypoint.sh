#!/usr/bin/env bash
# The entrypoint of Kong's image, reduced to what the look-alike needs (Kong/docker-kong
# docker-entrypoint.sh @ 3.4.2): `kong docker-start` prepares the prefix and starts the node in the
# foreground; any other command runs as given (`kong migrations bootstrap`, `kong version`).
set -Eeo pipefail

export KONG_NGINX_DAEMON=${KONG_NGINX_DAEMON:=off}

if [[ "$1" == "kong" && "$2" == "docker-start" ]]; then
  PREFIX=${KONG_PREFIX:=/usr/local/kong}
  kong prepare -p "$PREFIX"
  exec kong docker-start
fi

exec "$@"
