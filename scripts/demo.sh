#!/usr/bin/env bash
# The demo: `ferry lab demo` builds three sites in network namespaces (FRR routers r1, r2, r3,
# a Ferry speaker at primary and recovery, a VM with the same address at both, a client at the
# third site probing it every 1 ms), fails the subnet over to the recovery site and back with
# live progress, prints the loss window and its parts, writes report.json and timeline.svg,
# and removes the lab. Installs what it needs (FRR and the rest: scripts/install-deps.sh) and
# builds Ferry. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO target/release/ferry lab demo "$@"
