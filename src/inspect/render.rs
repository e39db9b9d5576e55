//! Messages and decode errors as the JSON objects of `docs/decode-json.md`.
//!
//! Never does: decoding; it renders what [`crate::wire`] produced.

use serde_json::{json, Map, Value};

use crate::wire::as_path::AsPath;
use crate::wire::capability::{Capability, Role};
use crate::wire::notification::{code_name, subcode_name};
use crate::wire::{
    Afi, Aggregator, AttributeValue, Context, DecodeError, Message, MpNlri, Notification, Open,
    RefreshSubtype, Safi, Update,
};

fn afi(a: Afi) -> Value {
    match a {
        Afi::Unknown(v) => json!(v),
        known => json!(known.to_string()),
    }
}

fn safi(s: Safi) -> Value {
    match s {
        Safi::Unknown(v) => json!(v),
        known => json!(known.to_string()),
    }
}

fn as_path(p: &AsPath) -> Value {
    p.segments()
        .map(|s| json!({"type": s.kind.name(), "asns": s.asns}))
        .collect()
}

fn aggregator(a: &Aggregator) -> Value {
    json!({"asn": a.asn, "address": a.address.to_string()})
}

fn strings<T: ToString>(items: &[T]) -> Value {
    items.iter().map(|i| Value::String(i.to_string())).collect()
}

/// One message; `length` is the header's length field.
pub fn message(msg: &Message, length: usize, ctx: &Context) -> Value {
    let mut obj = Map::new();
    obj.insert("type".into(), json!(msg.kind().name()));
    obj.insert("length".into(), json!(length));
    match msg {
        Message::Open(o) => open(o, &mut obj),
        Message::Update(u) => update(u, ctx, &mut obj),
        Message::Notification(n) => notification(n, &mut obj),
        Message::Keepalive => {}
        Message::RouteRefresh(r) => {
            obj.insert("afi".into(), afi(r.afi));
            obj.insert("safi".into(), safi(r.safi));
            let subtype = match r.subtype {
                RefreshSubtype::Normal => json!("normal"),
                RefreshSubtype::Borr => json!("borr"),
                RefreshSubtype::Eorr => json!("eorr"),
                RefreshSubtype::Unknown(v) => json!(v),
            };
            obj.insert("subtype".into(), subtype);
        }
    }
    Value::Object(obj)
}

fn open(o: &Open, obj: &mut Map<String, Value>) {
    obj.insert("version".into(), json!(o.version));
    obj.insert("my_as".into(), json!(o.my_as));
    obj.insert("asn".into(), json!(o.asn()));
    obj.insert("hold_time".into(), json!(o.hold_time));
    obj.insert("router_id".into(), json!(o.router_id.to_string()));
    obj.insert(
        "capabilities".into(),
        o.capabilities().map(capability).collect(),
    );
}

fn capability(c: &Capability) -> Value {
    let mut v = json!({"code": c.code(), "name": c.name()});
    let extra = match c {
        Capability::Multiprotocol { afi: a, safi: s } => json!({"afi": afi(*a), "safi": safi(*s)}),
        Capability::ExtendedNextHop(f) => json!({"families": f.iter().map(|f| json!({
            "afi": afi(f.afi),
            "safi": u8::try_from(f.safi).map(|s| safi(Safi::from(s))).unwrap_or(json!(f.safi)),
            "next_hop_afi": afi(f.next_hop_afi)})).collect::<Vec<_>>()}),
        Capability::Role(r) => {
            json!({"role": r.name().map_or(json!(Role::code(*r)), |n| json!(n))})
        }
        Capability::GracefulRestart(gr) => json!({
            "restart_state": gr.restart_state(),
            "notification": gr.notification(),
            "restart_time": gr.restart_time,
            "families": gr.families.iter().map(|f| json!({
                "afi": afi(f.afi), "safi": safi(f.safi), "forwarding_state": f.forwarding_state()})).collect::<Vec<_>>()}),
        Capability::FourOctetAs(asn) => json!({"asn": asn}),
        Capability::AddPath(f) => json!({"families": f.iter().map(|f| json!({
            "afi": afi(f.afi), "safi": safi(f.safi),
            "send_receive": match f.send_receive { 1 => json!("receive"), 2 => json!("send"), 3 => json!("both"), v => json!(v) }}))
            .collect::<Vec<_>>()}),
        Capability::Fqdn { hostname, domain } => json!({
            "hostname": String::from_utf8_lossy(hostname), "domain": String::from_utf8_lossy(domain)}),
        Capability::Unknown { data, .. } => json!({"data": hex::encode(data)}),
        Capability::RouteRefresh
        | Capability::ExtendedMessage
        | Capability::EnhancedRouteRefresh => json!({}),
    };
    if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
        o.extend(e);
    }
    v
}

