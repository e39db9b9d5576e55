#!/usr/bin/env bash
# Regenerate every capture and every vector: run as root on Linux with frr, bird2,
# gobgpd, exabgp, tcpdump and tshark installed (Debian 12 packages).
#   proto-tests/capture/regenerate.sh [capture names...]   (default: all)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/capture.sh" "$@"
python3 "$HERE/mkvectors.py"
