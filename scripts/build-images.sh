#!/usr/bin/env bash
# Local images (no registry is reachable), each rebuilt only when its inputs change:
#   kuh/debian-base:bookworm       debootstrap + docker import (python3, aiohttp, yaml), built once
#   kuh/kong-emulator:dev          the emulator on that base (emulator/)
#   kuh/debian-postgres:bookworm   debootstrap + docker import, adding postgresql-15 and python3-psycopg2
#   kuh/postgres:15                PostgreSQL for a Kong control plane's database (images/postgres/)
#   kuh/kong-lookalike:<version>   the emulator behind Kong's own image habits (images/kong-lookalike/),
#                                  one tag per version in KUH_LOOKALIKE_VERSIONS (default 3.4.2 3.8.0)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(dirname "$here")
base_image=${KUH_BASE_IMAGE:-kuh/debian-base:bookworm}
emu_image=${KUH_EMULATOR_IMAGE:-kuh/kong-emulator:dev}
pg_base_image=${KUH_PG_BASE_IMAGE:-kuh/debian-postgres:bookworm}
pg_image=${KUH_POSTGRES_IMAGE:-kuh/postgres:15}
lookalike_repo=${KUH_LOOKALIKE_REPO:-kuh/kong-lookalike}
lookalike_versions=${KUH_LOOKALIKE_VERSIONS:-3.4.2 3.8.0}
# what the emulator needs inside the image; Debian's own packages, added at debootstrap time
base_packages=python3,ca-certificates,python3-aiohttp,python3-yaml
pg_packages=$base_packages,postgresql-15,python3-psycopg2

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/start-dockerd.sh first"

debian_mirror() {
  # the mirror apt already uses on this machine (deb822 first, then one-line format)
  local m
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || die "cannot find a Debian mirror in /etc/apt/sources.list(.d); set KUH_DEBIAN_MIRROR"
  echo "$m"
}

# debootstrap_image IMAGE PACKAGES: a minimal bookworm with PACKAGES, imported as IMAGE (once)
debootstrap_image() {
  local image=$1 packages=$2 rootfs mirror log
  if docker image inspect "$image" >/dev/null 2>&1; then
    say "base image $image present"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap not found; run scripts/setup-system.sh"
  need_root
  rootfs=$(mktemp -d /tmp/kuh-rootfs.XXXXXX)
  log=/tmp/kuh-debootstrap-${image//[\/:]/-}.log
  trap 'rm -rf "$rootfs"' EXIT
  mirror=${KUH_DEBIAN_MIRROR:-$(debian_mirror)}
  say "building $image with debootstrap (a minute or two)"
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "debootstrap failed; see $log"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
  say "base image $image built"
}

# build_if_changed IMAGE DIGEST DOCKERFILE CONTEXT [docker build args...]: build when the label differs
build_if_changed() {
  local image=$1 digest=$2 dockerfile=$3 context=$4 have
  shift 4
  have=$(docker image inspect -f '{{ index .Config.Labels "kuh.source-digest" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$digest" ]; then
    say "image $image up to date"
    return
  fi
  say "building image $image"
  DOCKER_BUILDKIT=0 docker build -q "$@" --label "kuh.source-digest=$digest" \
    -t "$image" -f "$dockerfile" "$context" >/dev/null
}

# digest_of TEXT FILES...: a short digest of some text (image ids, versions) and the files' contents
digest_of() {
  local text=$1
  shift
  { printf '%s\n' "$text"; (cd "$root" && sha256sum "$@"); } | sha256sum | cut -c1-16
}

image_id() { docker image inspect -f '{{.Id}}' "$1"; }

debootstrap_image "$base_image" "$base_packages"

if [ -f "$root/emulator/Dockerfile" ]; then
  digest=$( (cd "$root" && find emulator -type f \( -name '*.py' -o -name Dockerfile \) -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
  build_if_changed "$emu_image" "$digest" "$root/emulator/Dockerfile" "$root" --build-arg BASE="$base_image"
fi

# the Kong-image path: PostgreSQL for hybrid control planes, and the look-alike images
if [ "${KUH_SKIP_KONG_IMAGES:-0}" != 1 ]; then
  debootstrap_image "$pg_base_image" "$pg_packages"
  digest=$(digest_of "$(image_id "$pg_base_image")" images/postgres/Dockerfile images/postgres/docker-entrypoint.sh)
  build_if_changed "$pg_image" "$digest" "$root/images/postgres/Dockerfile" "$root/images/postgres" \
    --build-arg BASE="$pg_base_image"
  for version in $lookalike_versions; do
    digest=$(digest_of "$version $(image_id "$emu_image") $(image_id "$pg_base_image")" \
      images/kong-lookalike/Dockerfile images/kong-lookalike/kong images/kong-lookalike/docker-entrypoint.sh)
    build_if_changed "$lookalike_repo:$version" "$digest" "$root/images/kong-lookalike/Dockerfile" \
      "$root/images/kong-lookalike" --build-arg KONG_VERSION="$version" --build-arg EMULATOR="$emu_image" --build-arg BASE="$pg_base_image"
  done
fi
