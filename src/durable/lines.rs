//! Reading a JSON-lines journal with the torn-tail rule, the one reader of both journals (the
//! speaker's `routes.journal`, the controller's `runs/<run>.jsonl`).
//!
//! Contract:
//! - A line counts only with its newline: a last line without one is a torn write (the writer
//!   died inside `write`, so the append never returned and nothing was acknowledged) and is
//!   never yielded; [`JsonLines::good_len`] says where the whole lines end, for a caller that
//!   cuts the tail ([`super::cut_back`]).
//! - Every whole line, the last one too, must parse as one `T`: one that does not (an empty
//!   line included) is corruption, yielded as a [`BadLine`] with its line number, and the
//!   iteration ends there. A torn tail is never reported as corruption, a bad whole line always
//!   is.
//! - Lines are numbered from 1; [`Record::end`] and [`BadLine::start`] are byte offsets, so a
//!   caller that stops at a record it refuses knows the length of the part it accepted.
//!
//! Never does: read or cut files (callers read the text and map errors to their own types),
//! or check what a record means (seq, generation, legal transitions are the callers').

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

/// One whole line, parsed.
#[derive(Debug)]
pub struct Record<T> {
    pub value: T,
    /// Its line number, from 1.
    pub line: usize,
    /// Where the line starts.
    pub start: u64,
    /// Just past its newline.
    pub end: u64,
}

/// A whole line that is not a `T`.
#[derive(Debug)]
pub struct BadLine {
    /// Its line number, from 1.
    pub line: usize,
    /// Where it starts: the length of the good part before it.
    pub start: u64,
    pub error: serde_json::Error,
}

/// The records of a JSON-lines text; see the module contract.
pub struct JsonLines<'a, T> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    failed: bool,
    _record: PhantomData<fn() -> T>,
}

/// The records of `text`, in order, up to its torn tail or its first bad line.
pub fn json_lines<T: DeserializeOwned>(text: &[u8]) -> JsonLines<'_, T> {
    JsonLines {
        text,
        pos: 0,
        line: 0,
        failed: false,
        _record: PhantomData,
    }
}

impl<T> JsonLines<'_, T> {
    /// The length of the text up to its last newline: what is left when the torn tail is cut.
    pub fn good_len(&self) -> u64 {
        self.text
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i as u64 + 1)
    }
}

impl<T: DeserializeOwned> Iterator for JsonLines<'_, T> {
    type Item = Result<Record<T>, BadLine>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.text.get(self.pos..)?;
        let nl = rest.iter().position(|b| *b == b'\n')?;
        let start = self.pos;
        self.pos += nl + 1;
        self.line += 1;
        Some(match serde_json::from_slice(&rest[..nl]) {
            Ok(value) => Ok(Record {
                value,
                line: self.line,
                start: start as u64,
                end: self.pos as u64,
            }),
            Err(error) => {
                self.failed = true;
                Err(BadLine {
                    line: self.line,
                    start: start as u64,
                    error,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct R {
        n: u32,
    }

    /// `Ok((n, line, end))` for a record, `Err((line, start))` for a bad line.
    type Read = Result<(u32, usize, u64), (usize, u64)>;

    fn read(text: &str) -> Vec<Read> {
        json_lines::<R>(text.as_bytes())
            .map(|r| {
                r.map(|r| (r.value.n, r.line, r.end))
                    .map_err(|b| (b.line, b.start))
            })
            .collect()
    }

    #[test]
    fn a_torn_tail_is_dropped_and_never_corruption() {
        for tail in ["", "{\"n\":3", "{\"n\":3}", "garbage"] {
            let text = format!("{{\"n\":1}}\n{{\"n\":2}}\n{tail}");
            assert_eq!(read(&text), [Ok((1, 1, 8)), Ok((2, 2, 16))], "{tail:?}");
            assert_eq!(json_lines::<R>(text.as_bytes()).good_len(), 16);
        }
        assert_eq!(read(""), []);
        assert_eq!(read("{\"n\""), []);
        assert_eq!(json_lines::<R>(b"{\"n\"").good_len(), 0);
    }

    /// A whole line that does not parse is an error naming its line, in the middle and at the
    /// end (its newline says its append returned), an empty line too; nothing after it is read.
    #[test]
    fn a_bad_whole_line_is_an_error_naming_its_line_number() {
        assert_eq!(
            read("{\"n\":1}\n{\"x\":1}\n{\"n\":3}\n"),
            [Ok((1, 1, 8)), Err((2, 8))]
        );
        assert_eq!(read("{\"n\":1}\n{\"n\":2\n"), [Ok((1, 1, 8)), Err((2, 8))]);
        assert_eq!(
            read("{\"n\":1}\n\n{\"n\":3}\n"),
            [Ok((1, 1, 8)), Err((2, 8))]
        );
        let bad = json_lines::<R>(b"{\"n\":1}\n{\"n\":\"x\"}\n")
            .find_map(Result::err)
            .unwrap();
        assert_eq!((bad.line, bad.error.column()), (2, 8));
    }
}
