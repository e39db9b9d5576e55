#!/usr/bin/env bash
# Install what Ferry's tests need on a fresh Debian 12 / Ubuntu machine: the BGP daemons the
# interop tests and captures run against (FRR, BIRD 2, GoBGP, ExaBGP), packet tools, and
# cargo-nextest and cargo-deb. `--demo` installs only what `ferry lab demo` needs (FRR and iproute2).
# `--docker` installs what `ferry lab --runtime docker` needs beyond that: the Docker engine
# (docker.io) and debootstrap (`ferry lab image build`). Without it, nothing of Docker's is
# installed and the lab runs on network namespaces; the full test run (scripts/test.sh) then
# uses an engine that is already there, or skips the Docker runtime's tests and says so.
# Idempotent; needs root (or sudo) for apt.
#
# It says what it installs before it does. Services: the tests and the lab start their own
# daemons with their own configs and paths, so a service the host already runs (a real FRR,
# BIRD, ...) is never stopped or disabled. Only a daemon this script has just installed for the
# tests is kept stopped, since its packaged service would only hold ports and files.
set -euo pipefail

demo=0
docker=0
case "${1:-}" in
    --demo) demo=1 ;;
    --docker) docker=1 ;;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ "$demo" -eq 1 ]; then
    # protobuf-compiler + libprotobuf-dev (its google/protobuf/*.proto, only a Recommends of
    # protobuf-compiler): the etcd client's gRPC code is generated at build time.
    PACKAGES=(frr iproute2 procps protobuf-compiler libprotobuf-dev)
elif [ "$docker" -eq 1 ]; then
    # The engine and the image builder; util-linux has nsenter (the runtime enters containers).
    PACKAGES=(frr iproute2 procps util-linux docker.io debootstrap protobuf-compiler libprotobuf-dev)
else
    # man-db: the package test (scripts/package-test.sh) finds the man pages with man.
    # stayrtr + frr-rpki-rtrlib: the RPKI preflight's tests (an RTR validator serving a VRP
    # file, and bgpd -M rpki dropping Invalid routes). debootstrap: the tests build the Docker
    # runtime's image (`ferry lab image build`).
    # bind9 + bind9-dnsutils: the DNS failover tests start their own named (dig, nsupdate,
    # tsig-keygen read and change its zone). etcd-server, etcd-client (etcdctl): the HA
    # controller tests run a three-member etcd; protobuf-compiler builds the etcd client.
    PACKAGES=(frr frr-rpki-rtrlib stayrtr bird2 gobgpd exabgp tcpdump tshark iproute2 procps python3 ca-certificates man-db debootstrap bind9 bind9-dnsutils
        etcd-server etcd-client protobuf-compiler libprotobuf-dev)
fi
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing with apt-get: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    if [[ " ${missing[*]} " == *" tshark "* ]]; then
        echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    fi
    for attempt in 1 2 3; do
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" && break
        echo "install-deps: apt attempt $attempt failed; retrying" >&2
        sleep 5
    done
    if [ "$demo" -eq 0 ] && [ "$docker" -eq 0 ]; then
        # Services of daemons installed just now, for the tests: keep them stopped.
        for p in "${missing[@]}"; do
            case "$p" in
                frr) svc=frr ;;
                bird2) svc=bird ;;
                gobgpd) svc=gobgpd ;;
                exabgp) svc=exabgp ;;
                etcd-server) svc=etcd ;;
                stayrtr) svc=stayrtr ;;
                bind9) svc=named ;;
                *) continue ;;
            esac
            echo "install-deps: $svc was installed just now for the tests: disabling its service" >&2
            $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
        done
    fi
else
    echo "install-deps: already installed: ${PACKAGES[*]}" >&2
fi

if [ "$docker" -eq 1 ] && ! docker version >/dev/null 2>&1; then
    # Asked for explicitly: the engine is what `--runtime docker` runs on.
    echo "install-deps: starting the Docker engine (--docker)" >&2
    $SUDO systemctl enable --now docker >/dev/null 2>&1 || $SUDO service docker start
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found. Ferry needs Rust 1.91 or later; get it with rustup:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   (see https://rustup.rs)" >&2
    echo "then open a new shell (or: . \"\$HOME/.cargo/env\") and run this again." >&2
    exit 1
fi
if [ "$demo" -eq 0 ] && [ "$docker" -eq 0 ]; then
    rustup component add clippy rustfmt >/dev/null 2>&1 || true
    if ! cargo nextest --version >/dev/null 2>&1; then
        echo "install-deps: installing cargo-nextest (cargo install)" >&2
        cargo install cargo-nextest --locked
    fi
    # The Debian package test (scripts/package-test.sh) builds with cargo-deb, pinned so the
    # package is built the same way everywhere.
    CARGO_DEB_VERSION=3.8.0
    if ! cargo deb --version 2>/dev/null | grep -qxF "cargo-deb $CARGO_DEB_VERSION"; then
        echo "install-deps: installing cargo-deb $CARGO_DEB_VERSION (cargo install)" >&2
        cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
    fi
fi