fn update(u: &Update, ctx: &Context, obj: &mut Map<String, Value>) {
    let mut withdrawn: Vec<String> = u.withdrawn.iter().map(ToString::to_string).collect();
    let mut nlri: Vec<String> = u.nlri.iter().map(ToString::to_string).collect();
    if let Some(m) = u.mp_unreach() {
        withdrawn.extend(m.withdrawn.strings());
    }
    if let Some(m) = u.mp_reach() {
        nlri.extend(m.nlri.strings());
    }
    obj.insert("withdrawn".into(), json!(withdrawn));
    obj.insert("nlri".into(), json!(nlri));
    let mut attrs = Map::new();
    let mut unknown = Vec::new();
    for a in &u.attributes {
        let (key, value) = match &a.value {
            AttributeValue::Origin(o) => ("origin", json!(o.name())),
            AttributeValue::AsPath(_) => {
                let merged = u.effective_as_path(ctx.four_octet_as).unwrap_or_default();
                ("as_path", as_path(&merged))
            }
            AttributeValue::NextHop(a) => ("next_hop", json!(a.to_string())),
            AttributeValue::Med(v) => ("med", json!(v)),
            AttributeValue::LocalPref(v) => ("local_pref", json!(v)),
            AttributeValue::AtomicAggregate => ("atomic_aggregate", json!(true)),
            AttributeValue::Aggregator(a) => ("aggregator", aggregator(a)),
            AttributeValue::Communities(c) => ("communities", strings(c)),
            AttributeValue::OriginatorId(a) => ("originator_id", json!(a.to_string())),
            AttributeValue::ClusterList(c) => ("cluster_list", strings(c)),
            AttributeValue::MpReach(m) => (
                "mp_reach",
                json!({"afi": afi(m.afi), "safi": safi(m.safi), "next_hop": m.next_hop.addresses(), "nlri": m.nlri.strings()}),
            ),
            AttributeValue::MpUnreach(m) => (
                "mp_unreach",
                json!({"afi": afi(m.afi), "safi": safi(m.safi), "withdrawn": m.withdrawn.strings()}),
            ),
            AttributeValue::ExtendedCommunities(c) => ("extended_communities", strings(c)),
            AttributeValue::As4Path(p) => ("as4_path", as_path(p)),
            AttributeValue::As4Aggregator(a) => ("as4_aggregator", aggregator(a)),
            AttributeValue::LargeCommunities(c) => ("large_communities", strings(c)),
            AttributeValue::Unknown { type_code, data } => {
                unknown.push(json!({"type": type_code, "flags": format!("{:#04x}", a.flags), "data": hex::encode(data)}));
                continue;
            }
        };
        attrs.insert(key.into(), value);
    }
    if !unknown.is_empty() {
        attrs.insert("unknown".into(), Value::Array(unknown));
    }
    obj.insert("attributes".into(), Value::Object(attrs));
    if let Some(f) = u.end_of_rib_family() {
        obj.insert("end_of_rib".into(), json!(f.to_string()));
    }
    if !u.issues.is_empty() {
        let issues = u
            .issues
            .iter()
            .map(|i| json!({"action": i.action.name(), "attribute": i.type_code, "offset": i.offset, "detail": i.detail}))
            .collect();
        obj.insert("rfc7606".into(), Value::Array(issues));
    }
    // Families other than IPv4/IPv6 unicast and multicast were kept raw; say so.
    if u.mp_reach()
        .is_some_and(|m| matches!(m.nlri, MpNlri::Raw(_)))
    {
        obj.insert(
            "note".into(),
            json!("MP_REACH_NLRI of a family Ferry does not decode; NLRI shown as hex"),
        );
    }
}

fn notification(n: &Notification, obj: &mut Map<String, Value>) {
    notification_fields(n, obj);
    // RFC 8538 §3: the data of a Hard Reset is the NOTIFICATION it wraps. Only that one is
    // decoded: a Hard Reset in a Hard Reset means nothing, and following the chain would nest
    // one object per 2 octets (32758 levels in a 65535-octet message: a stack overflow).
    if let Some(inner) = n.hard_reset_inner() {
        let mut inner_obj = Map::new();
        notification_fields(&inner, &mut inner_obj);
        obj.insert("hard_reset".into(), Value::Object(inner_obj));
    }
}

fn notification_fields(n: &Notification, obj: &mut Map<String, Value>) {
    obj.insert("code".into(), json!(n.code));
    obj.insert("subcode".into(), json!(n.subcode));
    obj.insert("code_name".into(), json!(code_name(n.code)));
    obj.insert(
        "subcode_name".into(),
        json!(subcode_name(n.code, n.subcode)),
    );
    obj.insert("data".into(), json!(hex::encode(&n.data)));
    if let Some(m) = n.shutdown_message() {
        obj.insert("shutdown_message".into(), json!(m));
    }
}

/// The NOTIFICATION a session-resetting error would send, with where and why.
pub fn error(e: &DecodeError) -> Value {
    let (code, subcode) = e.kind.code_subcode();
    json!({"error": {
        "code": code,
        "subcode": subcode,
        "code_name": code_name(code),
        "subcode_name": subcode_name(code, subcode),
        "field": e.field,
        "offset": e.offset,
        "detail": e.detail,
        "data": hex::encode(&e.data),
    }})
}
