//! The codec against malformed input: one table row per error case of RFC 4271 §6.1-6.3,
//! RFC 7606 §3-7, RFC 7313 §5, RFC 6793 §6, RFC 7607 §2, RFC 8092 §6, RFC 4760 §7 and
//! RFC 9072 §2.
//!
//! Every row starts from a valid base message and changes one thing. Its expected outcome is
//! exact: either the NOTIFICATION that resets the session (code, subcode, data) and the field the
//! error names, or the RFC 7606 actions recorded on the decoded UPDATE (action and attribute type,
//! in order). A row that expects `Ok` proves the codec does not reject what the RFCs allow.
//!
//! The second half feeds every captured vector (proto-tests/vectors), cut at every length and
//! with every single octet altered, to the decoder: it may fail but must return.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ferry::inspect::parse_hex;
use ferry::wire::{Context, DecodeError, Message, Rfc7606Action};
use proto_tests::{hex_vectors, vectors_dir};

use Rfc7606Action::{AttributeDiscard as Discard, TreatAsWithdraw as Withdraw};

// ---------------------------------------------------------------------------------------------
// Building messages
// ---------------------------------------------------------------------------------------------

const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;

/// Attribute flags (RFC 4271 §4.3).
const O: u8 = 0x80;
const T: u8 = 0x40;
const E: u8 = 0x10;

/// Hex text to bytes; spaces are for reading.
fn h(text: &str) -> Vec<u8> {
    parse_hex(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A whole message: marker, the right length, type, body.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    msg_with_len(kind, body, HEADER + body.len())
}

const HEADER: usize = 19;

/// A whole message whose length field says `len`, whatever the body's size.
fn msg_with_len(kind: u8, body: &[u8], len: usize) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

fn keepalive() -> Vec<u8> {
    msg(KEEPALIVE, &[])
}

/// Capabilities of the base OPEN: multiprotocol IPv4 unicast, route refresh, 4-octet AS 65001.
const BASE_CAPS: &str = "01 04 0001 00 01  02 00  41 04 0000fde9";

/// An OPEN body with the fixed fields given and `opt` from the Opt Parm Len octet on.
fn open_body(version: u8, hold: u16, router_id: [u8; 4], opt: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&65001u16.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&router_id);
    b.extend_from_slice(opt);
    b
}

/// Opt Parm Len plus one capabilities parameter (type 2) holding `caps`.
fn one_param(caps: &[u8]) -> Vec<u8> {
    let mut p = vec![(caps.len() + 2) as u8, 2, caps.len() as u8];
    p.extend_from_slice(caps);
    p
}

fn open_with(version: u8, hold: u16, router_id: [u8; 4]) -> Vec<u8> {
    msg(
        OPEN,
        &open_body(version, hold, router_id, &one_param(&h(BASE_CAPS))),
    )
}

const ID: [u8; 4] = [192, 0, 2, 1];

/// An OPEN whose optional parameters are `opt` (from the Opt Parm Len octet on).
fn open_opt(opt: &[u8]) -> Vec<u8> {
    msg(OPEN, &open_body(4, 90, ID, opt))
}

fn base_open() -> Vec<u8> {
    open_with(4, 90, ID)
}

/// One path attribute; the length is two octets when `flags` has Extended Length.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code];
    if flags & E != 0 {
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

fn origin() -> Vec<u8> {
    attr(T, 1, &[0])
}

/// AS_PATH: one AS_SEQUENCE of 65001 (4-octet ASNs).
fn as_path() -> Vec<u8> {
    attr(T, 2, &h("02 01 0000fde9"))
}

/// AS_PATH: one AS_SEQUENCE of 65001 (2-octet ASNs).
fn as_path2() -> Vec<u8> {
    attr(T, 2, &h("02 01 fde9"))
}

fn next_hop() -> Vec<u8> {
    attr(T, 3, &[192, 0, 2, 1])
}

/// 198.51.100.0/24
fn nlri() -> Vec<u8> {
    h("18 c63364")
}

/// ORIGIN, AS_PATH, NEXT_HOP.
fn base_attrs() -> Vec<u8> {
    [origin(), as_path(), next_hop()].concat()
}

/// An UPDATE with the given withdrawn routes, attribute field and NLRI; lengths computed.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(UPDATE, &b)
}

/// The base UPDATE (ORIGIN, AS_PATH, NEXT_HOP, one /24) with `extra` attributes appended.
fn update_plus(extra: &[u8]) -> Vec<u8> {
    update(&[], &[base_attrs(), extra.to_vec()].concat(), &nlri())
}

/// The base UPDATE with the attribute list replaced.
fn update_attrs(attrs: &[Vec<u8>]) -> Vec<u8> {
    update(&[], &attrs.concat(), &nlri())
}

/// MP_REACH_NLRI value: IPv6 unicast, next hop 2001:db8::1, 2001:db8:100::/64.
fn mp_reach_v6() -> Vec<u8> {
    h("0002 01 10 20010db8000000000000000000000001 00 40 20010db800000100")
}

/// MP_UNREACH_NLRI value: IPv6 unicast, 2001:db8:1::/48.
fn mp_unreach_v6() -> Vec<u8> {
    h("0002 01 30 20010db80001")
}

