#!/usr/bin/env bash
# The demo: `ferry lab demo` builds three sites in network namespaces (FRR routers r1, r2, r3,
# a Ferry speaker at primary and recovery, a VM with the same address at both, a client at the
# third site probing it every 1 ms), fails the subnet over to the recovery site and back with
# live progress, prints the loss window and its parts, writes report.json and timeline.svg,
# and removes the lab.
#
# Needs Rust (it says how to get it when cargo is missing) and root (it uses sudo when not
# root). Installs only what the demo uses: FRR and iproute2 (scripts/install-deps.sh --demo),
# after saying so. It starts, stops and disables no service: the lab runs its own bgpd and
# zebra with their own configs and paths inside its namespaces, so an FRR the host already
# runs is left alone. Arguments go to `ferry lab demo` (e.g. --moves 4 --break-before-make).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "demo: cargo not found. Ferry needs Rust 1.91 or later; get it with rustup:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   (see https://rustup.rs)" >&2
    echo "then open a new shell (or: . \"\$HOME/.cargo/env\") and run scripts/demo.sh again." >&2
    exit 1
fi
echo "demo: needs FRR and iproute2 (installed with apt if missing), builds ferry (cargo build --release)," >&2
echo "      then runs 'ferry lab demo' as root: namespaces fl-demo-*, removed at the end." >&2
scripts/install-deps.sh --demo
cargo build --release --bin ferry
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO target/release/ferry lab demo "$@"
