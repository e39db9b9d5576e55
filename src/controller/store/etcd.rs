//! The etcd store: run journals, the plan lock and controller leadership in etcd (v3 API), for
//! one controller per site sharing one truth.
//!
//! Keys (all under `ferry/plans/<plan>/`):
//! - `runs/<run_id>/<seq, 10 digits>`: one journal record (the same JSON line the state
//!   directory's file holds);
//! - `lock`: the plan lock, the holder's [`Holder`] JSON, attached to the holder's lease;
//! - `leader`: the leading `ferry controller run`, likewise;
//! - `seen/<site>`: what the controller at that site last saw of the primary (`[auto]`).
//!
//! Contract:
//! - A record is written by one transaction: "if the key of seq N was never created, and (when
//!   the writer holds the plan lock) the lock key still has the create revision it had when the
//!   writer took it, put record N". Two writers can never both append seq N, and a writer
//!   whose lease ran out (its lock key deleted by etcd, or since taken by another) appends
//!   nothing more: [`JournalError::Conflict`].
//! - A lock or leadership is a key created only if absent, on a lease of `ttl_secs`; a
//!   background task renews the lease every third of the TTL. [`Held::valid`] is true only
//!   until the last renewal *sent* plus the TTL etcd granted: the holder's own clock never
//!   extends it. Its create revision is the holder's fencing token ([`Held::token`]), larger
//!   for every later holder.
//! - Every call to etcd is bounded by the store's timeout and asks for a member with a leader
//!   (`require_leader`): without a quorum, calls fail with [`EtcdError::Unavailable`] naming
//!   the endpoints, instead of hanging or reading stale data.
//!
//! Never does: decide what to run, or write anything outside `ferry/`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use super::EtcdAuth;
use crate::controller::journal::{Entry, Journal, JournalError, RecordSink};
use crate::controller::lock::Holder;
use crate::controller::runs::{self, Listing, Unreadable};

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd store ({endpoints}): {op} failed: {detail}; no run starts or goes on without the store: check the etcd members (`etcdctl endpoint health`)")]
    Unavailable {
        endpoints: String,
        op: String,
        detail: String,
    },
    #[error("plan {plan} is held in etcd ({key}) by {holder}; wait for it to end (`ferry failover status --store ...` shows the run)")]
    Held {
        plan: String,
        key: String,
        holder: String,
    },
    #[error("etcd store: {0}")]
    Config(String),
}

/// A connected etcd store with its own runtime (the controller is blocking code).
pub struct EtcdStore {
    rt: Arc<tokio::runtime::Runtime>,
    client: Client,
    endpoints: Vec<String>,
    ttl_secs: u64,
    timeout: Duration,
}

fn plan_prefix(plan: &str) -> String {
    format!("ferry/plans/{plan}/")
}

fn run_prefix(plan: &str, run_id: &str) -> String {
    format!("{}runs/{run_id}/", plan_prefix(plan))
}

fn read_file(what: &str, p: &PathBuf) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(p).map_err(|e| EtcdError::Config(format!("{what} {}: {e}", p.display())))
}

