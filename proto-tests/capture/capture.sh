#!/usr/bin/env bash
# Capture real BGP messages from FRR, BIRD 2, GoBGP and ExaBGP.
#
# Usage (root, Linux):  proto-tests/capture/capture.sh [frr|bird|gobgp|exabgp|frr-as2 ...]
#   (no argument = all). Writes proto-tests/capture/out/<name>/{records.jsonl,session.pcap,*.log};
#   then run proto-tests/capture/mkvectors.py to (re)build proto-tests/vectors/.
#
# For each daemon: two network namespaces vcap-<n>-d (daemon, 192.0.2.1/24, 2001:db8::1/64)
# and vcap-<n>-p (raw peer capture.py, 192.0.2.2/24, 2001:db8::2/64, AS 64999) joined by a
# veth pair; tcpdump records the session in the peer namespace. The daemon connects to the
# raw peer, announces IPv4+IPv6 prefixes, sends End-of-RIB, then the driver triggers
#   1. a ROUTE-REFRESH sent by the daemon (soft reset in),
#   2. a ROUTE-REFRESH sent by the raw peer (so the daemon answers, with BoRR/EoRR if it does
#      enhanced route refresh),
#   3. the withdrawal of 203.0.113.128/25 and 2001:db8:200::/48,
#   4. an administrative shutdown with a shutdown message (NOTIFICATION Cease/2).
# Nothing is done outside these namespaces and a temp directory; everything is removed at exit.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUTROOT=${OUTROOT:-$HERE/out}
CAP="python3 $HERE/capture.py"
PEER_AS=64999
D4=192.0.2.1 P4=192.0.2.2 D6=2001:db8::1 P6=2001:db8::2

log() { echo "[capture $(date +%T)] $*" >&2; }

PIDS=()
NSS=()
TMPS=()
cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in "${NSS[@]}"; do
        # processes left inside our own namespaces (daemons that forked)
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    for p in "${TMPS[@]}"; do rm -rf "$p"; done
    PIDS=() NSS=() TMPS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsd() { ip netns exec "$NSD" "$@"; }
nsp() { ip netns exec "$NSP" "$@"; }

setup() { # name
    local n=$1
    NSD=vcap-$n-d NSP=vcap-$n-p
    ip netns del "$NSD" 2>/dev/null; ip netns del "$NSP" 2>/dev/null
    ip netns add "$NSD" && NSS+=("$NSD")
    ip netns add "$NSP" && NSS+=("$NSP")
    IFD=vc-$n-d IFP=vc-$n-p
    # fixed MACs so that the link-local addresses (and the vectors) are stable:
    # daemon fe80::ff:fe00:d01, peer fe80::ff:fe00:d02
    ip link add "$IFD" netns "$NSD" address 02:00:00:00:0d:01 type veth \
        peer name "$IFP" netns "$NSP" address 02:00:00:00:0d:02
    local ns ifc a4 a6
    for ns in "$NSD" "$NSP"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        ip netns exec "$ns" ip link set lo up
    done
    nsd ip addr add $D4/24 dev "$IFD"; nsd ip addr add $D6/64 dev "$IFD" nodad
    nsp ip addr add $P4/24 dev "$IFP"; nsp ip addr add $P6/64 dev "$IFP" nodad
    nsd ip link set "$IFD" up; nsp ip link set "$IFP" up
    sleep 1
    nsd ip -br addr show dev "$IFD" >&2; nsp ip -br addr show dev "$IFP" >&2
    TMP=$(mktemp -d /tmp/vcap-$n.XXXXXX) && TMPS+=("$TMP")
    chmod 755 "$TMP"
    OUT=$OUTROOT/$n
    rm -rf "$OUT"; mkdir -p "$OUT"
    REC=$OUT/records.jsonl
}

start_capture() { # extra peer args...
    ip netns exec "$NSP" tcpdump -i "$IFP" -U -s 0 -w "$OUT/session.pcap" 'tcp port 179' 2>"$OUT/tcpdump.log" &
    PIDS+=($!); TCPDUMP=$!
    sleep 1.5
    ip netns exec "$NSP" $CAP peer --listen $P4 --asn $PEER_AS --router-id $P4 --out "$REC" --timeout 240 "$@" >"$OUT/peer.log" 2>&1 &
    PIDS+=($!); PEER=$!
    sleep 0.5
}

mark() { $CAP count "$REC"; }
waitfor() { # since cond...
    local since=$1; shift
    $CAP wait "$REC" "$@" --since "$since" --timeout "${WAIT_TIMEOUT:-60}" >/dev/null || { log "timeout: $*"; return 1; }
}

finish() {
    # the peer exits after the NOTIFICATION; give it a moment, then stop tcpdump
    local i
    for i in $(seq 1 20); do kill -0 "$PEER" 2>/dev/null || break; sleep 0.5; done
    kill "$PEER" 2>/dev/null
    sleep 1
    kill "$TCPDUMP" 2>/dev/null
    wait "$TCPDUMP" 2>/dev/null
    log "$(mark) records in $REC"
}

