//! API request bodies: the JSON the speaker's HTTP API takes, parsed as the server parses them
//! (serde_json into the request types of `ferry::api::types`), then checked as the speaker
//! checks them (`RouteStore::prepare` on an empty store, which writes nothing).
//!
//! The first octet picks the endpoint (announce, withdraw, lease renew, peer reset); the rest
//! is the body. Properties: nothing panics; a request that parses serializes to JSON that
//! parses to an equal request (what the CLI sends is what the server reads); an announce whose
//! routes pass `prepare` names each of them in the result.
#![no_main]

use std::sync::OnceLock;

use ferry::api::types::{AnnounceRequest, LeaseRenewRequest, ResetRequest, WithdrawRequest};
use ferry::speaker::store::{Change, RouteStore};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn store() -> &'static RouteStore {
    static STORE: OnceLock<(tempfile::TempDir, RouteStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = RouteStore::load(dir.path()).expect("an empty store");
            (dir, store)
        })
        .1
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    body: &[u8],
) -> Option<T> {
    let req: T = serde_json::from_slice(body).ok()?;
    let json = serde_json::to_vec(&req).expect("a parsed request serializes");
    let again: T = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{req:?} serialized as {} does not parse: {e}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        req,
        again,
        "serialized as {}",
        String::from_utf8_lossy(&json)
    );
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Some(req) = round_trip::<AnnounceRequest>(body) {
                let n = req.routes.len();
                // The speaker holds each route once, shared ([`std::sync::Arc`]).
                let routes = req.routes.into_iter().map(std::sync::Arc::new).collect();
                if let Ok(applied) = store().prepare(Change::Announce(routes)) {
                    assert_eq!(applied.announced.len(), n, "an empty store announces all");
                }
            }
        }
        1 => {
            if let Some(req) = round_trip::<WithdrawRequest>(body) {
                let _ = store().prepare(Change::Withdraw(req.prefixes));
            }
        }
        2 => {
            let _ = round_trip::<LeaseRenewRequest>(body);
        }
        _ => {
            let _ = round_trip::<ResetRequest>(body);
        }
    }
});
