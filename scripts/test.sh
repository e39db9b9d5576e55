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
# The examples as a user checks them (tests/examples.rs also loads every example through the
# library's parsers). A speaker config with a secret must be 0600, which git does not keep, and
# its /etc, /run and /var paths are the deployment's: each is checked as a private copy whose
# paths point into a scratch directory.
for plan in examples/plan/*.toml; do
    "$FERRY_BIN" plan check --offline "$plan" >/dev/null
done
example_dir=$(mktemp -d)
trap 'rm -rf "$example_dir"' EXIT
mkdir -p "$example_dir/etc/ferry" "$example_dir/run/ferry" "$example_dir/var/lib/ferry"
install -m 0600 /dev/null "$example_dir/etc/ferry/api-token"
echo "example-token-for-the-check" >"$example_dir/etc/ferry/api-token"
for config in examples/speaker/*.toml; do
    sed -e "s#\"/etc/#\"$example_dir/etc/#" -e "s#\"/run/#\"$example_dir/run/#" \
        -e "s#\"/var/#\"$example_dir/var/#" "$config" >"$example_dir/speaker.toml"
    chmod 0600 "$example_dir/speaker.toml"
    "$FERRY_BIN" speaker --config "$example_dir/speaker.toml" --check >/dev/null
done
rm -rf "$example_dir"
# The ingest regression guard (proto-tests/tests/ingest_guard.rs) compares Ferry with BIRD and
# needs an optimised build: a debug build is an order of magnitude slower.
cargo build --release --bin ferry
cp target/release/ferry target/test-bin/ferry-release
export FERRY_RELEASE_BIN="$PWD/target/test-bin/ferry-release"
# The Debian package from that release binary: built, installed with apt, checked, purged.
scripts/package-test.sh
# The lab's Docker runtime (tests/lab_docker.rs) needs the engine and the node image, built
# from Debian packages (no registry) and kept by its content tag: a no-op when the engine
# already has it. Where Docker is not installed, the Docker tests skip (everything else runs on
# the netns runtime); an engine that is installed but does not answer is a failure, unless
# FERRY_TEST_NO_DOCKER=1.
if [ "${FERRY_TEST_NO_DOCKER:-0}" = "1" ]; then
    echo "test.sh: FERRY_TEST_NO_DOCKER=1: the lab's --runtime docker tests skip" >&2
elif docker version >/dev/null 2>&1; then
    image_started=$(date +%s)
    "$FERRY_BIN" lab image build
    echo "test.sh: lab image ready in $(( $(date +%s) - image_started )) s" >&2
    export FIT_REQUIRE_DOCKER=1
elif command -v docker >/dev/null; then
    echo "test.sh: docker is installed but no engine answers: start it (systemctl start docker)," >&2
    echo "or run with FERRY_TEST_NO_DOCKER=1 to skip the lab's Docker runtime tests." >&2
    exit 1
else
    echo "test.sh: Docker is not installed: the lab's --runtime docker tests skip" >&2
    echo "(scripts/install-deps.sh --docker installs it)." >&2
fi
FIT_REQUIRE=1 cargo nextest run --workspace --no-fail-fast -E 'not binary(ingest_guard) and not binary(command_guard)'
# The ingest guard times Ferry against BIRD: alone, so that the other tests' load does not
# skew the ratio.
FIT_REQUIRE=1 cargo nextest run -p proto-tests --test ingest_guard --no-capture
# The command guard (issue 19): `ferry announce` to the wire against GoBGP's and ExaBGP's CLIs,
# and 100k by `--file` against BIRD; alone, one test at a time, for the same reason.
FIT_REQUIRE=1 cargo nextest run -p proto-tests --test command_guard --no-capture -j 1
cargo test --workspace --doc
# Every fuzz target for a bounded time (FUZZ_SECONDS each): the decoders, config, plans, API bodies.
scripts/fuzz-smoke.sh
