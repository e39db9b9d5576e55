#!/usr/bin/env bash
# Install what the tests need, then run all of them: formatting, lints, unit, vector and
# interop tests (cargo nextest), and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
FIT_REQUIRE=1 cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
