//! The failover controller: moves a plan's subnets from one site to the other around the VM
//! cutover, one journaled step at a time, and survives its own crash.
//!
//! - [`plan`]: the plan TOML, checked whole when read.
//! - [`step`]: the steps a plan becomes, each with an idempotent `apply` and a `compensate`.
//! - [`journal`]: the append-only, fsync'd run record and its legal transitions (one `match`).
//! - [`lock`]: one controller per plan, the holder named.
//! - [`claim`]: taking a plan before changing anything: private state directory, the lock,
//!   and no unfinished or damaged run in the way of a new one.
//! - [`executor`]: runs the steps, rolls back or stops on failure, resumes and aborts.
//! - [`keeper`]: which sites' leases `ferry failover keep` renews, how often, and its loop.
//! - [`leader`]: HA controllers: a plan taken through the store, and `ferry controller run`
//!   (one leader per plan keeps the leases and finishes what a dead controller left).
//! - [`fencing`]: which fencing token an HA controller's speaker calls carry (the plan lock's
//!   or the leadership's etcd revision).
//! - [`auto`]: failover by quorum (`[auto]`): the controllers' views of the primary in etcd,
//!   the leader's decision and the unplanned run that waits out the primary's leases.
//! - [`repair`]: closes a damaged run with a record of the active site the operator named.
//! - [`runs`]: the runs kept in the state directory (status, resume, history).
//! - [`store`]: where journals, the plan lock and leadership live: the state directory or
//!   etcd (HA controllers, one per site).
//! - [`statedir`]: the state directory, `runs/` and `locks/` kept private (0700, files 0600).
//! - [`observe`]: which site a route the verification's observer received comes from
//!   (origin AS, verify community; next hop only when asked), and what it sees, in words.
//! - [`rpki`]: the RPKI preflight: each site's routes validated (RFC 6811) against the VRPs
//!   of the plan's RTR validators; Invalid at the site gaining the subnets fails it.
//! - [`sites`]: the speaker API and the hooks/probes behind traits (fakes in unit tests).
//! - [`dnsplan`]: the plan's `[[dns]]` entries (records that change address with a group).
//! - [`dns`]: the DNS steps (pre-stage the TTL, signed update, verify at every authoritative
//!   server) and their compensations, behind the [`dns::Dns`] trait.
//! - [`hook`]: commands in their own process group, dying with the controller; ending the
//!   leftovers of a dead controller's hook.
//! - [`http`]: HTTP(S) hooks and checks with one deadline per call.
//!
//! Never does: speak BGP itself; everything at a site goes through its speaker's API.

pub mod auto;
pub mod claim;
pub mod dns;
pub mod dnsplan;
pub mod executor;
pub mod fencing;
pub mod hook;
pub mod http;
pub mod journal;
pub mod keeper;
pub mod leader;
pub mod lock;
pub mod observe;
pub mod plan;
pub mod renewals;
pub mod repair;
pub mod rpki;
pub mod runs;
pub mod sites;
pub mod statedir;
pub mod step;
pub mod store;

pub use executor::{End, ExecError, Executor, Progress};
pub use journal::{Direction, Mode, Outcome};
pub use plan::Plan;
