#!/usr/bin/env bash
# CI's bounded fuzz run: every cargo-fuzz target of fuzz/ (the wire codec, `ferry decode`'s
# inputs, BFD, the speaker config, failover plans and the API's request bodies) for
# FUZZ_SECONDS each (default 20), seeded from the repository (fuzz/seed.sh). A crash or a
# broken property fails the run; the input is left in fuzz/artifacts/<target>/ and printed.
# Longer runs: fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
fuzz/seed.sh >/dev/null
cd fuzz
# Stable rustc takes cargo fuzz's -Z flags with RUSTC_BOOTSTRAP (fuzz/README.md).
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O -a
targets=(decode decode_stream bfd config plan api_body)
passed=0
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="target/fuzz-smoke-$t.log"
    if cargo fuzz run -O -a "$t" "corpus/$t" -- -max_total_time="$seconds" -max_len=8192 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz $t: clean, ${runs:-?} runs in ${seconds} s"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED; its log:" >&2
        grep -v '^#[0-9]' "$log" | tail -40 >&2
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
