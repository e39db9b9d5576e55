#!/usr/bin/env bash
# Install what Ferry's build, tests and demo need on a fresh Debian 12 / Ubuntu machine:
# the BGP daemons the interop tests and captures run against (FRR, BIRD 2, GoBGP, ExaBGP),
# packet tools, and cargo-nextest. Idempotent; needs root (or sudo) for apt.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(frr bird2 gobgpd exabgp tcpdump tshark iproute2 python3 ca-certificates)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    for attempt in 1 2 3; do
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" && break
        echo "apt attempt $attempt failed; retrying" >&2
        sleep 5
    done
fi
# The daemons are started by the tests with their own configs; the packaged services would only
# hold ports and files, so keep them stopped.
for svc in frr bird gobgpd exabgp; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
# The Debian package test (scripts/package-test.sh): man to find the pages, cargo-deb (pinned,
# so the package is built the same way everywhere) to build it.
if ! command -v man >/dev/null; then
    $SUDO apt-get install -y -qq --no-install-recommends man-db
fi
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qxF "cargo-deb $CARGO_DEB_VERSION"; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
