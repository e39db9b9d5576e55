//! One TCP connection to a peer: a reader task that frames messages and a writer task that
//! drains a queue, both reporting to the peer's driver.
//!
//! Back-pressure: the reader hands frames over a bounded channel, up to [`FRAMES_PER_EVENT`]
//! whole messages of one read in one event (a full table arrives ~850 UPDATEs per 64 KiB
//! read; a channel message and a driver wake-up per UPDATE cost more than decoding it), so a
//! driver that falls behind stops reading and TCP slows the peer down. The writer counts
//! queued octets; the driver produces UPDATEs only while that count is under [`HIGH_WATER`],
//! so a peer that does not read costs at most that much memory and never delays other peers.
//! Never does: decode bodies or decide anything about the session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wire::{split_frame, DecodeError, MAX_EXTENDED_MESSAGE_LEN};

/// At most this many frames in one [`ConnEvent::Frames`]: the driver handles one event without
/// yielding, so this bounds how long it holds a worker (~0.2 ms of UPDATEs).
pub const FRAMES_PER_EVENT: usize = 128;

/// Stop producing UPDATEs above this many queued octets.
pub const HIGH_WATER: usize = 256 * 1024;
/// The writer joins queued messages into writes of up to about this many octets.
const WRITE_BATCH: usize = 64 * 1024;

/// What a connection's tasks tell the driver.
#[derive(Debug)]
pub enum ConnEvent {
    /// A whole message (header included), or a framing error (after the frames before it).
    Frame(Result<BytesMut, DecodeError>),
    /// Whole messages, in the order received.
    Frames(Vec<BytesMut>),
    /// The writer wrote a chunk; `queued` octets remain.
    Written { queued: usize },
    /// The peer closed or the socket failed.
    Closed { error: Option<String> },
}

pub struct Conn {
    pub id: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    out: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Conn {
    /// Start the reader and writer tasks; their events arrive tagged with `id`.
    pub fn start(
        id: u64,
        stream: TcpStream,
        events: mpsc::Sender<(u64, ConnEvent)>,
    ) -> std::io::Result<Self> {
        let local = stream.local_addr()?;
        let remote = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        let (mut rd, mut wr) = stream.into_split();
        let queued = Arc::new(AtomicUsize::new(0));
        let (out, mut out_rx) = mpsc::unbounded_channel::<Bytes>();

        let ev = events.clone();
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                // Frame with the largest size: the decoder applies the negotiated limit.
                let error = loop {
                    let mut frames = Vec::new();
                    let error = loop {
                        if frames.len() == FRAMES_PER_EVENT {
                            break None;
                        }
                        match split_frame(&mut buf, MAX_EXTENDED_MESSAGE_LEN) {
                            Ok(Some(frame)) => frames.push(frame),
                            Ok(None) => break None,
                            Err(e) => break Some(e),
                        }
                    };
                    let more = frames.len() == FRAMES_PER_EVENT;
                    let event = match frames.len() {
                        0 => None,
                        1 => frames.pop().map(|f| ConnEvent::Frame(Ok(f))),
                        _ => Some(ConnEvent::Frames(frames)),
                    };
                    if let Some(event) = event {
                        if ev.send((id, event)).await.is_err() {
                            return;
                        }
                    }
                    if error.is_some() || !more {
                        break error;
                    }
                };
                if let Some(e) = error {
                    let _ = ev.send((id, ConnEvent::Frame(Err(e)))).await;
                    return;
                }
                buf.reserve(64 * 1024);
                match rd.read_buf(&mut buf).await {
                    Ok(0) => {
                        let _ = ev.send((id, ConnEvent::Closed { error: None })).await;
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = ev
                            .send((
                                id,
                                ConnEvent::Closed {
                                    error: Some(e.to_string()),
                                },
                            ))
                            .await;
                        return;
                    }
                }
            }
        });

        let q = queued.clone();
        let writer = tokio::spawn(async move {
            let mut buf = bytes::BytesMut::new();
            while let Some(first) = out_rx.recv().await {
                // Everything queued behind it, up to WRITE_BATCH octets, goes in one write: one
                // syscall and one `Written` event instead of one per UPDATE.
                let chunk = if out_rx.is_empty() {
                    first
                } else {
                    buf.extend_from_slice(&first);
                    while buf.len() < WRITE_BATCH {
                        let Ok(next) = out_rx.try_recv() else { break };
                        buf.extend_from_slice(&next);
                    }
                    buf.split().freeze()
                };
                if let Err(e) = wr.write_all(&chunk).await {
                    let _ = events
                        .send((
                            id,
                            ConnEvent::Closed {
                                error: Some(e.to_string()),
                            },
                        ))
                        .await;
                    return;
                }
                let left = q.fetch_sub(chunk.len(), Ordering::AcqRel) - chunk.len();
                if events
                    .send((id, ConnEvent::Written { queued: left }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Sender dropped: everything queued is written; close our side.
            let _ = wr.shutdown().await;
        });
        Ok(Self {
            id,
            local,
            remote,
            out,
            queued,
            reader,
            writer,
        })
    }

    pub fn send(&self, chunk: Bytes) {
        self.queued.fetch_add(chunk.len(), Ordering::AcqRel);
        let _ = self.out.send(chunk);
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Stop reading now; let the writer flush what is queued (e.g. a NOTIFICATION) for up to
    /// `flush` and then close.
    pub fn close(self, flush: std::time::Duration) {
        self.reader.abort();
        let Conn { out, writer, .. } = self;
        drop(out);
        tokio::spawn(async move {
            let abort = writer.abort_handle();
            if tokio::time::timeout(flush, writer).await.is_err() {
                abort.abort();
            }
        });
    }
}
