#!/usr/bin/env python3
"""Build proto-tests/vectors/<daemon>/ from the captures in proto-tests/capture/out/.

For every capture directory (frr, bird, gobgp, exabgp, frras2): classify the messages the
daemon sent (direction rx), keep the first of each kind, and write
  <name>.hex          the whole message, lowercase hex, one line
  <name>.expect.json  the decoded form (docs/decode-json.md), drafted by bgpdecode.py
  <name>.args         extra `ferry decode` arguments, only when needed (--as2)
plus session.pcap (if < 50 KB) and session.jsonl (every message of the session, both
directions, as recorded by capture.py). Each expect file is cross-checked against tshark's
decode of the same bytes; any disagreement aborts (exit 1).

Usage: mkvectors.py [--out proto-tests/vectors] [--no-tshark] [capture-name ...]
"""
import argparse
import ipaddress
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bgpdecode  # noqa: E402

# capture directory -> vector directory (and decode args)
CAPTURES = {
    "frr": ("frr", []),
    "bird": ("bird", []),
    "gobgp": ("gobgp", []),
    "exabgp": ("exabgp", []),
    "exanogr": ("exabgp-nogr", []),
    "frras2": ("frr-as2", ["--as2"]),
}
# keep only these vectors from a capture (the rest duplicates the main capture)
ONLY = {"exanogr": {"open", "notification-shutdown"}}


def classify(m):
    t = m["type"]
    if t == "OPEN":
        return "open"
    if t == "KEEPALIVE":
        return "keepalive"
    if t == "NOTIFICATION":
        return "notification-shutdown" if (m["code"], m["subcode"]) == (6, 2) else "notification"
    if t == "ROUTE-REFRESH":
        fam = m["afi"]
        return {"normal": "route-refresh-%s" % fam, "borr": "borr-%s" % fam, "eorr": "eorr-%s" % fam}[m["subtype"]]
    if t == "UPDATE":
        if "end_of_rib" in m:
            return "eor-" + m["end_of_rib"].split("-")[0]
        a = m["attributes"]
        if m["withdrawn"] and not m["nlri"]:
            return "withdraw-ipv6" if "mp_unreach" in a else "withdraw-ipv4"
        names = {"198.51.100.0/24": "update-ipv4-communities", "203.0.113.0/25": "update-ipv4-gshut",
                 "203.0.113.128/25": "update-ipv4-plain", "2001:db8:100::/48": "update-ipv6-communities",
                 "2001:db8:200::/48": "update-ipv6-plain"}
        if len(m["nlri"]) == 1 and m["nlri"][0] in names:
            return names[m["nlri"][0]]
        return "update-other"
    return "other"


# ---------------------------------------------------------------- tshark cross-check

