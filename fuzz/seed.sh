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

# The config and plan parsers start from every fenced ```toml block of the docs (README.md,
# docs/*.md, the examples in src/): speaker configs and plans alike, each block one file in
# both corpora, and from the lab's topology files. The API bodies start from the JSON requests
# the docs show, each behind the octet that picks its endpoint (0 announce, 1 withdraw).
config="$root/fuzz/corpus/config"
plan="$root/fuzz/corpus/plan"
api="$root/fuzz/corpus/api_body"
mkdir -p "$config" "$plan" "$api"
m=0
for doc in "$root"/README.md "$root"/docs/*.md; do
    base=$(basename "$doc" .md)
    awk -v out="$config/$base-" '
        /^```toml/ { n++; f = out n; inblock = 1; next }
        /^```/ && inblock { inblock = 0; close(f); next }
        inblock { print > f }
    ' "$doc"
done
for src in "$root"/src/controller/plan.rs "$root"/src/config.rs; do
    base=$(basename "$src" .rs)
    sed -n 's|^//! \{0,1\}||p' "$src" | awk -v out="$config/$base-" '
        /^```toml/ { n++; f = out n; inblock = 1; next }
        /^```/ && inblock { inblock = 0; close(f); next }
        inblock { print > f }
    '
done
for f in "$config"/*; do cp "$f" "$plan/"; m=$((m + 1)); done
for f in "$root"/lab/topologies/*/*.toml; do cp "$f" "$plan/lab-$(basename "$f")"; done
printf '\0{"routes":[{"prefix":"198.51.100.0/24","med":5,"communities":["65000:1"]}]}' > "$api/announce"
printf '\1{"prefixes":["198.51.100.0/24"],"graceful_secs":30}' > "$api/withdraw"
printf '\1{"all":true}' > "$api/withdraw-all"
printf '\2{"prefixes":["2001:db8::/48"]}' > "$api/renew"
echo "seeded $m TOML blocks into $config and $plan"
