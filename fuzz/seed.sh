#!/usr/bin/env bash
# Build the seed corpora from the captured vectors: each proto-tests/vectors/*/*.hex becomes one
# binary file in fuzz/corpus/decode/ and fuzz/corpus/decode_stream/ (named after the vector);
# the captures proto-tests/vectors/*/*.pcap also seed decode_stream. Re-running is harmless.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
decode="$root/fuzz/corpus/decode"
stream="$root/fuzz/corpus/decode_stream"
mkdir -p "$decode" "$stream"
n=0
for f in "$root"/proto-tests/vectors/*/*.hex; do
    name="$(basename "$(dirname "$f")")-$(basename "$f" .hex)"
    # Hex digits only (whitespace, 0x prefixes and : or , separators dropped), then to binary.
    perl -0777 -ne 's/0[xX]//g; s/[\s:,]//g; print pack("H*", $_)' "$f" > "$decode/$name"
    cp "$decode/$name" "$stream/$name"
    n=$((n + 1))
done
for f in "$root"/proto-tests/vectors/*/*.pcap; do
    [ -e "$f" ] || continue
    cp "$f" "$stream/$(basename "$(dirname "$f")")-$(basename "$f")"
done
echo "seeded $n messages into $decode and $stream"