scenario() { # name  -- uses ${d}_refresh ${d}_withdraw ${d}_shutdown
    local d=$1 m
    waitfor 0 established || return 1
    waitfor 0 eor:ipv4 eor:ipv6 || log "no End-of-RIB for both families"
    sleep 3
    log "daemon-initiated route refresh"
    m=$(mark); ${d}_refresh; WAIT_TIMEOUT=${RR_TIMEOUT:-30} waitfor "$m" type:ROUTE-REFRESH || true; sleep 2
    if [ "${PEER_RR:-1}" = 1 ]; then
        log "peer-initiated route refresh"
        m=$(mark); kill -USR1 "$PEER"; WAIT_TIMEOUT=15 waitfor "$m" update || true; sleep 3
    fi
    log "withdraw"
    m=$(mark); ${d}_withdraw; waitfor "$m" update || true; sleep 3
    log "shutdown with message"
    m=$(mark); ${d}_shutdown; WAIT_TIMEOUT=${SHUT_TIMEOUT:-60} waitfor "$m" type:NOTIFICATION || true
    finish
}

######## FRR (AS 4200000001)
FRR_CONF=frr
frr_start() {
    cp "$HERE/frr/bgpd.conf" "$HERE/frr/zebra.conf" "$TMP/"
    chown -R frr:frr "$TMP"
    [ -n "${FRR_PATCH:-}" ] && sed -i "$FRR_PATCH" "$TMP/bgpd.conf"
    ip netns exec "$NSD" /usr/lib/frr/zebra -f "$TMP/zebra.conf" -i "$TMP/zebra.pid" -z "$TMP/zserv.api" \
        --vty_socket "$TMP" -P 0 --log "file:$TMP/zebra.log" &
    PIDS+=($!)
    sleep 1.5
    ip netns exec "$NSD" /usr/lib/frr/bgpd -f "$TMP/bgpd.conf" -i "$TMP/bgpd.pid" -z "$TMP/zserv.api" \
        --vty_socket "$TMP" -P 0 --log "file:$TMP/bgpd.log" &
    PIDS+=($!)
}
vty() { nsd vtysh --vty_socket "$TMP" "$@"; }
frr_refresh() { vty -c "clear bgp ipv4 unicast $P4 soft in" -c "clear bgp ipv6 unicast $P4 soft in"; }
frr_withdraw() {
    vty -c "configure terminal" -c "router bgp 4200000001" \
        -c "address-family ipv4 unicast" -c "no network 203.0.113.128/25" -c "exit-address-family" \
        -c "address-family ipv6 unicast" -c "no network 2001:db8:200::/48" -c "exit-address-family"
}
frr_shutdown() {
    vty -c "show bgp neighbors $P4" >"$OUT/neighbor.txt" 2>&1
    vty -c "show bgp ipv4 unicast" -c "show bgp ipv6 unicast" >"$OUT/rib.txt" 2>&1
    vty -c "configure terminal" -c "router bgp 4200000001" \
        -c "neighbor $P4 shutdown message maintenance: moving 198.51.100.0/24 to site B"
    cp "$TMP"/*.log "$OUT/" 2>/dev/null
}

run_frr() { setup frr; start_capture; frr_start; scenario frr; }
# Same FRR daemon, raw peer without the 4-octet AS capability (AS_TRANS + AS4_PATH on the wire).
run_frr-as2() { setup frras2; start_capture --no-as4 --one-param; frr_start; scenario frr; }

######## BIRD 2 (AS 64501)
bird_start() {
    cp "$HERE/bird/bird.conf" "$TMP/"
    bird -p -c "$TMP/bird.conf" || return 1
    ip netns exec "$NSD" bird -f -c "$TMP/bird.conf" -s "$TMP/bird.ctl" -P "$TMP/bird.pid" 2>"$OUT/bird.log" &
    PIDS+=($!)
}
bc() { nsd birdc -s "$TMP/bird.ctl" "$@"; }
bird_refresh() { bc reload in peer; }
bird_withdraw() { bc disable static4_wd; bc disable static6_wd; }
bird_shutdown() {
    bc show protocols all peer >"$OUT/neighbor.txt" 2>&1
    bc show route all >"$OUT/rib.txt" 2>&1
    bc disable peer '"maintenance: moving 198.51.100.0/24 to site B"'
}
run_bird() { setup bird; start_capture; bird_start || return 1; scenario bird; }

######## GoBGP (AS 4200000002)
GOBGP_API=127.0.0.1:50151
gc() { nsd gobgp -u 127.0.0.1 -p 50151 "$@"; }
gobgp_start() {
    cp "$HERE/gobgp/gobgpd.toml" "$TMP/"
    # own UTS namespace so that GoBGP's FQDN capability carries a fixed hostname
    ip netns exec "$NSD" unshare --uts sh -c 'hostname ferry-gobgp && exec "$@"' sh \
        gobgpd -f "$TMP/gobgpd.toml" --api-hosts "$GOBGP_API" -p --pprof-disable >"$OUT/gobgpd.log" 2>&1 &
    PIDS+=($!)
    local i
    for i in $(seq 1 20); do gc global >/dev/null 2>&1 && break; sleep 0.5; done
    gc global rib add -a ipv4 198.51.100.0/24 origin igp nexthop 192.0.2.1 \
        aspath 4200000002,4200000002 med 50 community 64512:100,64512:200 \
        large-community 4200000002:1:2,4200000002:3:4 || return 1
    gc global rib add -a ipv4 203.0.113.0/25 origin igp nexthop 192.0.2.1 med 10 \
        community 65535:0,64512:300 || return 1
    gc global rib add -a ipv4 203.0.113.128/25 origin igp nexthop 192.0.2.1 || return 1
    gc global rib add -a ipv6 2001:db8:100::/48 origin igp nexthop 2001:db8::1 \
        community 64512:600,65535:65284 large-community 4200000002:6:6 || return 1
    gc global rib add -a ipv6 2001:db8:200::/48 origin igp nexthop 2001:db8::1 || return 1
    gc global rib -a ipv4 >&2; gc global rib -a ipv6 >&2
    gc neighbor $P4 enable
}
# GoBGP's CLI has no command that sends a ROUTE-REFRESH (softresetin only re-runs the
# import policy over Adj-RIB-In); kept for completeness, it sends nothing on the wire.
gobgp_refresh() { gc neighbor $P4 softresetin -a ipv4; gc neighbor $P4 softresetin -a ipv6; }
gobgp_withdraw() {
    gc global rib del -a ipv4 203.0.113.128/25
    gc global rib del -a ipv6 2001:db8:200::/48
}
gobgp_shutdown() {
    gc neighbor $P4 >"$OUT/neighbor.txt" 2>&1
    # `disable` ignores --reason in GoBGP 3.10's CLI; the (deprecated) `shutdown` passes it on
    gc neighbor $P4 shutdown --reason "maintenance: moving 198.51.100.0/24 to site B"
}
run_gobgp() { local RR_TIMEOUT=5; setup gobgp; start_capture; gobgp_start || return 1; scenario gobgp; }

######## ExaBGP (AS 64503)
exabgp_start() {
    sed "s|@TMP@|$TMP|g; ${EXA_PATCH:-}" "$HERE/exabgp/exabgp.conf" >"$TMP/exabgp.conf"
    : >"$TMP/exabgp.cmd"
    ip netns exec "$NSD" env exabgp.api.cli=false exabgp.daemon.user=root exabgp.daemon.drop=false \
        exabgp.daemon.daemonize=false exabgp.daemon.pid="$TMP/exabgp.pid" exabgp.log.destination=stdout \
        exabgp.log.level=${EXA_LOG_LEVEL:-INFO} exabgp.log.packets=true exabgp.tcp.bind= \
        exabgp "$TMP/exabgp.conf" >"$OUT/exabgp.log" 2>&1 &
    PIDS+=($!)
}
exa() { echo "$*" >>"$TMP/exabgp.cmd"; }
exabgp_refresh() { exa "neighbor $P4 announce route-refresh ipv4 unicast"; exa "neighbor $P4 announce route-refresh ipv6 unicast"; }
exabgp_withdraw() {
    exa "neighbor $P4 withdraw route 203.0.113.128/25 next-hop 192.0.2.1"
    exa "neighbor $P4 withdraw route 2001:db8:200::/48 next-hop 2001:db8::1"
}
# ExaBGP 4.2's teardown sends Cease/<code>; for subcode 2 its data is an RFC 8203 message
# holding the subcode's name (no way to give our own text). With graceful restart
# negotiated, ExaBGP closes the TCP session WITHOUT a NOTIFICATION instead (peer.py:
# "closing the session without notification"), hence the second run without GR.
exabgp_shutdown() { exa "neighbor $P4 teardown 2"; }
# ExaBGP 4.2.21 crashes its peer loop on a received ROUTE-REFRESH when enhanced route
# refresh is negotiated ("TypeError: 'RouteRefresh' object is not iterable" in
# Update.messages) and drops the TCP session without NOTIFICATION: skip that step.
run_exabgp() { local PEER_RR=0 SHUT_TIMEOUT=10; setup exabgp; start_capture; exabgp_start; scenario exabgp; }
run_exabgp-nogr() {
    local PEER_RR=0 EXA_PATCH='/graceful-restart 120;/d'
    setup exanogr; start_capture; exabgp_start; scenario exabgp
}

######## main
ALL=(frr bird gobgp exabgp exabgp-nogr frr-as2)
main() {
    [ $# -eq 0 ] && set -- "${ALL[@]}"
    local rc=0 d
    for d in "$@"; do
        log "=== $d"
        if ! "run_$d"; then log "$d FAILED"; rc=1; fi
        cleanup
    done
    return $rc
}
# one line, so bash has read the whole file before running anything
main "$@"; exit $?
