//! A deadline for receiving a whole request body.
//!
//! Contract: [`TimedBody`] passes the body through unchanged as long as it arrives in time: all
//! of it within `base` (10 s, [`super::listen::BODY_READ_TIMEOUT`]) plus one second per
//! [`MIN_BODY_RATE`] octets received so far. Received, not declared: a `Content-Length` buys
//! nothing until the octets come, so a client that sends headers and stalls is cut after
//! `base`, while a 5 MB bulk announce over a slow link (anything faster than about 1 MB/s
//! minus what the 10 s absorb) still passes. Missing the deadline yields a [`BodyTimeout`]
//! error from the body and sets the shared flag, from which the connection layer answers 408
//! and closes the connection.
//!
//! Never: times a body nobody reads (the clock is looked at only while the handler waits on
//! the client), or the response.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// The slowest body rate that is still served, in octets per second: each octet received
/// extends the deadline by `1 s / MIN_BODY_RATE`.
pub const MIN_BODY_RATE: u64 = 1 << 20;

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("request body: {received} octets received, the rest not within {allowed:?}")]
pub struct BodyTimeout {
    pub received: u64,
    pub allowed: Duration,
}

/// A request body with a deadline; see the module doc.
pub struct TimedBody {
    inner: Incoming,
    start: Instant,
    base: Duration,
    received: u64,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl TimedBody {
    /// `expired` is set when the deadline is missed.
    pub fn new(inner: Incoming, base: Duration, expired: Arc<AtomicBool>) -> Self {
        let start = Instant::now();
        Self {
            inner,
            start,
            base,
            received: 0,
            sleep: Box::pin(tokio::time::sleep_until(start + base)),
            expired,
        }
    }

    fn allowed(&self) -> Duration {
        allowed(self.base, self.received)
    }
}

/// `base` plus one second per [`MIN_BODY_RATE`] octets of `received`.
fn allowed(base: Duration, received: u64) -> Duration {
    let extra_ns = u128::from(received) * 1_000_000_000 / u128::from(MIN_BODY_RATE);
    base.saturating_add(Duration::from_nanos(
        u64::try_from(extra_ns).unwrap_or(u64::MAX),
    ))
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let timeout = |this: &Self| {
            Poll::Ready(Some(Err(BodyTimeout {
                received: this.received,
                allowed: this.allowed(),
            }
            .into())))
        };
        if this.expired.load(Ordering::SeqCst) {
            return timeout(this);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    // No later than the deadline already set if the sum overflows (it cannot
                    // for a body within the size limit).
                    if let Some(deadline) = this.start.checked_add(this.allowed()) {
                        this.sleep.as_mut().reset(deadline);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.expired.store(true, Ordering::SeqCst);
                    return timeout(this);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mebibyte_received_buys_a_second() {
        let base = Duration::from_secs(10);
        assert_eq!(allowed(base, 0), base);
        assert_eq!(allowed(base, 3 << 20), Duration::from_secs(13));
        assert_eq!(allowed(base, 512 << 10), Duration::from_millis(10_500));
        assert!(
            allowed(base, u64::MAX) > Duration::from_secs(1 << 33),
            "no overflow"
        );
    }
}
