#!/usr/bin/env bash
# Build ssmd's container image from Debian's packages only (no registry needed):
#   1. a bookworm root file system (mmdebstrap --variant=minbase, python3 3.11), cached in
#      $SSMD_CACHE_DIR (default ~/.cache/ssmd) as rootfs-<hash>.tar and imported as a base image;
#   2. the wheel (`just wheel`, dist/) and its dependencies as wheels (pip wheel, cached per
#      wheel hash), so that the docker build itself needs no network;
#   3. deploy/debian.Dockerfile on top: the same layout as deploy/Dockerfile (a venv at
#      /opt/ssmd, user ssmd, dumb-init, the same HEALTHCHECK).
# Usage: deploy/debian-image.sh [TAG]   (default ssmd:debian; needs docker, mmdebstrap, a wheel:
#        the newest manylinux one in dist/, or $SSMD_WHEEL)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
tag=${1:-ssmd:debian}
cache=${SSMD_CACHE_DIR:-$HOME/.cache/ssmd}
suite=bookworm
packages=python3,python3-venv,ca-certificates,tzdata
mkdir -p "$cache"

command -v docker >/dev/null || { echo "debian-image: docker is not installed" >&2; exit 1; }
shopt -s nullglob
if [ -n "${SSMD_WHEEL:-}" ]; then
    # A wheel built elsewhere (the image test builds one for this machine's glibc).
    [ -f "$SSMD_WHEEL" ] || { echo "debian-image: SSMD_WHEEL=$SSMD_WHEEL is not a file" >&2; exit 1; }
    wheel=$SSMD_WHEEL
else
    wheels=("$root"/dist/ssmd-*-cp311-*manylinux*.whl)
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "debian-image: no cp311 manylinux wheel in dist/; run 'just wheel' first" >&2
        exit 1
    fi
    # The newest wheel if several versions were built.
    wheel=$(ls -t "${wheels[@]}" | head -n1)
fi

# 1. The base image: the root file system is made once per suite and package list.
key=$(printf '%s|minbase|%s' "$suite" "$packages" | sha256sum | cut -c1-16)
rootfs="$cache/rootfs-$key.tar"
base="ssmd-debian-base:$key"
if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ ! -f "$rootfs" ]; then
        command -v mmdebstrap >/dev/null || {
            echo "debian-image: mmdebstrap is missing; Fix: apt-get install mmdebstrap" >&2; exit 1; }
        mmdebstrap --quiet --variant=minbase --format=tar --include="$packages" \
            --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
            "$suite" "$rootfs.part"
        mv "$rootfs.part" "$rootfs"
    fi
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' "$rootfs" "$base" >/dev/null
fi

# 2. The wheelhouse: the ssmd wheel and every runtime dependency, made once per wheel by the
#    base image's own Python (3.11.2), so that dependency markers are read as the image will
#    (redis needs async-timeout below 3.11.3, which a newer Python here would leave out).
#    The host's CA bundle is lent to that container for a proxy that re-signs TLS.
wkey=$(sha256sum "$wheel" | cut -c1-16)
wheelhouse="$cache/wheelhouse-$wkey"
if [ ! -f "$wheelhouse/.complete" ]; then
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    cp "$wheel" "$wheelhouse/"
    cabundle=/etc/ssl/certs/ca-certificates.crt
    # pip's download cache outlives the wheelhouse: a new ssmd wheel fetches nothing again.
    mkdir -p "$cache/pip"
    docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -e PIP_DISABLE_PIP_VERSION_CHECK=1 \
        -v "$wheelhouse:/wheels" -v "$cache/pip:/tmp/.cache/pip" ${PIP_INDEX_URL:+-e PIP_INDEX_URL} \
        $( [ -f "$cabundle" ] && echo "-v $cabundle:/etc/ssl/certs/ca-certificates.crt:ro" ) \
        "$base" sh -c 'python3 -m venv /tmp/venv && /tmp/venv/bin/pip wheel --quiet \
            --wheel-dir /wheels --find-links /wheels "/wheels/$0" "dumb-init>=1.2.5"' "$(basename "$wheel")"
    touch "$wheelhouse/.complete"
fi

# 3. The image, built from a context holding only what it installs.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r "$wheelhouse" "$context/wheels"
rm -f "$context/wheels/.complete"
docker build --quiet --build-arg "BASE=$base" --build-arg "WHEEL=$(basename "$wheel")" \
    -f "$here/debian.Dockerfile" -t "$tag" "$context" >/dev/null
echo "$tag"