impl EtcdStore {
    pub fn connect(
        endpoints: &[String],
        auth: &EtcdAuth,
        ttl_secs: u64,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferry-etcd")
            .enable_all()
            .build()
            .map_err(|e| EtcdError::Config(format!("runtime: {e}")))?;
        let mut opts = ConnectOptions::new()
            .with_timeout(timeout)
            // A connect to a cut-off member fails in a quarter of the call's time, leaving
            // the rest for the same call to another member ([`call`]).
            .with_connect_timeout((timeout / 4).max(Duration::from_millis(100)))
            .with_require_leader(true)
            // A member cut off by the network keeps its TCP connection open and silent; the
            // HTTP/2 pings close it, so calls go to the members that answer.
            .with_keep_alive(Duration::from_millis(500), Duration::from_millis(500))
            .with_keep_alive_while_idle(true);
        if let Some(ca) = &auth.ca {
            let mut tls = etcd_client::TlsOptions::new().ca_certificate(
                etcd_client::Certificate::from_pem(read_file("--etcd-ca", ca)?),
            );
            if let (Some(c), Some(k)) = (&auth.cert, &auth.key) {
                tls = tls.identity(etcd_client::Identity::from_pem(
                    read_file("--etcd-cert", c)?,
                    read_file("--etcd-key", k)?,
                ));
            }
            opts = opts.with_tls(tls);
        }
        if let (Some(u), Some(pf)) = (&auth.user, &auth.password_file) {
            let pw = String::from_utf8(read_file("--etcd-password-file", pf)?).map_err(|_| {
                EtcdError::Config(format!("--etcd-password-file {}: not UTF-8", pf.display()))
            })?;
            opts = opts.with_user(u.clone(), pw.trim_end_matches('\n').to_owned());
        }
        let joined = endpoints.join(",");
        let client = rt
            .block_on(async {
                tokio::time::timeout(timeout, Client::connect(endpoints, Some(opts))).await
            })
            .map_err(|_| EtcdError::Unavailable {
                endpoints: joined.clone(),
                op: "connect".into(),
                detail: format!("no answer within {} ms", timeout.as_millis()),
            })?
            .map_err(|e| EtcdError::Unavailable {
                endpoints: joined.clone(),
                op: "connect".into(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            rt: Arc::new(rt),
            client,
            endpoints: endpoints.to_vec(),
            ttl_secs,
            timeout,
        })
    }

    pub fn describe(&self) -> String {
        format!("etcd {}", self.endpoints.join(","))
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    fn call<T, F>(&self, op: &str, f: impl FnMut(Client) -> F) -> Result<T, EtcdError>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        call(&self.rt, &self.client, &self.endpoints, self.timeout, op, f)
    }

    /// Every run of `plan` (or of all plans), oldest first; a run whose records are not a
    /// legal journal is shown as far as it is legal ([`runs::RunSummary::damaged`]).
    pub fn runs(&self, plan: Option<&str>) -> Result<Listing, EtcdError> {
        let prefix = plan.map_or("ferry/plans/".to_owned(), plan_prefix);
        let resp = self.call("read the runs", |mut c| {
            let prefix = prefix.clone();
            async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })?;
        // run key -> records, in key (= seq) order.
        let mut by_run: BTreeMap<(String, String), Vec<Entry>> = BTreeMap::new();
        let mut out = Listing::default();
        for kv in resp.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            let Some(rest) = key.strip_prefix("ferry/plans/") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let [plan, "runs", run_id, _seq] = parts[..] else {
                continue;
            };
            let label = (plan.to_owned(), run_id.to_owned());
            match serde_json::from_slice::<Entry>(
                kv.value().strip_suffix(b"\n").unwrap_or(kv.value()),
            ) {
                Ok(e) => by_run.entry(label).or_default().push(e),
                Err(e) => out.unreadable.push(Unreadable {
                    path: PathBuf::from(format!("etcd:{key}")),
                    error: e.to_string(),
                }),
            }
        }
        for ((plan, run_id), entries) in by_run {
            let label = PathBuf::from(format!("etcd:{}", run_prefix(&plan, &run_id)));
            match runs::summarize(&label, entries) {
                Some(s) => out.runs.push(s),
                None => out.unreadable.push(Unreadable {
                    path: label,
                    error: "it does not start with run_started".into(),
                }),
            }
        }
        out.runs.sort_by_key(|r| r.started_ms);
        Ok(out)
    }