def pcap_of(raws):
    """A pcap with one TCP segment (192.0.2.1:179 -> 192.0.2.2:40000+i) per message."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, raw in enumerate(raws):
        sport, dport = 179, 40000 + i
        tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18, 65535, 0, 0)
        ip_len = 20 + len(tcp) + len(raw)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, i, 0, 64, 6, 0,
                         ipaddress.IPv4Address("192.0.2.1").packed, ipaddress.IPv4Address("192.0.2.2").packed)
        eth = b"\x02\x00\x00\x00\x0d\x02\x02\x00\x00\x00\x0d\x01\x08\x00"
        frame = eth + ip + tcp + raw
        out += struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame
    return out


def flatten(o, acc, key=""):
    if isinstance(o, dict):
        for k, v in o.items():
            flatten(v, acc, k)
    elif isinstance(o, list):
        for v in o:
            flatten(v, acc, key)
    else:
        acc.setdefault(key, []).append(o)
    return acc


def tshark_decode(raws, extra=()):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "v.pcap")
        with open(p, "wb") as f:
            f.write(pcap_of(raws))
        cmd = ["tshark", "-r", p, "-T", "json", "--no-duplicate-keys", "-o", "tcp.desegment_tcp_streams:FALSE"]
        cmd += list(extra)
        js = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    res = []
    for pkt in js:
        bgp = pkt["_source"]["layers"].get("bgp")
        res.append(flatten(bgp, {}) if bgp is not None else {})
    return res


def ints(vals):
    return [int(v, 0) if isinstance(v, str) else int(v) for v in vals]


def check(m, ts, as2):
    """Compare the drafted decode m with tshark's fields ts; return a list of problems."""
    bad = []

    def eq(what, mine, theirs):
        if mine != theirs:
            bad.append("%s: ours %r, tshark %r" % (what, mine, theirs))

    eq("type", {"OPEN": 1, "UPDATE": 2, "NOTIFICATION": 3, "KEEPALIVE": 4, "ROUTE-REFRESH": 5}[m["type"]],
       ints(ts.get("bgp.type", ["0"]))[0])
    eq("length", m["length"], ints(ts.get("bgp.length", ["0"]))[0])
    t = m["type"]
    if t == "OPEN":
        eq("version", m["version"], ints(ts["bgp.open.version"])[0])
        eq("my_as", m["my_as"], ints(ts["bgp.open.myas"])[0])
        eq("hold_time", m["hold_time"], ints(ts["bgp.open.holdtime"])[0])
        eq("router_id", m["router_id"], ts["bgp.open.identifier"][0])
        eq("capability codes", [c["code"] for c in m["capabilities"]], ints(ts.get("bgp.cap.type", [])))
        for c in m["capabilities"]:
            if c["code"] == 65:
                eq("four-octet-as", c["asn"], ints(ts["bgp.cap.4as"])[0])
            if c["code"] == 64:
                eq("gr restart_time", c["restart_time"], ints(ts["bgp.cap.gr.timers.restart_time"])[0])
                eq("gr R bit", c["restart_state"], bool(ints(ts["bgp.cap.gr.timers.restart_flag"])[0]))
                eq("gr N bit", c["notification"], bool(ints(ts["bgp.cap.gr.timers.notification_flag"])[0]))
                eq("gr families", [c2["afi"] for c2 in c["families"]],
                   [bgpdecode.afi_name(a) for a in ints(ts.get("bgp.cap.gr.afi", []))])
                eq("gr F bits", [c2["forwarding_state"] for c2 in c["families"]],
                   [bool(x) for x in ints(ts.get("bgp.cap.gr.flag.pfs", []))])
            if c["code"] == 73:
                eq("fqdn hostname", c["hostname"], ts["bgp.cap.orf.fqdn.hostname"][0])
        mp = [(c["afi"], c["safi"]) for c in m["capabilities"] if c["code"] == 1]
        eq("multiprotocol", mp, [(bgpdecode.afi_name(a), bgpdecode.safi_name(s)) for a, s in
                                 zip(ints(ts.get("bgp.cap.mp.afi", [])), ints(ts.get("bgp.cap.mp.safi", [])))])
    elif t == "ROUTE-REFRESH":
        eq("afi", m["afi"], bgpdecode.afi_name(ints(ts["bgp.route_refresh.afi"])[0]))
        eq("safi", m["safi"], bgpdecode.safi_name(ints(ts["bgp.route_refresh.safi"])[0]))
        eq("subtype", m["subtype"], {0: "normal", 1: "borr", 2: "eorr"}[ints(ts["bgp.route_refresh.subtype"])[0]])
    elif t == "NOTIFICATION":
        eq("code", m["code"], ints(ts["bgp.notify.major_error"])[0])
        sub = [v for k, v in ts.items() if k.startswith("bgp.notify.minor_error")]
        eq("subcode", m["subcode"], ints(sub[0])[0])
        if "shutdown_message" in m:
            eq("shutdown_message", m["shutdown_message"], ts["bgp.notify.communication"][0])
    elif t == "UPDATE":
        a = m["attributes"]
        eq("attribute type codes", [c for c, _ in m["_flags"]], ints(ts.get("bgp.update.path_attribute.type_code", [])))
        eq("attribute flags", ["0x%02x" % f for _, f in m["_flags"]],
           ["0x%02x" % v for v in ints(ts.get("bgp.update.path_attribute.flags", []))])
        v4 = [p for p in m["nlri"] if ":" not in p]
        v4w = [p for p in m["withdrawn"] if ":" not in p]
        v6 = [p for p in m["nlri"] if ":" in p]
        v6w = [p for p in m["withdrawn"] if ":" in p]
        pl = ints(ts.get("bgp.prefix_length", []))
        pf = [v for k, v in ts.items() if k in ("bgp.nlri_prefix", "bgp.withdrawn_prefix")]
        pf = [x for v in pf for x in v]
        eq("ipv4 prefixes (address part)", sorted(p.split("/")[0] for p in v4 + v4w), sorted(pf))
        eq("prefix lengths", sorted(int(p.split("/")[1]) for p in m["nlri"] + m["withdrawn"]), sorted(pl))
        mp6 = ts.get("bgp.mp_reach_nlri_ipv6_prefix", []) + ts.get("bgp.mp_unreach_nlri_ipv6_prefix", [])
        eq("ipv6 prefixes (address part)", sorted(p.split("/")[0] for p in v6 + v6w), sorted(mp6))
        if "origin" in a:
            eq("origin", a["origin"], {0: "igp", 1: "egp", 2: "incomplete"}[ints(ts["bgp.update.path_attribute.origin"])[0]])
        if "as_path" in a:
            key = "bgp.update.path_attribute.as_path_segment.as2" if as2 else "bgp.update.path_attribute.as_path_segment.as4"
            raw_path = m.get("_raw_as_path", a["as_path"])
            eq("as_path asns", [x for s in raw_path for x in s["asns"]], ints(ts.get(key, [])))
        if "as4_path" in a:
            # tshark names the AS4_PATH numbers as_path_segment.as4 as well
            eq("as4_path asns", [x for s in a["as4_path"] for x in s["asns"]],
               ints(ts.get("bgp.update.path_attribute.as_path_segment.as4", [])))
        if "next_hop" in a:
            eq("next_hop", a["next_hop"], ts["bgp.update.path_attribute.next_hop"][0])
        if "med" in a:
            eq("med", a["med"], ints(ts["bgp.update.path_attribute.multi_exit_disc"])[0])
        if "communities" in a:
            asn = ints(ts.get("bgp.update.path_attribute.community_as", []))
            val = ints(ts.get("bgp.update.path_attribute.community_value", []))
            wk = {v: k for k, v in bgpdecode.WELL_KNOWN.items()}
            mine = []
            for c in a["communities"]:
                x = wk.get(c)
                mine.append("%d:%d" % (x >> 16, x & 0xFFFF) if x is not None else c)
            # tshark shows well-known communities without the as/value split
            wk_ts = ints(ts.get("bgp.update.path_attribute.community_wellknown", []))
            theirs = ["%d:%d" % (x, y) for x, y in zip(asn, val)] + ["%d:%d" % (w >> 16, w & 0xFFFF) for w in wk_ts]
            eq("communities", sorted(mine), sorted(theirs))
        if "large_communities" in a:
            g = ints(ts.get("bgp.large_communities.ga", []))
            l1 = ints(ts.get("bgp.large_communities.ldp1", []))
            l2 = ints(ts.get("bgp.large_communities.ldp2", []))
            eq("large_communities", a["large_communities"], ["%d:%d:%d" % x for x in zip(g, l1, l2)])
        if "mp_reach" in a:
            r = a["mp_reach"]
            eq("mp_reach afi", r["afi"], bgpdecode.afi_name(ints(ts["bgp.update.path_attribute.mp_reach_nlri.afi"])[0]))
            nh = ts.get("bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6", []) + \
                ts.get("bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local", [])
            eq("mp_reach next_hop", r["next_hop"], nh)
        if "mp_unreach" in a:
            r = a["mp_unreach"]
            eq("mp_unreach afi", r["afi"], bgpdecode.afi_name(ints(ts["bgp.update.path_attribute.mp_unreach_nlri.afi"])[0]))
    return bad


