//! [`RequestBody`]: what the client sends as a request body, either whole or as a JSON array
//! written while it is sent.
//!
//! Contract:
//! - A whole body goes out with its `Content-Length`; an empty one as no body at all.
//! - A bulk body ([`RequestBody::json_array`]) owns its items and writes them in frames of
//!   about [`FRAME`] octets as the connection asks for them (chunked transfer encoding), so a
//!   100,000-route announce is never held as JSON text in full: only the items and one frame
//!   are. An array that fits one frame is sent whole.
//! - The octets are exactly the JSON the caller's head, items and tail make; nothing here
//!   knows the request types (the typed client [`super::Speaker`] gives head and tail).
//!
//! Never: reads from the network, or retries.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The size of a frame of a bulk body, in octets (one more item may overrun it).
pub const FRAME: usize = 64 * 1024;

/// Writes one item's JSON into the frame being built.
type WriteItem<T> = fn(&T, &mut Vec<u8>) -> Result<(), serde_json::Error>;

/// A request body; see the module doc.
pub struct RequestBody {
    /// The next frame to send (a whole body is one).
    next: Option<Bytes>,
    /// The frames after `next`, written on demand.
    rest: Option<Box<dyn Iterator<Item = Result<Bytes, serde_json::Error>> + Send + Sync>>,
}

impl RequestBody {
    pub fn empty() -> Self {
        Self {
            next: None,
            rest: None,
        }
    }

    pub fn whole(bytes: Vec<u8>) -> Self {
        Self {
            next: (!bytes.is_empty()).then(|| Bytes::from(bytes)),
            rest: None,
        }
    }

    /// `head`, the items written by `write` with commas between them, then `tail`: e.g.
    /// `{"routes":[` ... `]}`.
    pub fn json_array<T: Send + Sync + 'static>(
        head: &'static str,
        items: Vec<T>,
        write: WriteItem<T>,
        tail: String,
    ) -> Result<Self, serde_json::Error> {
        let mut frames = ArrayFrames {
            head: Some(head),
            items: items.into_iter(),
            write,
            tail: Some(tail),
            first: true,
        };
        let first = frames.next().transpose()?.unwrap_or_default();
        Ok(if frames.tail.is_none() {
            Self::whole(first.to_vec())
        } else {
            Self {
                next: Some(first),
                rest: Some(Box::new(frames)),
            }
        })
    }

    /// Sent with a `Content-Length` (not written on demand).
    pub fn is_whole(&self) -> bool {
        self.rest.is_none()
    }

    /// The length of a whole body; `None` for one written on demand.
    pub fn whole_len(&self) -> Option<usize> {
        self.is_whole()
            .then(|| self.next.as_ref().map_or(0, Bytes::len))
    }

    /// The frames in order, written as they are taken (the blocking transport's way to send).
    pub fn into_frames(self) -> impl Iterator<Item = Result<Bytes, serde_json::Error>> {
        self.next
            .map(Ok)
            .into_iter()
            .chain(self.rest.into_iter().flatten())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = serde_json::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(b) = this.next.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let frame = this.rest.as_mut().and_then(Iterator::next);
        if frame.is_none() {
            this.rest = None;
        }
        Poll::Ready(frame.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.next.is_none() && self.rest.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.next, &self.rest) {
            (next, None) => SizeHint::with_exact(next.as_ref().map_or(0, |b| b.len() as u64)),
            _ => SizeHint::default(),
        }
    }
}

/// The frames of a JSON array body, written one at a time.
struct ArrayFrames<T> {
    head: Option<&'static str>,
    items: std::vec::IntoIter<T>,
    write: WriteItem<T>,
    /// `None` once written: the body is complete.
    tail: Option<String>,
    first: bool,
}

impl<T> Iterator for ArrayFrames<T> {
    type Item = Result<Bytes, serde_json::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let tail_left = self.tail.as_ref()?;
        let mut buf = Vec::with_capacity(FRAME + 512);
        if let Some(h) = self.head.take() {
            buf.extend_from_slice(h.as_bytes());
        }
        while buf.len() < FRAME {
            match self.items.next() {
                Some(item) => {
                    if !std::mem::take(&mut self.first) {
                        buf.push(b',');
                    }
                    if let Err(e) = (self.write)(&item, &mut buf) {
                        return Some(Err(e));
                    }
                }
                None => {
                    buf.extend_from_slice(tail_left.as_bytes());
                    self.tail = None;
                    break;
                }
            }
        }
        Some(Ok(Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn write_u32(v: &u32, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(buf, v)
    }

    async fn collect(b: RequestBody) -> (Vec<u8>, usize) {
        let mut b = b;
        let mut frames = 0;
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            out.extend_from_slice(f.unwrap().data_ref().unwrap());
            frames += 1;
        }
        (out, frames)
    }

    #[tokio::test]
    async fn a_large_array_goes_in_frames_and_is_the_same_json() {
        let items: Vec<u32> = (0..100_000).collect();
        let body =
            RequestBody::json_array("{\"n\":[", items.clone(), write_u32, "]}".into()).unwrap();
        assert!(!body.is_whole());
        assert_eq!(body.size_hint().exact(), None);
        let (out, frames) = collect(body).await;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({ "n": items }));
        // ~590 kB in frames of about 64 KiB.
        assert!(frames >= out.len() / (FRAME + 16), "{frames} frames");
        assert!(frames > 1);
    }

    #[tokio::test]
    async fn a_small_array_is_whole_with_its_length() {
        let body = RequestBody::json_array("[", vec![1u32, 2], write_u32, "]".into()).unwrap();
        assert!(body.is_whole());
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(collect(body).await, (b"[1,2]".to_vec(), 1));
        let empty = RequestBody::json_array("[", Vec::<u32>::new(), write_u32, "]".into());
        assert_eq!(collect(empty.unwrap()).await, (b"[]".to_vec(), 1));
        let none = RequestBody::empty();
        assert!(none.is_end_stream());
        assert_eq!(collect(none).await, (Vec::new(), 0));
    }
}
