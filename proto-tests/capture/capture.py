#!/usr/bin/env python3
"""Minimal raw BGP peer used to capture byte-exact messages from real daemons.

Python 3 standard library only.

Subcommands
-----------
peer   run the raw peer (listen or connect), send our OPEN and KEEPALIVEs, record
       every message (both directions) as JSON lines:
         {"i": n, "t": unix_time, "dir": "rx"|"tx", "type": code, "hex": "ffff..."}
       Signals while running:
         SIGUSR1  send ROUTE-REFRESH for IPv4 unicast and IPv6 unicast (normal subtype)
         SIGTERM  close the TCP session (no NOTIFICATION) and exit
       The peer exits when the daemon closes the session, after a received
       NOTIFICATION, or after --timeout seconds.
wait   block until a condition holds in a record file (used by the driver):
         established        an OPEN and a KEEPALIVE were received
         eor:ipv4 / eor:ipv6 an End-of-RIB for that family was received
         type:NAME          a message of type NAME (OPEN, UPDATE, NOTIFICATION,
                            KEEPALIVE, ROUTE-REFRESH) was received
         update             an UPDATE was received
       --since N only considers records with i >= N; prints the next free index.
count  print the number of records in a file (the next --since value).
"""
import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time

MARKER = b"\xff" * 16
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
TYPE_CODES = {v: k for k, v in TYPES.items()}
AS_TRANS = 23456


def msg(mtype, body=b""):
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def cap(code, value=b""):
    return struct.pack("!BB", code, len(value)) + value


def build_open(asn, router_id, hold, as4=True, one_param=False):
    caps = [
        cap(1, struct.pack("!HBB", 1, 0, 1)),          # multiprotocol ipv4 unicast
        cap(1, struct.pack("!HBB", 2, 0, 1)),          # multiprotocol ipv6 unicast
        cap(2),                                        # route refresh
        cap(70),                                       # enhanced route refresh
        cap(6),                                        # extended message
        # graceful restart: R=0, restart time 120, ipv4+ipv6 unicast, F=0
        cap(64, struct.pack("!H", 120) + struct.pack("!HBB", 1, 1, 0) + struct.pack("!HBB", 2, 1, 0)),
    ]
    if as4:
        caps.append(cap(65, struct.pack("!I", asn)))   # 4-octet AS
    if one_param:
        blob = b"".join(caps)
        params = struct.pack("!BB", 2, len(blob)) + blob
    else:
        params = b"".join(struct.pack("!BB", 2, len(c)) + c for c in caps)
    my_as = asn if asn < 65536 else AS_TRANS
    body = struct.pack("!BHH", 4, my_as, hold) + socket.inet_aton(router_id)
    body += struct.pack("!B", len(params)) + params
    return msg(1, body)


def eor_family(raw):
    """Return 'ipv4'/'ipv6'/None if raw (a whole UPDATE) is an End-of-RIB marker."""
    if raw[18] != 2:
        return None
    body = raw[19:]
    if body == b"\x00\x00\x00\x00":
        return "ipv4"
    wl = struct.unpack("!H", body[:2])[0]
    if wl != 0:
        return None
    al = struct.unpack("!H", body[2:4])[0]
    attrs = body[4:4 + al]
    if len(body) != 4 + al:
        return None
    # exactly one MP_UNREACH with only AFI/SAFI
    if len(attrs) < 3:
        return None
    flags, code = attrs[0], attrs[1]
    if code != 15:
        return None
    if flags & 0x10:
        ln = struct.unpack("!H", attrs[2:4])[0]
        val = attrs[4:4 + ln]
        rest = attrs[4 + ln:]
    else:
        ln = attrs[2]
        val = attrs[3:3 + ln]
        rest = attrs[3 + ln:]
    if rest or len(val) != 3:
        return None
    afi, safi = struct.unpack("!HB", val)
    if safi != 1:
        return None
    return {1: "ipv4", 2: "ipv6"}.get(afi)


class Recorder:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.i = 0

    def rec(self, direction, raw):
        r = {"i": self.i, "t": round(time.time(), 6), "dir": direction, "type": raw[18], "hex": raw.hex()}
        self.f.write(json.dumps(r) + "\n")
        self.f.flush()
        self.i += 1
        extra = ""
        if raw[18] == 2:
            fam = eor_family(raw)
            if fam:
                extra = " (End-of-RIB %s)" % fam
        print("%s %s %s len=%d%s" % (time.strftime("%H:%M:%S"), direction,
                                      TYPES.get(raw[18], raw[18]), len(raw), extra), flush=True)


