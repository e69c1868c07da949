#!/usr/bin/env bash
# Local images (no registry is reachable): a Debian base made with debootstrap + docker import, built
# once, and the emulator image on top of it, rebuilt when emulator/ changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(dirname "$here")
base_image=${KUH_BASE_IMAGE:-kuh/debian-base:bookworm}
emu_image=${KUH_EMULATOR_IMAGE:-kuh/kong-emulator:dev}
# what the emulator needs inside the image; Debian's own packages, added at debootstrap time
base_packages=python3,ca-certificates,python3-aiohttp,python3-yaml

docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/start-dockerd.sh first"

debian_mirror() {
  # the mirror apt already uses on this machine (deb822 first, then one-line format)
  local m
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || die "cannot find a Debian mirror in /etc/apt/sources.list(.d); set KUH_DEBIAN_MIRROR"
  echo "$m"
}

if docker image inspect "$base_image" >/dev/null 2>&1; then
  say "base image $base_image present"
else
  command -v debootstrap >/dev/null || die "debootstrap not found; run scripts/setup-system.sh"
  need_root
  rootfs=$(mktemp -d /tmp/kuh-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  mirror=${KUH_DEBIAN_MIRROR:-$(debian_mirror)}
  say "building $base_image with debootstrap (about a minute)"
  debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" "$mirror" >/tmp/kuh-debootstrap.log 2>&1 \
    || { tail -n 20 /tmp/kuh-debootstrap.log >&2; die "debootstrap failed; see /tmp/kuh-debootstrap.log"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
  say "base image $base_image built"
fi

if [ -f "$root/emulator/Dockerfile" ]; then
  digest=$( (cd "$root" && find emulator -type f \( -name '*.py' -o -name Dockerfile \) -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{ index .Config.Labels "kuh.source-digest" }}' "$emu_image" 2>/dev/null || true)
  if [ "$have" = "$digest" ]; then
    say "emulator image $emu_image up to date"
  else
    say "building emulator image $emu_image"
    DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" --label "kuh.source-digest=$digest" \
      -t "$emu_image" -f "$root/emulator/Dockerfile" "$root" >/dev/null
  fi
fi