# ---------------------------------------------------------------- main

def build(cap_dir, vec_dir, decode_args, use_tshark):
    cap_name = os.path.basename(cap_dir)
    recs = [json.loads(l) for l in open(os.path.join(cap_dir, "records.jsonl")) if l.strip()]
    st = {}
    if "--as2" in decode_args:
        st["as2"] = True
    chosen = {}
    dup_diff = []
    for r in recs:
        raw = bytes.fromhex(r["hex"])
        if r["dir"] != "rx":
            # tx messages only feed the decoder state (our OPEN's capabilities)
            bgpdecode.decode(raw, st)
            continue
        m = bgpdecode.decode(raw, st)
        name = classify(m)
        if name in chosen:
            if chosen[name][0] != raw and name not in ("keepalive",):
                dup_diff.append((name, r["i"]))
            continue
        if cap_name in ONLY and name not in ONLY[cap_name]:
            continue
        chosen[name] = (raw, m)
    if os.path.isdir(vec_dir):
        shutil.rmtree(vec_dir)
    os.makedirs(vec_dir)
    names = sorted(chosen)
    problems = []
    if use_tshark:
        ts_all = tshark_decode([chosen[n][0] for n in names])
        for n, ts in zip(names, ts_all):
            raw, m = chosen[n]
            if "as_path" in m.get("attributes", {}) and "as4_path" in m["attributes"]:
                # tshark shows the AS_PATH as sent (2-octet), before the RFC 6793 merge
                m["_raw_as_path"] = bgpdecode.as_path(_attr_value(raw, 2), 2)
            for p in check(m, ts, "--as2" in decode_args):
                problems.append("%s/%s: %s" % (os.path.basename(vec_dir), n, p))
    for n in names:
        raw, m = chosen[n]
        m = {k: v for k, v in m.items() if not k.startswith("_")}
        with open(os.path.join(vec_dir, n + ".hex"), "w") as f:
            f.write(raw.hex() + "\n")
        with open(os.path.join(vec_dir, n + ".expect.json"), "w") as f:
            f.write(json.dumps(m, indent=1) + "\n")
        if decode_args:
            with open(os.path.join(vec_dir, n + ".args"), "w") as f:
                f.write(" ".join(decode_args) + "\n")
    pcap = os.path.join(cap_dir, "session.pcap")
    if os.path.exists(pcap) and os.path.getsize(pcap) < 50 * 1024:
        shutil.copy(pcap, os.path.join(vec_dir, "session.pcap"))
    shutil.copy(os.path.join(cap_dir, "records.jsonl"), os.path.join(vec_dir, "session.jsonl"))
    return names, dup_diff, problems