def run_peer(a):
    rec = Recorder(a.out)
    if a.listen:
        ls = socket.socket(socket.AF_INET6 if ":" in a.listen else socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((a.listen, a.port))
        ls.listen(1)
        ls.settimeout(a.timeout)
        print("listening on %s:%d" % (a.listen, a.port), flush=True)
        s, addr = ls.accept()
        ls.close()
        print("accepted from %s:%d" % addr[:2], flush=True)
    else:
        deadline = time.time() + a.timeout
        while True:
            try:
                s = socket.create_connection((a.connect, a.port), timeout=5)
                break
            except OSError as e:
                if time.time() > deadline:
                    raise
                print("connect failed (%s), retrying" % e, flush=True)
                time.sleep(1)
        print("connected to %s:%d" % (a.connect, a.port), flush=True)
    s.setblocking(False)

    pending = []

    def send(raw):
        s.setblocking(True)
        s.sendall(raw)
        s.setblocking(False)
        rec.rec("tx", raw)

    def on_usr1(signum, frame):
        pending.append("refresh")

    stop = []

    def on_term(signum, frame):
        stop.append(1)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)

    send(build_open(a.asn, a.router_id, a.hold, as4=not a.no_as4, one_param=a.one_param))
    buf = b""
    deadline = time.time() + a.timeout
    next_ka = time.time() + a.keepalive
    got_open = False
    while not stop and time.time() < deadline:
        while pending:
            pending.pop()
            if got_open:
                send(msg(5, struct.pack("!HBB", 1, 0, 1)))
                send(msg(5, struct.pack("!HBB", 2, 0, 1)))
        try:
            r, _, _ = select.select([s], [], [], 0.5)
        except InterruptedError:
            continue
        if got_open and time.time() >= next_ka:
            send(msg(4))
            next_ka = time.time() + a.keepalive
        if not r:
            continue
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            print("session closed by daemon", flush=True)
            break
        buf += data
        done = False
        while len(buf) >= 19:
            ln = struct.unpack("!H", buf[16:18])[0]
            if buf[:16] != MARKER or ln < 19:
                print("framing error, dumping rest: %s" % buf.hex(), flush=True)
                done = True
                break
            if len(buf) < ln:
                break
            raw, buf = buf[:ln], buf[ln:]
            rec.rec("rx", raw)
            t = raw[18]
            if t == 1:
                got_open = True
                send(msg(4))
                next_ka = time.time() + a.keepalive
            elif t == 3:
                done = True
        if done:
            time.sleep(0.5)
            break
    s.close()
    print("peer exit", flush=True)


def load(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def holds(recs, cond, since):
    rx = [r for r in recs if r["dir"] == "rx" and r["i"] >= since]
    if cond == "established":
        return any(r["type"] == 1 for r in rx) and any(r["type"] == 4 for r in rx)
    if cond.startswith("eor:"):
        fam = cond[4:]
        return any(r["type"] == 2 and eor_family(bytes.fromhex(r["hex"])) == fam for r in rx)
    if cond == "update":
        return any(r["type"] == 2 for r in rx)
    if cond.startswith("type:"):
        code = TYPE_CODES[cond[5:]]
        return any(r["type"] == code for r in rx)
    raise SystemExit("unknown condition %s" % cond)


def run_wait(a):
    deadline = time.time() + a.timeout
    while True:
        recs = load(a.file)
        if all(holds(recs, c, a.since) for c in a.cond):
            print(len(recs))
            return 0
        if time.time() > deadline:
            print("timeout waiting for %s" % " ".join(a.cond), file=sys.stderr)
            print(len(recs))
            return 1
        time.sleep(0.3)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("peer")
    g = pp.add_mutually_exclusive_group(required=True)
    g.add_argument("--listen", metavar="ADDR")
    g.add_argument("--connect", metavar="ADDR")
    pp.add_argument("--port", type=int, default=179)
    pp.add_argument("--asn", type=int, default=64999)
    pp.add_argument("--router-id", default="192.0.2.2")
    pp.add_argument("--hold", type=int, default=90)
    pp.add_argument("--keepalive", type=float, default=10)
    pp.add_argument("--no-as4", action="store_true", help="omit the 4-octet AS capability")
    pp.add_argument("--one-param", action="store_true", help="all capabilities in one optional parameter")
    pp.add_argument("--timeout", type=float, default=300)
    pp.add_argument("--out", required=True)
    pw = sub.add_parser("wait")
    pw.add_argument("file")
    pw.add_argument("cond", nargs="+")
    pw.add_argument("--since", type=int, default=0)
    pw.add_argument("--timeout", type=float, default=60)
    pc = sub.add_parser("count")
    pc.add_argument("file")
    a = p.parse_args()
    if a.cmd == "peer":
        run_peer(a)
    elif a.cmd == "wait":
        sys.exit(run_wait(a))
    else:
        print(len(load(a.file)))


if __name__ == "__main__":
    main()
