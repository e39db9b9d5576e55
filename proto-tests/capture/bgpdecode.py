#!/usr/bin/env python3
"""Reference decoder (stdlib only) producing the JSON of docs/decode-json.md.

Used only to draft the .expect.json files; every drafted value is then checked against
the configuration and against tshark's decode (see mkvectors.py). It handles the messages
the capture produces, not every corner of the RFCs.
"""
import ipaddress
import json
import struct
import sys

TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
AFI = {1: "ipv4", 2: "ipv6"}
SAFI = {1: "unicast", 2: "multicast"}
WELL_KNOWN = {0xFFFF0000: "graceful-shutdown", 0xFFFF0001: "accept-own", 0xFFFF029A: "blackhole",
              0xFFFFFF01: "no-export", 0xFFFFFF02: "no-advertise", 0xFFFFFF03: "no-export-subconfed",
              0xFFFFFF04: "no-peer"}
CAP_NAMES = {1: "multiprotocol", 2: "route-refresh", 5: "extended-next-hop", 6: "extended-message",
             9: "role", 64: "graceful-restart", 65: "four-octet-as", 69: "add-path",
             70: "enhanced-route-refresh", 73: "fqdn"}
ROLES = {0: "provider", 1: "rs", 2: "rs-client", 3: "customer", 4: "peer"}
SEND_RECEIVE = {1: "receive", 2: "send", 3: "both"}
NOTIF_CODES = {1: "Message Header Error", 2: "OPEN Message Error", 3: "UPDATE Message Error",
               4: "Hold Timer Expired", 5: "Finite State Machine Error", 6: "Cease",
               7: "ROUTE-REFRESH Message Error"}
CEASE_SUB = {1: "Maximum Number of Prefixes Reached", 2: "Administrative Shutdown", 3: "Peer De-configured",
             4: "Administrative Reset", 5: "Connection Rejected", 6: "Other Configuration Change",
             7: "Connection Collision Resolution", 8: "Out of Resources", 9: "Hard Reset",
             10: "BFD Down"}
RR_SUB = {0: "normal", 1: "borr", 2: "eorr"}
SEG = {1: "set", 2: "sequence", 3: "confed_sequence", 4: "confed_set"}


def afi_name(a):
    return AFI.get(a, a)


def safi_name(s):
    return SAFI.get(s, s)


def prefixes(data, afi):
    out = []
    i = 0
    width = 4 if afi == 1 else 16
    while i < len(data):
        plen = data[i]
        nb = (plen + 7) // 8
        raw = data[i + 1:i + 1 + nb] + b"\x00" * (width - nb)
        i += 1 + nb
        addr = ipaddress.ip_address(raw)
        out.append("%s/%d" % (addr, plen))
    return out


def caps_of(val):
    out = []
    i = 0
    while i < len(val):
        code, ln = val[i], val[i + 1]
        v = val[i + 2:i + 2 + ln]
        i += 2 + ln
        c = {"code": code, "name": CAP_NAMES.get(code, "unknown")}
        if code == 1:
            afi, _, safi = struct.unpack("!HBB", v)
            c.update(afi=afi_name(afi), safi=safi_name(safi))
        elif code == 5:
            fams = []
            for j in range(0, len(v), 6):
                afi, safi, nh = struct.unpack("!HHH", v[j:j + 6])
                fams.append({"afi": afi_name(afi), "safi": safi_name(safi), "next_hop_afi": afi_name(nh)})
            c["families"] = fams
        elif code == 9:
            c["role"] = ROLES.get(v[0], v[0])
        elif code == 64:
            fl = struct.unpack("!H", v[:2])[0]
            c["restart_state"] = bool(fl & 0x8000)
            c["notification"] = bool(fl & 0x4000)
            c["restart_time"] = fl & 0x0FFF
            fams = []
            for j in range(2, len(v), 4):
                afi, safi, f = struct.unpack("!HBB", v[j:j + 4])
                fams.append({"afi": afi_name(afi), "safi": safi_name(safi), "forwarding_state": bool(f & 0x80)})
            c["families"] = fams
        elif code == 65:
            c["asn"] = struct.unpack("!I", v)[0]
        elif code == 69:
            fams = []
            for j in range(0, len(v), 4):
                afi, safi, sr = struct.unpack("!HBB", v[j:j + 4])
                fams.append({"afi": afi_name(afi), "safi": safi_name(safi), "send_receive": SEND_RECEIVE.get(sr, sr)})
            c["families"] = fams
        elif code == 73:
            hl = v[0]
            c["hostname"] = v[1:1 + hl].decode()
            dl = v[1 + hl]
            c["domain"] = v[2 + hl:2 + hl + dl].decode()
        elif code in (2, 6, 70):
            pass
        else:
            c["name"] = "unknown"
            c["data"] = v.hex()
        out.append(c)
    return out


