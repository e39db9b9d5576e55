#!/usr/bin/env bash
# Install what the tests need, then run all of them: formatting, lints, unit, vector and
# interop tests (cargo nextest), and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The interop tests run the ferry binary from FERRY_BIN: a copy, so that no build during the
# run (a test process calling cargo) can replace the binary under a test that is using it.
cargo build --bin ferry
mkdir -p target/test-bin
cp target/debug/ferry target/test-bin/ferry
export FERRY_BIN="$PWD/target/test-bin/ferry"
# The example plans as a user checks them (tests/examples.rs also loads every example through
# the library's parsers).
for plan in examples/plan/*.toml; do
    "$FERRY_BIN" plan check --offline "$plan" >/dev/null
done
# The ingest regression guard (proto-tests/tests/ingest_guard.rs) compares Ferry with BIRD and
# needs an optimised build: a debug build is an order of magnitude slower.
cargo build --release --bin ferry
cp target/release/ferry target/test-bin/ferry-release
export FERRY_RELEASE_BIN="$PWD/target/test-bin/ferry-release"
# The Debian package from that release binary: built, installed with apt, checked, purged.
scripts/package-test.sh
FIT_REQUIRE=1 cargo nextest run --workspace --no-fail-fast -E 'not binary(ingest_guard)'
# The ingest guard times Ferry against BIRD: alone, so that the other tests' load does not
# skew the ratio.
FIT_REQUIRE=1 cargo nextest run -p proto-tests --test ingest_guard --no-capture
cargo test --workspace --doc
# Every fuzz target for a bounded time (FUZZ_SECONDS each): the decoders, config, plans, API bodies.
scripts/fuzz-smoke.sh