fn route_refresh(body: &[u8]) -> Vec<u8> {
    msg(ROUTE_REFRESH, body)
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Want {
    /// The session resets with this NOTIFICATION; `field` is what `DecodeError::field` names.
    Notify {
        code: u8,
        subcode: u8,
        data: Vec<u8>,
        field: &'static str,
    },
    /// The UPDATE decodes; RFC 7606 handled exactly these attributes, in this order.
    Issues(Vec<(Rfc7606Action, u8)>),
    /// The message decodes (an UPDATE with no RFC 7606 issue).
    Ok,
}

fn notify(code: u8, subcode: u8, data: &[u8], field: &'static str) -> Want {
    Want::Notify {
        code,
        subcode,
        data: data.to_vec(),
        field,
    }
}

fn issue(action: Rfc7606Action, type_code: u8) -> Want {
    Want::Issues(vec![(action, type_code)])
}

struct Row {
    name: &'static str,
    ctx: Context,
    bytes: Vec<u8>,
    want: Want,
}

const FOUR: Context = Context {
    four_octet_as: true,
    extended_message: false,
};
const TWO: Context = Context {
    four_octet_as: false,
    extended_message: false,
};
const EXTENDED: Context = Context {
    four_octet_as: true,
    extended_message: true,
};

fn row(name: &'static str, bytes: Vec<u8>, want: Want) -> Row {
    Row {
        name,
        ctx: FOUR,
        bytes,
        want,
    }
}

fn row_ctx(name: &'static str, ctx: Context, bytes: Vec<u8>, want: Want) -> Row {
    Row {
        name,
        ctx,
        bytes,
        want,
    }
}

/// An UPDATE of exactly `total` octets: the base UPDATE plus an unknown optional transitive
/// attribute (type 99, extended length) that pads it.
fn update_of_len(total: usize) -> Vec<u8> {
    let base = update_plus(&attr(O | T | E, 99, &[])).len();
    update_plus(&attr(O | T | E, 99, &vec![0xab; total - base]))
}

fn header_rows() -> Vec<Row> {
    let mut bad_marker = keepalive();
    bad_marker[5] = 0xfe;
    let mut short = keepalive();
    short[17] = 18;
    let big_update = update_of_len(5000);
    assert_eq!(big_update.len(), 5000);
    let big_open = msg_with_len(OPEN, &vec![0; 5000 - HEADER], 5000);
    vec![
        row(
            "RFC 4271 §6.1: marker not all ones is Connection Not Synchronized",
            bad_marker,
            notify(1, 1, &[], "marker"),
        ),
        row(
            "RFC 4271 §6.1: length 18 (< 19) is Bad Message Length with the length as data",
            short,
            notify(1, 2, &[0, 18], "length"),
        ),
        row(
            "RFC 4271 §6.1: UPDATE of 5000 octets (> 4096) is Bad Message Length",
            big_update.clone(),
            notify(1, 2, &[0x13, 0x88], "length"),
        ),
        row_ctx(
            "RFC 8654 §4: UPDATE of 5000 octets is fine once extended messages are negotiated",
            EXTENDED,
            big_update,
            Want::Ok,
        ),
        row_ctx(
            "RFC 8654 §4: OPEN of 5000 octets is Bad Message Length even with extended messages",
            EXTENDED,
            big_open,
            notify(1, 2, &[0x13, 0x88], "length"),
        ),
        row(
            "RFC 4271 §6.1: KEEPALIVE with a body (length 20) is Bad Message Length",
            msg(KEEPALIVE, &[0]),
            notify(1, 2, &[0, 20], "length"),
        ),
        row(
            "RFC 4271 §6.1: message type 6 is Bad Message Type with the type as data",
            msg(6, &[]),
            notify(1, 3, &[6], "type"),
        ),
        row(
            "RFC 4271 §6.1: message type 0 is Bad Message Type",
            msg(0, &[]),
            notify(1, 3, &[0], "type"),
        ),
        row(
            "RFC 4271 §6.1: OPEN of 28 octets (< 29) is Bad Message Length",
            msg(OPEN, &[4, 0xfd, 0xe9, 0, 90, 192, 0, 2, 1]),
            notify(1, 2, &[0, 28], "length"),
        ),
        row(
            "RFC 4271 §6.1: UPDATE of 22 octets (< 23) is Bad Message Length",
            msg(UPDATE, &[0, 0, 0]),
            notify(1, 2, &[0, 22], "length"),
        ),
        row(
            "RFC 4271 §6.1: NOTIFICATION of 20 octets (< 21) is Bad Message Length",
            msg(NOTIFICATION, &[6]),
            notify(1, 2, &[0, 20], "length"),
        ),
        row(
            "RFC 4271 §4.5: NOTIFICATION of 21 octets without data is fine",
            msg(NOTIFICATION, &[6, 2]),
            Want::Ok,
        ),
        row(
            "RFC 2918 §3, RFC 4271 §6.1: ROUTE-REFRESH of 22 octets (< 23) is Bad Message Length",
            msg(ROUTE_REFRESH, &[0, 1, 0]),
            notify(1, 2, &[0, 22], "length"),
        ),
        row(
            "RFC 4271 §6.1: length field 19 on a 20-octet KEEPALIVE buffer is Bad Message Length",
            [keepalive(), vec![0]].concat(),
            notify(1, 2, &[0, 19], "length"),
        ),
    ]
}

fn open_rows() -> Vec<Row> {
    // RFC 9072 §2: Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length (2),
    // then each parameter with a 2-octet length.
    let caps = h(BASE_CAPS);
    let mut ext = vec![255, 255];
    ext.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
    ext.push(2);
    ext.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    ext.extend_from_slice(&caps);
    let mut ext_overrun = ext.clone();
    ext_overrun[6] += 1; // the parameter's 2-octet length, low octet
    let mut opt_long = one_param(&caps);
    opt_long[0] += 1;
    let mut opt_short = one_param(&caps);
    opt_short[0] -= 1;
    let mut param_overrun = one_param(&caps);
    param_overrun[2] += 1;
    vec![
        row("RFC 4271 §4.2: the base OPEN decodes", base_open(), Want::Ok),
        row("RFC 4271 §6.2: version 3 is Unsupported Version Number, data the smallest supported (4)",
            open_with(3, 90, ID), notify(2, 1, &[0, 4], "version")),
        row("RFC 4271 §6.2: version 5 is Unsupported Version Number, data the largest supported below it (4)",
            open_with(5, 90, ID), notify(2, 1, &[0, 4], "version")),
        row("RFC 4271 §6.2: hold time 1 is Unacceptable Hold Time",
            open_with(4, 1, ID), notify(2, 6, &[], "hold_time")),
        row("RFC 4271 §6.2: hold time 2 is Unacceptable Hold Time",
            open_with(4, 2, ID), notify(2, 6, &[], "hold_time")),
        row("RFC 4271 §4.2: hold time 0 is allowed", open_with(4, 0, ID), Want::Ok),
        row("RFC 4271 §4.2: hold time 3 is allowed", open_with(4, 3, ID), Want::Ok),
        row("RFC 4271 §6.2, RFC 6286 §2.2: BGP identifier 0.0.0.0 is Bad BGP Identifier",
            open_with(4, 90, [0, 0, 0, 0]), notify(2, 3, &[], "router_id")),
        row("RFC 4271 §6.2: optional parameter type 1 is Unsupported Optional Parameter",
            open_opt(&h("04 01 02 abcd")), notify(2, 4, &[], "opt_param_type")),
        row("RFC 5492 §4: no optional parameters at all is fine", open_opt(&[0]), Want::Ok),
        row("RFC 4271 §6.2: Opt Parm Len beyond the message is Unspecific",
            open_opt(&opt_long), notify(2, 0, &[], "opt_param_len")),
        row("RFC 4271 §6.2: Opt Parm Len short of the message is Unspecific",
            open_opt(&opt_short), notify(2, 0, &[], "opt_param_len")),
        row("RFC 4271 §6.2: optional parameter length overrunning Opt Parm Len is Unspecific",
            open_opt(&param_overrun), notify(2, 0, &[], "opt_param_len")),
        row("RFC 4271 §6.2: one octet left for an optional parameter header is Unspecific",
            open_opt(&h("01 02")), notify(2, 0, &[], "opt_param")),
        row("RFC 5492 §4, RFC 4271 §6.2: capability length overrunning its parameter is Unspecific",
            open_opt(&one_param(&h("41 05 0000fde9"))), notify(2, 0, &[], "capability_length")),
        row("RFC 5492 §4, RFC 4271 §6.2: one stray octet after the last capability is Unspecific",
            open_opt(&one_param(&h("02 00 46"))), notify(2, 0, &[], "capability")),
        row("RFC 6793 §4.1, RFC 4271 §6.2: 4-octet AS capability of length 3 is Unspecific",
            open_opt(&one_param(&h("41 03 00fde9"))), notify(2, 0, &[], "capability")),
        row("RFC 4760 §8, RFC 4271 §6.2: multiprotocol capability of length 3 is Unspecific",
            open_opt(&one_param(&h("01 03 000100"))), notify(2, 0, &[], "capability")),
        row("RFC 4724 §3, RFC 4271 §6.2: graceful restart capability of length 3 is Unspecific",
            open_opt(&one_param(&h("40 03 007800"))), notify(2, 0, &[], "capability")),
        row("RFC 2918 §2, RFC 4271 §6.2: route refresh capability with a value is Unspecific",
            open_opt(&one_param(&h("02 01 00"))), notify(2, 0, &[], "capability")),
        row("RFC 5492 §4: an unknown capability is kept, not an error",
            open_opt(&one_param(&h("80 02 0a0b"))), Want::Ok),
        row("RFC 7607 §2: My AS 0 is Bad Peer AS, data the field",
            { let mut o = base_open(); o[HEADER + 1..HEADER + 3].copy_from_slice(&[0, 0]); o },
            notify(2, 2, &[0, 0], "my_as")),
        row("RFC 7607 §2: 4-octet AS capability with AS 0 is Bad Peer AS, data the AS",
            open_opt(&one_param(&h("01 04 0001 00 01  41 04 00000000"))),
            notify(2, 2, &[0, 0, 0, 0], "four_octet_as")),
        row("RFC 9072 §2: extended optional parameters decode", open_opt(&ext), Want::Ok),
        row("RFC 9072 §2: extended parameter length overrun is Unspecific",
            open_opt(&ext_overrun), notify(2, 0, &[], "opt_param_len")),
        row("RFC 9072 §2: extended format without its 2-octet length is Unspecific",
            open_opt(&[255, 255, 0]), notify(2, 0, &[], "opt_param_len")),
    ]
}

fn update_header_rows() -> Vec<Row> {
    let mut withdrawn_overrun = update(&[], &base_attrs(), &nlri());
    withdrawn_overrun[HEADER + 1] = 0x40; // withdrawn routes length 64, 0 withdrawn present
    let mut attrs_overrun = update(&[], &base_attrs(), &nlri());
    let alen = base_attrs().len() + nlri().len() + 1;
    attrs_overrun[HEADER + 3] = alen as u8;
    // Withdrawn length that leaves no room for the 2-octet total attribute length.
    let no_room = msg(UPDATE, &h("0002 18c633"));
    vec![
        row("RFC 4271 §4.3: the base UPDATE decodes", update_plus(&[]), Want::Ok),
        row("RFC 4271 §6.3, RFC 7606 §5.1: withdrawn routes length overrun is Malformed Attribute List",
            withdrawn_overrun, notify(3, 1, &[], "withdrawn_routes_length")),
        row("RFC 4271 §6.3, RFC 7606 §5.1: no room for the total attribute length is Malformed Attribute List",
            no_room, notify(3, 1, &[], "total_path_attribute_length")),
        row("RFC 4271 §6.3, RFC 7606 §5.1: total attribute length overrun is Malformed Attribute List",
            attrs_overrun, notify(3, 1, &[], "total_path_attribute_length")),
        row("RFC 7606 §4: last attribute's length overruns the attribute field: treat-as-withdraw",
            update_plus(&h("80 04 0a 00000001")), issue(Withdraw, 4)),
        row("RFC 7606 §4: 2 octets left, too few for an attribute header: treat-as-withdraw",
            update_plus(&h("80 04")), issue(Withdraw, 4)),
        row("RFC 7606 §4: 3 octets left with Extended Length, too few for a header: treat-as-withdraw",
            update_plus(&h("90 04 00")), issue(Withdraw, 4)),
        row("RFC 4271 §6.3, RFC 7606 §5.3: NLRI prefix length 33 is Invalid Network Field",
            update(&[], &base_attrs(), &h("21 c6336400 00")), notify(3, 10, &[], "nlri")),
        row("RFC 4271 §6.3, RFC 7606 §5.3: withdrawn prefix length 33 is Invalid Network Field",
            update(&h("21 c6336400 00"), &[], &[]), notify(3, 10, &[], "withdrawn_routes")),
        row("RFC 4271 §6.3, RFC 7606 §5.3: NLRI prefix overrunning the message is Invalid Network Field",
            update(&[], &base_attrs(), &h("18 c633")), notify(3, 10, &[], "nlri")),
        row("RFC 4271 §6.3, RFC 7606 §5.3: withdrawn prefix overrunning its field is Invalid Network Field",
            update(&h("18 c633"), &[], &[]), notify(3, 10, &[], "withdrawn_routes")),
        row("RFC 4271 §4.3: a withdraw-only UPDATE needs no attributes",
            update(&nlri(), &[], &[]), Want::Ok),
        row("RFC 4724 §2: the IPv4 End-of-RIB (empty UPDATE) decodes", update(&[], &[], &[]), Want::Ok),
    ]
}

fn attribute_rows() -> Vec<Row> {
    let unknown_wk = attr(T, 99, &[1, 2]);
    vec![
        row("RFC 4271 §6.3: unknown attribute flagged well-known is Unrecognized Well-known, data the attribute",
            update_plus(&unknown_wk), notify(3, 2, &unknown_wk, "attribute_type")),
        row("RFC 4271 §5: unknown optional transitive attribute is kept",
            update_plus(&attr(O | T, 99, &[1, 2])), Want::Ok),
        row("RFC 4271 §5: unknown optional non-transitive attribute is kept",
            update_plus(&attr(O, 99, &[])), Want::Ok),
        // ORIGIN (RFC 7606 §7.1)
        row("RFC 7606 §7.1: ORIGIN length 2: treat-as-withdraw",
            update_attrs(&[attr(T, 1, &[0, 0]), as_path(), next_hop()]), issue(Withdraw, 1)),
        row("RFC 7606 §7.1: ORIGIN length 0: treat-as-withdraw",
            update_attrs(&[attr(T, 1, &[]), as_path(), next_hop()]), issue(Withdraw, 1)),
        row("RFC 7606 §7.1: ORIGIN value 3: treat-as-withdraw",
            update_attrs(&[attr(T, 1, &[3]), as_path(), next_hop()]), issue(Withdraw, 1)),
        // AS_PATH (RFC 7606 §7.2)
        row("RFC 7606 §7.2: AS_PATH segment type 5: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("05 01 0000fde9")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7606 §7.2: AS_PATH segment type 0: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("00 01 0000fde9")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7606 §7.2: AS_PATH segment of zero length: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("02 00")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7606 §7.2: AS_PATH segment overrunning the attribute: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("02 02 0000fde9")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7606 §7.2: AS_PATH with one stray octet after the last segment: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("02 01 0000fde9 02")), next_hop()]), issue(Withdraw, 2)),
        row_ctx("RFC 7606 §7.2, RFC 6793 §4: 2-octet AS_PATH on a 2-octet session decodes",
            TWO, update_attrs(&[origin(), as_path2(), next_hop()]), Want::Ok),
        row_ctx("RFC 7606 §7.2: 2-octet session, segment of 2 ASNs with 1 present: treat-as-withdraw",
            TWO, update_attrs(&[origin(), attr(T, 2, &h("02 02 fde9")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7607 §2, RFC 7606 §7.2: AS_PATH sequence holding AS 0: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("02 02 0000fde9 00000000")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7607 §2, RFC 7606 §7.2: AS_PATH set holding AS 0: treat-as-withdraw",
            update_attrs(&[origin(), attr(T, 2, &h("02 01 0000fde9 01 02 00000000 0000fdea")), next_hop()]),
            issue(Withdraw, 2)),
        row_ctx("RFC 7607 §2, RFC 7606 §7.2: 2-octet AS_PATH holding AS 0: treat-as-withdraw",
            TWO, update_attrs(&[origin(), attr(T, 2, &h("02 02 fde9 0000")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 4271 §5.1.2: an empty AS_PATH (iBGP origination) is fine",
            update_attrs(&[origin(), attr(T, 2, &[]), next_hop()]), Want::Ok),
        // NEXT_HOP (RFC 7606 §7.3)
        row("RFC 7606 §7.3: NEXT_HOP length 3: treat-as-withdraw",
            update_attrs(&[origin(), as_path(), attr(T, 3, &[192, 0, 2])]), issue(Withdraw, 3)),
        row("RFC 7606 §7.3: NEXT_HOP length 5: treat-as-withdraw",
            update_attrs(&[origin(), as_path(), attr(T, 3, &[192, 0, 2, 1, 0])]), issue(Withdraw, 3)),
        // Missing well-known mandatory attributes (RFC 7606 §3 d)
        row("RFC 7606 §3 d: ORIGIN missing with NLRI: treat-as-withdraw",
            update_attrs(&[as_path(), next_hop()]), issue(Withdraw, 1)),
        row("RFC 7606 §3 d: AS_PATH missing with NLRI: treat-as-withdraw",
            update_attrs(&[origin(), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7606 §3 d: NEXT_HOP missing with NLRI: treat-as-withdraw",
            update_attrs(&[origin(), as_path()]), issue(Withdraw, 3)),
        row("RFC 7606 §3 d: no attributes at all with NLRI: treat-as-withdraw for each of 1, 2, 3",
            update(&[], &[], &nlri()),
            Want::Issues(vec![(Withdraw, 1), (Withdraw, 2), (Withdraw, 3)])),
        row("RFC 4271 §5, RFC 7606 §3 d: mandatory attributes are not required without NLRI",
            update(&nlri(), &attr(O, 4, &[0, 0, 0, 1]), &[]), Want::Ok),
        row("RFC 4760 §3, RFC 7606 §3 d: NEXT_HOP not required with only MP_REACH_NLRI",
            update(&[], &[origin(), as_path(), attr(O, 14, &mp_reach_v6())].concat(), &[]), Want::Ok),
        row("RFC 7606 §3 d: ORIGIN missing with MP_REACH_NLRI routes: treat-as-withdraw",
            update(&[], &[as_path(), attr(O, 14, &mp_reach_v6())].concat(), &[]), issue(Withdraw, 1)),
        row("RFC 4760 §4, RFC 7606 §3 d: MP_UNREACH_NLRI alone needs no mandatory attributes",
            update(&[], &attr(O, 15, &mp_unreach_v6()), &[]), Want::Ok),
        // MULTI_EXIT_DISC, LOCAL_PREF (RFC 7606 §7.4, §7.5)
        row("RFC 7606 §7.4: MULTI_EXIT_DISC length 3: treat-as-withdraw",
            update_plus(&attr(O, 4, &[0, 0, 1])), issue(Withdraw, 4)),
        row("RFC 7606 §7.5: LOCAL_PREF length 5: treat-as-withdraw",
            update_plus(&attr(T, 5, &[0, 0, 0, 100, 0])), issue(Withdraw, 5)),
        // ATOMIC_AGGREGATE, AGGREGATOR (RFC 7606 §7.6, §7.7)
        row("RFC 7606 §7.6: ATOMIC_AGGREGATE length 1: attribute discard",
            update_plus(&attr(T, 6, &[0])), issue(Discard, 6)),
        row("RFC 7606 §7.7: AGGREGATOR length 6 on a 4-octet session: attribute discard",
            update_plus(&attr(O | T, 7, &h("fde9 c0000201"))), issue(Discard, 7)),
        row_ctx("RFC 7606 §7.7: AGGREGATOR length 8 on a 2-octet session: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 7, &h("0000fde9 c0000201"))]),
            issue(Discard, 7)),
        row("RFC 7607 §2, RFC 7606 §7.7: AGGREGATOR with AS 0: attribute discard",
            update_plus(&attr(O | T, 7, &h("00000000 c0000201"))), issue(Discard, 7)),
        row_ctx("RFC 7607 §2, RFC 7606 §7.7: 2-octet AGGREGATOR with AS 0: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 7, &h("0000 c0000201"))]),
            issue(Discard, 7)),
        row_ctx("RFC 4271 §5.1.7: AGGREGATOR length 6 on a 2-octet session decodes",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 7, &h("fde9 c0000201"))]),
            Want::Ok),
        // COMMUNITIES (RFC 7606 §7.8)
        row("RFC 7606 §7.8: COMMUNITIES length 0: treat-as-withdraw",
            update_plus(&attr(O | T, 8, &[])), issue(Withdraw, 8)),
        row("RFC 7606 §7.8: COMMUNITIES length 5 (not a multiple of 4): treat-as-withdraw",
            update_plus(&attr(O | T, 8, &h("fde90064 00"))), issue(Withdraw, 8)),
        // ORIGINATOR_ID, CLUSTER_LIST (RFC 7606 §7.9, §7.10)
        row("RFC 7606 §7.9: ORIGINATOR_ID length 3: treat-as-withdraw",
            update_plus(&attr(O, 9, &[192, 0, 2])), issue(Withdraw, 9)),
        row("RFC 7606 §7.9: ORIGINATOR_ID length 8: treat-as-withdraw",
            update_plus(&attr(O, 9, &[192, 0, 2, 9, 192, 0, 2, 10])), issue(Withdraw, 9)),
        row("RFC 7606 §7.10: CLUSTER_LIST length 0: treat-as-withdraw",
            update_plus(&attr(O, 10, &[])), issue(Withdraw, 10)),
        row("RFC 7606 §7.10: CLUSTER_LIST length 6: treat-as-withdraw",
            update_plus(&attr(O, 10, &[192, 0, 2, 10, 0, 0])), issue(Withdraw, 10)),
        // EXTENDED_COMMUNITIES (RFC 7606 §7.14), LARGE_COMMUNITIES (RFC 8092 §6)
        row("RFC 7606 §7.14: EXTENDED_COMMUNITIES length 4: treat-as-withdraw",
            update_plus(&attr(O | T, 16, &[0, 2, 0xfd, 0xe8])), issue(Withdraw, 16)),
        row("RFC 7606 §7.14: EXTENDED_COMMUNITIES length 0: treat-as-withdraw",
            update_plus(&attr(O | T, 16, &[])), issue(Withdraw, 16)),
        row("RFC 8092 §6: LARGE_COMMUNITIES length 8 (not a multiple of 12): treat-as-withdraw",
            update_plus(&attr(O | T, 32, &[0; 8])), issue(Withdraw, 32)),
        row("RFC 8092 §6: LARGE_COMMUNITIES length 0: treat-as-withdraw",
            update_plus(&attr(O | T, 32, &[])), issue(Withdraw, 32)),
        row("RFC 8092 §3: LARGE_COMMUNITIES of 24 octets decode",
            update_plus(&attr(O | T, 32, &[1; 24])), Want::Ok),
        // AS4_PATH, AS4_AGGREGATOR (RFC 6793 §6, RFC 7606 §7.2)
        row_ctx("RFC 6793 §6: AS4_PATH with a zero-length segment: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 17, &h("02 00"))]),
            issue(Discard, 17)),
        row_ctx("RFC 6793 §6: AS4_PATH segment overrunning the attribute: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 17, &h("02 02 fa56ea01"))]),
            issue(Discard, 17)),
        row_ctx("RFC 6793 §6: AS4_PATH segment type 9: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 17, &h("09 01 fa56ea01"))]),
            issue(Discard, 17)),
        row_ctx("RFC 7607 §2, RFC 6793 §6: AS4_PATH holding AS 0: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 17, &h("02 02 fa56ea01 00000000"))]),
            issue(Discard, 17)),
        row_ctx("RFC 7607 §2, RFC 6793 §6: AS4_AGGREGATOR with AS 0: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 18, &h("00000000 c0000201"))]),
            issue(Discard, 18)),
        row_ctx("RFC 6793 §6: AS4_AGGREGATOR length 6: attribute discard",
            TWO, update_attrs(&[origin(), as_path2(), next_hop(), attr(O | T, 18, &h("fde9 c0000201"))]),
            issue(Discard, 18)),
        row_ctx("RFC 6793 §4.2.2: AS4_PATH and AS4_AGGREGATOR on a 2-octet session decode",
            TWO, update_attrs(&[origin(), attr(T, 2, &h("02 01 5ba0")), next_hop(),
                attr(O | T, 7, &h("5ba0 c0000201")),
                attr(O | T, 17, &h("02 01 fa56ea01")), attr(O | T, 18, &h("fa56ea01 c0000201"))]),
            Want::Ok),
    ]
}

fn flags_and_repeat_rows() -> Vec<Row> {
    let mp_reach_bad_flags = attr(O | T, 14, &mp_reach_v6());
    let mp_unreach_bad_flags = attr(O | T, 15, &mp_unreach_v6());
    vec![
        row("RFC 7606 §3 c: ORIGIN flagged optional: treat-as-withdraw",
            update_attrs(&[attr(O | T, 1, &[0]), as_path(), next_hop()]), issue(Withdraw, 1)),
        row("RFC 7606 §3 c: AS_PATH flagged non-transitive: treat-as-withdraw",
            update_attrs(&[origin(), attr(0, 2, &h("02 01 0000fde9")), next_hop()]), issue(Withdraw, 2)),
        row("RFC 7606 §3 c: NEXT_HOP flagged optional: treat-as-withdraw",
            update_attrs(&[origin(), as_path(), attr(O | T, 3, &[192, 0, 2, 1])]), issue(Withdraw, 3)),
        row("RFC 7606 §3 c: LOCAL_PREF flagged optional: treat-as-withdraw",
            update_plus(&attr(O | T, 5, &[0, 0, 0, 100])), issue(Withdraw, 5)),
        row("RFC 7606 §3 c: MULTI_EXIT_DISC flagged well-known: treat-as-withdraw",
            update_plus(&attr(T, 4, &[0, 0, 0, 1])), issue(Withdraw, 4)),
        row("RFC 7606 §3 c: COMMUNITIES flagged non-transitive: treat-as-withdraw",
            update_plus(&attr(O, 8, &h("fde90064"))), issue(Withdraw, 8)),
        row("RFC 7606 §3 c, §7.6: ATOMIC_AGGREGATE flagged optional: attribute discard",
            update_plus(&attr(O | T, 6, &[])), issue(Discard, 6)),
        row("RFC 7606 §3 c, §7.7: AGGREGATOR flagged well-known: attribute discard",
            update_plus(&attr(T, 7, &h("0000fde9 c0000201"))), issue(Discard, 7)),
        row("RFC 4271 §4.3: Extended Length on a 1-octet ORIGIN is fine",
            update_attrs(&[attr(T | E, 1, &[0]), as_path(), next_hop()]), Want::Ok),
        row("RFC 4271 §6.3, RFC 7606 §3 c, §7.11: MP_REACH_NLRI flagged transitive is Attribute Flags Error, data the attribute",
            update(&[], &[origin(), as_path(), mp_reach_bad_flags.clone()].concat(), &[]),
            notify(3, 4, &mp_reach_bad_flags, "attribute_flags")),
        row("RFC 4271 §6.3, RFC 7606 §3 c, §7.11: MP_UNREACH_NLRI flagged transitive is Attribute Flags Error",
            update(&[], &mp_unreach_bad_flags, &[]),
            notify(3, 4, &mp_unreach_bad_flags, "attribute_flags")),
        row("RFC 7606 §3 g: MP_REACH_NLRI twice is Malformed Attribute List",
            update(&[], &[origin(), as_path(), attr(O, 14, &mp_reach_v6()), attr(O, 14, &mp_reach_v6())].concat(), &[]),
            notify(3, 1, &[], "attribute_type")),
        row("RFC 7606 §3 g: MP_UNREACH_NLRI twice is Malformed Attribute List",
            update(&[], &[attr(O, 15, &mp_unreach_v6()), attr(O, 15, &mp_unreach_v6())].concat(), &[]),
            notify(3, 1, &[], "attribute_type")),
        row("RFC 7606 §3 g: MULTI_EXIT_DISC twice: the second is discarded",
            update_plus(&[attr(O, 4, &[0, 0, 0, 1]), attr(O, 4, &[0, 0, 0, 2])].concat()), issue(Discard, 4)),
        row("RFC 7606 §3 g: ORIGIN twice: the second is discarded",
            update_plus(&attr(T, 1, &[2])), issue(Discard, 1)),
        row("RFC 7606 §3 g: an unknown optional attribute twice: the second is discarded",
            update_plus(&[attr(O | T, 99, &[1]), attr(O | T, 99, &[2])].concat()), issue(Discard, 99)),
    ]
}

fn mp_rows() -> Vec<Row> {
    let with_reach = |value: &[u8]| {
        update(
            &[],
            &[origin(), as_path(), attr(O, 14, value)].concat(),
            &[],
        )
    };
    let with_unreach = |value: &[u8]| update(&[], &attr(O, 15, value), &[]);
    // RFC 4271 §6.3: an Optional Attribute Error carries the attribute (flags, type, length, value).
    let reach_error = |value: &str, field: &'static str| {
        let value = h(value);
        row_data(
            with_reach(&value),
            notify(3, 9, &attr(O, 14, &value), field),
        )
    };
    let unreach_error = |value: &str, field: &'static str| {
        let value = h(value);
        row_data(
            with_unreach(&value),
            notify(3, 9, &attr(O, 15, &value), field),
        )
    };
    let mut reach_overrun = [origin(), as_path(), attr(O, 14, &mp_reach_v6())].concat();
    let mp_at = reach_overrun.len() - mp_reach_v6().len() - 3;
    reach_overrun[mp_at + 2] += 1; // MP_REACH_NLRI length one past the attribute field
    let overrun_attr = reach_overrun[mp_at..].to_vec();
    vec![
        row("RFC 4760 §3: MP_REACH_NLRI IPv4 with a 16-octet IPv6 next hop (RFC 8950) decodes",
            with_reach(&h("0001 01 10 20010db8000000000000000000000001 00 18c63364")), Want::Ok),
        row("RFC 2545 §3: MP_REACH_NLRI IPv6 with global and link-local next hop decodes",
            with_reach(&h("0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00 40 20010db800000100")),
            Want::Ok),
        reach_error("0002 01 10", "mp_reach_nlri")
            .named("RFC 7606 §7.11, RFC 4760 §7: MP_REACH_NLRI of 4 octets (truncated) resets: Optional Attribute Error"),
        reach_error("0002 01 20 20010db8000000000000000000000001", "mp_reach_next_hop_length")
            .named("RFC 7606 §7.11, RFC 4760 §7: MP_REACH_NLRI next hop length overrunning the attribute resets"),
        reach_error("0002 01 10 20010db8000000000000000000000001", "mp_reach_reserved")
            .named("RFC 7606 §7.11, RFC 4760 §7: MP_REACH_NLRI without its reserved octet resets"),
        reach_error("0002 01 04 c0000201 00 40 20010db800000100", "mp_reach_next_hop_length")
            .named("RFC 7606 §7.11, RFC 4760 §7: MP_REACH_NLRI IPv6 with a 4-octet next hop resets"),
        reach_error("0001 01 05 c000020100 00 18c63364", "mp_reach_next_hop_length")
            .named("RFC 7606 §7.11, RFC 4760 §7: MP_REACH_NLRI IPv4 with a 5-octet next hop resets"),
        row("RFC 7606 §5.3, §7.11: MP_REACH_NLRI IPv6 prefix length 129 resets: Invalid Network Field",
            with_reach(&h("0002 01 10 20010db8000000000000000000000001 00 81 20010db8")), notify(3, 10, &[], "mp_reach_nlri")),
        row("RFC 7606 §5.3, §7.11: MP_REACH_NLRI IPv6 prefix overrunning the attribute resets",
            with_reach(&h("0002 01 10 20010db8000000000000000000000001 00 40 20010db8")), notify(3, 10, &[], "mp_reach_nlri")),
        row("RFC 7606 §5.3, §7.11: MP_REACH_NLRI IPv4 prefix length 33 resets",
            with_reach(&h("0001 01 04 c0000201 00 21 c6336400 00")), notify(3, 10, &[], "mp_reach_nlri")),
        row("RFC 7606 §4, §7.11, RFC 4271 §6.3: MP_REACH_NLRI overrunning the attribute field is Attribute Length Error, data the attribute",
            update(&[], &reach_overrun, &[]), notify(3, 5, &overrun_attr, "attribute_length")),
        unreach_error("0002", "mp_unreach_nlri")
            .named("RFC 7606 §7.11, RFC 4760 §7: MP_UNREACH_NLRI of 2 octets (truncated) resets: Optional Attribute Error"),
        row("RFC 7606 §5.3, §7.11: MP_UNREACH_NLRI IPv6 prefix length 200 resets: Invalid Network Field",
            with_unreach(&h("0002 01 c8 20010db8")), notify(3, 10, &[], "mp_unreach_withdrawn")),
        row("RFC 7606 §5.3, §7.11: MP_UNREACH_NLRI IPv6 prefix overrunning the attribute resets",
            with_unreach(&h("0002 01 30 20010db8")), notify(3, 10, &[], "mp_unreach_withdrawn")),
        row("RFC 4724 §2: MP_UNREACH_NLRI IPv6 without prefixes (End-of-RIB) decodes",
            with_unreach(&h("0002 01")), Want::Ok),
        row("RFC 4760 §3: MP_REACH_NLRI of an unknown family is kept raw",
            with_reach(&h("0019 46 03 010203 00 0a0b0c")), Want::Ok),
    ]
}

/// A row whose name is given afterwards (for rows built by a closure).
fn row_data(bytes: Vec<u8>, want: Want) -> Row {
    row("", bytes, want)
}

impl Row {
    fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }
}

fn refresh_rows() -> Vec<Row> {
    let borr5 = route_refresh(&h("0001 01 01 00"));
    let eorr6 = route_refresh(&h("0001 02 01 0000"));
    vec![
        row("RFC 2918 §3: a normal ROUTE-REFRESH decodes", route_refresh(&h("0001 00 01")), Want::Ok),
        row("RFC 7313 §5: BoRR with a 5-octet body is Invalid Message Length, data the message",
            borr5.clone(), notify(7, 1, &borr5, "length")),
        row("RFC 7313 §5: EoRR with a 6-octet body is Invalid Message Length, data the message",
            eorr6.clone(), notify(7, 1, &eorr6, "length")),
        row("RFC 7313 §5, RFC 5291 §5.2: a normal ROUTE-REFRESH with ORF entries is not a length error",
            route_refresh(&h("0001 00 01 01 0003 40 0000")), Want::Ok),
        row("RFC 7313 §5: an unknown subtype with a 5-octet body is ignored, not a length error",
            route_refresh(&h("0001 07 01 00")), Want::Ok),
    ]
}

fn table() -> Vec<Row> {
    [
        header_rows(),
        open_rows(),
        update_header_rows(),
        attribute_rows(),
        flags_and_repeat_rows(),
        mp_rows(),
        refresh_rows(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What one row got wrong, or `None`.
fn check(row: &Row) -> Option<String> {
    let got = Message::decode(&row.bytes, &row.ctx);
    match (&row.want, &got) {
        (
            Want::Notify {
                code,
                subcode,
                data,
                field,
            },
            Err(e),
        ) => {
            let n = e.notification();
            let want = (*code, *subcode, &data[..], *field);
            let have = (n.code, n.subcode, &n.data[..], e.field);
            (want != have).then(|| {
                format!(
                    "want NOTIFICATION {code}/{subcode} data {} field {field}, got {}/{} data {} field {} ({e})",
                    hex::encode(data),
                    n.code,
                    n.subcode,
                    hex::encode(&n.data),
                    e.field
                )
            })
        }
        (Want::Issues(want), Ok(Message::Update(u))) => {
            let have: Vec<(Rfc7606Action, u8)> =
                u.issues.iter().map(|i| (i.action, i.type_code)).collect();
            if have != *want {
                return Some(format!("want issues {want:?}, got {:?}", u.issues));
            }
            // A malformed or missing attribute is not in the list; a repeated one is, once.
            let withdraws = want.iter().any(|(a, _)| *a == Withdraw);
            if u.treat_as_withdraw() != withdraws {
                return Some(format!("treat_as_withdraw() is {}", u.treat_as_withdraw()));
            }
            want.iter().find_map(|(action, code)| {
                let kept = u
                    .attributes
                    .iter()
                    .filter(|a| a.value.type_code() == *code)
                    .count();
                let limit = usize::from(*action == Discard);
                (kept > limit)
                    .then(|| format!("attribute {code} kept {kept} times: {:?}", u.attributes))
            })
        }
        (Want::Ok, Ok(Message::Update(u))) => {
            (!u.issues.is_empty()).then(|| format!("want no issues, got {:?}", u.issues))
        }
        (Want::Ok, Ok(_)) => None,
        (want, got) => Some(format!("want {want:?}, got {}", describe(got))),
    }
}

fn describe(got: &Result<Message, DecodeError>) -> String {
    match got {
        Ok(Message::Update(u)) => format!("UPDATE with issues {:?}", u.issues),
        Ok(m) => format!("{:?}", m.kind()),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn every_malformation_gets_its_rfc_outcome() {
    let rows = table();
    let mut failures = Vec::new();
    for r in &rows {
        if let Some(why) = check(r) {
            failures.push(format!("{}\n  {}\n  {why}", r.name, hex::encode(&r.bytes)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!("{} rows", rows.len());
}

#[test]
fn row_names_are_unique_and_cite_an_rfc() {
    let rows = table();
    let mut names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    assert!(names.iter().all(|n| n.starts_with("RFC ")), "{names:?}");
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate row names");
    assert!(before >= 100, "only {before} rows");
}

#[test]
fn extended_optional_parameters_decode_to_the_same_capabilities() {
    let classic = Message::decode(&base_open(), &FOUR).unwrap();
    let extended_row = table()
        .into_iter()
        .find(|r| r.name == "RFC 9072 §2: extended optional parameters decode")
        .unwrap();
    let extended = Message::decode(&extended_row.bytes, &FOUR).unwrap();
    let (Message::Open(c), Message::Open(e)) = (&classic, &extended) else {
        panic!("{classic:?} {extended:?}")
    };
    assert!(e.extended_params && !c.extended_params);
    assert_eq!(e.params, c.params);
    assert_eq!(e.asn(), 65001);
    // And it re-encodes in the extended format, byte for byte.
    assert_eq!(&extended.to_bytes(&FOUR)[..], &extended_row.bytes[..]);
}

#[test]
fn unknown_refresh_subtype_keeps_its_octets() {
    let bytes = route_refresh(&h("0001 07 01 00"));
    let m = Message::decode(&bytes, &FOUR).unwrap();
    assert_eq!(&m.to_bytes(&FOUR)[..], &bytes[..]);
}

// ---------------------------------------------------------------------------------------------
// Never panics
// ---------------------------------------------------------------------------------------------

/// Every captured message: the `.hex` vectors and every message of every `session.jsonl`.
fn captured_messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for path in hex_vectors() {
        let text = std::fs::read_to_string(&path).unwrap();
        out.push((path.display().to_string(), h(&text)));
    }
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let jsonl = entry.unwrap().path().join("session.jsonl");
        let Ok(text) = std::fs::read_to_string(&jsonl) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", jsonl.display(), i + 1));
            if let Some(hex) = v["hex"].as_str() {
                out.push((format!("{}:{}", short(&jsonl), i + 1), h(hex)));
            }
        }
    }
    assert!(out.len() >= 40, "only {} captured messages", out.len());
    out
}

fn short(p: &Path) -> String {
    p.strip_prefix(vectors_dir())
        .unwrap_or(p)
        .display()
        .to_string()
}

const CONTEXTS: [Context; 4] = [
    FOUR,
    TWO,
    EXTENDED,
    Context {
        four_octet_as: false,
        extended_message: true,
    },
];

/// Decode `bytes` in every context, re-encoding what decodes; a panic is returned as text.
fn survives(bytes: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| {
        for ctx in &CONTEXTS {
            if let Ok(m) = Message::decode(bytes, ctx) {
                let again = m.to_bytes(ctx);
                assert_eq!(again.len(), m.encoded_len(ctx));
            }
        }
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = f();
    std::panic::set_hook(hook);
    out
}

#[test]
fn every_truncation_of_every_vector_decodes_without_panic() {
    let failures: Vec<String> = quietly(|| {
        let mut failures = Vec::new();
        for (name, bytes) in captured_messages() {
            for n in 0..=bytes.len() {
                if let Err(p) = survives(&bytes[..n]) {
                    failures.push(format!(
                        "{name} cut to {n}: {p}: {}",
                        hex::encode(&bytes[..n])
                    ));
                }
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_truncation_with_a_patched_length_decodes_without_panic() {
    // A cut message whose length field is made to agree reaches the body decoders.
    let failures: Vec<String> = quietly(|| {
        let mut failures = Vec::new();
        for (name, bytes) in captured_messages() {
            for n in HEADER..=bytes.len() {
                let mut cut = bytes[..n].to_vec();
                cut[16..18].copy_from_slice(&(n as u16).to_be_bytes());
                if let Err(p) = survives(&cut) {
                    failures.push(format!("{name} cut to {n}: {p}: {}", hex::encode(&cut)));
                }
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_single_octet_change_of_every_vector_decodes_without_panic() {
    let failures: Vec<String> = quietly(|| {
        let mut failures = Vec::new();
        for (name, bytes) in captured_messages() {
            for i in 0..bytes.len() {
                let b = bytes[i];
                for v in [b ^ 0xff, b ^ 0x01, b ^ 0x80, b.wrapping_add(1), 0x00, 0xff] {
                    if v == b {
                        continue;
                    }
                    let mut flipped = bytes.clone();
                    flipped[i] = v;
                    if let Err(p) = survives(&flipped) {
                        failures.push(format!(
                            "{name} octet {i} = {v:#04x}: {p}: {}",
                            hex::encode(&flipped)
                        ));
                    }
                }
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