def decode_open(m, body, st):
    ver, my_as, hold = struct.unpack("!BHH", body[:5])
    rid = str(ipaddress.IPv4Address(body[5:9]))
    pl = body[9]
    params = body[10:10 + pl]
    caps, other = [], []
    i = 0
    while i < len(params):
        t, ln = params[i], params[i + 1]
        v = params[i + 2:i + 2 + ln]
        i += 2 + ln
        if t == 2:
            caps += caps_of(v)
        else:
            other.append({"type": t, "data": v.hex()})
    asn = my_as
    for c in caps:
        if c["code"] == 65:
            asn = c["asn"]
    if not any(c["code"] == 65 for c in caps):
        st["as2"] = True
    m.update(version=ver, my_as=my_as, asn=asn, hold_time=hold, router_id=rid, capabilities=caps)
    if other:
        m["parameters"] = other


def as_path(v, width):
    segs = []
    i = 0
    while i < len(v):
        t, n = v[i], v[i + 1]
        i += 2
        fmt = "!%d%s" % (n, "I" if width == 4 else "H")
        asns = list(struct.unpack(fmt, v[i:i + n * width]))
        i += n * width
        segs.append({"type": SEG.get(t, t), "asns": asns})
    return segs


def merge_as4(as_path_segs, as4_segs):
    # RFC 6793 4.2.3 (simple case used by the captures: no confed, counts compared)
    def count(segs):
        return sum(len(s["asns"]) if s["type"] == "sequence" else 1 for s in segs
                   if s["type"] in ("sequence", "set"))
    n_as, n_as4 = count(as_path_segs), count(as4_segs)
    if n_as < n_as4:
        return as_path_segs
    keep = n_as - n_as4
    out = []
    for s in as_path_segs:
        if keep <= 0:
            break
        if s["type"] == "sequence":
            take = s["asns"][:keep]
            out.append({"type": "sequence", "asns": take})
            keep -= len(take)
        else:
            out.append(s)
            keep -= 1
    res = out + as4_segs
    # join adjacent sequences
    merged = []
    for s in res:
        if merged and merged[-1]["type"] == "sequence" and s["type"] == "sequence":
            merged[-1] = {"type": "sequence", "asns": merged[-1]["asns"] + s["asns"]}
        else:
            merged.append(s)
    return merged


