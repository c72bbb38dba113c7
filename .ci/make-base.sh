#!/usr/bin/env bash
# Provide the local base image (Debian bookworm + python3, venv, pip, CA certificates)
# for hosts without Docker Hub. Cheap when cached:
#   1. the image already in podman's store      -> nothing to do;
#   2. the rootfs tarball in $CACHE_DIR         -> `podman import` only (a few seconds);
#   3. otherwise                                -> debootstrap (about a minute), save, import.
# Usage: .ci/make-base.sh            (env: BASE_IMAGE, SAHEL_WATCH_CACHE, DEBIAN_MIRROR)
#        .ci/make-base.sh --rebuild  (ignore both caches, e.g. for Debian security updates)
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
CACHE_DIR=${SAHEL_WATCH_CACHE:-/var/cache/sahel-watch}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
TARBALL="$CACHE_DIR/debian-python-$SUITE.tar"
PODMAN=(podman --runtime runc)

log() { printf 'make-base: %s\n' "$*" >&2; }

rebuild=0
if [[ ${1:-} == --rebuild ]]; then rebuild=1; fi

if ((rebuild == 0)) && "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
  log "$BASE_IMAGE already present"
  exit 0
fi

if ((rebuild == 1)) || [[ ! -s $TARBALL ]]; then
  command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
  mkdir -p "$CACHE_DIR"
  rootfs=$(mktemp -d /var/tmp/sahel-watch-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs" "$TARBALL.partial"' EXIT
  log "debootstrap $SUITE from $MIRROR"
  start=$SECONDS
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
    >"$CACHE_DIR/debootstrap.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
    log "debootstrap failed (full log: $CACHE_DIR/debootstrap.log)"
    exit 1
  fi
  # Same trimming as Debian's official slim images: no package caches, lists, docs or man pages.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
  log "rootfs saved to $TARBALL after $((SECONDS - start)) s"
fi

log "importing $TARBALL as $BASE_IMAGE"
"${PODMAN[@]}" import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/usr/bin/python3"]' \
  "$TARBALL" "$BASE_IMAGE" >/dev/null
log "done"