    /// The journal of `run_id` (empty when new): its records as etcd holds them, new ones
    /// appended by transaction, guarded by `lock` when given.
    pub fn journal(
        &self,
        plan: &str,
        run_id: &str,
        lock: Option<&Held>,
    ) -> Result<Journal, JournalError> {
        let prefix = run_prefix(plan, run_id);
        let label = PathBuf::from(format!("etcd:{prefix}"));
        let unavailable = |e: EtcdError| JournalError::Io {
            path: label.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        let resp = self
            .call("read the journal", |mut c| {
                let p = prefix.clone();
                async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
            })
            .map_err(unavailable)?;
        let mut entries = Vec::new();
        for (i, kv) in resp.kvs().iter().enumerate() {
            let e =
                serde_json::from_slice::<Entry>(kv.value()).map_err(|e| JournalError::Corrupt {
                    path: label.clone(),
                    line: i + 1,
                    detail: e.to_string(),
                })?;
            entries.push(e);
        }
        let sink = EtcdSink {
            rt: self.rt.clone(),
            client: self.client.clone(),
            endpoints: self.endpoints.clone(),
            timeout: self.timeout,
            prefix,
            label: label.clone(),
            guard: lock.map(|l| (l.key.clone(), l.token)),
        };
        Journal::in_store(label, entries, Box::new(sink))
    }

    /// Take `plan`'s lock now, or fail naming its holder.
    pub fn lock(&self, plan: &str, me: &Holder) -> Result<Held, EtcdError> {
        self.hold(plan, &format!("{}lock", plan_prefix(plan)), me)
    }

    /// The fencing token of whoever holds `plan`'s lock now (its key's create revision), or
    /// `None` when nobody does. The leader's keeper never offers less than this, so that its
    /// renewals are not refused after a run's announce raised the speaker's token.
    pub fn lock_token(&self, plan: &str) -> Result<Option<u64>, EtcdError> {
        let key = format!("{}lock", plan_prefix(plan));
        let resp = self.call("read the plan lock", |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        })?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| kv.create_revision().max(0) as u64))
    }

    /// Publish what this controller sees, as JSON under `seen/<site>` of `plan` (failover by
    /// quorum: [`crate::controller::auto`]).
    pub fn put_seen(&self, plan: &str, site: &str, json: String) -> Result<(), EtcdError> {
        let key = format!("{}seen/{site}", plan_prefix(plan));
        self.call("publish what this controller sees", |mut c| {
            let (key, json) = (key.clone(), json.clone());
            async move { c.put(key, json, None).await }
        })
        .map(|_| ())
    }

    /// Every controller's view of `plan` (values under `seen/`), as stored.
    pub fn seen(&self, plan: &str) -> Result<Vec<Vec<u8>>, EtcdError> {
        let prefix = format!("{}seen/", plan_prefix(plan));
        let resp = self.call("read what the controllers see", |mut c| {
            let prefix = prefix.clone();
            async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
        })?;
        Ok(resp.kvs().iter().map(|kv| kv.value().to_vec()).collect())
    }

    /// Take the leadership of `plan`'s controllers now, or fail naming the leader.
    pub fn lead(&self, plan: &str, me: &Holder) -> Result<Held, EtcdError> {
        self.hold(plan, &format!("{}leader", plan_prefix(plan)), me)
    }

    fn hold(&self, plan: &str, key: &str, me: &Holder) -> Result<Held, EtcdError> {
        let ttl = self.ttl_secs as i64;
        let asked = Instant::now();
        let lease = self.call("grant a lease", |mut c| async move {
            c.lease_grant(ttl, None).await
        })?;
        let lease_id = lease.id();
        let granted = Duration::from_secs(lease.ttl().max(0) as u64);
        let value = serde_json::to_string(me).unwrap_or_default();
        let k = key.to_owned();
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                k.clone(),
                value,
                Some(PutOptions::new().with_lease(lease_id)),
            )])
            .or_else([TxnOp::get(k.clone(), None)]);
        let resp = self.call("take the key", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        if !resp.succeeded() {
            let _ = self.call("revoke a lease", |mut c| async move {
                c.lease_revoke(lease_id).await
            });
            let holder = resp
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| {
                        serde_json::from_slice::<Holder>(kv.value())
                            .map(|h| h.to_string())
                            .unwrap_or_else(|_| String::from_utf8_lossy(kv.value()).into_owned())
                    }),
                    _ => None,
                })
                .unwrap_or_else(|| "another controller (its lease just ended?)".into());
            return Err(EtcdError::Held {
                plan: plan.to_owned(),
                key: key.to_owned(),
                holder,
            });
        }
        let token = resp.header().map_or(0, |h| h.revision()) as u64;
        let valid_until = Arc::new(Mutex::new(asked + granted));
        let task = self.rt.spawn(keep_alive(
            self.client.clone(),
            lease_id,
            self.ttl(),
            self.timeout,
            valid_until.clone(),
        ));
        Ok(Held {
            key: key.to_owned(),
            token,
            lease_id,
            valid_until,
            task,
            rt: self.rt.clone(),
            client: self.client.clone(),
            timeout: self.timeout,
        })
    }
}

/// One call, `f` with a clone of `client`, bounded by `timeout` in all. A call that never
/// reached a member ([`not_sent`]: its connection could not be made, as to a member cut off
/// from this host) is sent again while the time lasts; the channel picks another member.
fn call<T, F>(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    endpoints: &[String],
    timeout: Duration,
    op: &str,
    mut f: impl FnMut(Client) -> F,
) -> Result<T, EtcdError>
where
    F: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    const PAUSE: Duration = Duration::from_millis(20);
    let unavailable = |detail: String| EtcdError::Unavailable {
        endpoints: endpoints.join(","),
        op: op.to_owned(),
        detail,
    };
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, f(client.clone())).await {
                Err(_) => {
                    return Err(unavailable(format!(
                        "no answer within {} ms",
                        timeout.as_millis()
                    )))
                }
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if not_sent(&e) && tokio::time::Instant::now() + PAUSE < deadline => {
                    tokio::time::sleep(PAUSE).await;
                }
                Ok(Err(e)) => return Err(unavailable(e.to_string())),
            }
        }
    })
}