def _attr_value(raw, code):
    body = raw[19:]
    wl = struct.unpack("!H", body[:2])[0]
    al = struct.unpack("!H", body[2 + wl:4 + wl])[0]
    attrs = body[4 + wl:4 + wl + al]
    i = 0
    while i < len(attrs):
        fl, c = attrs[i], attrs[i + 1]
        if fl & 0x10:
            ln = struct.unpack("!H", attrs[i + 2:i + 4])[0]
            v, i = attrs[i + 4:i + 4 + ln], i + 4 + ln
        else:
            ln = attrs[i + 2]
            v, i = attrs[i + 3:i + 3 + ln], i + 3 + ln
        if c == code:
            return v
    return b""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--captures", default=os.path.join(HERE, "out"))
    p.add_argument("--out", default=os.path.join(HERE, "..", "vectors"))
    p.add_argument("--no-tshark", action="store_true")
    p.add_argument("names", nargs="*")
    a = p.parse_args()
    names = a.names or [n for n in CAPTURES if os.path.exists(os.path.join(a.captures, n, "records.jsonl"))]
    all_problems = []
    for n in names:
        vec, args = CAPTURES[n]
        got, dups, problems = build(os.path.join(a.captures, n), os.path.join(a.out, vec), args, not a.no_tshark)
        print("%s: %d vectors: %s" % (vec, len(got), " ".join(got)))
        for name, i in dups:
            print("  note: record %d is another '%s' with different bytes (kept the first)" % (i, name))
        all_problems += problems
    for pr in all_problems:
        print("MISMATCH " + pr)
    sys.exit(1 if all_problems else 0)


if __name__ == "__main__":
    main()
