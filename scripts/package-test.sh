#!/usr/bin/env bash
# Build the Debian package from the release binary that is already built (cargo deb
# --no-build), install it with apt as a user would, check what it installed (the binary, man
# pages, completions, units, the ferry user and directories), purge it and check that nothing
# of it is left. Needs root or sudo (apt, ip netns) and cargo-deb (scripts/install-deps.sh
# installs it).
#
#   scripts/package-test.sh            build, install, check, purge
#   scripts/package-test.sh --build    only build target/debian/ferry_*.deb
#
# Refuses to run where a ferry package is already installed that this script did not install
# (it would be replaced and purged).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { echo "package-test: $*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
fail() {
    say "FAILED: $*"
    exit 1
}

BIN=target/release/ferry
[ -x "$BIN" ] || fail "$BIN is missing: cargo build --release --bin ferry first"
cargo deb --version >/dev/null 2>&1 || fail "cargo-deb is missing: scripts/install-deps.sh installs it"

# Generated files, staged where [package.metadata.deb] assets take them from.
DIST=target/dist
rm -rf "$DIST"
mkdir -p "$DIST/completions" "$DIST/man" "$DIST/examples"
"$BIN" completions bash >"$DIST/completions/ferry.bash"
"$BIN" completions zsh >"$DIST/completions/_ferry"
"$BIN" completions fish >"$DIST/completions/ferry.fish"
"$BIN" man --dir "$DIST/man"
gzip -9n "$DIST"/man/*.1
# Every file of examples/, laid out as in the source tree (examples/README.md links them by
# relative path).
examples=examples
[ -n "$(find "$examples" -type f 2>/dev/null | head -1)" ] || fail "no files in $examples/"
cp -R "$examples/." "$DIST/examples/"

rm -f target/debian/ferry_*.deb
# The release profile keeps line tables for profiling; the package gets a stripped binary.
cargo deb --no-build --strip --quiet
DEB=$(ls target/debian/ferry_*.deb)
say "built $DEB ($(du -k "$DEB" | cut -f1) KiB) in $(($(date +%s) - started)) s"
dpkg-deb --contents "$DEB" >"$DIST/contents.txt"
[ "${1:-}" = "--build" ] && exit 0

if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "ok installed"; then
    fail "a ferry package is already installed here; remove it first (apt purge ferry)"
fi

export DEBIAN_FRONTEND=noninteractive
# Purge on every way out, so a failed check never leaves the package installed.
purged=no
cleanup() { [ "$purged" = yes ] || $SUDO apt-get purge -y -qq ferry >/dev/null 2>&1 || true; }
trap cleanup EXIT

$SUDO apt-get install -y -qq --no-install-recommends "./$DEB" >/dev/null
dpkg-query -L ferry >"$DIST/installed.txt"

# The binary.
version=$(/usr/bin/ferry --version)
[ "$version" = "ferry $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ] ||
    fail "ferry --version says '$version'"
# A man page per subcommand, found by man.
page=$(man -w ferry-failover) || fail "man -w ferry-failover found no page"
[ "$page" = /usr/share/man/man1/ferry-failover.1.gz ] || fail "man -w ferry-failover: $page"
MANPAGER=cat man ferry-failover-keep 2>/dev/null | grep -q "ferry-failover-keep" ||
    fail "man ferry-failover-keep does not render"
# bash completion loads and completes `ferry fail<TAB>` to the two commands that start so.
words=$(bash -c 'source /usr/share/bash-completion/completions/ferry
    COMP_WORDS=(ferry fail); COMP_CWORD=1; COMP_LINE="ferry fail"; COMP_POINT=${#COMP_LINE}
    _ferry ferry fail ferry; printf "%s\n" "${COMPREPLY[@]}"' | sort | tr '\n' ' ')
[ "$words" = "failback failover " ] || fail "bash completion of 'ferry fail': '$words'"
for f in /usr/share/zsh/vendor-completions/_ferry /usr/share/fish/vendor_completions.d/ferry.fish; do
    [ -s "$f" ] || fail "$f missing"
done
if command -v zsh >/dev/null; then zsh -n /usr/share/zsh/vendor-completions/_ferry || fail "zsh: _ferry"; fi
if command -v fish >/dev/null; then
    fish -c 'complete -C "ferry fail"' | grep -q failover || fail "fish completion of 'ferry fail'"
fi
# Units, the user and the directories.
for unit in ferry-speaker ferry-keeper; do
    f=$(grep -E "/$unit\.service$" "$DIST/installed.txt") || fail "$unit.service not installed"
    if command -v systemd-analyze >/dev/null; then
        systemd-analyze verify "$f" || fail "systemd-analyze verify $f"
    fi
done
getent passwd ferry >/dev/null || fail "no ferry user"
getent group ferry >/dev/null || fail "no ferry group"
for d in /var/lib/ferry /var/lib/ferry/speaker /var/lib/ferry/controller; do
    [ "$(stat -c %U:%G "$d" 2>/dev/null)" = ferry:ferry ] || fail "$d is not ferry's"
done
[ "$(stat -c %U:%G:%a /etc/ferry)" = root:ferry:750 ] || fail "/etc/ferry: $(stat -c %U:%G:%a /etc/ferry)"
(cd "$examples" && find . -type f) | while read -r f; do
    cmp -s "$examples/$f" "/usr/share/doc/ferry/examples/$f" || fail "example $f not in /usr/share/doc/ferry/examples"
done

# The speaker as the unit runs it: the ferry user, no capability but CAP_NET_BIND_SERVICE, no
# new privileges; it must bind port 179 and key its listening socket for TCP MD5. In a network
# namespace of its own, so no port of the host is touched. systemd is not PID 1 in every CI
# container, so setpriv stands in for User= and the capability settings.
if command -v setpriv >/dev/null && command -v ip >/dev/null; then
    ns="ferry-pkg-$$"
    run=$(mktemp -d /tmp/ferry-pkg.XXXXXX)
    log=$(mktemp /tmp/ferry-pkg-log.XXXXXX)
    spk=""
    stop_speaker() {
        [ -n "$spk" ] && $SUDO kill "$spk" 2>/dev/null && wait "$spk" 2>/dev/null
        $SUDO ip netns del "$ns" 2>/dev/null || true
        $SUDO rm -rf "$run"
        rm -f "$log"
    }
    trap 'stop_speaker; cleanup' EXIT
    $SUDO ip netns add "$ns"
    $SUDO ip -n "$ns" link set lo up
    cat >"$run/ferry.toml" <<CONF
[speaker]
asn = 64512
router_id = "192.0.2.1"
listen = "127.0.0.1:179"
api = "$run/api.sock"
state_dir = "$run/state"
metrics_listen = "127.0.0.1:9179"

[[neighbor]]
address = "127.0.0.2"
remote_as = 64513
passive = true
md5_password = "package-test-key"
CONF
    chmod 600 "$run/ferry.toml"
    $SUDO chown -R ferry:ferry "$run"
    $SUDO ip netns exec "$ns" setpriv --reuid=ferry --regid=ferry --clear-groups --no-new-privs \
        --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
        --bounding-set=-all,+net_bind_service \
        /usr/bin/ferry speaker --config "$run/ferry.toml" 2>"$log" &
    spk=$!
    metrics=""
    for _ in $(seq 50); do
        metrics=$($SUDO ip netns exec "$ns" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9179 &&
            printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && timeout 5 cat <&3' 2>/dev/null) && break
        $SUDO kill -0 "$spk" 2>/dev/null || break
        sleep 0.1
    done
    grep -q 'ferry_peer_md5{peer="127.0.0.2"} 1' <<<"$metrics" ||
        fail "the speaker as the ferry user did not come up: $(cat "$log")"
    $SUDO ip netns exec "$ns" ss -Hltn 'sport = :179' | grep -q 127.0.0.1:179 ||
        fail "the speaker as the ferry user does not listen on port 179: $(cat "$log")"
    stop_speaker
    spk=""
    trap cleanup EXIT
fi

# Purge: every file the package installed is gone, and so are its directories.
$SUDO apt-get purge -y -qq ferry >/dev/null
purged=yes
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "installed"; then
    fail "ferry is still known to dpkg: $(dpkg-query -W -f='${Status}' ferry)"
fi
left=()
while read -r path; do
    [ -f "$path" ] || [ -L "$path" ] && left+=("$path")
done <"$DIST/installed.txt"
for d in /var/lib/ferry /etc/ferry /usr/share/doc/ferry /run/ferry; do
    [ -e "$d" ] && left+=("$d")
done
[ "${#left[@]}" -eq 0 ] || fail "left after purge: ${left[*]}"
say "ok: installed, checked and purged in $(($(date +%s) - started)) s"
