//! Failover plan parser (`Plan::parse`): never panics on any text, and a plan it accepts can
//! be walked as the controller walks it (sites, prefixes, routes, group membership) without
//! a panic.
#![no_main]

use ferry::controller::plan::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plan) = Plan::parse(text) else {
        return;
    };
    let _ = (plan.primary(), plan.recovery());
    for prefix in plan.all_prefixes() {
        for site in [plan.primary(), plan.recovery()] {
            let _ = site.route(prefix);
        }
    }
});