/// The call never left this host: the connection to the member the channel picked could
/// not be made. Sending it again cannot apply it twice.
fn not_sent(e: &etcd_client::Error) -> bool {
    // gRPC's UNAVAILABLE (14), which tonic gives a failed connect with this message.
    const UNAVAILABLE: i32 = 14;
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() as i32 == UNAVAILABLE && s.message().contains("connect error")
        }
        etcd_client::Error::TransportError(t) => format!("{t:?}").contains("ConnectError"),
        _ => false,
    }
}

/// Renew `lease` every third of `ttl` (sooner again after a failed renewal); after each answer, the lease is valid until the
/// renewal was sent plus the TTL etcd granted. A refused or unanswered renewal extends
/// nothing; a lease etcd says is gone (TTL 0) ends the task.
async fn keep_alive(
    mut client: Client,
    lease: i64,
    ttl: Duration,
    timeout: Duration,
    valid_until: Arc<Mutex<Instant>>,
) {
    // Each attempt gets at most a third of the TTL, and a failed one is tried again at once
    // (on a new stream, which the channel sends to a member that answers): a member cut off
    // in the middle of a stream costs one attempt, not the lease.
    let bound = timeout.min(ttl / 3);
    const AGAIN: Duration = Duration::from_millis(50);
    let mut stream = None;
    let mut wait = ttl / 3;
    loop {
        tokio::time::sleep(wait).await;
        wait = AGAIN;
        if stream.is_none() {
            stream = tokio::time::timeout(bound, client.lease_keep_alive(lease))
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some((keeper, replies)) = stream.as_mut() else {
            continue;
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(bound, async {
            keeper.keep_alive().await?;
            replies.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {
                if let Ok(mut v) = valid_until.lock() {
                    *v = sent + Duration::from_secs(r.ttl() as u64);
                }
                wait = ttl / 3;
            }
            Ok(Ok(Some(_))) => {
                tracing::warn!(
                    lease,
                    "etcd says the lease is gone: leadership or lock lost"
                );
                if let Ok(mut v) = valid_until.lock() {
                    *v = sent;
                }
                return;
            }
            _ => {
                tracing::warn!(lease, "etcd lease renewal failed; retrying");
                stream = None;
            }
        }
    }
}

/// A lock or leadership held in etcd; released (its lease revoked) when dropped.
pub struct Held {
    key: String,
    token: u64,
    lease_id: i64,
    valid_until: Arc<Mutex<Instant>>,
    task: tokio::task::JoinHandle<()>,
    rt: Arc<tokio::runtime::Runtime>,
    client: Client,
    timeout: Duration,
}

impl Held {
    /// The revision at which it was taken: the fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Still held: the lease's last renewal (sent time) plus its TTL is in the future.
    pub fn valid(&self) -> bool {
        self.valid_until.lock().is_ok_and(|v| Instant::now() < *v)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
        let mut c = self.client.clone();
        let (id, timeout) = (self.lease_id, self.timeout);
        let _ = self
            .rt
            .block_on(async move { tokio::time::timeout(timeout, c.lease_revoke(id)).await });
    }
}

/// Appends records to a run's keys in etcd, one transaction each.
struct EtcdSink {
    rt: Arc<tokio::runtime::Runtime>,
    client: Client,
    endpoints: Vec<String>,
    timeout: Duration,
    prefix: String,
    label: PathBuf,
    /// The plan lock's key and create revision, when the writer holds it.
    guard: Option<(String, u64)>,
}

impl RecordSink for EtcdSink {
    fn write(&mut self, entry: &Entry, line: &[u8]) -> Result<(), JournalError> {
        let key = format!("{}{:010}", self.prefix, entry.seq);
        let mut when = vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)];
        if let Some((lock, rev)) = &self.guard {
            when.push(Compare::create_revision(
                lock.clone(),
                CompareOp::Equal,
                *rev as i64,
            ));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::put(key, line.to_vec(), None)]);
        let resp = call(
            &self.rt,
            &self.client,
            &self.endpoints,
            self.timeout,
            "append a journal record",
            |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            },
        )
        .map_err(|e| JournalError::Io {
            path: self.label.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if resp.succeeded() {
            return Ok(());
        }
        Err(JournalError::Conflict {
            path: self.label.clone(),
            detail: match &self.guard {
                Some((lock, rev)) => format!(
                    "seq {} is taken, or {lock} is no longer held at revision {rev} (the lease ran out or another controller took the plan)",
                    entry.seq
                ),
                None => format!("seq {} would be written twice", entry.seq),
            },
        })
    }
}
