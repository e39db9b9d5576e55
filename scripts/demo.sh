#!/usr/bin/env bash
# The demo of what Ferry does today: a real FRR router comes up in a network namespace,
# holds a BGP session with a raw peer, announces IPv4 and IPv6 prefixes with communities,
# refreshes, withdraws and shuts the session down with a message; `ferry decode` then prints
# every message of that session from the packet capture.
# (The lab demo with a failover, `ferry lab demo`, is not built yet.) Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release
out=$(mktemp -d /tmp/ferry-demo.XXXXXX)
trap 'rm -rf "$out"' EXIT
OUTROOT="$out" proto-tests/capture/capture.sh frr
echo "--- ferry decode --pcap (one JSON object per BGP message) ---"
target/release/ferry decode --pcap "$out/frr/session.pcap"