def decode_update(m, body, st):
    wl = struct.unpack("!H", body[:2])[0]
    withdrawn = prefixes(body[2:2 + wl], 1)
    al = struct.unpack("!H", body[2 + wl:4 + wl])[0]
    attrs_raw = body[4 + wl:4 + wl + al]
    nlri = prefixes(body[4 + wl + al:], 1)
    attrs = {}
    mp_w, mp_n = [], []
    unknown = []
    flags_seen = []
    i = 0
    width = 2 if st.get("as2") else 4
    while i < len(attrs_raw):
        fl, code = attrs_raw[i], attrs_raw[i + 1]
        if fl & 0x10:
            ln = struct.unpack("!H", attrs_raw[i + 2:i + 4])[0]
            v = attrs_raw[i + 4:i + 4 + ln]
            i += 4 + ln
        else:
            ln = attrs_raw[i + 2]
            v = attrs_raw[i + 3:i + 3 + ln]
            i += 3 + ln
        flags_seen.append((code, fl))
        if code == 1:
            attrs["origin"] = {0: "igp", 1: "egp", 2: "incomplete"}[v[0]]
        elif code == 2:
            attrs["as_path"] = as_path(v, width)
        elif code == 3:
            attrs["next_hop"] = str(ipaddress.IPv4Address(v))
        elif code == 4:
            attrs["med"] = struct.unpack("!I", v)[0]
        elif code == 5:
            attrs["local_pref"] = struct.unpack("!I", v)[0]
        elif code == 6:
            attrs["atomic_aggregate"] = True
        elif code == 7:
            if len(v) == 8:
                a, ip = struct.unpack("!I", v[:4])[0], v[4:]
            else:
                a, ip = struct.unpack("!H", v[:2])[0], v[2:]
            attrs["aggregator"] = {"asn": a, "address": str(ipaddress.IPv4Address(ip))}
        elif code == 8:
            cs = []
            for j in range(0, len(v), 4):
                c = struct.unpack("!I", v[j:j + 4])[0]
                cs.append(WELL_KNOWN.get(c, "%d:%d" % (c >> 16, c & 0xFFFF)))
            attrs["communities"] = cs
        elif code == 9:
            attrs["originator_id"] = str(ipaddress.IPv4Address(v))
        elif code == 10:
            attrs["cluster_list"] = [str(ipaddress.IPv4Address(v[j:j + 4])) for j in range(0, len(v), 4)]
        elif code == 14:
            afi, safi, nhl = struct.unpack("!HBB", v[:4])
            nh = v[4:4 + nhl]
            if afi == 2 and nhl in (16, 32):
                nhs = [str(ipaddress.IPv6Address(nh[j:j + 16])) for j in range(0, nhl, 16)]
            elif nhl == 4:
                nhs = [str(ipaddress.IPv4Address(nh))]
            else:
                nhs = [nh.hex()]
            n = prefixes(v[5 + nhl:], afi)
            attrs["mp_reach"] = {"afi": afi_name(afi), "safi": safi_name(safi), "next_hop": nhs, "nlri": n}
            mp_n += n
        elif code == 15:
            afi, safi = struct.unpack("!HB", v[:3])
            w = prefixes(v[3:], afi)
            attrs["mp_unreach"] = {"afi": afi_name(afi), "safi": safi_name(safi), "withdrawn": w}
            mp_w += w
        elif code == 16:
            attrs["extended_communities"] = [v[j:j + 8].hex() for j in range(0, len(v), 8)]
        elif code == 17:
            attrs["as4_path"] = as_path(v, 4)
        elif code == 18:
            attrs["as4_aggregator"] = {"asn": struct.unpack("!I", v[:4])[0],
                                       "address": str(ipaddress.IPv4Address(v[4:8]))}
        elif code == 32:
            attrs["large_communities"] = ["%d:%d:%d" % struct.unpack("!III", v[j:j + 12]) for j in range(0, len(v), 12)]
        else:
            unknown.append({"type": code, "flags": "0x%02x" % fl, "data": v.hex()})
    if unknown:
        attrs["unknown"] = unknown
    if "as4_path" in attrs and width == 2 and "as_path" in attrs:
        attrs["as_path"] = merge_as4(attrs["as_path"], attrs["as4_path"])
    m["withdrawn"] = withdrawn + mp_w
    m["nlri"] = nlri + mp_n
    m["attributes"] = attrs
    if wl == 0 and al == 0 and not nlri:
        m["end_of_rib"] = "ipv4-unicast"
    elif (not withdrawn and not nlri and list(attrs) == ["mp_unreach"] and not mp_w):
        mu = attrs["mp_unreach"]
        if mu["safi"] == "unicast" and mu["afi"] in ("ipv4", "ipv6"):
            m["end_of_rib"] = "%s-unicast" % mu["afi"]
    m["_flags"] = flags_seen


def decode_notification(m, body):
    code, sub = body[0], body[1]
    data = body[2:]
    m.update(code=code, subcode=sub, code_name=NOTIF_CODES.get(code, str(code)))
    if code == 6:
        m["subcode_name"] = CEASE_SUB.get(sub, str(sub))
    m["data"] = data.hex()
    if code == 6 and sub in (2, 4) and data:
        ln = data[0]
        if ln == len(data) - 1 and ln <= 255:
            try:
                m["shutdown_message"] = data[1:].decode("utf-8")
            except UnicodeDecodeError:
                pass


def decode(raw, st=None):
    st = {} if st is None else st
    ln = struct.unpack("!H", raw[16:18])[0]
    t = raw[18]
    body = raw[19:ln]
    m = {"type": TYPES.get(t, t), "length": ln}
    if t == 1:
        decode_open(m, body, st)
    elif t == 2:
        decode_update(m, body, st)
    elif t == 3:
        decode_notification(m, body)
    elif t == 5:
        afi, sub, safi = struct.unpack("!HBB", body[:4])
        m.update(afi=afi_name(afi), safi=safi_name(safi), subtype=RR_SUB.get(sub, sub))
    return m


if __name__ == "__main__":
    st = {}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            r = json.loads(line)
            h = r["hex"]
            pre = "%s %s " % (r["i"], r["dir"])
        else:
            h, pre = line, ""
        m = decode(bytes.fromhex(h), st)
        fl = m.pop("_flags", None)
        print(pre + json.dumps(m) + ("  flags=" + " ".join("%d:%02x" % x for x in fl) if fl else ""))
